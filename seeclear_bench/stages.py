"""The unit of work of each pipeline stage, free of Ray: what one Ray task does, callable from a plain loop too.

- :func:`prepare_group`: read clips, synthesise LR, cut windows, write WebDataset shards (+ a task record).
- :func:`upscale_shard`: run baseline upscalers on every LR window of one shard, write prediction frames.
- :func:`score_shard`: score each method's predictions against the shard's HR frames, return per-frame rows.

``pipelines/`` dispatches these as Ray tasks; ``benchmarks/`` runs them in a loop as the single-process reference.
Every output is written atomically and every unit is resumable: a unit whose outputs exist and verify is skipped.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seeclear_bench import io
from seeclear_bench.config import RunConfig, SourceConfig
from seeclear_bench.errors import SeeClearError

log = logging.getLogger(__name__)

TASKS_DIR = "_tasks"
RECORDS_DIR = "_records"


# -- layout of a run folder ---------------------------------------------------------------------------------------
def shards_url(run_url: str, dataset: str) -> str:
    return io.join(run_url, "shards", dataset)


def predictions_url(run_url: str, method: str, dataset: str, clip_id: str) -> str:
    return io.join(run_url, "predictions", method, dataset, clip_id)


def frame_name(index: int) -> str:
    return f"{index:08d}.png"


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
    out_url: str,
    spec_hash: str,
) -> list[dict[str, Any]]:
    """Read, degrade and shard one group of clips; returns the shard infos (as dicts) it wrote or found complete.

    Args:
        cfg: The run's spec.
        source: The dataset these clips belong to.
        clips: ``ClipRef`` objects from :func:`seeclear_bench.data.sources.discover_clips`.
        group: Index of this group within the dataset; names the shards ``{dataset}-{group:05d}-{part:02d}.tar``.
        out_url: The dataset's shard folder.
        spec_hash: Hash of the spec, recorded in every sample.
    """
    from seeclear_bench.data import shards
    from seeclear_bench.data.degradations import degrade_clip
    from seeclear_bench.data.schema import sample_key
    from seeclear_bench.data.sources import read_clip

    record_url = io.join(out_url, TASKS_DIR, f"{group:05d}.json")
    if io.exists(record_url):
        record = io.read_json(record_url)
        if record.get("spec_hash") == spec_hash and all(
            shards.shard_is_complete(io.join(out_url, info["name"]), info) for info in record["shards"]
        ):
            log.info("group %d of %s already complete, skipped", group, source.name)
            return record["shards"]

    realistic = cfg.degrade.realistic_params() if cfg.degrade.kind == "realistic" else None
    samples: list[Any] = []
    for ref in clips:
        hr = read_clip(ref, max_frames=source.max_frames or None, start=source.start_frame)
        deg = degrade_clip(
            hr,
            kind=cfg.degrade.kind,
            scale=cfg.degrade.scale,
            seed=cfg.seed,
            clip_id=f"{source.name}/{ref.clip_id}",
            on_indivisible=cfg.degrade.on_indivisible,
            realistic=realistic,
        )
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
                    meta={
                        "scale": cfg.degrade.scale,
                        "degradation": cfg.degrade.kind,
                        "degradation_params": deg.params,
                        "seed": cfg.seed,
                        "spec_hash": spec_hash,
                        "source_url": ref.url,
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
    io.write_json(record_url, {"spec_hash": spec_hash, "group": group, "clips": [c.clip_id for c in clips], "shards": infos})
    return infos


def prepare_demo_shards(root_url: str, *, frames: int = 10, size: tuple[int, int] = (64, 64), window: int = 5,
                        max_samples_per_shard: int = 2, spec_hash: str = "demo", shards_dir: str = "shards") -> list[str]:
    """Demo footage under ``root_url/src`` prepared into a shard set (shards and ``manifest.json``) under
    ``root_url/<shards_dir>`` in this process (no Ray).

    For benchmarks and tests that need a small real shard set; returns the shard URLs.
    """
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.data.shards import write_manifest
    from seeclear_bench.data.sources import discover_clips

    src = io.join(root_url, "src")
    write_demo_source(src, frames=frames, size=size)
    cfg = RunConfig.from_dict({"data": {"sources": [{"name": "demo", "url": src, "layout": "clips"}]},
                               "shards": {"window": window, "max_samples_per_shard": max_samples_per_shard}})
    out = io.join(root_url, shards_dir)
    infos = prepare_group(cfg, cfg.data.sources[0], discover_clips(src, layout="clips", dataset="demo"), 0, out,
                          spec_hash)
    write_manifest(out, infos, spec_hash=spec_hash)
    return [io.join(out, info["name"]) for info in infos]


def _write_part(out_url: str, dataset: str, group: int, part: int, samples: list[Any]) -> dict[str, Any]:
    from seeclear_bench.data import shards

    name = f"{dataset}-{group:05d}-{part:02d}.tar"
    info = shards.write_shard(io.join(out_url, name), samples)
    return shards.shard_info_dict(info)


# -- upscale -------------------------------------------------------------------------------------------------------
def upscale_shard(shard_url: str, methods: Any, run_url: str, provenance: dict[str, Any]) -> dict[str, int]:
    """Run each method on every LR window of one shard; write predictions as PNG frames.

    Args:
        methods: The run's ``MethodsConfig`` (names, and the ``seeclear`` checkpoint settings).

    A window whose record exists, names the same method configuration (kernel, or checkpoint hash, steps and seed)
    and whose frames still match their recorded checksums is skipped. Returns counts ``{"written": n, "skipped": n}``
    of (method, window) pairs.
    """
    from seeclear_bench.data import shards
    from seeclear_bench.data.frames import encode_png
    from seeclear_bench.methods import get_upscaler

    upscalers = {name: get_upscaler(name, methods) for name in methods.names}
    described = {name: up.describe() for name, up in upscalers.items()}
    counts = {"written": 0, "skipped": 0}
    for sample in shards.iter_shard(shard_url, verify=True):
        scale = int(sample.meta["scale"])
        for name, upscale in upscalers.items():
            clip_url = predictions_url(run_url, name, sample.dataset, sample.clip_id)
            record_url = io.join(clip_url, RECORDS_DIR, f"{sample.key}.json")
            if verified_record(clip_url, record_url, described[name]) is not None:
                counts["skipped"] += 1
                continue
            pred = upscale(sample.lr, scale, key=sample.key)
            if pred.shape != sample.hr.shape:
                raise SeeClearError(f"method {name} produced {pred.shape} for {sample.key}, expected {sample.hr.shape}")
            checksums = {}
            for index, frame in zip(sample.frame_indices, pred):
                data = encode_png(frame)
                io.write_bytes(io.join(clip_url, frame_name(index)), data)
                checksums[frame_name(index)] = io.sha256_bytes(data)
            io.write_json(record_url, {
                "method": name, "method_config": described[name], "dataset": sample.dataset, "clip": sample.clip_id,
                "key": sample.key, "frames": checksums, "scale": scale, **provenance,
            })
            counts["written"] += 1
    return counts


def verified_record(folder: str, record_url: str, method_config: dict[str, Any]) -> dict[str, Any] | None:
    """A prediction record that names ``method_config`` and whose every listed frame (``"frames"``: name -> SHA-256,
    relative to ``folder``) exists and verifies; None otherwise (missing, other settings, or a damaged frame)."""
    if not io.exists(record_url):
        return None
    record = io.read_json(record_url)
    if record.get("method_config") != method_config or not record.get("frames"):
        return None
    for name, digest in record["frames"].items():
        frame_url = io.join(folder, name)
        if not io.exists(frame_url) or io.sha256_url(frame_url) != digest:
            return None
    return dict(record)


def _reuse_or_score(part_url: str, key: dict[str, Any], score: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The rows kept at ``part_url`` when the record beside it (``.json``) equals ``key``; else ``score()``'s rows,
    saved there with ``key`` written last (the record is removed first, so a half-rewritten part is never trusted)."""
    from seeclear_bench.metrics.tables import read_table, write_parquet

    record_url = part_url.removesuffix(".parquet") + ".json"
    if io.exists(record_url) and io.read_json(record_url) == key and io.exists(part_url):
        return read_table(part_url)
    io.remove(record_url)
    rows = score()
    write_parquet(rows, part_url)
    io.write_json(record_url, key)
    return rows


