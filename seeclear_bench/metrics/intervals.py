"""Uncertainty of dataset scores: percentile-bootstrap confidence intervals over clips, and paired comparisons.

A dataset score is a mean over a handful of clips (REDS4 has four), so the spread between clips matters more than
the spread between frames. Both functions resample *clips* with replacement; the paired comparison resamples the
same clips for both methods, so the difference's interval reflects how consistently one method beats the other.
Each interval draws from its own generator, :func:`interval_rng`, seeded by the caller's seed and the *names* of what
it is about (method, dataset, metric), never by its position in a table: the same rows give the same interval in a
run's report and in a merged leaderboard that holds more rows.
"""
from __future__ import annotations

import json
from typing import Any, Final

import numpy as np
import pandas as pd

from seeclear_bench.errors import SeeClearError

N_BOOT: Final = 2000
LEVEL: Final = 0.95


def interval_rng(seed: int, *names: str) -> np.random.Generator:
    """The generator of one interval: :func:`seeclear_bench.seeds.named_rng` of ``seed`` and the names.

    Args:
        seed: Non-negative seed of the report.
        names: What the interval is about, e.g. ``("interval", method, dataset, metric, protocol, protocol_hash)``;
            encoded unambiguously (as a JSON list), so ``("ab", "c")`` and ``("a", "bc")`` get different streams.

    Returns:
        A generator that depends on ``seed`` and ``names`` only, not on the table's other rows or their order.
    """
    from seeclear_bench.seeds import named_rng

    return named_rng(seed, json.dumps([str(n) for n in names], ensure_ascii=False))


def bootstrap_mean_ci(
    values: np.ndarray, *, n_boot: int = N_BOOT, level: float = LEVEL, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one value per clip).

    Args:
        values: ``(c,)`` clip values; with one clip the interval is that single value.
        n_boot: Bootstrap resamples.
        level: Coverage, e.g. 0.95.
        rng: The generator the resampling indices are drawn from (``(n_boot, c)`` integers in one call).

    Returns:
        ``(low, high)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or not np.isfinite(values).all():
        raise SeeClearError(f"bootstrap needs a non-empty 1-D array of finite clip values, got {values!r}")
    if not 0 < level < 1:
        raise SeeClearError(f"confidence level must be in (0, 1), got {level}")
    index = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[index].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def dataset_intervals(clip_df: pd.DataFrame, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> pd.DataFrame:
    """Mean over clips with its bootstrap interval for every (method, dataset, metric) of a clip table.

    Each group's resampling comes from :func:`interval_rng` of ``seed`` and the group's names (method, dataset, metric,
    protocol, protocol hash), so a group's interval does not depend on the other groups in ``clip_df``.

    Returns:
        Columns method, dataset, metric, mean, ci_low, ci_high, n_clips, level, protocol, protocol_hash.
    """
    rows = []
    keys = ["method", "dataset", "metric", "protocol", "protocol_hash"]
    for key, group in clip_df.groupby(keys, sort=True):
        values = group.sort_values("clip")["value"].to_numpy(dtype=np.float64)
        rng = interval_rng(seed, "interval", *key)
        low, high = bootstrap_mean_ci(values, n_boot=n_boot, level=level, rng=rng)
        rows.append({**dict(zip(keys, key)), "mean": float(values.mean()), "ci_low": low, "ci_high": high,
                     "n_clips": len(values), "level": level})
    columns = ["method", "dataset", "metric", "mean", "ci_low", "ci_high", "n_clips", "level", "protocol", "protocol_hash"]
    return pd.DataFrame(rows, columns=columns)


def paired_comparison(
    clip_df: pd.DataFrame, *, reference: str, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
) -> pd.DataFrame:
    """Each method minus ``reference``, per (dataset, metric), over the clips both were scored on.

    The difference is the mean of per-clip differences; its interval is a percentile bootstrap over clips (the same
    resampled clips for both methods). ``significant`` is True when the interval excludes 0. Each difference's
    resampling comes from :func:`interval_rng` of ``seed`` and (dataset, metric, method, reference), so it does not
    depend on the other methods, datasets or metrics in ``clip_df``.

    Raises:
        SeeClearError: ``reference`` is not in the table, or a method was scored on other clips than the reference.
    """
    if reference not in set(clip_df["method"]):
        raise SeeClearError(f"reference method {reference!r} is not in the results; methods: {sorted(set(clip_df['method']))}")
    rows: list[dict[str, Any]] = []
    for (dataset, metric), group in clip_df.groupby(["dataset", "metric"], sort=True):
        wide = group.pivot(index="clip", columns="method", values="value")
        if reference not in wide:
            continue
        for method in sorted(c for c in wide.columns if c != reference):
            pair = wide[[method, reference]]
            if pair.isna().any().any():
                missing = sorted(pair.index[pair.isna().any(axis=1)])
                raise SeeClearError(f"{dataset} {metric}: {method} and {reference} were not scored on the same clips "
                                    f"(differing: {missing[:5]}); a paired comparison needs the same clips")
            diff = (pair[method] - pair[reference]).to_numpy(dtype=np.float64)
            rng = interval_rng(seed, "paired", dataset, metric, method, reference)
            low, high = bootstrap_mean_ci(diff, n_boot=n_boot, level=level, rng=rng)
            rows.append({"dataset": dataset, "metric": metric, "method": method, "reference": reference,
                         "difference": float(diff.mean()), "ci_low": low, "ci_high": high, "n_clips": len(diff),
                         "significant": bool(low > 0 or high < 0), "level": level})
    columns = ["dataset", "metric", "method", "reference", "difference", "ci_low", "ci_high", "n_clips", "significant", "level"]
    return pd.DataFrame(rows, columns=columns)
