"""The report's pictures, drawn with matplotlib's object API (Agg canvas, no pyplot state) and returned as PNG bytes.

Owns four pictures: the perception-distortion plane (PSNR against LPIPS, or against another lower-is-better metric
when LPIPS was not computed, which the caption then says), per-frame metric curves along each clip, temporal profiles
(one row of pixels stacked over time, ground truth and each method) and side-by-side crops of one frame. Every
function returns a :class:`Picture` whose caption says what is shown and how to read it. PNGs carry no timestamp or
version text, so the same input gives the same bytes on one matplotlib build. matplotlib is imported inside the
functions; this module must not import torch or ray.
"""
from __future__ import annotations

import io as _bytes_io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
import pandas as pd

from seeclear_bench.metrics.registry import METRICS, get_metric

if TYPE_CHECKING:
    from seeclear_bench.report.frames import ClipPictures

DPI: Final = 90
PERCEPTUAL_AXES: Final = ("lpips", "lpips-vgg", "dists", "niqe")
MAX_CURVE_CLIPS: Final = 8
_GT_COLOUR: Final = "#222222"


@dataclass(frozen=True)
class Picture:
    """One rendered picture.

    Attributes:
        name: File stem, safe for any file system (``"pd-plane_REDS4"``).
        title: Short heading.
        caption: What the picture shows and how to read it (one or two sentences).
        png: The PNG file's bytes.
    """

    name: str
    title: str
    caption: str
    png: bytes


