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
from seeclear_bench.data.schema import MANIFEST_NAME
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout
from seeclear_bench.stages import prepare_group

log = logging.getLogger(__name__)


def resolve_source(source: SourceConfig, layout: RunLayout) -> str:
    """The URL to read ``source`` from; ``demo`` is materialised once under ``{run}/source/demo``."""
    if source.url != "demo":
        return source.url
    from seeclear_bench.data.demo import write_demo_source

    url = layout.source("demo")
    if not io.exists(io.join(url, "demo.json")):
        write_demo_source(url)
    return url


def discover(cfg: RunConfig, layout: RunLayout, *, known: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """Clips per dataset, discovered on the driver (fails fast, before any task runs); ``known``: datasets already
    discovered (by the preflight check), not listed again."""
    from seeclear_bench.data.sources import discover_clips

    found = dict(known or {})
    for source in cfg.data.sources:
        if source.name in found:
            continue
        refs = discover_clips(
            resolve_source(source, layout),
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
    layout: RunLayout,
    spec_hash: str,
    *,
    clips: dict[str, list[Any]] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Write the shard sets of every source; returns the manifests by dataset.

    Each dataset's shards are keyed by :func:`seeclear_bench.identity.shards_identity` (source, degradation, shard
    layout, seed, code version): groups whose shards already verify under that identity are not rewritten, and a
    manifest whose content would not change is left as it is.

    Args:
        clips: Clips per dataset from :func:`discover` (discovered here when not given).
    """
    from seeclear_bench.data.shards import read_manifest, write_manifest
    from seeclear_bench.data.shardset import content_digest
    from seeclear_bench.identity import shards_identity, shards_inputs
    from seeclear_bench.provenance import record

    clips = clips or discover(cfg, layout)
    identities = {source.name: shards_identity(cfg, source) for source in cfg.data.sources}
    calls, owners = [], []
    for source in cfg.data.sources:
        refs = clips[source.name]
        step = cfg.shards.clips_per_task
        for group, first in enumerate(range(0, len(refs), step)):
            calls.append((cfg, source, refs[first:first + step], group, layout, identities[source.name]))
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
        url = layout.shards(source.name)
        identity = identities[source.name]
        current = _current_manifest(url)
        if (current is None or (current.get("extra") or {}).get("shards_identity") != identity
                or content_digest(current.get("shards", [])) != content_digest(infos)):
            extra = record(
                dataset=source.name,
                source=source.url,
                clips=[ref.clip_id for ref in clips[source.name]],
                degrade=cfg.to_dict()["degrade"],
                shards_config=cfg.to_dict()["shards"],
                seed=cfg.seed,
                clip_shards=clip_shards,
                shards_identity=identity,
                shards_inputs=shards_inputs(cfg, source),
            )
            write_manifest(url, infos, spec_hash=spec_hash, extra=extra)
            current = read_manifest(url)
        manifests[source.name] = current
        log.info("dataset %s: %d shards", source.name, len(infos))
    return manifests


def _current_manifest(url: str) -> dict[str, Any] | None:
    """The shard set's manifest as it is, or None when there is none (or none readable) yet."""
    from seeclear_bench.data.shards import read_manifest

    try:
        return read_manifest(url) if io.exists(io.join(url, MANIFEST_NAME)) else None
    except SeeClearError:
        return None
