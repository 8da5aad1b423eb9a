"""The unit of work of each pipeline stage, free of Ray: what one Ray task does, callable from a plain loop too.

- :func:`prepare_group`: read clips, synthesise LR, cut windows, write WebDataset shards (+ a task record). An HR
  frame read from a PNG file that needs no crop or conversion goes into its shard as the file's own bytes.
- the predict stage's unit, one whole video through every method, is :mod:`seeclear_bench.predict`.
- :func:`score_clip_from_shards`: score each method's whole-video prediction of one clip against its HR frames.
- :func:`score_clip_pair`: score an outside method's clip against its ground truth.

``pipelines/`` dispatches these as Ray tasks; ``benchmarks/`` runs them in a loop as the single-process reference.
Every path comes from :mod:`seeclear_bench.layout`, every shard read goes through
:mod:`seeclear_bench.data.shardset` (verified against its manifest), and every unit is keyed by the identity of
exactly its inputs (:mod:`seeclear_bench.identity`): a unit whose outputs exist, verify and name the same identity
is skipped. Every output is written atomically.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.config import RunConfig, SourceConfig
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout

log = logging.getLogger(__name__)

def window_starts(n_frames: int, window: int, stride: int, partial: str) -> list[tuple[int, int]]:
    """(start, stop) of each window over ``n_frames`` frames; ``window`` 0 means the whole clip.

    Windows start every ``stride`` frames (0: every ``window`` frames). With ``partial="keep"`` a shorter last
    window starts where the next full one would have and runs to the end, so no frame is left out.
    """
    if n_frames <= 0:
        return []
    if window == 0:
        return [(0, n_frames)]
    step = stride or window
    spans = [(start, start + window) for start in range(0, n_frames - window + 1, step)]
    tail = spans[-1][0] + step if spans else 0
    if partial == "keep" and tail < n_frames and (not spans or spans[-1][1] < n_frames):
        spans.append((tail, n_frames))
    return spans


# -- prepare -------------------------------------------------------------------------------------------------------
def prepare_group(
    cfg: RunConfig,
    source: SourceConfig,
    clips: Sequence[Any],
    group: int,
    layout: RunLayout,
    identity: str,
) -> list[dict[str, Any]]:
    """Read, degrade and shard one group of clips; returns the shard infos (as dicts) it wrote or found complete.

    An HR frame whose source file is a plain 8-bit RGB PNG (:func:`~seeclear_bench.data.frames.is_plain_rgb_png`)
    and that the degradation does not crop is stored as the file's bytes, unchanged (the frame's SHA-256 in the
    sample's ``meta.json`` is of those bytes, as for every member); every other frame is encoded at zlib level
    :data:`~seeclear_bench.data.shards.PNG_COMPRESS_LEVEL`. Each sample's meta records both under
    ``frame_encoding``: ``png_compress_level`` and ``hr_source_bytes`` (per HR frame, whether it is the source file's
    bytes). The shard bytes depend only on the source files and the spec, never on the number of workers.

    Args:
        cfg: The run's spec.
        source: The dataset these clips belong to.
        clips: ``ClipRef`` objects from :func:`seeclear_bench.data.sources.discover_clips`.
        group: Index of this group within the dataset; names the shards ``{dataset}-{group:05d}-{part:02d}.tar``.
        layout: The run folder; the shards go to ``layout.shards(source.name)``.
        identity: :func:`seeclear_bench.identity.shards_identity` of the dataset, recorded in every sample and in the
            group's task record; a group whose record names the same identity and clips and whose shards verify is
            skipped.
    """
    from seeclear_bench.data import shards
    from seeclear_bench.data.degradations import degrade_clip
    from seeclear_bench.data.schema import sample_key

    out_url = layout.shards(source.name)
    record_url = layout.shard_task_record(source.name, group)
    clip_ids = [c.clip_id for c in clips]
    if io.exists(record_url):
        record = io.read_json(record_url)
        if record.get("identity") == identity and record.get("clips") == clip_ids and all(
            shards.shard_is_complete(io.join(out_url, _shard_name(info)), info) for info in record["shards"]
        ):
            log.info("group %d of %s already complete, skipped", group, source.name)
            return list(record["shards"])

    realistic = cfg.degrade.realistic_params() if cfg.degrade.kind == "realistic" else None
    samples: list[Any] = []
    for ref in clips:
        hr, source_png = _read_source_clip(ref, max_frames=source.max_frames or None, start=source.start_frame)
        deg = degrade_clip(
            hr,
            kind=cfg.degrade.kind,
            scale=cfg.degrade.scale,
            seed=cfg.seed,
            clip_id=ref.clip_id,
            on_indivisible=cfg.degrade.on_indivisible,
            realistic=realistic,
            dataset=source.name,
        )
        if deg.hr.shape != hr.shape:  # cropped to a multiple of the scale: the source bytes hold other pixels
            source_png = [None] * len(hr)
        spans = window_starts(len(deg.hr), cfg.shards.window, cfg.shards.stride, cfg.shards.partial)
        for start, stop in spans:
            indices = tuple(range(source.start_frame + start, source.start_frame + stop))
            samples.append(
                shards.Sample(
                    key=sample_key(source.name, ref.clip_id, indices[0]),
                    dataset=source.name,
                    clip_id=ref.clip_id,
                    frame_indices=indices,
                    lr=deg.lr[start:stop],
                    hr=deg.hr[start:stop],
                    hr_png=tuple(source_png[start:stop]),
                    meta={
                        "scale": cfg.degrade.scale,
                        "degradation": cfg.degrade.kind,
                        "degradation_params": deg.params,
                        "seed": cfg.seed,
                        "shards_identity": identity,
                        "source_url": ref.url,
                        "frame_encoding": {"png_compress_level": shards.PNG_COMPRESS_LEVEL,
                                           "hr_source_bytes": [data is not None for data in source_png[start:stop]]},
                        **({"clip_label": ref.label} if ref.label else {}),
                    },
                )
            )
    samples.sort(key=lambda s: s.key)
    infos = []
    batch: list[Any]
    part, batch, batch_bytes = 0, [], 0
    for sample in samples:
        size = sample.lr.nbytes + sample.hr.nbytes
        if batch and (len(batch) >= cfg.shards.max_samples_per_shard or batch_bytes + size > cfg.shards.max_shard_bytes):
            infos.append(_write_part(out_url, source.name, group, part, batch))
            part, batch, batch_bytes = part + 1, [], 0
        batch.append(sample)
        batch_bytes += size
    if batch:
        infos.append(_write_part(out_url, source.name, group, part, batch))
    io.write_json(record_url, {"identity": identity, "group": group, "clips": clip_ids, "shards": infos})
    return infos


def _read_source_clip(ref: Any, *, max_frames: int | None, start: int) -> tuple[np.ndarray, list[bytes | None]]:
    """Frames ``start .. start + max_frames - 1`` of a clip and, per frame, its source file's bytes when they may be
    stored as they are (:func:`~seeclear_bench.data.frames.is_plain_rgb_png`), else None. The bytes kept stay in
    memory beside the decoded clip until the clip's shards are written (a PNG is typically a third to a half of its
    decoded size)."""
    from seeclear_bench.data.frames import is_plain_rgb_png
    from seeclear_bench.data.sources import read_clip_keeping

    return read_clip_keeping(ref, max_frames=max_frames, start=start,
                             keep=lambda data, frame: is_plain_rgb_png(data, *frame.shape[:2]))


def _shard_name(info: Mapping[str, Any]) -> str:
    """A shard name read back from a task record, checked before it becomes a path."""
    from seeclear_bench.names import check_name

    return check_name(info.get("name"), "shard name in a task record")


def prepare_demo_shards(root_url: str, *, frames: int = 10, size: tuple[int, int] = (64, 64), window: int = 5,
                        max_samples_per_shard: int = 2, spec_hash: str = "demo") -> list[str]:
    """Demo footage under ``root_url/src`` prepared into a shard set (shards and ``manifest.json``) where a run folder
    keeps it, ``root_url/shards/demo``, in this process (no Ray).

    For benchmarks and tests that need a small real shard set; returns the shard URLs.
    """
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.data.shards import write_manifest
    from seeclear_bench.data.sources import discover_clips
    from seeclear_bench.identity import shards_identity

    src = io.join(root_url, "src")
    write_demo_source(src, frames=frames, size=size)
    cfg = RunConfig.from_dict({"data": {"sources": [{"name": "demo", "url": src, "layout": "clips"}]},
                               "shards": {"window": window, "max_samples_per_shard": max_samples_per_shard}})
    source = cfg.data.sources[0]
    layout = RunLayout(root_url)
    infos = prepare_group(cfg, source, discover_clips(src, layout="clips", dataset="demo"), 0, layout,
                          shards_identity(cfg, source))
    out = layout.shards("demo")
    write_manifest(out, infos, spec_hash=spec_hash)
    return [io.join(out, info["name"]) for info in infos]


def _write_part(out_url: str, dataset: str, group: int, part: int, samples: list[Any]) -> dict[str, Any]:
    from seeclear_bench.data import shards

    name = f"{dataset}-{group:05d}-{part:02d}.tar"
    info = shards.write_shard(io.join(out_url, name), samples)
    return shards.shard_info_dict(info)


# -- evaluate ------------------------------------------------------------------------------------------------------
def score_with_reuse(
    layout: RunLayout | None,
    *,
    dataset: str,
    clip: str,
    gt: tuple[str, Callable[[], np.ndarray]],
    preds: Mapping[str, tuple[str, Callable[[], np.ndarray]]],
    metrics: Sequence[str],
    protocols: Sequence[str],
    frames: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Score one clip under each of ``protocols``, reusing every (method, metric) result kept in ``layout`` whose
    inputs are unchanged.

    A metric whose values a later protocol would not change
    (:func:`~seeclear_bench.metrics.registry.same_values_under`: tOF, which fixes its own colour and crop, under an RGB
    and a Y protocol) is scored once, under the first protocol that needs it, and its rows carry that protocol. Each
    protocol's rows are kept at ``layout.metrics_part(dataset, clip, protocol)`` (:func:`_score_part`). Frames are
    decoded once, whatever the number of protocols.

    Args:
        layout: The folder whose ``metrics/parts`` keep the rows; None: always score everything, keep nothing.
        gt: (digest of the ground-truth frames, a loader of ``(t h w 3)`` uint8 frames).
        preds: ``{method: (digest of its frames, loader)}``; loaders run only when that method is scored.
        protocols: Protocol preset names, in order.
        frames: The clip's frame numbers for the rows (default ``0..t-1``).

    Returns:
        The clip's rows of the per-frame table for ``preds`` x ``metrics`` x ``protocols`` (and the ground truth's own
        rows for the metrics that read the prediction alone), ``metric_hash`` included.
    """
    import functools

    from seeclear_bench.metrics.protocols import get_protocol
    from seeclear_bench.metrics.registry import same_values_under

    gt = (gt[0], functools.cache(gt[1]))
    preds = {name: (digest, functools.cache(load)) for name, (digest, load) in preds.items()}
    seen: set[str] = set()
    parts = []
    for name in protocols:
        protocol = get_protocol(name)
        keys = {m: same_values_under(m, protocol) for m in metrics}
        todo = [m for m in metrics if keys[m] not in seen]
        seen |= {keys[m] for m in todo}
        if todo:
            parts.append(_score_part(None if layout is None else layout.metrics_part(dataset, clip, name),
                                     dataset=dataset, clip=clip, gt=gt, preds=preds, metrics=todo,
                                     protocol_name=name, frames=frames))
    return pd.concat(parts, ignore_index=True)


