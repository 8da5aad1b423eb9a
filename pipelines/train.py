"""Train stage: SeeClear's training stages data-parallel with Ray Train, checkpointed and resumable.

Owns `run` (the spec's ``train`` stage: the plan from the spec, then `seeclear_bench.train.run_stages` with one
``TorchTrainer.fit`` per stage) and the Ray side of a rank (`RayWorld`): the loop itself is
`seeclear_bench.train.run_stage`, the same loop ``seeclear-bench train`` runs in one process. Each worker wraps the
model with ``ray.train.torch.prepare_model`` (DistributedDataParallel: NCCL on GPUs, gloo on CPU), so gradients are
reduced by DDP during backward; accumulation micro-steps run under ``no_sync``.

Ray's run storage of a stage is ``storage_path=<train>/<stage>``, ``name="checkpoints"``: each checkpoint rank 0
writes is reported with ``checkpoint_dir_name="step-XXXXXXXX"``, so Ray's copy *is* our checkpoint folder
(`seeclear_bench.layout.TrainFolder`). A worker group restarted by ``FailureConfig`` resumes from Ray's checkpoint; a
new driver on the same folder resumes from the newest checkpoint that verifies.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from seeclear_bench import io
from seeclear_bench.config import RunConfig, TrainStageConfig
from seeclear_bench.data.shards import ShardDigest
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout, TrainFolder
from seeclear_bench.train import StageJob, TrainPlan, World, run_stage, run_stages

log = logging.getLogger(__name__)

RAY_NAME = "checkpoints"


def plan_from_spec(cfg: RunConfig, layout: RunLayout, spec_hash: str) -> TrainPlan:
    """The `TrainPlan` of the spec's ``[train]`` table, over its prepared (and manifest-checked) shard sets."""
    from seeclear_bench.data.shardset import ShardSet

    t = cfg.train
    sets = {name: ShardSet.open(layout.shards(name), dataset=name)
            for name in dict.fromkeys((*t.datasets, *t.val_datasets))}
    urls = [u for name in t.datasets for u in sets[name].shard_urls()]
    val = [u for name in t.val_datasets for u in sets[name].shard_urls()]
    expect = {url: digest for shard_set in sets.values() for url, digest in shard_set.expected().items()}
    return plan_for(t, urls, seed=cfg.seed, expect=expect, val_shards=val, spec_hash=spec_hash)


def plan_for(settings: TrainStageConfig, shards: Sequence[str], *, seed: int = 0,
             expect: Mapping[str, ShardDigest] | None = None, val_shards: Sequence[str] = (),
             spec_hash: str = "") -> TrainPlan:
    """The `TrainPlan` of a ``[train]`` table over these shards."""
    return TrainPlan(model=settings.model_config(), stages=settings.stage_configs(seed), shards=tuple(shards),
                     expect=dict(expect or {}), val_shards=tuple(val_shards),
                     checkpoint_every=settings.checkpoint_every, keep_checkpoints=settings.keep_checkpoints,
                     validate_every=settings.validate_every, validate_samples=settings.validate_samples,
                     sampling_steps=settings.sampling_steps or None, distiller=settings.distiller,
                     init_from=settings.init_from or None, deterministic=settings.deterministic, amp=settings.amp,
                     spec_hash=spec_hash)


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, progress: bool = True) -> dict[str, Any]:
    """The ``train`` stage: the spec's training stages, in order, into the run's ``train/`` folder.

    Returns:
        `seeclear_bench.train.run_stages`' result.
    """
    return fit(plan_from_spec(cfg, layout, spec_hash), layout.train().root, cfg.train, progress=progress)


def fit(plan: TrainPlan, out_url: str, settings: TrainStageConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train ``plan``'s stages on the connected Ray cluster into the training folder ``out_url`` (resuming)."""
    return run_stages(plan, out_url, lambda job: fit_stage(job, settings, progress=progress))


def fit_stage(job: StageJob, settings: TrainStageConfig, *, progress: bool = True) -> None:
    """One stage on the connected Ray cluster (``settings.workers`` ranks); resumes where the stage stopped.

    Raises:
        SeeClearError: a corrupt shard (named), a stage folder trained with other settings, or a stage that failed
            more than ``max_failures`` times (one line; the worker's traceback stays in Ray's log).
    """
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    folder = TrainFolder(job.root)
    stage_url = folder.stage(job.name)
    io.makedirs(folder.checkpoints(job.name))
    failure_url = folder.failure(job.name, uuid.uuid4().hex[:12])
    loop_config = {"job": job, "use_gpu": settings.use_gpu, "cpus": settings.cpus_per_worker, "progress": progress,
                   "failure_url": failure_url}
    resources = {"CPU": settings.cpus_per_worker, **({"GPU": 1} if settings.use_gpu else {})}
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if settings.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=settings.workers, use_gpu=settings.use_gpu,
                                     resources_per_worker=resources),
        run_config=RayRunConfig(
            name=RAY_NAME, storage_path=_storage_path(stage_url),
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=job.plan.keep_checkpoints),
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:  # TrainingFailedError wraps the worker's exception
        from pipelines._ray import root_cause

        _raise_recorded_failure(failure_url)
        cause = root_cause(exc)
        if isinstance(cause, SeeClearError):
            raise SeeClearError(str(cause)) from None
        first = str(cause).splitlines()[0] if str(cause) else ""
        raise SeeClearError(f"training stage {job.name} in {job.root} failed: {type(cause).__name__}: {first} (see "
                            "the worker log above); run again to resume from the last checkpoint") from exc
    _raise_recorded_failure(failure_url)  # the restarted workers ended at once: raise its line