def slug(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9._-]`` (other runs of characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-") or "x"


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """A fixed colour per method (tab10 in sorted order; the ground truth dark grey), shared by every picture."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    tab10 = colormaps["tab10"]
    assert isinstance(tab10, ListedColormap)  # a qualitative map: a fixed list of colours
    palette = cast("Sequence[Sequence[float]]", tab10.colors)  # stubs: any ArrayLike; tab10 holds RGB tuples
    ordered = sorted(m for m in set(methods) if not _is_gt(m))
    out = {m: _hex(palette[i % len(palette)]) for i, m in enumerate(ordered)}
    out.update({m: _GT_COLOUR for m in methods if _is_gt(m)})
    return out


def perception_distortion(scores: pd.DataFrame, dataset: str, *, colours: Mapping[str, str] | None = None) -> Picture | None:
    """PSNR against LPIPS for one column group, one point per method with its intervals on both axes.

    Args:
        scores: :func:`~seeclear_bench.report.ranking.score_table` output.
        dataset: Column-group label.
        colours: Method colours (default :func:`method_colours`).

    Returns:
        The picture, or ``None`` when the group has no PSNR or no lower-is-better metric to pair it with. Without
        LPIPS, the x axis is the first of LPIPS-VGG, DISTS, NIQE or any other lower-is-better metric present (registry
        order), and the caption says so.
    """
    rows = scores[scores["dataset"] == dataset]
    present = list(dict.fromkeys(rows["metric"]))
    if "psnr" not in present:
        return None
    fallback = [m for m in PERCEPTUAL_AXES if m in present] + [
        m for m in METRICS if m in present and not get_metric(m).higher_better and m not in PERCEPTUAL_AXES]
    if not fallback:
        return None
    x_metric = fallback[0]
    wide = {m: rows[rows["metric"] == m].set_index("method") for m in ("psnr", x_metric)}
    methods = sorted(set(wide["psnr"].index) & set(wide[x_metric].index))
    if not methods:
        return None
    colours = dict(colours or method_colours(methods))
    fig = _figure(5.6, 4.2)
    ax = fig.add_subplot()
    for method in methods:
        p, x = wide["psnr"].loc[method], wide[x_metric].loc[method]
        xerr = _err(x)
        yerr = _err(p)
        ax.errorbar([x["value"]], [p["value"]], xerr=xerr, yerr=yerr, fmt="o", ms=7, capsize=3, lw=1.2,
                    color=colours.get(method, "#555555"), label=method)
        ax.annotate(method, (x["value"], p["value"]), xytext=(6, 5), textcoords="offset points", fontsize=8)
    x_label = _axis_label(x_metric)
    ax.set_xlabel(f"{x_label} (lower is better)")
    ax.set_ylabel(f"{_axis_label('psnr')} (higher is better)")
    ax.set_title(f"{dataset}: perception-distortion plane", fontsize=10)
    ax.grid(alpha=0.3)
    ax.annotate("better", xy=(0.04, 0.93), xytext=(0.2, 0.78), xycoords="axes fraction", fontsize=8, color="#555555",
                arrowprops={"arrowstyle": "->", "color": "#555555"})
    level = rows["level"].dropna()
    level_text = f"{level.iloc[0]:.0%} bootstrap intervals over clips" if len(level) else "intervals over clips"
    caption = (f"{dataset}: one point per method, PSNR against {x_label}; bars are {level_text}. "
               "Up and to the left is better.")
    if x_metric != "lpips":
        caption += f" LPIPS was not computed for this dataset, so the x axis is {x_label} (lower is better) instead."
    return Picture(f"pd-plane_{slug(dataset)}", f"Perception-distortion plane: {dataset}", caption, _png(fig))


def frame_curves(frames: pd.DataFrame, dataset: str, *, max_clips: int = MAX_CURVE_CLIPS,
                 colours: Mapping[str, str] | None = None) -> Picture | None:
    """Per-frame metric values along each clip of one column group: one panel per (clip, metric), a line per method.

    Dips and saw-tooth patterns show temporal problems a mean hides. Infinite values (frames identical to the ground
    truth) are left out of the lines.

    Args:
        frames: Merged per-frame table.
        dataset: Column-group label.
        max_clips: Draw at most this many clips (the first by name); the caption says when some are left out.
        colours: Method colours.

    Returns:
        The picture, or ``None`` when the group has no rows.
    """
    rows = frames[frames["dataset"] == dataset]
    if rows.empty:
        return None
    clips = sorted(set(rows["clip"]))
    shown = clips[:max_clips]
    metrics = [m for m in METRICS if m in set(rows["metric"])]
    colours = dict(colours or method_colours(list(set(rows["method"]))))
    width, height = 2.9 * len(metrics) + 0.6, 1.9 * len(shown) + 0.9
    fig = _figure(width, height)
    # fixed margins in inches: tight_layout measures every tick label and costs seconds on a big grid
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.65 / height,
                        wspace=0.3, hspace=0.35)
    axes = fig.subplots(len(shown), len(metrics), squeeze=False)
    for i, clip in enumerate(shown):
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            part = rows[(rows["clip"] == clip) & (rows["metric"] == metric)]
            for method, group in part.groupby("method", sort=True):
                group = group.sort_values("frame")
                value = group["value"].to_numpy(dtype=np.float64)
                value = np.where(np.isfinite(value), value, np.nan)
                ax.plot(group["frame"].to_numpy(), value, marker=".", ms=3, lw=1.1, label=method,
                        color=colours.get(method, "#555555"))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if i == 0:
                arrow = "↑" if get_metric(metric).higher_better else "↓"
                ax.set_title(f"{_axis_label(metric)} {arrow}", fontsize=9)
            if j == 0:
                ax.set_ylabel(clip, fontsize=8)
            if i == len(shown) - 1:
                ax.set_xlabel("frame", fontsize=8)
    handles, labels = [], []
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    caption = (f"{dataset}: each metric frame by frame along each clip (columns: metrics, rows: clips); dips and "
               "flicker show temporal problems that a clip mean hides.")
    if len(shown) < len(clips):
        caption += f" The first {len(shown)} of {len(clips)} clips are drawn; the per-frame table holds all."
    return Picture(f"frame-curves_{slug(dataset)}", f"Per-frame curves: {dataset}", caption, _png(fig))


def temporal_profiles(pictures: ClipPictures, *, colours: Mapping[str, str] | None = None) -> Picture:
    """One row of pixels stacked over time, for the ground truth and each method (time runs downwards).

    Straight, continuous streaks mean temporally consistent detail; jagged or broken streaks show flicker.
    """
    names = list(pictures.profiles)
    t = len(pictures.indices)
    width = pictures.columns[1] - pictures.columns[0]
    panel_h = max(1.0, min(2.4, 6.0 * t / max(width, 1)))
    height = (panel_h + 0.45) * len(names) + 0.35
    fig = _figure(7.0, height)
    fig.subplots_adjust(left=0.7 / 7.0, right=1 - 0.15 / 7.0, bottom=0.45 / height, top=1 - 0.3 / height,
                        hspace=0.45 / panel_h)
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names, strict=True):
        ax.imshow(pictures.profiles[name], aspect="auto", interpolation="nearest",
                  extent=(pictures.columns[0] - 0.5, pictures.columns[1] - 0.5, pictures.indices[-1] + 0.5,
                          pictures.indices[0] - 0.5))
        ax.set_title(name, fontsize=9, loc="left", color=(colours or {}).get(name, "black"))
        ax.set_ylabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("x (pixels)", fontsize=8)
    caption = (f"{pictures.dataset}/{pictures.clip}: image row y={pictures.row}, x {pictures.columns[0]}-"
               f"{pictures.columns[1] - 1}, stacked over frames {pictures.indices[0]}-{pictures.indices[-1]} (time "
               "runs downwards). Continuous streaks that follow the ground truth mean temporally consistent detail; "
               "jagged or broken ones show flicker.")
    caption += _skipped_text(pictures)
    return Picture(f"temporal-profile_{slug(pictures.dataset)}_{slug(pictures.clip)}",
                   f"Temporal profiles: {pictures.dataset}/{pictures.clip}", caption, _png(fig))


def frame_crops(pictures: ClipPictures, *, labels: Mapping[str, str] | None = None) -> Picture:
    """The ground-truth frame with the crop box and profile row marked, then the same crop from every source.

    Args:
        pictures: What :func:`~seeclear_bench.report.frames.collect_pictures` read.
        labels: Optional text under each crop's name (e.g. that frame's PSNR).
    """
    from matplotlib.patches import Rectangle

    names = list(pictures.crops)
    n = len(names) + 1
    fig = _figure(min(2.3 * n, 16.0), 2.75)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.8, wspace=0.08)
    axes = fig.subplots(1, n, squeeze=False)[0]
    top, left, bh, bw = pictures.box
    axes[0].imshow(pictures.overview, interpolation="nearest")
    axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), bw, bh, fill=False, edgecolor="#ffcc00", lw=1.5))
    axes[0].plot([pictures.columns[0], pictures.columns[1] - 1], [pictures.row, pictures.row], color="#00e5ff", lw=0.8)
    axes[0].set_title(f"frame {pictures.crop_frame}", fontsize=8)
    for ax, name in zip(axes[1:], names, strict=True):
        ax.imshow(pictures.crops[name], interpolation="nearest")
        text = name if not labels or name not in labels else f"{name}\n{labels[name]}"
        ax.set_title(text, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    caption = (f"{pictures.dataset}/{pictures.clip}, frame {pictures.crop_frame}: the {bh}x{bw} crop at (y={top}, "
               f"x={left}) where the ground truth has the most texture (yellow box; the cyan line is the temporal "
               "profile's row), shown without interpolation for every method.")
    caption += _skipped_text(pictures)
    return Picture(f"crops_{slug(pictures.dataset)}_{slug(pictures.clip)}",
                   f"Crops: {pictures.dataset}/{pictures.clip}", caption, _png(fig))


# -- helpers -------------------------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _png(fig: Any) -> bytes:
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _err(row: pd.Series) -> list[list[float]] | None:
    low, high, value = row.get("ci_low"), row.get("ci_high"), row["value"]
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [[max(value - low, 0.0)], [max(high - value, 0.0)]]


def _axis_label(metric: str) -> str:
    spec = get_metric(metric)
    label = spec.display_name or spec.name.upper()
    return f"{label} ({spec.unit})" if spec.unit else label


def _skipped_text(pictures: ClipPictures) -> str:
    if not pictures.skipped:
        return ""
    return " Left out (frames unavailable): " + "; ".join(f"{m}: {why}" for m, why in sorted(pictures.skipped.items())) + "."


def _is_gt(method: str) -> bool:
    from seeclear_bench.metrics.scoring import GT_METHOD
    from seeclear_bench.report.frames import GROUND_TRUTH

    return method in (GT_METHOD, GROUND_TRUTH)


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb[:3])
