"""Assembling the HTML report: the pictures of every column group, the reproduce commands, and the files written.

Owns which pictures a report draws (for every column group: the perception-distortion plane, per-frame curves, and
for its first clip with frames available the temporal profiles and crops) and writing ``leaderboard.html`` plus each
picture as ``figures/<name>.png`` next to it. The tables it shows are computed by the caller
(:func:`pipelines.report.run`). Imports pandas; matplotlib only through :mod:`seeclear_bench.report.plots`.
"""
from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence

import pandas as pd

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.report import plots
from seeclear_bench.report.frames import GROUND_TRUTH, collect_pictures, find_sources
from seeclear_bench.report.html import ReportPage, render_html
from seeclear_bench.report.merge import Merged
from seeclear_bench.report.provenance import run_provenance

log = logging.getLogger(__name__)

HTML_NAME = "leaderboard.html"


def draw_pictures(merged: Merged, scores: pd.DataFrame, *, runs: Sequence[str] = ()
                  ) -> tuple[dict[str, list[plots.Picture]], list[str]]:
    """Every picture of every column group, and notes on pictures that could not be drawn.

    Args:
        merged: The merged results.
        scores: :func:`~seeclear_bench.report.ranking.score_table` output.
        runs: Run folders to look for frames in (besides those ``merged`` found).

    Returns:
        ``({group: [Picture]}, notes)``.
    """
    from seeclear_bench.metrics.scoring import GT_METHOD

    frames = merged.results()
    colours = plots.method_colours([*set(frames["method"]), GROUND_TRUTH])
    folders = list(dict.fromkeys([*runs, *merged.runs]))
    out: dict[str, list[plots.Picture]] = {}
    notes: list[str] = []
    for group in dict.fromkeys(scores["dataset"]):
        plane = plots.perception_distortion(scores, group, colours=colours)
        if plane is None:
            notes.append(f"{group}: no perception-distortion plane (it needs PSNR and a lower-is-better metric for the same methods)")
        pictures = [p for p in (plane, plots.frame_curves(frames, group, colours=colours)) if p is not None]
        rows = frames[frames["dataset"] == group]
        clip = min(rows["clip"])
        try:
            sources = find_sources(frames, merged.groups, folders, group, clip)
            sources.pop(GT_METHOD, None)
            if GROUND_TRUTH not in sources or len(sources) < 2:
                missing = "ground truth" if GROUND_TRUTH not in sources else "predictions"
                notes.append(f"{group}: no temporal profiles or crops, the {missing} frames of clip {clip!r} were not "
                             "found (pass the run folders that hold them with --run)")
            else:
                indices = sorted(set(rows.loc[rows["clip"] == clip, "frame"].astype(int)))
                pics = collect_pictures(sources, dataset=group, clip=clip, indices=indices)
                pictures.append(plots.temporal_profiles(pics, colours=colours))
                pictures.append(plots.frame_crops(pics, labels=_psnr_labels(rows, clip, pics.crop_frame)))
        except SeeClearError as exc:
            notes.append(f"{group}: no temporal profiles or crops for clip {clip!r}: {exc}")
        out[group] = pictures
    return out, notes


def reproduce_commands(merged: Merged, *, command: str | None, out_url: str, title: str, reference: str | None,
                       seed: int) -> list[tuple[str, str]]:
    """The ``(what, command)`` pairs that remake the results and this page."""
    commands = []
    if command:
        commands.append(("This page and its tables were made by", command))
    for run in merged.runs:
        info = run_provenance(run)
        if not info:
            continue
        made_by = run_command(run, info)
        if made_by is not None and made_by == command:
            continue  # a run's own report stage: the first command made both
        if made_by is not None:
            commands.append((f"The results in {run} (spec {info.get('spec_hash', 'unknown')}) were made by", made_by))
        else:
            what = (f"The results in {run} were made by `seeclear-bench run` from the spec recorded under \"spec\" in "
                    f"{io.join(run, 'spec.json')} (spec hash {info.get('spec_hash', 'unknown')}), written back as TOML")
            commands.append((what, f"seeclear-bench run SPEC.toml --out {shlex.quote(run)}"))
    rebuild = ["seeclear-bench", "leaderboard", *merged.sources, "--out", out_url, "--title", title, "--seed", str(seed)]
    if reference:
        rebuild += ["--reference", reference]
    if all(io.exists(source) for source in merged.sources):  # a table passed in memory has no URL to rebuild from
        commands.append(("Rebuild this page from the per-frame tables", " ".join(shlex.quote(str(a)) for a in rebuild)))
    return commands


def write_html_report(page: ReportPage, out_url: str) -> list[str]:
    """Write ``leaderboard.html`` and ``figures/<name>.png`` under ``out_url``; returns the URLs written."""
    from seeclear_bench.layout import RunLayout

    layout = RunLayout(out_url)
    written = []
    for pictures in page.pictures.values():
        for picture in pictures:
            url = layout.figure(picture.name)
            io.write_bytes(url, picture.png)
            written.append(url)
    url = layout.report_file(HTML_NAME)
    io.write_bytes(url, render_html(page).encode("utf-8"))
    written.append(url)
    return written


def method_note(scores: pd.DataFrame, *, n_boot: int, seed: int) -> str:
    """One paragraph on how the page's numbers were computed."""
    level = scores["level"].dropna()
    level_text = f"{level.iloc[0]:.0%}" if len(level) else "95%"
    aggregations = ", ".join(sorted(set(scores["aggregation"])))
    return (f"Dataset values follow each protocol's aggregation (here {aggregations}; clip-mean is the mean of the "
            "clip means, frame-mean pools all frames of the dataset). Intervals are "
            f"{level_text} percentile-bootstrap intervals of the mean over clips ({n_boot} resamples, seed {seed}). "
            "Ranks compare the displayed values per metric and column; the ground-truth row is shown, not ranked.")


def run_command(run: str, info: Mapping[str, object]) -> str | None:
    """The command that made run folder ``run``: as recorded in its spec.json, or the demo's; else None."""
    if info.get("command"):
        return str(info["command"])
    if info.get("spec_hash") == _demo_spec_hash():
        return f"seeclear-bench run --out {shlex.quote(run)}"
    return None


def _demo_spec_hash() -> str:
    from seeclear_bench.config import RunConfig, spec_hash

    return spec_hash(RunConfig.demo())


def _psnr_labels(rows: pd.DataFrame, clip: str, frame: int) -> Mapping[str, str]:
    picked = rows[(rows["clip"] == clip) & (rows["frame"] == frame) & (rows["metric"] == "psnr")]
    return {str(r.method): f"frame PSNR {r.value:.2f} dB" for r in picked.itertuples(index=False)}
