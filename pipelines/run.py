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
    trained: dict[str, Any] = field(default_factory=dict)
    upscaled: dict[str, int] = field(default_factory=dict)  # (method, video) pairs written and skipped
    n_rows: int = 0
    leaderboard: str = ""


def write_spec(cfg: RunConfig, layout: RunLayout) -> str:
    """Save the resolved spec with its hash as ``spec.json``; returns the hash."""
    from seeclear_bench.provenance import record

    digest = spec_hash(cfg)
    io.write_json(layout.spec(), {"spec": cfg.to_dict(), "spec_hash": digest, **record()})
    return digest


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
        elif stage == "upscale":  # the one predict stage (a spec's "infer" is read as it)
            result.upscaled = upscale.run(cfg, layout, digest, progress=progress)
        elif stage == "evaluate":
            frames = evaluate.run(cfg, layout, digest, progress=progress)
        elif stage == "report":
            if frames is None:
                frames = pd.read_parquet(layout.metrics("frames") + ".parquet")
            result.leaderboard = report.run(frames, out_url, title=cfg.report.title, command=command,
                                            reference=cfg.report.reference_method, seed=cfg.seed)
        result.seconds[stage] = time.perf_counter() - started
        log.info("stage %s done in %.1f s", stage, result.seconds[stage])
    result.n_rows = 0 if frames is None else len(frames)
    return result
