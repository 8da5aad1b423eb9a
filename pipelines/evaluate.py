"""Evaluate stage: per-frame metrics of every method against ground truth, one Ray task per shard.

Writes ``{run_url}/metrics/frames.parquet`` (and ``.csv``): the long per-frame table that clip and dataset tables and
leaderboards are computed from. Every row carries its protocol name and hash and the run's provenance.
"""
from __future__ import annotations

import pandas as pd

from seeclear_bench import io
from seeclear_bench.config import RunConfig
from seeclear_bench.stages import score_shard
from pipelines._ray import run_tasks
from pipelines.prepare import shard_urls


def run(cfg: RunConfig, run_url: str, spec_hash: str, *, progress: bool = True) -> pd.DataFrame:
    """Score every method on every prepared dataset; returns (and saves) the per-frame table."""
    from seeclear_bench.metrics.tables import save_table
    from seeclear_bench.provenance import code_version, device_name

    protocols = {"*": cfg.evaluate.protocol, **cfg.evaluate.protocols}
    calls = [
        (url, cfg.methods.names, run_url, cfg.evaluate.metrics, protocols)
        for source in cfg.data.sources
        for url in shard_urls(run_url, source.name)
    ]
    parts = run_tasks(score_shard, calls, desc="evaluate", num_cpus=cfg.ray.task_cpus, progress=progress)
    frames = pd.concat(parts, ignore_index=True)
    provenance = {**code_version(), "spec_hash": spec_hash, "seed": cfg.seed, "run": cfg.name,
                  "degradation": cfg.degrade.kind, "scale": cfg.degrade.scale, "device": device_name()}
    for key, value in provenance.items():
        frames[key] = value
    frames = frames.sort_values(["method", "dataset", "clip", "frame", "metric"], kind="stable").reset_index(drop=True)
    save_table(frames, io.join(run_url, "metrics", "frames"))
    return frames
