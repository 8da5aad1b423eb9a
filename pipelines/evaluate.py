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
from seeclear_bench.config import RunConfig
from seeclear_bench.layout import RunLayout
from seeclear_bench.stages import score_clip_from_shards


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, progress: bool = True) -> pd.DataFrame:
    """Score every method's whole-video predictions on every predicted dataset (:meth:`RunConfig.predicted_datasets`)
    against the HR frames of its shard set, paired by frame index; returns (and saves) the per-frame table.

    Every row records the content digest of the shard set its ground truth came from (``dataset_manifest_hash``),
    the one whose shards were verified while they were read.
    """
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.metrics.tables import save_table
    from seeclear_bench.provenance import code_version, device_name

    calls, digests = [], {}
    for dataset in cfg.predicted_datasets():
        shard_set = ShardSet.open(layout.shards(dataset), dataset=dataset)
        digests[dataset] = shard_set.digest
        for clip in shard_set.clip_refs().values():
            calls.append((clip, shard_set.digest, cfg.methods.names, layout, cfg.evaluate.metrics,
                          cfg.evaluate.protocols_for(dataset)))
    gpus = cfg.evaluate.gpus_per_task if cluster_gpus() > 0 else 0
    parts = run_tasks(score_clip_from_shards, calls, desc="evaluate", num_cpus=cfg.ray.task_cpus, num_gpus=gpus,
                      progress=progress)
    frames = pd.concat(parts, ignore_index=True)
    provenance = {**code_version(), "spec_hash": spec_hash, "seed": cfg.seed, "run": cfg.name,
                  "degradation": cfg.degrade.kind, "scale": cfg.degrade.scale, "device": device_name()}
    for key, value in provenance.items():
        frames[key] = value
    frames["dataset_manifest_hash"] = frames["dataset"].map(digests).astype(object)
    frames = frames.sort_values(["method", "dataset", "protocol", "clip", "frame", "metric"], kind="stable").reset_index(drop=True)
    save_table(frames, layout.metrics("frames"))
    return frames
