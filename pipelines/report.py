"""Report stage: per-frame table(s) -> per-clip and per-dataset tables, bootstrap intervals, paired comparisons, ranked
scores, provenance, the leaderboard (Markdown, CSV, Parquet) and the self-contained HTML page with its pictures.
Pure pandas and matplotlib: no Ray."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.leaderboard import escape_markdown
from seeclear_bench.report.merge import Merged


def run(frames: pd.DataFrame | Merged, out_url: str, *, title: str, command: str | None = None,
        reference: str | None = "bicubic", seed: int = 0, runs: Sequence[str] | None = None,
        html: bool = True) -> str:
    """Write the tables under ``out_url`` (``metrics/``, ``leaderboard.*``, ``figures/``); returns the Markdown leaderboard.

    Args:
        frames: One per-frame table (e.g. a run's ``metrics/frames.parquet``) or several merged by
            :func:`seeclear_bench.report.merge.load_results`.
        out_url: Output folder; when it is a run folder (``spec.json``), its predictions, shards and records also
            serve as frames for the pictures and as provenance.
        title: Heading of the leaderboard and the page.
        command: The command line that made the results, shown at the top of every report file.
        reference: Method every other is compared with (skipped when absent or alone).
        seed: Seed of the bootstrap resampling.
        runs: Further run folders to draw pictures from.
        html: Also write ``leaderboard.html`` and ``figures/*.png``.
    """
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.leaderboard import build_leaderboard, leaderboard_markdown
    from seeclear_bench.metrics.intervals import (
        N_BOOT,
        dataset_intervals,
        paired_comparison,
    )
    from seeclear_bench.metrics.scoring import GT_METHOD
    from seeclear_bench.metrics.tables import clip_table, dataset_table, save_table
    from seeclear_bench.report.provenance import provenance_table
    from seeclear_bench.report.ranking import paired_verdicts, score_table

    layout = RunLayout(out_url)
    merged = frames if isinstance(frames, Merged) else _merge_single(frames, out_url)
    results = merged.results()
    clips = clip_table(results)
    save_table(clips, layout.metrics("clips"))
    datasets = dataset_table(clips, results)
    save_table(datasets, layout.metrics("datasets"))
    intervals = dataset_intervals(clips, seed=seed)
    save_table(intervals, layout.metrics("intervals"))
    scores = score_table(datasets, intervals, unranked=[GT_METHOD])
    save_table(scores, layout.metrics("scores"))
    provenance = provenance_table(results)
    save_table(provenance, layout.metrics("provenance"))
    board = build_leaderboard(results)
    save_table(_flatten(board), layout.report_file("leaderboard"))
    text = leaderboard_markdown(board, title=title, command=command).rstrip("\n") + "\n"
    text += _conflicts_markdown(merged.conflicts)
    text += _intervals_markdown(intervals)
    contenders = clips[clips["method"] != GT_METHOD]
    paired = None
    if reference and reference in set(contenders["method"]) and contenders["method"].nunique() > 1:
        paired = paired_verdicts(paired_comparison(contenders, reference=reference, seed=seed))
        save_table(paired, layout.metrics("paired"))
        text += _paired_markdown(paired, reference)
    elif reference:  # said, not skipped silently
        why = ("it is not among the scored methods" if reference not in set(contenders["method"])
               else "it is the only method")
        text += f"\nNo paired comparison against {escape_markdown(repr(reference))}: {why}.\n"
    text += _clips_markdown(clips)
    text += _provenance_markdown(provenance)
    if html:
        from seeclear_bench.provenance import code_version
        from seeclear_bench.report.build import (
            HTML_NAME,
            draw_pictures,
            method_note,
            reproduce_commands,
            write_html_report,
        )
        from seeclear_bench.report.html import ReportPage

        folders = list(runs or ()) + ([out_url] if layout.is_run() else [])
        pictures, notes = draw_pictures(merged, scores, runs=folders)
        version = code_version()
        for method, dataset, metric, n_inf, n_frames, treatment in board.attrs.get("inf_frames", []):
            notes.append(f"{method}, {dataset} {metric}: {n_inf} of {n_frames} frames identical to the ground truth "
                         f"(inf), {treatment}.")
        page = ReportPage(
            title=title, command=command, scores=scores, groups=merged.groups, clips=clips, frames=results,
            provenance=provenance, paired=paired, reference=reference, pictures=pictures,
            conflicts=merged.conflicts, notes=notes,
            commands=reproduce_commands(merged, command=command, out_url=out_url, title=title, reference=reference,
                                        seed=seed),
            generator=f"seeclear-bench {version['seeclear_bench']} (git {version['git_commit']})",
            method_note=method_note(scores, n_boot=N_BOOT, seed=seed),
        )
        write_html_report(page, out_url)
        text += f"\nPictures, sortable tables and per-frame breakdowns: `{HTML_NAME}` (one self-contained file).\n"
    io.write_bytes(layout.report_file("leaderboard.md"), text.encode("utf-8"))
    return text


def _merge_single(frames: pd.DataFrame, out_url: str) -> Merged:
    """A single per-frame table as a merge of one; a run folder's own table is named and its provenance filled."""
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.report.merge import merge_results
    from seeclear_bench.report.provenance import fill_from_run

    layout = RunLayout(out_url)
    is_run = layout.is_run()
    source = layout.metrics("frames") + ".parquet" if is_run else "per-frame table"
    if is_run:
        frames = fill_from_run(frames, out_url)
    merged = merge_results([(source, frames)])
    return Merged(merged.frames, merged.groups, merged.sources, (out_url,) if is_run else (), merged.conflicts)


def _flatten(board: pd.DataFrame) -> pd.DataFrame:
    flat = board.copy()
    flat.columns = ["/".join(map(str, col)) for col in flat.columns]
    return flat.reset_index()


def _conflicts_markdown(conflicts: Sequence[str]) -> str:
    if not conflicts:
        return ""
    return "\n## Conflicts found while merging\n\n" + "".join(f"- {escape_markdown(c)}\n" for c in conflicts)


def _intervals_markdown(intervals: pd.DataFrame) -> str:
    lines = ["", f"## Means over clips with {intervals['level'].iloc[0]:.0%} bootstrap intervals", "",
             "| Dataset | Metric | Method | Mean | Interval | Clips |", "|:---|:---|:---|---:|:---:|---:|"]
    for r in intervals.itertuples(index=False):
        lines.append(f"| {escape_markdown(r.dataset)} | {escape_markdown(r.metric)} | {escape_markdown(r.method)} | "
                     f"{r.mean:.4f} | [{r.ci_low:.4f}, {r.ci_high:.4f}] | {r.n_clips} |")
    return "\n".join(lines) + "\n"


# more clip rows than this are folded in a <details> block (GitHub and most renderers show it collapsed)
FOLD_CLIP_ROWS = 12


def _clips_markdown(clips: pd.DataFrame) -> str:
    """The clip means of every column group, a row per (clip, method), methods in leaderboard order."""
    from seeclear_bench.leaderboard import method_order
    from seeclear_bench.metrics.registry import METRICS, get_metric

    order = {name: i for i, name in enumerate(METRICS)}
    methods = {m: i for i, m in enumerate(method_order(clips))}
    lines = ["", "## Per clip", ""]
    for group, rows in clips.groupby("dataset", sort=True):
        metrics = sorted(set(rows["metric"]), key=lambda m: (order.get(m, len(order)), m))
        wide = rows.pivot_table(index=["clip", "method"], columns="metric", values="value", aggfunc="first")
        keys = sorted(wide.index, key=lambda k: (str(k[0]), methods.get(k[1], len(methods)), str(k[1])))
        labels = [f"{get_metric(m).display_name or m.upper()}{'↑' if get_metric(m).higher_better else '↓'}"
                  for m in metrics]
        table = ["| Clip | Method | " + " | ".join(labels) + " |", "|:---|:---|" + "---:|" * len(metrics)]
        for clip, method in keys:
            values = [wide.at[(clip, method), m] if m in wide.columns else np.nan for m in metrics]
            cells = ["–" if pd.isna(v) else f"{v:.{get_metric(m).decimals}f}" for v, m in zip(values, metrics)]
            table.append(f"| {escape_markdown(clip)} | {escape_markdown(method)} | " + " | ".join(cells) + " |")
        title = f"{escape_markdown(group)}: clip means ({len(keys)} rows)"
        if len(keys) > FOLD_CLIP_ROWS:
            lines += [f"<details><summary>{title}</summary>", "", *table, "", "</details>", ""]
        else:
            lines += [f"### {title}", "", *table, ""]
    return "\n".join(lines)


def _paired_markdown(paired: pd.DataFrame, reference: str) -> str:
    lines = ["", f"## Paired differences against {escape_markdown(reference)} (same clips resampled for both)", "",
             "| Dataset | Metric | Method | Difference | Interval | Significant | Verdict |",
             "|:---|:---|:---|---:|:---:|:---:|:---|"]
    for r in paired.itertuples(index=False):
        lines.append(f"| {escape_markdown(r.dataset)} | {escape_markdown(r.metric)} | {escape_markdown(r.method)} | "
                     f"{r.difference:+.4f} | [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | "
                     f"{'yes' if r.significant else 'no'} | {escape_markdown(r.verdict)} |")
    return "\n".join(lines) + "\n"


def _provenance_markdown(provenance: pd.DataFrame) -> str:
    from seeclear_bench.report.provenance import FIELDS

    columns = ["method", "dataset", "protocol", *FIELDS, "status"]
    header = ["Method", "Dataset", "Protocol", *[label for label, _ in FIELDS.values()], "Status"]
    lines = ["", "## Provenance", "", ("`unknown`: not recorded; `n/a`: does not apply (no checkpoint for a kernel "
             "baseline); a row marked **no provenance** came from a table without any provenance columns."), "",
             "| " + " | ".join(header) + " |", "|" + "|".join([":---"] * len(header)) + "|"]
    for row in provenance.to_dict("records"):
        cells = [escape_markdown(row[c]) for c in columns]
        cells[2] = f"{escape_markdown(row['protocol'])} ({escape_markdown(row['protocol_hash'])})"
        if row["status"] != "complete":
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
