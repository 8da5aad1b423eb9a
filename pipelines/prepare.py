"""Prepare stage: source clips -> degraded LR/HR windows -> WebDataset shards, one Ray task per group of clips.

Shard names depend only on the spec (dataset, group index, part), never on the number of workers, so the same
spec gives the same shard set anywhere. The manifest is written last: a shard set without one is incomplete.
"""
from __future__ import annotations

import logging
from typing import Any

from pipelines._ray import run_tasks
from seeclear_bench import io
from seeclear_bench.config import RunConfig, SourceConfig
from seeclear_bench.errors import SeeClearError
from seeclear_bench.stages import prepare_group, shards_url

log = logging.getLogger(__name__)


def resolve_source(source: SourceConfig, run_url: str) -> str:
    """The URL to read ``source`` from; ``demo`` is materialised once under ``{run_url}/source/demo``."""
    if source.url != "demo":
        return source.url
    from seeclear_bench.data.demo import write_demo_source

    url = io.join(run_url, "source", "demo")
    if not io.exists(io.join(url, "demo.json")):
        write_demo_source(url)
    return url


def discover(cfg: RunConfig, run_url: str) -> dict[str, list[Any]]:
    """Clips per dataset, discovered on the driver (fails fast, before any task runs)."""
    from seeclear_bench.data.sources import discover_clips

    found = {}
    for source in cfg.data.sources:
        refs = discover_clips(
            resolve_source(source, run_url),
            layout=source.layout,
            split=source.split or None,
            clips=list(source.clips) or None,
            dataset=source.name,
        )
        if not refs:
            raise SeeClearError(f"no clips found for dataset {source.name!r} at {source.url!r}")
        found[source.name] = refs
    return found


def run(
    cfg: RunConfig,
    run_url: str,
    spec_hash: str,
    *,
    clips: dict[str, list[Any]] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Write the shard sets of every source; returns the manifests by dataset.

    Args:
        clips: Clips per dataset from :func:`discover` (discovered here when not given).
    """
    from seeclear_bench.data.shards import write_manifest
    from seeclear_bench.provenance import record

    clips = clips or discover(cfg, run_url)
    calls, owners = [], []
    for source in cfg.data.sources:
        refs = clips[source.name]
        step = cfg.shards.clips_per_task
        for group, first in enumerate(range(0, len(refs), step)):
            calls.append((cfg, source, refs[first:first + step], group, shards_url(run_url, source.name), spec_hash))
            owners.append(source.name)
    results = run_tasks(prepare_group, calls, desc="prepare shards", num_cpus=cfg.ray.task_cpus, progress=progress)

    manifests = {}
    for source in cfg.data.sources:
        infos, clip_shards = [], {}
        for owner, call, group_infos in zip(owners, calls, results):
            if owner == source.name:
                infos.extend(group_infos)
                for ref in call[2]:
                    clip_shards[ref.clip_id] = [info["name"] for info in group_infos]
        extra = record(
            dataset=source.name,
            source=source.url,
            clips=[ref.clip_id for ref in clips[source.name]],
            degrade=cfg.to_dict()["degrade"],
            shards_config=cfg.to_dict()["shards"],
            seed=cfg.seed,
            clip_shards=clip_shards,
        )
        url = shards_url(run_url, source.name)
        write_manifest(url, infos, spec_hash=spec_hash, extra=extra)
        manifests[source.name] = io.read_json(io.join(url, "manifest.json"))
        log.info("dataset %s: %d shards", source.name, len(infos))
    return manifests


def shard_urls(run_url: str, dataset: str) -> list[str]:
    """The shard URLs of a prepared dataset, from its manifest."""
    from seeclear_bench.data.shards import read_manifest

    base = shards_url(run_url, dataset)
    manifest = read_manifest(base)
    return [io.join(base, info["name"]) for info in manifest["shards"]]
