"""Evaluate stage: per-frame metrics of every method against ground truth, one Ray task per clip.

A clip is the unit because temporal metrics (tOF, tLP, warping error) need all of its frames. Each task saves its
rows under ``metrics/parts/`` keyed by protocol, metric and frame checksums, so a run killed part way and started
again scores only what is missing and ends with the same table.

Writes ``{run_url}/metrics/frames.parquet`` (and ``.csv``): the long per-frame table that clip and dataset tables and
leaderboards are computed from. Every row carries its protocol name and hash and the run's provenance.
"""
from __future__ import annotations

import pandas as pd

from pipelines._ray import cluster_gpus, run_tasks
from seeclear_bench import io
from seeclear_bench.config import RunConfig
from seeclear_bench.stages import score_clip_from_shards, shard_clips, shards_url


def clip_shards(run_url: str, dataset: str) -> dict[str, list[str]]:
    """The shard URLs holding each clip of a prepared dataset (`shard_clips`: the manifest's index, or a scan)."""
    return {clip: list(ref.shard_urls) for clip, ref in shard_clips(shards_url(run_url, dataset), dataset).items()}


def run(cfg: RunConfig, run_url: str, spec_hash: str, *, progress: bool = True) -> pd.DataFrame:
    """Score every method on every prepared dataset; returns (and saves) the per-frame table."""
    from seeclear_bench.metrics.tables import save_table
    from seeclear_bench.provenance import code_version, device_name

    calls = []
    for source in cfg.data.sources:
        for clip_id, urls in clip_shards(run_url, source.name).items():
            calls.append((source.name, clip_id, urls, cfg.methods.names, run_url, cfg.evaluate.metrics,
                          cfg.evaluate.protocol_for(source.name)))
    gpus = cfg.evaluate.gpus_per_task if cluster_gpus() > 0 else 0
    parts = run_tasks(score_clip_from_shards, calls, desc="evaluate", num_cpus=cfg.ray.task_cpus, num_gpus=gpus,
                      progress=progress)
    frames = pd.concat(parts, ignore_index=True)
    provenance = {**code_version(), "spec_hash": spec_hash, "seed": cfg.seed, "run": cfg.name,
                  "degradation": cfg.degrade.kind, "scale": cfg.degrade.scale, "device": device_name()}
    for key, value in provenance.items():
        frames[key] = value
    frames = frames.sort_values(["method", "dataset", "clip", "frame", "metric"], kind="stable").reset_index(drop=True)
    save_table(frames, io.join(run_url, "metrics", "frames"))
    return frames
