"""``seeclear-bench run``: the stages a spec lists, in order, on a local Ray instance or a cluster."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from seeclear_bench import io
from seeclear_bench.config import RunConfig, spec_hash
from seeclear_bench.layout import RunLayout

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_url: str
    spec_hash: str
    seconds: dict[str, float] = field(default_factory=dict)
    manifests: dict[str, Any] = field(default_factory=dict)
    upscaled: dict[str, int] = field(default_factory=dict)
    trained: dict[str, Any] = field(default_factory=dict)
    inferred: dict[str, int] = field(default_factory=dict)
    n_rows: int = 0
    leaderboard: str = ""


def write_spec(cfg: RunConfig, layout: RunLayout) -> str:
    """Save the resolved spec with its hash as ``spec.json``; returns the hash."""
    from seeclear_bench.provenance import record

    digest = spec_hash(cfg)
    io.write_json(layout.spec(), {"spec": cfg.to_dict(), "spec_hash": digest, **record()})
    return digest


def _eval_cfg(cfg: RunConfig) -> RunConfig:
    """The spec upscale/infer/evaluate/report see: without the datasets the train stage trains on."""
    import dataclasses

    if "train" not in cfg.stages or not cfg.train.datasets:
        return cfg
    sources = tuple(s for s in cfg.data.sources if s.name not in cfg.train.datasets)
    return _with(cfg, data=dataclasses.replace(cfg.data, sources=sources))


def _with(cfg: RunConfig, **fields: Any) -> RunConfig:
    """A copy of ``cfg`` with fields replaced, not validated again (dataclasses.replace would check train.datasets
    against a source list from which the training data was just removed)."""
    import copy

    out = copy.copy(cfg)
    for name, value in fields.items():
        object.__setattr__(out, name, value)
    return out


def _upscale_cfg(cfg: RunConfig, layout: RunLayout) -> RunConfig:
    """The spec the upscale stage sees: without ``seeclear`` when ``infer`` runs it (whole videos, memory carried),
    else with ``run:train`` resolved to the train stage's exported checkpoint."""
    import dataclasses

    from seeclear_bench.config import TRAINED_CHECKPOINT

    methods = cfg.methods
    if "seeclear" not in methods.names:
        return cfg
    if "infer" in cfg.stages:
        names = tuple(n for n in methods.names if n != "seeclear")
        return _with(cfg, methods=dataclasses.replace(methods, names=names))
    if methods.seeclear.checkpoint == TRAINED_CHECKPOINT:
        from pipelines.infer import trained_checkpoint

        seeclear = dataclasses.replace(methods.seeclear, checkpoint=trained_checkpoint(layout, cfg.infer.weights),
                                       distiller=cfg.seeclear_distiller())
        return _with(cfg, methods=dataclasses.replace(methods, seeclear=seeclear))
    return cfg


def run(
    cfg: RunConfig,
    out_url: str,
    *,
    address: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> RunResult:
    """Run ``cfg.stages`` writing everything under ``out_url``; re-running skips completed, verified work.

    Before Ray starts, everything the stages will need is checked (:func:`seeclear_bench.preflight.check_run`) and
    all that is missing is reported in one message. The caller holds the folder's lock (the CLI does).
    """
    import pandas as pd

    from pipelines import evaluate, prepare, report, upscale
    from pipelines._ray import connect
    from seeclear_bench.preflight import check_run

    layout = RunLayout(out_url)
    checked = check_run(cfg, layout)
    checked.raise_if_any()
    clips = {}
    if "prepare" in cfg.stages:
        clips = {**prepare.discover(cfg, layout, known=checked.clips)}  # the demo source is materialised here
    digest = write_spec(cfg, layout)
    result = RunResult(out_url=out_url, spec_hash=digest)
    connect(address, num_cpus=cfg.ray.num_cpus)
    frames = None
    for stage in cfg.stages:
        started = time.perf_counter()
        if stage == "prepare":
            result.manifests = prepare.run(cfg, layout, digest, clips=clips, progress=progress)
        elif stage == "train":
            from pipelines import train

            result.trained = train.run(cfg, layout, digest, progress=progress)
        elif stage == "upscale":
            result.upscaled = upscale.run(_upscale_cfg(_eval_cfg(cfg), layout), layout, digest, progress=progress)
        elif stage == "infer":
            from pipelines import infer

            result.inferred = infer.run(_eval_cfg(cfg), layout, digest, progress=progress)
        elif stage == "evaluate":
            frames = evaluate.run(_eval_cfg(cfg), layout, digest, progress=progress)
        elif stage == "report":
            if frames is None:
                frames = pd.read_parquet(layout.metrics("frames") + ".parquet")
            result.leaderboard = report.run(frames, out_url, title=cfg.report.title, command=command,
                                            reference=cfg.report.reference_method, seed=cfg.seed)
        result.seconds[stage] = time.perf_counter() - started
        log.info("stage %s done in %.1f s", stage, result.seconds[stage])
    result.n_rows = 0 if frames is None else len(frames)
    return result
