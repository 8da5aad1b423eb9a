"""Report stage: per-frame table -> per-clip and per-dataset tables, bootstrap intervals, paired comparisons, and the
leaderboard (Markdown, CSV, Parquet). Pure pandas: no Ray."""
from __future__ import annotations

import pandas as pd

from seeclear_bench import io


def run(frames: pd.DataFrame, out_url: str, *, title: str, command: str | None = None,
        reference: str | None = "bicubic", seed: int = 0) -> str:
    """Write the tables under ``out_url`` (``metrics/``, ``leaderboard.*``); returns the Markdown leaderboard."""
    from seeclear_bench.leaderboard import build_leaderboard, leaderboard_markdown
    from seeclear_bench.metrics.intervals import dataset_intervals, paired_comparison
    from seeclear_bench.metrics.scoring import GT_METHOD
    from seeclear_bench.metrics.tables import clip_table, dataset_table, save_table

    clips = clip_table(frames)
    save_table(clips, io.join(out_url, "metrics", "clips"))
    save_table(dataset_table(clips, frames), io.join(out_url, "metrics", "datasets"))
    intervals = dataset_intervals(clips, seed=seed)
    save_table(intervals, io.join(out_url, "metrics", "intervals"))
    board = build_leaderboard(frames)
    save_table(_flatten(board), io.join(out_url, "leaderboard"))
    text = leaderboard_markdown(board, title=title, command=command).rstrip("\n") + "\n"
    text += _intervals_markdown(intervals)
    contenders = clips[clips["method"] != GT_METHOD]
    if reference and reference in set(contenders["method"]) and contenders["method"].nunique() > 1:
        paired = paired_comparison(contenders, reference=reference, seed=seed)
        save_table(paired, io.join(out_url, "metrics", "paired"))
        text += _paired_markdown(paired, reference)
    io.write_bytes(io.join(out_url, "leaderboard.md"), text.encode("utf-8"))
    return text


def _flatten(board: pd.DataFrame) -> pd.DataFrame:
    flat = board.copy()
    flat.columns = ["/".join(map(str, col)) for col in flat.columns]
    return flat.reset_index()


def _intervals_markdown(intervals: pd.DataFrame) -> str:
    lines = ["", f"## Means over clips with {intervals['level'].iloc[0]:.0%} bootstrap intervals", "",
             "| Dataset | Metric | Method | Mean | Interval | Clips |", "|:---|:---|:---|---:|:---:|---:|"]
    for r in intervals.itertuples(index=False):
        lines.append(f"| {r.dataset} | {r.metric} | {r.method} | {r.mean:.4f} | [{r.ci_low:.4f}, {r.ci_high:.4f}] | {r.n_clips} |")
    return "\n".join(lines) + "\n"


def _paired_markdown(paired: pd.DataFrame, reference: str) -> str:
    lines = ["", f"## Paired differences against `{reference}` (same clips resampled for both)", "",
             "| Dataset | Metric | Method | Difference | Interval | Significant |", "|:---|:---|:---|---:|:---:|:---:|"]
    for r in paired.itertuples(index=False):
        lines.append(f"| {r.dataset} | {r.metric} | {r.method} | {r.difference:+.4f} | "
                     f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {'yes' if r.significant else 'no'} |")
    return "\n".join(lines) + "\n"