def _storage_path(url: str) -> str:
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if "://" not in url:
        return os.path.abspath(url)
    if url.startswith("file://"):
        return url.removeprefix("file://")
    if protocol in ("s3", "gs", "gcs", "hdfs", "abfs", "az"):
        return url
    raise SeeClearError(f"train output {url!r}: Ray Train storage must be a local/shared path or s3://, gs://, "
                        f"hdfs://, abfs:// (found {protocol!r}); change the run's --out")


def _raise_recorded_failure(url: str) -> None:
    """Raise the one line a worker recorded at ``url`` (`_train_loop`), if it did; the record is removed."""
    if not io.exists(url):
        return
    from seeclear_bench.errors import Failure

    failure = Failure(**io.read_json(url))
    io.remove(url)
    raise failure.error()


# -- the worker side ----------------------------------------------------------------------------------------------
class RayWorld(World):
    """A Ray Train worker as the loop sees it: DDP through ``prepare_model``, reductions through torch.distributed,
    checkpoints reported to Ray (rank 0 writes them; the others report metrics only)."""

    def __init__(self, device: str) -> None:
        import ray.train

        super().__init__(device)
        ctx = ray.train.get_context()
        self.rank, self.size = ctx.get_world_rank(), ctx.get_world_size()

    def prepare(self, model: Any, *, find_unused: bool) -> Any:
        from ray.train.torch import prepare_model

        return prepare_model(model, move_to_device=False,
                             parallel_strategy_kwargs={"find_unused_parameters": find_unused})

    def no_sync(self, module: Any) -> contextlib.AbstractContextManager[Any]:
        sync_off = getattr(module, "no_sync", None)
        return sync_off() if sync_off is not None else contextlib.nullcontext()

    def mean(self, value: float) -> float:
        import torch
        import torch.distributed as dist

        if self.size == 1:
            return value
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total) / self.size

    def gather(self, value: Any) -> list[Any]:
        import torch.distributed as dist

        if self.size == 1:
            return [value]
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value)
        return gathered

    def resume_url(self) -> str | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        if ckpt.filesystem.type_name == "local":
            return str(ckpt.path)
        with ckpt.as_directory() as folder:
            local = tempfile.mkdtemp(prefix="seeclear-resume-")
            shutil.copytree(folder, local, dirs_exist_ok=True)
        return local

    def where(self) -> dict[str, Any]:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id()}

    def publish(self, job: StageJob, step: int, save: Callable[[str], Any], metrics: Mapping[str, Any]) -> None:
        import ray.train

        if self.rank != 0:
            ray.train.report(dict(metrics))
            return
        folder = tempfile.mkdtemp(prefix="seeclear-ckpt-")
        try:
            save(folder)
            ray.train.report(dict(metrics), checkpoint=ray.train.Checkpoint.from_directory(folder),
                             checkpoint_dir_name=f"step-{step:08d}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _train_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker function (one per rank): `run_stage`, failing fast on errors that would happen again.

    Ray Train restarts the worker group after any worker error, up to ``max_failures`` times, and cannot tell a dead
    node from a corrupt shard. A `SeeClearError` (bad input, a shard that fails its digest, no space left) would fail
    every restart the same way, so the rank that meets one records it (``failure_url``) before raising; the restarted
    workers find the record and return at once, and the driver raises its one line. Other errors (a peer that died
    mid all-reduce, a killed worker) are left to Ray Train's restarts, which resume from the last checkpoint.
    """
    import ray.train.torch
    import torch

    if io.exists(config["failure_url"]):
        return
    try:
        device = str(ray.train.torch.get_device()) if config["use_gpu"] else "cpu"
        if not config["use_gpu"]:
            torch.set_num_threads(max(1, int(config["cpus"])))
        run_stage(config["job"], RayWorld(device), progress=config["progress"])
    except SeeClearError as exc:
        from seeclear_bench.errors import Failure

        failure = Failure.capture(exc, "a training worker")
        io.write_json(config["failure_url"], dataclasses.asdict(failure))
        raise