def _score_part(
    part_url: str | None,
    *,
    dataset: str,
    clip: str,
    gt: tuple[str, Callable[[], np.ndarray]],
    preds: Mapping[str, tuple[str, Callable[[], np.ndarray]]],
    metrics: Sequence[str],
    protocol_name: str,
    frames: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Score one clip under one protocol, reusing every (method, metric) result kept at ``part_url`` whose inputs are
    unchanged.

    The rows are kept as ``part_url`` (``.parquet``) with a record beside it (``.json``): the protocol hash, the
    SHA-256 digest of the ground-truth frames and of each method's frames, and each metric's hash. A later call
    scores only the (method, metric) pairs whose method frames, metric hash, ground truth or protocol changed, or that
    were not scored before: adding a metric scores that metric only, adding a method that method only. The record is
    removed before the part is rewritten and written last, so a half-rewritten part is never trusted.
    """
    from seeclear_bench._pause import pause_point
    from seeclear_bench.metrics.protocols import get_protocol
    from seeclear_bench.metrics.registry import get_metric
    from seeclear_bench.metrics.scoring import GT_METHOD, row_metric_hash, score_clip
    from seeclear_bench.metrics.tables import read_table, write_parquet

    protocol = get_protocol(protocol_name)
    metric_hashes = {m: row_metric_hash(m) for m in metrics}
    gt_only = [m for m in metrics if get_metric(m).reference == "none"]
    digests = {**{name: d for name, (d, _) in preds.items()}, GT_METHOD: gt[0]}
    record = {"protocol_hash": protocol.hash, "gt": gt[0], "methods": digests, "metrics": metric_hashes}

    old_rows: pd.DataFrame | None = None
    kept: set[tuple[str, str]] = set()
    record_url = part_url.removesuffix(".parquet") + ".json" if part_url else None
    if part_url and record_url and io.exists(record_url) and io.exists(part_url):
        old = io.read_json(record_url)
        if isinstance(old, dict) and old.get("protocol_hash") == protocol.hash and old.get("gt") == gt[0]:
            old_methods, old_metrics = old.get("methods") or {}, old.get("metrics") or {}
            for name, digest in digests.items():
                wanted = gt_only if name == GT_METHOD else metrics
                kept |= {(name, m) for m in wanted
                         if old_methods.get(name) == digest and old_metrics.get(m) == metric_hashes[m]}
            if kept:
                old_rows = read_table(part_url)
    needed = {name: [m for m in metrics if (name, m) not in kept] for name in preds}
    gt_needed = [m for m in gt_only if (GT_METHOD, m) not in kept]
    if not any(needed.values()) and not gt_needed and old_rows is not None:
        return _select_rows(old_rows, kept)

    gt_frames = gt[1]()
    parts = [] if old_rows is None else [_select_rows(old_rows, kept)]
    by_metrics: dict[tuple[str, ...], list[str]] = {}
    for name, todo_list in needed.items():
        if todo_list:
            by_metrics.setdefault(tuple(todo_list), []).append(name)
    for todo, names in by_metrics.items():
        parts.append(score_clip({n: preds[n][1]() for n in names}, gt_frames, dataset=dataset, clip=clip,
                                metrics=list(todo), protocol=protocol, frames=frames, gt_reference=False))
    if gt_needed:
        parts.append(score_clip({GT_METHOD: gt_frames}, gt_frames, dataset=dataset, clip=clip, metrics=gt_needed,
                                protocol=protocol, frames=frames, gt_reference=False))
    rows = pd.concat(parts, ignore_index=True)
    if part_url and record_url:
        io.remove(record_url)
        write_parquet(rows, part_url)
        io.write_json(record_url, record)
        pause_point("metrics-part-written")
    return rows


def _select_rows(rows: pd.DataFrame, pairs: set[tuple[str, str]]) -> pd.DataFrame:
    keep = [(m, x) in pairs for m, x in zip(rows["method"], rows["metric"])]
    return rows[keep].reset_index(drop=True)


def score_clip_from_shards(
    clip: Any,
    shards_digest: str,
    methods: Sequence[str],
    layout: RunLayout,
    metrics: Sequence[str],
    protocols: Sequence[str],
) -> pd.DataFrame:
    """Score every method's whole-video prediction of one clip (``layout.predictions(method)``) against the clip's
    HR frames, paired by frame index.

    Args:
        clip: The clip's :class:`~seeclear_bench.data.shardset.ShardClip` (its shards are verified as they are read).
        shards_digest: Its shard set's content digest: each prediction's record must name it, and each frame scored
            must match the record (:func:`seeclear_bench.predict.read_predicted_frames`).

    Resumable per (method, metric) through :func:`score_with_reuse`, kept as
    ``metrics/parts/<dataset>/<protocol>/<clip>``.

    Returns:
        The clip's rows of the per-frame table (``metric_hash`` included).

    Raises:
        SeeClearError: a prediction missing, made from another shard set or not matching its record (run the
            predict stage again).
    """
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.metrics.scoring import digest_frames
    from seeclear_bench.predict import read_predicted_frames

    numbers, gt = clip.frames("hr")
    encoded = {name: read_predicted_frames(layout.predictions(name), name, clip.dataset, clip.clip_id, numbers,
                                           shards_digest) for name in methods}

    def loader(pairs: list[tuple[str, bytes]]) -> Callable[[], np.ndarray]:
        return lambda: np.stack([decode_frame(data, name=url) for url, data in pairs])

    preds = {name: (digest_frames([d for _, d in pairs]), loader(pairs)) for name, pairs in encoded.items()}
    return score_with_reuse(layout, dataset=clip.dataset, clip=clip.clip_id, gt=(digest_frames(gt), lambda: gt),
                            preds=preds, metrics=metrics, protocols=protocols, frames=numbers)


def load_clip(ref: Any) -> np.ndarray:
    """Frames of a ``ClipRef`` (folder or video) or of a :class:`~seeclear_bench.data.shardset.ShardClip` (its hr
    frames, verified)."""
    from seeclear_bench.data.shardset import ShardClip

    if isinstance(ref, ShardClip):
        return ref.frames("hr")[1]
    from seeclear_bench.data.sources import read_clip

    return read_clip(ref)


def score_clip_pair(
    pred: Any,
    gt: Any,
    *,
    method: str,
    dataset: str,
    metrics: Sequence[str],
    protocols: Sequence[str],
    layout: RunLayout | None = None,
) -> pd.DataFrame:
    """Score one predicted clip against its ground truth, for outside methods' predictions.

    Each side is a ``ClipRef`` (frames folder or video) or a :class:`~seeclear_bench.data.shardset.ShardClip` (a
    clip of a shard set). Frame counts and sizes must match exactly: nothing is cropped, padded or truncated to make
    them fit.

    Args:
        layout: the folder whose ``metrics/parts`` keep the clip's rows (:func:`score_with_reuse`); None: always
            score, keep nothing.
    """
    from seeclear_bench.metrics.scoring import digest_frames

    pred_frames, gt_frames = load_clip(pred), load_clip(gt)
    if len(pred_frames) != len(gt_frames):
        raise SeeClearError(
            f"dataset {dataset}, clip {gt.clip_id}: prediction has {len(pred_frames)} frames, ground truth "
            f"{len(gt_frames)}"
        )
    return score_with_reuse(layout, dataset=dataset, clip=gt.clip_id, gt=(digest_frames(gt_frames), lambda: gt_frames),
                            preds={method: (digest_frames(pred_frames), lambda: pred_frames)}, metrics=metrics,
                            protocols=protocols)
