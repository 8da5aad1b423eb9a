"""Upscale stage: baseline methods on every prepared LR window, one Ray task per shard."""
from __future__ import annotations

from typing import Any

from pipelines._ray import run_tasks
from seeclear_bench.config import RunConfig
from seeclear_bench.layout import RunLayout
from seeclear_bench.stages import upscale_shard


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, progress: bool = True) -> dict[str, int]:
    """Write predictions of ``cfg.methods.names`` under ``predictions/``; returns written/skipped counts."""
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.provenance import record

    provenance: dict[str, Any] = record(spec_hash=spec_hash, seed=cfg.seed)
    calls = []
    for source in cfg.data.sources:
        shard_set = ShardSet.open(layout.shards(source.name), dataset=source.name)
        calls += [(shard, shard_set.digest, cfg.methods, layout, provenance) for shard in shard_set.shards()]
    totals = {"written": 0, "skipped": 0}
    for counts in run_tasks(upscale_shard, calls, desc="upscale", num_cpus=cfg.ray.task_cpus, progress=progress):
        for key in totals:
            totals[key] += counts[key]
    return totals
