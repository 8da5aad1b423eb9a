"""Checks before any work starts: everything a run's stages will need, all missing things listed in one message.

:func:`check_run` looks, without starting Ray or building a model, at: the output folder (a folder, writable, with
no file where the layout expects a folder), the sources the ``prepare`` stage reads (discovered once; the clips are
handed back for the stage), the shard sets later stages read when the spec does not prepare them, the weights of the
metrics ``evaluate`` computes, the SeeClear checkpoint (present and verified against its recorded digests), the
frozen pretrained distillers (Mask2Former, CLIPSeg) that training or sampling will load, and the module or program of
each method of your own. Imports no ray.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from seeclear_bench import io
from seeclear_bench.config import TRAINED_CHECKPOINT, RunConfig
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout

log = logging.getLogger(__name__)

_STAGES_READING_SHARDS = ("train", "upscale", "evaluate")


@dataclass
class Preflight:
    """What :func:`check_run` found: the problems (one line each) and the clips it discovered per dataset."""

    problems: list[str] = field(default_factory=list)
    clips: dict[str, list[Any]] = field(default_factory=dict)

    def raise_if_any(self) -> None:
        """Raise one SeeClearError listing every problem (numbered when there are several)."""
        if len(self.problems) == 1:
            raise SeeClearError(self.problems[0])
        if self.problems:
            listed = "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))
            raise SeeClearError(f"{len(self.problems)} problems found before starting: {listed}")


def check_output(layout: RunLayout) -> list[str]:
    """The output folder is writable (`io.check_writable`: a file in its place is said so) and holds no file where
    the layout expects a folder."""
    root = layout.root
    try:
        io.check_writable(root)
    except SeeClearError as exc:
        return [str(exc)]
    problems = []
    for sub in ("shards", "predictions", "metrics", "train", "figures", "source"):
        url = io.join(root, sub)
        sub_fs, sub_path = io.split(url)
        if sub_fs.exists(sub_path) and not sub_fs.isdir(sub_path):
            problems.append(f"{url} is a file, but the run writes a folder there; move it away")
    return problems


def check_run(cfg: RunConfig, layout: RunLayout) -> Preflight:
    """Everything ``cfg.stages`` will need in ``layout``; see the module docstring."""
    from seeclear_bench.data.sources import discover_clips

    found = Preflight(problems=check_output(layout))
    stages = set(cfg.stages)
    if "prepare" in stages:
        for source in cfg.data.sources:
            if source.url == "demo":
                continue  # materialised into the run folder by the prepare stage
            try:
                refs = discover_clips(source.url, layout=source.layout, split=source.split or None,
                                      clips=list(source.clips) or None, dataset=source.name)
            except SeeClearError as exc:
                found.problems.append(f"dataset {source.name}: {exc}")
                continue
            if not refs:
                found.problems.append(f"no clips found for dataset {source.name!r} at {source.url!r}")
            found.clips[source.name] = refs
    elif stages & set(_STAGES_READING_SHARDS):
        from seeclear_bench.data.shards import read_manifest

        for source in cfg.data.sources:
            try:
                read_manifest(layout.shards(source.name))
            except SeeClearError as exc:
                found.problems.append(f"dataset {source.name}: {exc}")
    if "evaluate" in stages:
        found.problems += _missing_weights(cfg.evaluate.metrics)
    found.problems += _checkpoint_problems(cfg)
    if "upscale" in stages:
        found.problems += _plugin_problems(cfg)
    return found


def _plugin_problems(cfg: RunConfig) -> list[str]:
    """Each method of your own the predict stage runs: its entry's module found, its command's program found (what
    its identity needs, :func:`seeclear_bench.plugins.describe_plugin`; nothing is imported or run)."""
    from seeclear_bench.plugins import describe_plugin

    problems = []
    for name in cfg.methods.names:
        if name in cfg.methods.plugins:
            try:
                describe_plugin(name, cfg.methods.plugins[name])
            except SeeClearError as exc:
                problems.append(str(exc))
    return problems


def _missing_weights(metrics: tuple[str, ...]) -> list[str]:
    from seeclear_bench.metrics.registry import get_metric
    from seeclear_bench.metrics.weights import locate

    problems, seen = [], set()
    for metric in metrics:
        for name in get_metric(metric).weights:
            if name in seen:
                continue
            seen.add(name)
            try:
                locate(name)
            except SeeClearError as exc:
                problems.append(str(exc))
    return problems


def _checkpoint_problems(cfg: RunConfig) -> list[str]:
    """The SeeClear checkpoint the spec samples (present, complete, verified) and the distillers it needs."""
    from seeclear_bench.distillers import distiller_missing

    problems = []
    stages = set(cfg.stages)
    if "train" in stages:
        try:
            network = cfg.train.network_config()
        except SeeClearError as exc:
            problems.append(str(exc))
        else:
            if network.distiller != "learned" and (why := distiller_missing(cfg.train.distiller,
                                                                           kind=network.distiller)):
                problems.append(f"train.distiller: {why}")
    s = cfg.methods.seeclear
    samples = "upscale" in stages and "seeclear" in cfg.methods.names
    if samples and s.checkpoint and s.checkpoint != TRAINED_CHECKPOINT:
        from seeclear_bench.checkpoints import checkpoint_config
        from seeclear_bench.methods import describe_checkpoint, resolve_checkpoint

        try:
            describe_checkpoint(s.checkpoint, steps=s.steps, seed=s.seed)  # verifies every file; steps within T
            network = checkpoint_config(resolve_checkpoint(s.checkpoint)).network
        except SeeClearError as exc:
            problems.append(f"methods.seeclear.checkpoint: {exc}")
        else:
            if network.distiller != "learned" and (why := distiller_missing(cfg.seeclear_distiller(),
                                                                           kind=network.distiller)):
                problems.append(f"methods.seeclear.distiller: {why}")
    return problems