# -- evaluate ------------------------------------------------------------------------------------------------------
def metrics_part_url(run_url: str, dataset: str, clip_id: str) -> str:
    return io.join(run_url, "metrics", "parts", dataset, f"{clip_id}.parquet")


def score_clip_from_shards(
    dataset: str,
    clip_id: str,
    shard_urls: Sequence[str],
    methods: Sequence[str],
    run_url: str,
    metrics: Sequence[str],
    protocol_name: str,
) -> pd.DataFrame:
    """Score every method's prediction of one clip against the clip's HR frames from its shards.

    Resumable: the rows are saved as ``metrics/parts/<dataset>/<clip>.parquet`` with a record of the protocol hash,
    the metric hashes and the SHA-256 of every scored frame; a later call with the same protocol, metrics and
    identical frames reads them back instead of scoring again.

    Returns:
        The clip's rows of the per-frame table (``metric_hash`` included).
    """
    from seeclear_bench.data import shards
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.metrics.protocols import get_protocol
    from seeclear_bench.metrics.scoring import (
        digest_frames,
        row_metric_hash,
        score_clip,
    )

    protocol = get_protocol(protocol_name)
    hr: dict[int, np.ndarray] = {}
    for url in shard_urls:
        for sample in shards.iter_shard(url, verify=True):
            if sample.clip_id == clip_id:
                hr.update(zip(sample.frame_indices, sample.hr))
    if not hr:
        raise SeeClearError(f"no samples of clip {clip_id!r} in the shards of {dataset}")
    numbers = sorted(hr)
    gt = np.stack([hr[i] for i in numbers])
    encoded: dict[str, list[tuple[str, bytes]]] = {}
    checksums = {"gt": [io.sha256_bytes(np.ascontiguousarray(f).tobytes()) for f in gt]}
    for name in methods:
        clip_url = predictions_url(run_url, name, dataset, clip_id)
        encoded[name] = [(url, io.read_bytes(url)) for url in (io.join(clip_url, frame_name(i)) for i in numbers)]
        checksums[name] = [io.sha256_bytes(data) for _, data in encoded[name]]
    key = {"protocol_hash": protocol.hash, "metrics": {m: row_metric_hash(m) for m in metrics},
           "frames": digest_frames(checksums)}

    def score() -> pd.DataFrame:  # frames are decoded only when the clip is scored, not when its part is reused
        preds = {name: np.stack([decode_frame(data, name=url) for url, data in pairs]) for name, pairs in encoded.items()}
        return score_clip(preds, gt, dataset=dataset, clip=clip_id, metrics=metrics, protocol=protocol, frames=numbers)

    return _reuse_or_score(metrics_part_url(run_url, dataset, clip_id), key, score)


