"""The one SeeClear training loop: the paper's stages in order, on one process or as one rank of many (DDP).

Owns `TrainPlan` (what to train: model config, the stages' `TrainConfig`s, shards, checkpoint and validation
settings), `run_stages` (the stages in order, each from the previous stage's EMA weights, skipping finished ones and
resuming the unfinished one), `run_stage` (the loop of one stage on one rank), `World` (what the loop asks of the
processes around it: rank, device, DDP wrapping, reductions, publishing a checkpoint; `World` itself is one process)
and `train` (``seeclear-bench train``: every stage in this process). The Ray Train driver (pipelines/train.py) runs
`run_stage` in every worker with a world that wraps the model with ``ray.train.torch.prepare_model``
(DistributedDataParallel: NCCL on GPUs, gloo on CPU) and reports checkpoints to Ray.

The loop of a stage owns: the optimizer (Adam), the schedule, the EMA, gradient accumulation (``grad_accum``
micro-steps, all but the last under DDP's ``no_sync``), clipping (after the gradients are reduced), the data position
of every rank, the log (`LOG_COLUMNS`, `VAL_COLUMNS`), checkpoints (`seeclear_bench.checkpoints`, with the stages they
completed and the sampling steps they were validated at) and resume. The loss is the model's forward
(`SeeClear.forward`); with ``amp`` on a GPU that supports bf16 only the networks run under autocast.

Resume, one rule: the checkpoint the world hands over (Ray's, after a restart), else the newest checkpoint of the
stage's folder that verifies, else the previous stage's EMA weights (or ``init_from``), else fresh weights from the
seed. A resumed stage must have the same model and train config (only ``steps`` may change).

Data: the samples of a stage form one stream per epoch (shards shuffled with seed + epoch). With at least as many
shards as ranks each rank reads its own shards; otherwise rank r reads every world-th sample from r. Sample i of an
epoch gets its augmentation and its t and noise from generators seeded by (seed, stage, epoch, i), so the draws do not
depend on the number of ranks, the batch a sample lands in, or a restart; 2 ranks of batch b see the same global
batches as 1 rank of batch 2b when the shards are fewer than the ranks. Each rank's (epoch, samples read) goes into
the checkpoint, so a resumed run reads the samples it would have read.

Imports torch, webdataset and the model inside functions (``import seeclear_bench`` stays cheap); never imports ray.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io as _pyio
import itertools
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seeclear_bench import io, provenance
from seeclear_bench._pause import pause_point
from seeclear_bench.checkpoints import latest_valid, list_checkpoints, memory_trained, newest_valid
from seeclear_bench.data.shards import ShardDigest
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import TrainFolder
from seeclear_bench.seeds import derive_seed

log = logging.getLogger(__name__)

LOG_COLUMNS: Final = ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "gpu_mem_mb", "seconds")
VAL_COLUMNS: Final = ("step", "psnr", "ssim", "ema_psnr", "ema_ssim")
_FLUSH_EVERY: Final = 10


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    """What a training run trains, the same for every rank and every stage.

    Attributes:
        model: the `SeeClearConfig`.
        stages: one `TrainConfig` per stage, in the order they run (each stage name at most once).
        shards: training shard URLs.
        expect: recorded size and SHA-256 per shard URL (from the manifests), checked while each shard streams.
        val_shards: held-out shard URLs scored every ``validate_every`` steps.
        checkpoint_every: steps between checkpoints (a stage's last step is always saved).
        keep_checkpoints: newest checkpoints kept per stage.
        validate_every: steps between validations (0: never).
        validate_samples: held-out samples per validation.
        sampling_steps: reverse steps of validation, recorded in every checkpoint as the steps to sample it with
            (None: the model's T).
        distiller: where a frozen pretrained distiller comes from (`seeclear_bench.distillers.distiller_for`).
        init_from: a checkpoint whose weights (EMA where it has them) start the first stage.
        deterministic: deterministic torch kernels (on CUDA with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).
        amp: bf16 autocast of the networks on GPUs that support it.
        spec_hash: recorded in every checkpoint.
        max_seconds: one process only: stop (with a checkpoint) after this much wall time in one call.
    """

    model: Any
    stages: tuple[Any, ...]
    shards: tuple[str, ...]
    expect: Mapping[str, ShardDigest] = field(default_factory=dict)
    val_shards: tuple[str, ...] = ()
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    validate_every: int = 0
    validate_samples: int = 4
    sampling_steps: int | None = None
    distiller: str = ""
    init_from: str | None = None
    deterministic: bool = False
    amp: bool = True
    spec_hash: str = ""
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        names = [cfg.stage for cfg in self.stages]
        if not names or len(set(names)) != len(names):
            raise SeeClearError(f"train: list each stage once, got {names}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise SeeClearError(f"checkpoint_every and keep_checkpoints must be >= 1, got {self.checkpoint_every} and "
                                f"{self.keep_checkpoints}")
        if not self.shards:
            raise SeeClearError("train: no training shards; check train.datasets and run 'prepare'")

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "stages": [cfg.to_dict() for cfg in self.stages],
                "shards": list(self.shards), "val_shards": list(self.val_shards),
                "checkpoint_every": self.checkpoint_every, "validate_every": self.validate_every,
                "sampling_steps": self.sampling_steps, "init_from": self.init_from, "spec_hash": self.spec_hash}


@dataclass(frozen=True, kw_only=True)
class StageJob:
    """One stage of a plan, as every rank receives it."""

    plan: TrainPlan
    index: int
    root: str
    init: str | None
    completed: tuple[str, ...]

    @property
    def config(self) -> Any:
        return self.plan.stages[self.index]

    @property
    def name(self) -> str:
        return str(self.config.stage)


class World:
    """The processes a stage runs on, as the loop sees them; this base class is one process with no peers."""

    rank: int = 0
    size: int = 1

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def prepare(self, model: Any, *, find_unused: bool) -> Any:
        """The module the loop calls for the loss (DDP-wrapped on many ranks)."""
        return model

    def no_sync(self, module: Any) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient reduction of a micro-step (DDP's ``no_sync``)."""
        return contextlib.nullcontext()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        return value

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every rank, by rank."""
        return [value]

    def resume_url(self) -> str | None:
        """A checkpoint to resume from that the world hands over (Ray's after a restart), or None."""
        return None

    def where(self) -> dict[str, Any]:
        """What identifies this rank's place beyond host and pid (e.g. Ray's node id), for its rank file."""
        return {}

    def publish(self, job: StageJob, step: int, save: Callable[[str], Any], metrics: Mapping[str, Any]) -> None:
        """Make a checkpoint: ``save(url)`` writes it; the oldest beyond ``keep_checkpoints`` are removed."""
        folder = TrainFolder(job.root)
        save(folder.checkpoint(job.name, step))
        for _, url in list_checkpoints(folder.checkpoints(job.name))[: -job.plan.keep_checkpoints]:
            io.remove(io.join(url, "COMPLETE"))  # first, so a half-deleted folder never looks complete
            io.remove(url, recursive=True)


# -- the stages in order -------------------------------------------------------------------------------------------
def finished_checkpoint(folder: TrainFolder, stage: str, steps: int) -> str | None:
    """The stage's newest verified checkpoint when it has reached ``steps``, else None (verified once)."""
    found = newest_valid(folder.checkpoints(stage))
    return found[1] if found is not None and found[0] >= steps else None


def trained_checkpoint(folder: TrainFolder) -> str | None:
    """The newest verified checkpoint of the last stage that has one (what a run samples after ``train``)."""
    for stage in reversed(TrainFolder.STAGES):
        url = latest_valid(folder.checkpoints(stage))
        if url is not None:
            return url
    return None


def run_stages(plan: TrainPlan, root: str, fit_stage: Callable[[StageJob], None]) -> dict[str, Any]:
    """Train ``plan.stages`` in order into the training folder ``root``; finished stages are skipped.

    Stage k starts from the EMA weights of stage k - 1's final checkpoint (the first from ``plan.init_from`` or fresh
    weights); ``fit_stage`` runs one stage (in this process or on Ray) and resumes it where it stopped.

    Returns:
        {"step", "stage", "stages" (completed), "checkpoint" (the newest), "loss" (mean of the last 20 logged steps of
        the last stage run), "log", "seconds"}.
    """
    folder = TrainFolder(root)
    started = time.perf_counter()
    init, completed = plan.init_from, list[str]()
    result: dict[str, Any] = {}
    for index, cfg in enumerate(plan.stages):
        done = finished_checkpoint(folder, cfg.stage, cfg.steps)
        if done is None:
            fit_stage(StageJob(plan=plan, index=index, root=root, init=init, completed=tuple(completed)))
            done = finished_checkpoint(folder, cfg.stage, cfg.steps)
        rows = read_log(folder, cfg.stage)
        recent = [float(r["loss"]) for r in rows[-20:]]
        result = {"step": int(rows[-1]["step"]) if rows else 0, "stage": cfg.stage,
                  "checkpoint": done or latest_valid(folder.checkpoints(cfg.stage)),
                  "loss": sum(recent) / len(recent) if recent else math.nan, "log": folder.log(cfg.stage)}
        if done is None:  # stopped early (max_seconds): the later stages wait for the next call
            break
        completed.append(cfg.stage)
        init = done
    result.update(stages=completed, seconds=time.perf_counter() - started)
    io.write_json(folder.summary(), {"plan": plan.to_json(), "result": result, "provenance": provenance.record()})
    return result


# -- data --------------------------------------------------------------------------------------------------------
def _rank_stream(urls: Sequence[str], world: World, seed: int, epoch: int,
                 expect: Mapping[str, ShardDigest]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(sample index in the epoch, sample) of this rank: its own shards, or every world-th sample of the stream."""
    import numpy as np

    from seeclear_bench.data.shards import make_webdataset

    rank, size = world.rank, world.size
    if len(urls) >= size and size > 1:
        order = np.random.default_rng(derive_seed(seed, "shards", epoch)).permutation(len(urls))
        own = [urls[i] for i in order[rank::size]]
        stream = make_webdataset(own, shuffle=True, seed=seed + epoch, split_by_node=False, expect=expect)
        yield from ((i * size + rank, s) for i, s in enumerate(stream))
    else:
        stream = make_webdataset(list(urls), shuffle=True, seed=seed + epoch, split_by_node=False, expect=expect)
        yield from ((i * size + rank, s) for i, s in enumerate(itertools.islice(stream, rank, None, size)))


def _samples(urls: Sequence[str], world: World, seed: int, position: list[int],
             expect: Mapping[str, ShardDigest]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Endless (epoch, index, sample) from ``position`` = [epoch, samples read in it]; updates ``position``."""
    empty = 0
    while True:
        epoch, skip = position
        got = 0
        for i, (index, sample) in enumerate(_rank_stream(urls, world, seed, epoch, expect)):
            got += 1
            if i < skip:
                continue
            position[1] = i + 1
            yield epoch, index, sample
        if got == 0:
            empty += 1
            if empty > 1:
                raise SeeClearError(f"train: rank {world.rank} read no samples from its shards {list(urls)[:3]}; the "
                                    "shards are empty")
        position[0], position[1] = epoch + 1, 0


# -- logs -----------------------------------------------------------------------------------------------------------
def _read_csv(url: str, upto: int | None = None) -> list[dict[str, Any]]:
    if not io.exists(url):
        return []
    rows = list(csv.DictReader(_pyio.StringIO(io.read_bytes(url).decode())))
    return [r for r in rows if upto is None or int(r["step"]) <= upto]


def _write_csv(url: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    buf = _pyio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    io.write_bytes(url, buf.getvalue().encode())


def read_log(folder: TrainFolder, stage: str) -> list[dict[str, Any]]:
    """The per-step rows of a stage's ``log.csv`` (strings, as written)."""
    return _read_csv(folder.log(stage))


# -- validation -----------------------------------------------------------------------------------------------------
def _validate(model: Any, job: StageJob, use_memory: bool, seed: int) -> dict[str, float]:
    import numpy as np
    import torch

    from seeclear_bench.data.shards import iter_shard
    from seeclear_bench.metrics.fidelity import psnr, ssim

    plan = job.plan
    device = next(model.parameters()).device
    scores: list[tuple[float, float]] = []
    samples = (s for url in plan.val_shards for s in iter_shard(url, verify=True, expect=plan.expect.get(url)))
    for i, sample in enumerate(itertools.islice(samples, plan.validate_samples)):
        lr = torch.from_numpy(np.ascontiguousarray(sample.lr)).permute(0, 3, 1, 2).float().div(255).to(device)
        gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "validate", i))
        out = model.sample(lr[None], generator=gen, steps=plan.sampling_steps, use_memory=use_memory)[0]
        pred = out.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        scores.append((float(psnr(pred, sample.hr, channel="rgb").clamp(max=100).mean()),
                       float(ssim(pred, sample.hr, channel="rgb").mean())))
    if not scores:
        return {"psnr": math.nan, "ssim": math.nan}
    return {"psnr": sum(p for p, _ in scores) / len(scores), "ssim": sum(s for _, s in scores) / len(scores)}


# -- one stage on one rank -----------------------------------------------------------------------------------------
def _start(job: StageJob, world: World, pretrained: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
    """(model on the world's device, the resumed checkpoint's extras or None, its URL) by the one resume rule."""
    import torch

    from model.seeclear import SeeClear
    from seeclear_bench.checkpoints import checkpoint_meta, load_checkpoint

    plan, cfg = job.plan, job.config
    folder = TrainFolder(job.root)
    start = world.resume_url() or latest_valid(folder.checkpoints(job.name))
    if start is not None:
        model, extras = load_checkpoint(start, device=world.device, distiller=pretrained)
        saved = extras["train_config"]
        if extras["config"] != plan.model or saved is None or dataclasses.replace(saved, steps=cfg.steps) != cfg:
            raise SeeClearError(f"{folder.stage(job.name)} holds a stage trained with other settings ({start}); only "
                                "the steps may change on resume: use the same settings, another --out, or delete it")
        return model, extras, start
    with torch.random.fork_rng(devices=[]):  # the same initial weights on every rank, for a given seed
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        model = SeeClear(plan.model, distiller=pretrained)
    if job.init is not None:
        weights: Literal["model", "ema"] = "ema" if checkpoint_meta(job.init)["ema"] else "model"
        source, extras = load_checkpoint(job.init, distiller=pretrained, weights=weights)
        if source.config.network != plan.model.network:
            raise SeeClearError(f"{job.init} holds another network than the one trained here; train the stages with "
                                "one preset and train.network")
        model.load_trainable_state_dict(source.trainable_state_dict())
        log.info("stage %s starts from the %s weights of %s (stages %s)", job.name, weights, job.init,
                 extras["stages"])
    return model.to(world.device), None, None


def run_stage(job: StageJob, world: World, *, progress: bool = True) -> None:
    """Train one stage on this rank to ``job.config.steps`` optimizer steps (module docstring), checkpointing."""
    import torch
    from tqdm.auto import tqdm

    from model.training import EMA, augment, make_optimizer, make_scheduler
    from seeclear_bench.checkpoints import save_checkpoint
    from seeclear_bench.distillers import distiller_for

    plan, cfg, stage = job.plan, job.config, job.name
    folder = TrainFolder(job.root)
    device = torch.device(world.device)
    if plan.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    rank_url = folder.worker(stage, world.rank)
    attempts = int(io.read_json(rank_url).get("attempts", 0)) if io.exists(rank_url) else 0
    io.write_json(rank_url, {"rank": world.rank, "world": world.size, "pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.time(), "attempts": attempts + 1, **world.where()})

    pretrained = distiller_for(plan.model.network, plan.distiller, device=str(device))
    model, extras, start = _start(job, world, pretrained)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    ema = EMA(model, cfg.ema_decay)
    step, position = 0, [0, 0]
    if extras is not None:
        step = extras["step"]
        optimizer.load_state_dict(extras["optimizer_state"])
        scheduler.load_state_dict(extras["scheduler_state"])
        ema.load_state_dict(extras["ema_state"])
        positions = extras["extra"].get("positions", [])
        if len(positions) == world.size:
            position = list(positions[world.rank])
        else:  # another world size deals the shards differently: a fresh epoch after the furthest one read
            position = [max((p[0] for p in positions), default=0) + 1, 0]
            if world.rank == 0:
                log.warning("resuming %s with %d ranks instead of %d: the rest of data epoch %d is skipped",
                            start, world.size, len(positions), position[0] - 1)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    net = world.prepare(model, find_unused=stage != "condenser")
    amp = (torch.bfloat16 if plan.amp and device.type == "cuda" and torch.cuda.is_bf16_supported() else None)
    chain = stage != "condenser"
    train_distiller = stage != "memory" and not model.pretrained_distiller
    stages_done = (*job.completed, stage)
    use_memory = memory_trained(stages_done)  # validation samples as the checkpoint will be sampled

    rows = _read_csv(folder.log(stage), upto=step) if world.rank == 0 else []
    val_rows = _read_csv(folder.val(stage), upto=step) if world.rank == 0 else []
    samples = _samples(plan.shards, world, cfg.seed, position, plan.expect)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {stage}", unit="step",
               disable=world.rank != 0 or not progress)
    t0 = last = time.perf_counter()

    def checkpoint(metrics: Mapping[str, Any]) -> None:
        positions = world.gather(list(position))

        def save(url: str) -> None:
            save_checkpoint(url, model, train_config=cfg, ema=ema, optimizer=optimizer, scheduler=scheduler,
                            step=step, stages=stages_done if step >= cfg.steps else job.completed,
                            sampling_steps=plan.sampling_steps,
                            extra={"positions": positions, "world": world.size, "spec_hash": plan.spec_hash,
                                   "stage": stage, "shards": len(plan.shards)})
            _write_csv(folder.log(stage), rows, LOG_COLUMNS)
            _write_csv(folder.val(stage), val_rows, VAL_COLUMNS)

        world.publish(job, step, save, metrics)
        pause_point(f"train-checkpoint-{step}")  # test-only: fault tests act here (seeclear_bench._pause)

    while step < cfg.steps:
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for micro in range(cfg.grad_accum):
            lrs, hrs, gens = [], [], []
            for _ in range(cfg.batch_size):
                epoch, index, sample = next(samples)
                gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "augment", stage, epoch, index))
                try:
                    lr, hr = augment(sample["lr"], sample["hr"], cfg=cfg, scale=plan.model.scale,
                                     clip_frames=plan.model.clip_frames, generator=gen)
                except ValueError as exc:
                    raise SeeClearError(f"train: sample {sample.get('key')!r}: {exc}") from exc
                lrs.append(lr)
                hrs.append(hr)
                gens.append(torch.Generator().manual_seed(derive_seed(cfg.seed, "noise", stage, epoch, index)))
            if len({tuple(h.shape) for h in hrs}) > 1:
                raise SeeClearError(f"train: samples of one batch differ in shape {sorted({tuple(h.shape) for h in hrs})}"
                                    "; set a crop_size")
            sync = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if sync else world.no_sync(net):
                loss = net(torch.stack(lrs).to(device), torch.stack(hrs).to(device), generator=gens,
                           chain_memory=chain, train_distiller=train_distiller, eps=cfg.charbonnier_eps, amp=amp)
                (loss / cfg.grad_accum).backward()
            losses.append(float(loss.detach()))
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or math.inf))  # after the reduction
        lr_used = float(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        ema.update(model)
        step += 1
        loss_mean = world.mean(sum(losses) / len(losses))
        now = time.perf_counter()
        out_of_time = world.size == 1 and plan.max_seconds is not None and now - t0 >= plan.max_seconds
        metrics = {"step": step, "loss": loss_mean, "lr": lr_used, "grad_norm": grad_norm}
        if world.rank == 0:
            gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
            rows.append({"step": step, "epoch": position[0], "loss": f"{loss_mean:.6g}", "lr": f"{lr_used:.6g}",
                         "grad_norm": f"{grad_norm:.6g}",
                         "samples_per_s": f"{cfg.batch_size * cfg.grad_accum * world.size / max(now - last, 1e-9):.4g}",
                         "gpu_mem_mb": f"{gpu_mb:.1f}", "seconds": f"{now - t0:.3f}"})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean:.4f}", lr=f"{lr_used:.2e}")
            if plan.validate_every and plan.val_shards and step % plan.validate_every == 0:
                averaged = copy.deepcopy(model)  # sample() switches modes; the EMA weights are scored on a copy
                ema.copy_to(averaged)
                scores = {**_validate(model, job, use_memory, cfg.seed),
                          **{f"ema_{k}": v for k, v in _validate(averaged, job, use_memory, cfg.seed).items()}}
                del averaged
                val_rows.append({"step": step, **{k: f"{v:.6g}" for k, v in scores.items()}})
            if step % _FLUSH_EVERY == 0:
                _write_csv(folder.log(stage), rows, LOG_COLUMNS)
        last = now
        if step % plan.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            checkpoint(metrics)
        if out_of_time:
            break
    bar.close()


# -- one process ----------------------------------------------------------------------------------------------------
def resolve_shards(shards: str | Sequence[str]) -> tuple[list[str], dict[str, ShardDigest]]:
    """Shard URLs from a list, a folder with ``manifest.json``, a folder of ``*.tar`` or a glob pattern, and the
    size and SHA-256 the manifest records per URL (a shard set is read through :class:`ShardSet`, and every shard is
    checked as it streams; bare tars, globs and lists have no manifest, so only their frames' own digests are checked).
    """
    from seeclear_bench.data.shardset import ShardSet

    expect: dict[str, ShardDigest] = {}
    if not isinstance(shards, str):
        urls = [str(u) for u in shards]
    elif any(ch in shards for ch in "*?["):
        urls = io.glob(shards)
    elif shards.endswith(".tar"):
        urls = [shards]
    elif io.exists(io.join(shards, "manifest.json")):
        shard_set = ShardSet.open(shards)
        urls, expect = shard_set.shard_urls(), shard_set.expected()
    else:
        urls = io.glob(io.join(shards, "*.tar"))
    if not urls:
        raise SeeClearError(f"no shards found at {shards!r}: expected shard URLs, a folder with manifest.json or *.tar")
    return urls, expect


def train(
    shard_urls: str | Sequence[str],
    out_url: str,
    *,
    model_config: Any,
    stages: Sequence[Any],
    device: str = "cpu",
    progress: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Train SeeClear's ``stages`` on shards in this process (one rank): ``seeclear-bench train``.

    Args:
        shard_urls: shard URLs, or a folder/glob (see `resolve_shards`).
        out_url: the training folder (`TrainFolder`); running again resumes.
        model_config: the `SeeClearConfig`.
        stages: the `TrainConfig` of each stage, in order.
        device: torch device string.
        progress: a progress bar.
        **settings: the other `TrainPlan` fields (checkpoint_every, keep_checkpoints, init_from, max_seconds,
            distiller, sampling_steps, ...).

    Returns:
        `run_stages`' result.
    """
    urls, expect = resolve_shards(shard_urls)
    io.check_writable(out_url)
    plan = TrainPlan(model=model_config, stages=tuple(stages), shards=tuple(urls), expect=expect, **settings)
    world = World(device)
    return run_stages(plan, out_url, lambda job: run_stage(job, world, progress=progress))
