"""What a leaderboard adds to the dataset means: rank per metric, best and second-best marks, intervals, verdicts.

Owns the ranking rule shared by the HTML page and the long ``metrics/scores`` table, and kept identical to the Markdown
leaderboard's marks (:func:`seeclear_bench.leaderboard.leaderboard_markdown`): values are compared as displayed
(rounded to the metric's ``decimals``), the direction comes from :attr:`MetricSpec.higher_better`, equal displayed
values share a rank (dense ranking: 1, 1, 2), rank 1 is *best* and rank 2 *second* when at least two distinct values
compete, and the ground-truth row is shown but never ranked. Imports pandas, numpy and the metric metadata only.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from seeclear_bench.metrics.registry import get_metric

BEST: Final = "best"
SECOND: Final = "second"
SCORE_COLUMNS: Final = (
    "dataset", "metric", "method", "value", "ci_low", "ci_high", "level", "rank", "mark", "higher_better",
    "n_clips", "n_frames", "n_inf", "protocol", "protocol_hash", "aggregation",
)


def rank_values(values: np.ndarray, *, higher_better: bool, decimals: int, ranked: np.ndarray | None = None
                ) -> tuple[np.ndarray, list[str]]:
    """Dense rank and best/second mark of each value of one leaderboard column.

    Args:
        values: ``(m,)`` the methods' values (NaN: not scored).
        higher_better: Ranking direction.
        decimals: Values are compared after rounding to this many digits (as displayed).
        ranked: ``(m,)`` bool, False for rows shown but not ranked (the ground truth); default all True.

    Returns:
        ``ranks``: ``(m,)`` float, 1 = best, NaN for unranked or NaN rows; ``marks``: ``"best"``, ``"second"`` or ``""``
        per row (none when fewer than two distinct values compete).
    """
    values = np.asarray(values, dtype=np.float64)
    ranked = np.ones(len(values), bool) if ranked is None else np.asarray(ranked, bool)
    rounded = np.round(values, decimals)
    contenders = ranked & np.isfinite(rounded)
    distinct = np.unique(rounded[contenders])
    order = distinct[::-1] if higher_better else distinct
    position = {v: i + 1 for i, v in enumerate(order)}
    ranks = np.array([position[v] if c else np.nan for v, c in zip(rounded, contenders, strict=True)], dtype=np.float64)
    marks = []
    for rank in ranks:
        if len(order) < 2 or np.isnan(rank) or rank > 2:
            marks.append("")
        else:
            marks.append(BEST if rank == 1 else SECOND)
    return ranks, marks


def score_table(datasets: pd.DataFrame, intervals: pd.DataFrame, *, unranked: Sequence[str] = ()) -> pd.DataFrame:
    """The long leaderboard: one row per (dataset, metric, method) with value, interval, rank and mark.

    Args:
        datasets: :func:`~seeclear_bench.metrics.tables.dataset_table` output (the leaderboard's values).
        intervals: :func:`~seeclear_bench.metrics.intervals.dataset_intervals` output (bootstrap over clips of the
            clip mean; under a frame-mean protocol the value is the pooled frame mean, the interval still the
            clip-level one).
        unranked: Methods shown but never ranked (the ground-truth row).

    Returns:
        Columns :data:`SCORE_COLUMNS`, sorted by dataset, metric (registry order), rank, method.
    """
    keys = ["method", "dataset", "metric", "protocol", "protocol_hash"]
    table = datasets.merge(intervals[[*keys, "ci_low", "ci_high", "level"]], on=keys, how="left", validate="one_to_one")
    parts = []
    for (_, metric), rows in table.groupby(["dataset", "metric"], sort=True):
        spec = get_metric(metric)
        ranks, marks = rank_values(rows["value"].to_numpy(), higher_better=spec.higher_better, decimals=spec.decimals,
                                   ranked=~rows["method"].isin(list(unranked)).to_numpy())
        parts.append(rows.assign(rank=ranks, mark=marks, higher_better=spec.higher_better))
    out = pd.concat(parts, ignore_index=True)
    from seeclear_bench.metrics.registry import METRICS

    order = {name: i for i, name in enumerate(METRICS)}
    out["_metric_order"] = out["metric"].map(order)
    out["_rank"] = out["rank"].fillna(np.inf)
    out = out.sort_values(["dataset", "_metric_order", "_rank", "method"], kind="stable")
    return out[list(SCORE_COLUMNS)].reset_index(drop=True)


def paired_verdicts(paired: pd.DataFrame) -> pd.DataFrame:
    """Add ``verdict`` to a :func:`~seeclear_bench.metrics.intervals.paired_comparison` table.

    ``better`` / ``worse`` than the reference when the interval excludes 0 (direction from the metric's
    ``higher_better``), else ``no significant difference``.
    """
    verdicts = []
    for row in paired.itertuples(index=False):
        if not row.significant:
            verdicts.append("no significant difference")
            continue
        gain = row.difference > 0 if get_metric(row.metric).higher_better else row.difference < 0
        verdicts.append("better" if gain else "worse")
    return paired.assign(verdict=pd.Series(verdicts, index=paired.index, dtype=object))
