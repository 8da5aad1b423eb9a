"""Leaderboards: a pure pandas transform of the per-frame results table into a ranked methods x datasets table.

Owns the refusal to rank numbers that are not comparable (different protocols in one column, or methods scored on
different clips/frames of a dataset) and the Markdown rendering (best in bold, second best underlined, ranking
direction from :attr:`MetricSpec.higher_better`). Imports pandas and the metric metadata only; never torch or ray.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import numpy as np
import pandas as pd

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import Protocol, resolve_protocol
from seeclear_bench.metrics.registry import METRICS, MetricSpec, get_metric
from seeclear_bench.metrics.scoring import GT_METHOD
from seeclear_bench.metrics.tables import clip_table, dataset_table, validate_frames_df

MISSING: Final = "–"
# Characters that would start an HTML tag or entity, or Markdown emphasis, code, links, strikethrough or a table cell
# anywhere on a line; block markers (``#``, ``-``, ``1.``) matter only at the start of a name (see escape_markdown).
_MARKDOWN_ESCAPES: Final = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;",
                            **{c: "\\" + c for c in "`*_[]|~"}}
_BLOCK_START: Final = re.compile(r"[#+=-]|\d{1,9}[.)]")
_METRIC_ORDER: Final = {name: i for i, name in enumerate(METRICS)}


def build_leaderboard(frames_df: pd.DataFrame, *, protocols: Iterable[Protocol] = ()) -> pd.DataFrame:
    """Dataset-level scores of every method, one column per (dataset, metric).

    Each cell is the :func:`~seeclear_bench.metrics.tables.dataset_table` value under the column's protocol
    (clip-mean or frame-mean, inf policy applied). ``board.attrs["protocols"]`` maps each dataset to the
    ``[protocol name, protocol hash]`` pairs its columns use; ``board.attrs["inf_frames"]`` lists
    ``[method, dataset, metric, n_inf, n_frames, treatment]`` for every cell that contains infinite frames.

    Args:
        frames_df: Per-frame table of any number of methods and datasets.
        protocols: Custom (non-preset) protocols the rows may use.

    Returns:
        Rows: methods (index named ``method``) in :func:`method_order`; columns: ``MultiIndex`` (dataset, metric),
        datasets sorted by name and metrics in registry order. A method not scored on a dataset has NaN there.

    Raises:
        SeeClearError: An invalid table; two protocols within one (dataset, metric) column (both are named); or, within
            a column, methods scored on different (clip, frame) sets (their means would not be comparable).
    """
    protocols = list(protocols)
    validate_frames_df(frames_df, "per-frame table")
    for (dataset, metric), rows in frames_df.groupby(["dataset", "metric"], sort=True):
        used = rows[["protocol", "protocol_hash"]].drop_duplicates().sort_values(["protocol", "protocol_hash"])
        if len(used) > 1:
            (name_a, hash_a), (name_b, hash_b) = list(used.itertuples(index=False))[:2]
            raise SeeClearError(
                f"{dataset} {metric}: rows use protocol {name_a!r} ({hash_a}) and protocol {name_b!r} ({hash_b}); "
                "one leaderboard column needs one protocol, rescore the methods under the same protocol"
            )
        if "metric_hash" in rows:
            variants = sorted(rows["metric_hash"].dropna().astype(str).unique())
            if len(variants) > 1:
                raise SeeClearError(
                    f"{dataset} {metric}: rows were computed by {len(variants)} variants of the metric (metric hashes "
                    f"{', '.join(variants)}: different parameters or weight files); rescore with one variant"
                )
        _check_same_frames(rows, dataset, metric)
    clips = clip_table(frames_df, protocols=protocols)
    datasets = dataset_table(clips, frames_df, protocols=protocols)
    board = datasets.pivot(index="method", columns=["dataset", "metric"], values="value")
    columns = sorted(board.columns, key=lambda c: (c[0], _METRIC_ORDER.get(c[1], len(_METRIC_ORDER)), c[1]))
    board = board.reindex(columns=pd.MultiIndex.from_tuples(columns, names=["dataset", "metric"]))
    board = board.reindex(index=method_order(datasets))
    used = datasets[["dataset", "protocol", "protocol_hash"]].drop_duplicates().sort_values(["dataset", "protocol", "protocol_hash"])
    board.attrs["protocols"] = {
        dataset: [[name, digest] for name, digest in group[["protocol", "protocol_hash"]].itertuples(index=False)]
        for dataset, group in used.groupby("dataset", sort=True)
    }
    notes = []
    for row in datasets[datasets["n_inf"] > 0].itertuples(index=False):
        proto = resolve_protocol(row.protocol, row.protocol_hash, protocols)
        unit = get_metric(row.metric).unit
        treatment = f"counted as {proto.psnr_cap:g} {unit}".rstrip() if proto.inf_policy == "cap" else "left out of the mean"
        notes.append([row.method, row.dataset, row.metric, int(row.n_inf), int(row.n_frames), treatment])
    board.attrs["inf_frames"] = notes
    return board


def method_order(datasets: pd.DataFrame) -> list[str]:
    """The leaderboard's row order: by rank on the first metric (registry order) of the first dataset column group
    (sorted by name), best first, as displayed (rounded to the metric's decimals, ties by name); methods without a
    value there follow by name, and the ground truth (a reference, not a contender) comes last.

    Args:
        datasets: Dataset-level values: ``method``, ``dataset``, ``metric``, ``value`` columns (a
            :func:`~seeclear_bench.metrics.tables.dataset_table` or the report's scores).
    """
    methods = sorted(set(datasets["method"]) - {GT_METHOD})
    tail = [GT_METHOD] if GT_METHOD in set(datasets["method"]) else []
    first = sorted(set(datasets["dataset"]))[0]
    rows = datasets[datasets["dataset"] == first]
    metric = min(set(rows["metric"]), key=lambda m: (_METRIC_ORDER.get(m, len(_METRIC_ORDER)), m))
    spec = get_metric(metric)
    values = rows[rows["metric"] == metric].groupby("method")["value"].first()

    def key(method: str) -> tuple[bool, float, str]:
        value = values.get(method, np.nan)
        if pd.isna(value):
            return (True, 0.0, method)
        shown = float(np.round(value, spec.decimals)) if np.isfinite(value) else float(value)
        return (False, -shown if spec.higher_better else shown, method)

    return sorted(methods, key=key) + tail


def leaderboard_markdown(board: pd.DataFrame, *, title: str, command: str | None) -> str:
    """Render a :func:`build_leaderboard` table as Markdown, methods x datasets.

    Each dataset is one column whose cells hold its metrics joined by `` / `` (PSNR with 2 decimals, SSIM with 4,
    others with their spec's ``decimals``). Within each (dataset, metric), the best value is in bold and the second
    best is underlined (``<u>``), by the displayed (rounded) value, so ties share a mark. Methods keep the board's
    order. The header names each dataset's protocol and hash, and the line below it the command that made the table.

    Args:
        board: Output of :func:`build_leaderboard`.
        title: Heading text.
        command: The command line that produced the results, or ``None`` if unknown.

    Returns:
        Markdown text ending in a newline; identical input gives identical output.
    """
    if not isinstance(board.columns, pd.MultiIndex) or board.columns.nlevels != 2:
        raise SeeClearError("leaderboard_markdown needs the (dataset, metric) columns that build_leaderboard returns")
    datasets = list(dict.fromkeys(board.columns.get_level_values(0)))
    protocols = board.attrs.get("protocols", {})
    protocol_text = "; ".join(
        f"{escape_markdown(dataset)}: " + (", ".join(f"{_code(name)} ({escape_markdown(digest)})"
                                                    for name, digest in protocols.get(dataset, [])) or "unknown")
        for dataset in datasets
    )
    cells: dict[tuple[str, str], list[str]] = {}
    ranked = np.array([str(m) != GT_METHOD for m in board.index])  # the ground truth is a reference, not a contender
    for column in board.columns:
        cells[column] = _format_column(board[column].to_numpy(dtype=np.float64), get_metric(column[1]), ranked)

    header = ["Method"]
    for dataset in datasets:
        metrics = [m for d, m in board.columns if d == dataset]
        labels = " / ".join(f"{_label(m)}{'↑' if get_metric(m).higher_better else '↓'}" for m in metrics)
        header.append(f"{escape_markdown(dataset)} ({labels})")
    lines = [
        f"# {escape_markdown(title)}",
        "",
        f"Protocols: {protocol_text}.",
        f"Command: {_code(command)}" if command else "Command: not recorded.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + [":---:"] * len(datasets)) + "|",
    ]
    for i, method in enumerate(board.index):
        row = [escape_markdown(method)]
        for dataset in datasets:
            row.append(" / ".join(cells[(d, m)][i] for d, m in board.columns if d == dataset))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Best per column in **bold**, second best <u>underlined</u>; ↑ higher is better, ↓ lower is better."]
    if GT_METHOD in board.index:
        lines.append(f"`{GT_METHOD}` is the ground-truth clip scored by the metrics that read the prediction alone "
                     "(warping error rewards blur, so compare with it); it is not ranked.")
    for method, dataset, metric, n_inf, n_frames, treatment in board.attrs.get("inf_frames", []):
        lines.append(
            f"- {escape_markdown(method)}, {escape_markdown(dataset)} {_label(metric)}: {n_inf} of {n_frames} frames "
            f"identical to the ground truth (inf), {escape_markdown(treatment)}."
        )
    return "\n".join(lines) + "\n"


def _format_column(values: np.ndarray, spec: MetricSpec, ranked_rows: np.ndarray) -> list[str]:
    """The column's cells: best bold, second underlined (`rank_values`' rule), NaN shown as missing."""
    from seeclear_bench.report.ranking import BEST, SECOND, rank_values

    rounded = np.round(values, spec.decimals)
    _, marks = rank_values(values, higher_better=spec.higher_better, decimals=spec.decimals, ranked=ranked_rows)
    style = {BEST: "**{}**", SECOND: "<u>{}</u>", "": "{}"}
    return [MISSING if np.isnan(value) else style[mark].format(f"{value:.{spec.decimals}f}")
            for value, mark in zip(rounded, marks, strict=True)]


def _check_same_frames(rows: pd.DataFrame, dataset: str, metric: str) -> None:
    frames_by_method = {
        method: set(zip(group["clip"], group["frame"], strict=True)) for method, group in rows.groupby("method", sort=True)
    }
    reference_method, reference = max(frames_by_method.items(), key=lambda item: (len(item[1]), item[0]))
    for method, frames in frames_by_method.items():
        if frames != reference:
            clips = sorted({c for c, _ in reference ^ frames})
            raise SeeClearError(
                f"{dataset} {metric}: {method} was scored on {len(frames)} frames but {reference_method} on "
                f"{len(reference)} (clips differing: {clips[:5]}); score every method on the same clips and frames"
            )


def _label(metric: str) -> str:
    spec = get_metric(metric)
    return escape_markdown(spec.display_name or spec.name.upper())


def escape_markdown(text: object) -> str:
    """Render any name (method, dataset, metric label, title, a value from data) as literal Markdown text.

    The one escape every Markdown writer uses, the counterpart of :func:`html.escape` on the HTML page: ``&``, ``<``
    and ``>`` become HTML entities (a CommonMark renderer passes raw HTML through, so ``<script>`` in a method name
    would otherwise run), the characters of emphasis, code, links, strikethrough and table cells (`` ` * _ [ ] | ~``
    and ``\\``) are backslash-escaped, a leading block marker (``#``, ``-``, ``+``, ``=``, ``1.``) is escaped so a name
    at the start of a list item stays text, and line breaks and other control characters become spaces so a name
    stays on its table row.

    Args:
        text: The name; non-strings are formatted with :func:`str`.

    Returns:
        Markdown source that renders as exactly ``text`` (control characters shown as spaces), safe in a table cell.
    """
    escaped = "".join(_MARKDOWN_ESCAPES.get(c, c) for c in _single_line(text))
    block = _BLOCK_START.match(escaped)
    if block:  # backslash before the marker character: "\\#", "\\-", "1986\\."
        escaped = escaped[: block.end() - 1] + "\\" + escaped[block.end() - 1 :]
    return escaped


def _code(text: str) -> str:
    """``text`` as one Markdown code span (shown verbatim, never parsed as HTML), fenced by more backticks than it holds."""
    plain = _single_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", plain)), default=0) + 1)
    pad = " " if plain.startswith(("`", " ")) or plain.endswith(("`", " ")) else ""
    return f"{fence}{pad}{plain}{pad}{fence}"


def _single_line(text: object) -> str:
    """``str(text)`` with line breaks and other control characters as spaces: a Markdown line or table row holds it."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(text))
