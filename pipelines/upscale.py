"""Upscale stage: baseline methods on every prepared LR window, one Ray task per shard."""
from __future__ import annotations

from typing import Any

from pipelines._ray import run_tasks
from pipelines.prepare import shard_urls
from seeclear_bench.config import RunConfig
from seeclear_bench.stages import upscale_shard


def run(cfg: RunConfig, run_url: str, spec_hash: str, *, progress: bool = True) -> dict[str, int]:
    """Write predictions of ``cfg.methods.names`` under ``{run_url}/predictions``; returns written/skipped counts."""
    from seeclear_bench.provenance import record

    provenance: dict[str, Any] = record(spec_hash=spec_hash, seed=cfg.seed)
    calls = [
        (url, cfg.methods, run_url, provenance)
        for source in cfg.data.sources
        for url in shard_urls(run_url, source.name)
    ]
    totals = {"written": 0, "skipped": 0}
    for counts in run_tasks(upscale_shard, calls, desc="upscale", num_cpus=cfg.ray.task_cpus, progress=progress):
        for key in totals:
            totals[key] += counts[key]
    return totals
