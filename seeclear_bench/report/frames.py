"""The pixels the report's pictures are drawn from: where a clip's ground truth and predictions live, and the crops.

Owns finding frames for one clip of a merged result table -- in a ``seeclear-bench run`` folder (ground truth from
the shards, predictions as PNG frames under ``predictions/<method>/<dataset>/<clip>/``) or through the
``predictions``/``ground_truth`` folders that ``seeclear-bench evaluate`` records in its rows -- and reading only
what the pictures need: one row of pixels per frame (the temporal profile) and one frame's crop per method. Frames
are streamed, never held as whole clips. The crop is placed where the ground truth has the most texture (largest
gradient energy on a grid of windows), so differences between methods show. Imports numpy and the data readers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout
from seeclear_bench.names import is_plain_name

if TYPE_CHECKING:
    from seeclear_bench.data.shardset import ShardClip

log = logging.getLogger(__name__)

GROUND_TRUTH: Final = "ground truth"
MAX_PROFILE_WIDTH: Final = 320


@dataclass(frozen=True)
class ClipSource:
    """Random and sequential access to one clip's frames.

    Attributes:
        frame: ``index -> (h w 3) uint8`` frame ``index`` of the clip.
        frames: ``indices -> iterator of (index, frame)`` over those indices in increasing order.
        where: A URL naming the clip in messages.
    """

    frame: Callable[[int], np.ndarray]
    frames: Callable[[Sequence[int]], Iterator[tuple[int, np.ndarray]]]
    where: str


@dataclass(frozen=True)
class ClipPictures:
    """What the temporal profile and crop pictures of one clip show.

    Attributes:
        dataset: Column-group label of the clip's dataset.
        clip: Clip id.
        indices: ``t`` frame indices along the profile's time axis.
        row: Image row ``y`` the profiles take.
        columns: ``(x0, x1)`` range of the profile row.
        box: ``(top, left, height, width)`` of the crops.
        crop_frame: Frame index of the crops.
        overview: ``(H W 3)`` the ground-truth frame ``crop_frame``, to show where the crop is.
        profiles: ``{name: (t w 3)}`` uint8, ground truth first, then methods.
        crops: ``{name: (height width 3)}`` uint8, same order.
        skipped: ``{method: reason}`` for methods whose frames could not be used.
    """

    dataset: str
    clip: str
    indices: tuple[int, ...]
    row: int
    columns: tuple[int, int]
    box: tuple[int, int, int, int]
    crop_frame: int
    overview: np.ndarray
    profiles: dict[str, np.ndarray]
    crops: dict[str, np.ndarray]
    skipped: dict[str, str]


def texture_box(frame: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The ``size`` x ``size`` window with the largest gradient energy, on a grid of half-window steps.

    Args:
        frame: ``(h w 3)`` uint8.
        size: Window side, clipped to the frame.

    Returns:
        ``(top, left, height, width)``; ties go to the top-left-most window (deterministic).
    """
    gray = frame.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    h, w = gray.shape
    bh, bw = min(size, h), min(size, w)
    step_y, step_x = max(1, bh // 2), max(1, bw // 2)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, where = -1.0, (0, 0)
    for top in range(0, h - bh + 1, step_y):
        for left in range(0, w - bw + 1, step_x):
            total = (integral[top + bh, left + bw] - integral[top, left + bw] - integral[top + bh, left]
                     + integral[top, left])
            if total > best + 1e-9:
                best, where = total, (top, left)
    return where[0], where[1], bh, bw


def collect_pictures(
    sources: Mapping[str, ClipSource], *, dataset: str, clip: str, indices: Sequence[int], crop_frame: int | None = None,
) -> ClipPictures:
    """Read the profile rows and crops of one clip from every source.

    Args:
        sources: ``{name: ClipSource}`` with :data:`GROUND_TRUTH` among them.
        dataset: Column-group label (for captions).
        clip: Clip id.
        indices: Frame indices for the profile's time axis.
        crop_frame: Frame of the crops; default the middle of ``indices``.

    Returns:
        The :class:`ClipPictures`; a method whose frames are missing or of another size is left out and listed in
        ``skipped`` (the pictures still show the others).

    Raises:
        SeeClearError: No ground truth among ``sources``, or no indices.
    """
    if GROUND_TRUTH not in sources:
        raise SeeClearError(f"{dataset}/{clip}: pictures need the ground truth among the frame sources, got {sorted(sources)}")
    indices = tuple(sorted({int(i) for i in indices}))
    if not indices:
        raise SeeClearError(f"{dataset}/{clip}: no frame indices to draw")
    crop_frame = indices[len(indices) // 2] if crop_frame is None else int(crop_frame)
    gt = sources[GROUND_TRUTH].frame(crop_frame)
    h, w = gt.shape[:2]
    box = texture_box(gt, max(16, min(h, w) // 3))
    row = box[0] + box[2] // 2
    width = min(w, MAX_PROFILE_WIDTH)
    x0 = int(np.clip(box[1] + box[3] // 2 - width // 2, 0, w - width))
    columns = (x0, x0 + width)
    profiles, crops, skipped = {}, {}, {}
    top, left, bh, bw = box
    for name in [GROUND_TRUTH, *sorted(n for n in sources if n != GROUND_TRUTH)]:
        source = sources[name]
        try:
            frame = source.frame(crop_frame)
            if frame.shape != gt.shape:
                raise SeeClearError(f"{source.where}: frame {crop_frame} is {frame.shape}, ground truth {gt.shape}")
            rows = []
            for _, f in source.frames(indices):
                if f.shape != gt.shape:
                    raise SeeClearError(f"{source.where}: frames are {f.shape}, ground truth {gt.shape}")
                rows.append(f[row, x0 : x0 + width])
            if len(rows) != len(indices):
                raise SeeClearError(f"{source.where}: {len(rows)} of {len(indices)} frames found")
        except SeeClearError as exc:
            if name == GROUND_TRUTH:
                raise
            skipped[name] = str(exc)
            log.warning("pictures of %s/%s leave out %s: %s", dataset, clip, name, exc)
            continue
        crops[name] = np.ascontiguousarray(frame[top : top + bh, left : left + bw])
        profiles[name] = np.stack(rows)
    return ClipPictures(dataset=dataset, clip=clip, indices=indices, row=row, columns=columns, box=box,
                        crop_frame=crop_frame, overview=gt, profiles=profiles, crops=crops, skipped=skipped)


# -- sources -------------------------------------------------------------------------------------------------------
def png_folder_source(clip_url: str) -> ClipSource:
    """Frames ``<clip_url>/%08d.png`` as a run's upscale stage writes them."""
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.layout import frame_name

    def frame(index: int) -> np.ndarray:
        url = io.join(clip_url, frame_name(index))
        return decode_frame(io.read_bytes(url), name=url)

    def frames(indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in sorted(indices):
            yield index, frame(index)

    return ClipSource(frame=frame, frames=frames, where=clip_url)


def shard_source(clip: ShardClip) -> ClipSource:
    """The HR frames of a clip of a shard set (read once, verified against the manifest, then served from memory)."""
    cache: dict[int, np.ndarray] = {}

    def load() -> dict[int, np.ndarray]:
        if not cache:
            indices, frames = clip.frames("hr")
            cache.update(zip(indices, frames))
        return cache

    def frame(index: int) -> np.ndarray:
        found = load()
        if index not in found:
            raise SeeClearError(f"frame {index} of clip {clip.clip_id!r} is in none of its shards "
                                f"{list(clip.shard_urls)[:3]}")
        return found[index]

    def frames(indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        found = load()
        for index in sorted(set(indices)):
            if index in found:
                yield index, found[index]

    return ClipSource(frame=frame, frames=frames, where=f"shards of clip {clip.clip_id!r}")


def clipref_source(url: str, clip: str, dataset: str) -> ClipSource:
    """Frame ``i`` of clip ``clip`` in a dataset folder (any layout :func:`discover_clips` reads) is its i-th frame."""
    from seeclear_bench.data.sources import discover_clips, read_clip

    ref = discover_clips(url, clips=[clip], dataset=dataset)[0]

    def frame(index: int) -> np.ndarray:
        return read_clip(ref, start=index, max_frames=1)[0]

    def frames(indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in sorted(indices):
            yield index, frame(index)

    return ClipSource(frame=frame, frames=frames, where=f"{url} clip {clip!r}")


def find_sources(frames: pd.DataFrame, groups: Mapping[str, tuple[str, str, str]], runs: Sequence[str],
                 dataset: str, clip: str) -> dict[str, ClipSource]:
    """Frame sources of one clip of column group ``dataset`` for the ground truth and every method that has frames.

    Looks in the run folders ``runs`` (and the run folder of each row's ``source`` table), then in the
    ``predictions``/``ground_truth`` folders recorded in the rows. Methods with no frames anywhere are left out.
    """
    from seeclear_bench.metrics.scoring import GT_METHOD
    from seeclear_bench.report.merge import resolve_table

    name = groups.get(dataset, (dataset,))[0]
    rows = frames[(frames["dataset"] == dataset) & (frames["clip"] == clip)]
    if not (is_plain_name(name) and is_plain_name(clip)):  # names from a table never become paths
        log.warning("no pictures of %r/%r: not plain names, so not looked up in any folder", name, clip)
        return {}
    folders = list(runs)
    for source in sorted(set(rows["source"])) if "source" in rows.columns else []:
        try:
            run = resolve_table(source)[1]
        except SeeClearError:
            run = None
        if run is not None and run not in folders:
            folders.append(run)
    found: dict[str, ClipSource] = {}
    for run in folders:
        if GROUND_TRUTH not in found:
            shard_clip = _shard_clip(run, name, clip)
            if shard_clip is not None:
                found[GROUND_TRUTH] = shard_source(shard_clip)
    methods = sorted(m for m in set(rows["method"]) if m != GT_METHOD)
    for method in methods:
        # a method split by provenance ("X [git_commit=...]") keeps its original name in the run folder
        candidates = [RunLayout(run).predictions(m).clip(name, clip) for run in folders
                      for m in dict.fromkeys([method, method.split(" [", 1)[0]]) if is_plain_name(m)]
        for clip_url in candidates:
            if io.isdir(clip_url) and io.glob(io.join(clip_url, "*.png")):
                found[method] = png_folder_source(clip_url)
                break
    for column, label in (("ground_truth", GROUND_TRUTH), ("predictions", None)):
        if column not in rows.columns:
            continue
        for method, group in rows.groupby("method", sort=True):
            key = label or method
            urls = sorted(set(group[column].dropna().astype(str)))
            if key in found or not urls:
                continue
            try:
                found[key] = clipref_source(urls[0], clip, name)
            except SeeClearError as exc:
                log.warning("no frames for %s of %s/%s at %s: %s", key, dataset, clip, urls[0], exc)
    return found


def _shard_clip(run: str, dataset: str, clip: str) -> ShardClip | None:
    """The clip of the run's shard set of ``dataset``, or None when the run has no (readable) set holding it."""
    from seeclear_bench.data.shardset import ShardSet

    url = RunLayout(run).shards(dataset)
    if not io.exists(io.join(url, "manifest.json")):
        return None
    try:
        shard_set = ShardSet.open(url, dataset=dataset)
    except SeeClearError as exc:
        log.warning("no ground-truth frames from %s: %s", url, exc)
        return None
    return shard_set.clip(clip) if clip in shard_set.clips else None