@dataclass(frozen=True)
class ShardClipRef:
    """One clip of a prepared shard set, used as a clip source (its ``hr`` frames, in frame order)."""

    dataset: str
    clip_id: str
    shard_urls: tuple[str, ...]


def shard_clips(url: str, dataset: str) -> dict[str, ShardClipRef]:
    """The clips of the shard set at ``url`` (a folder holding ``manifest.json``)."""
    from seeclear_bench.data import shards

    manifest = shards.read_manifest(url)
    names = [info["name"] for info in manifest["shards"]]
    index = manifest.get("extra", {}).get("clip_shards")
    if index is None:
        index = {}
        for name in names:
            for sample in shards.iter_shard(io.join(url, name), verify=False):
                index.setdefault(sample.clip_id, []).append(name)
    return {clip: ShardClipRef(dataset, clip, tuple(io.join(url, n) for n in dict.fromkeys(found)))
            for clip, found in sorted(index.items())}


def load_clip(ref: Any) -> np.ndarray:
    """Frames of a ``ClipRef`` (folder or video) or of a :class:`ShardClipRef` (hr frames, verified)."""
    if not isinstance(ref, ShardClipRef):
        from seeclear_bench.data.sources import read_clip

        return read_clip(ref)
    from seeclear_bench.data import shards

    frames: dict[int, np.ndarray] = {}
    for url in ref.shard_urls:
        for sample in shards.iter_shard(url, verify=True):
            if sample.clip_id == ref.clip_id:
                frames.update(zip(sample.frame_indices, sample.hr))
    if not frames:
        raise SeeClearError(f"no samples of clip {ref.clip_id!r} in {', '.join(ref.shard_urls)}")
    return np.stack([frames[i] for i in sorted(frames)])


def score_clip_pair(
    pred: Any,
    gt: Any,
    *,
    method: str,
    dataset: str,
    metrics: Sequence[str],
    protocol_name: str,
    part_url: str | None = None,
) -> pd.DataFrame:
    """Score one predicted clip against its ground truth, for outside methods' predictions.

    Each side is a ``ClipRef`` (frames folder or video) or a :class:`ShardClipRef` (a clip of a shard set).
    Frame counts and sizes must match exactly: nothing is cropped, padded or truncated to make them fit.

    Args:
        part_url: where to keep the clip's rows (``.parquet``) and, beside them, a record (``.json``) of the method,
            protocol hash, metric hashes and the SHA-256 of every decoded frame on both sides; a later call whose
            record matches reads the rows back instead of scoring again. None: always score, keep nothing.
    """
    from seeclear_bench.metrics.protocols import get_protocol
    from seeclear_bench.metrics.scoring import digest_frames, row_metric_hash, score_clip

    pred_frames, gt_frames = load_clip(pred), load_clip(gt)
    if len(pred_frames) != len(gt_frames):
        raise SeeClearError(
            f"clip {gt.clip_id}: prediction has {len(pred_frames)} frames, ground truth {len(gt_frames)}"
        )
    protocol = get_protocol(protocol_name)

    def score() -> pd.DataFrame:
        return score_clip({method: pred_frames}, gt_frames, dataset=dataset, clip=gt.clip_id, metrics=metrics,
                          protocol=protocol)

    if part_url is None:
        return score()
    checksums = {side: [io.sha256_bytes(np.ascontiguousarray(f).tobytes()) for f in frames]
                 for side, frames in (("pred", pred_frames), ("gt", gt_frames))}
    key = {"method": method, "dataset": dataset, "clip": gt.clip_id, "protocol_hash": protocol.hash,
           "metrics": {m: row_metric_hash(m) for m in metrics}, "frames": digest_frames(checksums)}
    return _reuse_or_score(part_url, key, score)
