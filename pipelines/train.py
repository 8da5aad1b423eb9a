"""Train stage: SeeClear trained data-parallel with Ray Train (``TorchTrainer``), checkpointed and resumable.

Owns `run` (the spec's ``train`` stage) and `fit` (shards -> run folder). Layout of a training folder::

    <out>/checkpoints/step-XXXXXXXX/   our safetensors checkpoint (seeclear_bench.checkpoints), reported to Ray
    <out>/log.csv                      per step: step, epoch, loss, lr, grad_norm, samples_per_s, gpu_mem_mb, seconds
    <out>/val.csv                      per validation: step, psnr, ssim (training weights), ema_psnr, ema_ssim (the
                                       EMA weights, which the infer stage samples), on held-out shards
    <out>/workers/rank-R.json          pid and host of each worker (operators; fault tests)
    <out>/train.json                   the settings, shards and final result

Ray's run storage is ``storage_path=<out>``, ``name="checkpoints"``: each checkpoint rank 0 writes is reported with
``checkpoint_dir_name="step-XXXXXXXX"``, so Ray's copy *is* our checkpoint folder. Resume order: Ray's
``get_checkpoint()`` (a worker group restarted by ``FailureConfig``, or a driver restarted on the same storage),
then the newest checkpoint under ``<out>/checkpoints`` that loads and verifies.

Data: every rank streams its own shards (``make_webdataset``; shards dealt round-robin after a seeded shuffle, or,
with fewer shards than ranks, every world-th sample). A rank that runs out starts its next epoch (seed + epoch), so
all ranks run exactly ``steps`` optimizer steps and DDP cannot hang on uneven shards. Each rank's (epoch, samples
read) goes into the checkpoint, so a resumed run reads the same samples it would have read.

Gradients: `train_step` (model/training.py) runs each micro-batch; the optimizer it is handed averages gradients
across ranks (one flat all-reduce) and over ``grad_accum`` micro-batches, then clips and steps. With
``deterministic`` the weights after N steps do not depend on where the run was interrupted.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io as _pyio
import itertools
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from seeclear_bench import io
from seeclear_bench.config import RunConfig, TrainStageConfig
from seeclear_bench.data.shards import ShardDigest
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout

log = logging.getLogger(__name__)

LOG_COLUMNS: Final = ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "gpu_mem_mb", "seconds")
VAL_COLUMNS: Final = ("step", "psnr", "ssim", "ema_psnr", "ema_ssim")
RAY_NAME: Final = "checkpoints"
_FLUSH_EVERY: Final = 10


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, progress: bool = True) -> dict[str, Any]:
    """The ``train`` stage: train on ``cfg.train.datasets``' prepared shards into the run's ``train/`` folder.

    Every shard is checked against the SHA-256 its manifest records while it streams.

    Returns:
        `fit`'s result.
    """
    from seeclear_bench.data.shardset import ShardSet

    sets = {name: ShardSet.open(layout.shards(name), dataset=name)
            for name in dict.fromkeys((*cfg.train.datasets, *cfg.train.val_datasets))}
    urls = [u for name in cfg.train.datasets for u in sets[name].shard_urls()]
    val = [u for name in cfg.train.val_datasets for u in sets[name].shard_urls()]
    expect = {url: digest for shard_set in sets.values() for url, digest in shard_set.expected().items()}
    return fit(urls, layout.train(), settings=cfg.train, val_urls=val, seed=cfg.seed, spec_hash=spec_hash,
               progress=progress, expect=expect)


def fit(
    shard_urls: Sequence[str],
    out_url: str,
    *,
    settings: TrainStageConfig,
    val_urls: Sequence[str] = (),
    seed: int = 0,
    spec_hash: str = "",
    progress: bool = True,
    expect: Mapping[str, ShardDigest] | None = None,
) -> dict[str, Any]:
    """Train SeeClear with Ray Train on the connected Ray cluster; resume from ``out_url`` when it holds a run.

    Args:
        shard_urls: training shards (fsspec URLs).
        out_url: the training folder (module docstring); a local path or a URL pyarrow can write (s3://, gs://).
        settings: the spec's ``[train]`` table.
        val_urls: held-out shards for validation.
        seed: run seed (data order, augmentation, noise, initial weights).
        spec_hash: recorded in every checkpoint.
        progress: a progress bar (rank 0, shown through Ray's log forwarding).
        expect: recorded size and SHA-256 per shard URL (from the shard sets' manifests), checked while each shard
            streams.

    Returns:
        {"step", "checkpoint" (newest checkpoint URL), "loss" (mean of the last 20 logged steps), "log", "seconds"}.

    Raises:
        SeeClearError: no shards, a corrupt shard (named), a run folder trained with other settings, or a run that
            failed more than ``max_failures`` times.
    """
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not shard_urls:
        raise SeeClearError(f"train: no training shards given for {out_url}; check train.datasets and run 'prepare'")
    storage = _storage_path(out_url)
    io.makedirs(io.join(out_url, "checkpoints"))
    loop_config = {
        "urls": [str(u) for u in shard_urls], "val_urls": [str(u) for u in val_urls], "out_url": out_url,
        "settings": dataclasses.asdict(settings), "seed": seed, "spec_hash": spec_hash, "progress": progress,
        "expect": {url: [d.n_bytes, d.sha256] for url, d in (expect or {}).items()},
        "failure_url": io.join(out_url, f"_failure-{uuid.uuid4().hex[:12]}.json"),
    }
    resources = {"CPU": settings.cpus_per_worker, **({"GPU": 1} if settings.use_gpu else {})}
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if settings.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=settings.workers, use_gpu=settings.use_gpu,
                                     resources_per_worker=resources),
        run_config=RayRunConfig(
            name=RAY_NAME, storage_path=storage,
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=settings.keep_checkpoints),
        ),
    )
    started = time.perf_counter()
    try:
        trainer.fit()
    except Exception as exc:  # TrainingFailedError wraps the worker's exception
        from pipelines._ray import root_cause

        _raise_recorded_failure(str(loop_config["failure_url"]))
        cause = root_cause(exc)
        if isinstance(cause, SeeClearError):
            raise SeeClearError(str(cause)) from None
        raise SeeClearError(f"training in {out_url} failed: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
                            " (see the worker log above); run again to resume from the last checkpoint") from exc
    _raise_recorded_failure(str(loop_config["failure_url"]))  # the restarted workers ended at once: raise its line
    rows = _read_csv(io.join(out_url, "log.csv"), upto=None)
    recent = [float(r["loss"]) for r in rows[-20:]]
    result = {
        "step": int(rows[-1]["step"]) if rows else 0,
        "checkpoint": _latest_valid(out_url),
        "loss": sum(recent) / len(recent) if recent else math.nan,
        "log": io.join(out_url, "log.csv"),
        "seconds": time.perf_counter() - started,
    }
    io.write_json(io.join(out_url, "train.json"), {"settings": loop_config["settings"], "shards": loop_config["urls"],
                                                   "val_shards": loop_config["val_urls"], "seed": seed,
                                                   "spec_hash": spec_hash, "result": result})
    return result


def _storage_path(out_url: str) -> str:
    protocol = out_url.split("://", 1)[0] if "://" in out_url else "file"
    if "://" not in out_url:
        return os.path.abspath(out_url)
    if out_url.startswith("file://"):
        return out_url.removeprefix("file://")
    if out_url.split("://", 1)[0] in ("s3", "gs", "gcs", "hdfs", "abfs", "az"):
        return out_url
    raise SeeClearError(f"train output {out_url!r}: Ray Train storage must be a local/shared path or s3://, gs://, "
                        f"hdfs://, abfs:// (found {protocol!r}); change the run's --out")


def _read_csv(url: str, upto: int | None) -> list[dict[str, Any]]:
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


def _latest_valid(out_url: str) -> str | None:
    """The newest checkpoint under ``out_url/checkpoints`` that is complete and verifies (hashes checked)."""
    from seeclear_bench.checkpoints import _read_document, list_checkpoints

    for _, url in reversed(list_checkpoints(out_url)):
        try:
            _read_document(url)
        except SeeClearError as exc:
            log.warning("skipping checkpoint %s: %s", url, exc)
            continue
        return url
    return None


def _seed(*parts: int) -> int:
    return hash(tuple(parts)) & (2**63 - 1)


# -- the worker side ----------------------------------------------------------------------------------------------
class _SyncedOptimizer:
    """What `train_step` is handed: gradients are summed over ``accum`` micro-batches, averaged across ranks with
    one flat all-reduce, clipped, and only then does the wrapped optimizer step (DDP semantics, no DDP wrapper,
    because `train_step` calls the model's methods rather than its forward)."""

    def __init__(self, optimizer: Any, *, accum: int, clip: float | None, world: int) -> None:
        self.optimizer, self.accum, self.clip, self.world = optimizer, accum, clip, world
        self.micro = 0
        self.grad_norm = math.nan
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.micro == 0:
            self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> bool:
        import torch
        import torch.distributed as dist

        self.micro += 1
        if self.micro < self.accum:
            return False
        self.micro = 0
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        if self.world > 1:
            dist.all_reduce(flat)
        flat.div_(self.world * self.accum)
        offset = 0
        for p, g in zip(self.params, grads):
            p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
            offset += g.numel()
        self.grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.clip or math.inf))
        self.optimizer.step()
        return True


def _rank_stream(urls: list[str], rank: int, world: int, seed: int, epoch: int,
                 expect: Mapping[str, ShardDigest]) -> Iterator[dict[str, Any]]:
    """This rank's samples of one epoch: its own shards, or (fewer shards than ranks) every world-th sample."""
    import numpy as np

    from seeclear_bench.data.shards import make_webdataset

    if len(urls) >= world:
        order = np.random.default_rng(_seed(seed, epoch)).permutation(len(urls))
        own = [urls[i] for i in order[rank::world]]
        yield from make_webdataset(own, shuffle=True, seed=seed + epoch, split_by_node=False, expect=expect)
    else:
        stream = make_webdataset(urls, shuffle=True, seed=seed + epoch, split_by_node=False, expect=expect)
        yield from itertools.islice(stream, rank, None, world)


def _samples(urls: list[str], rank: int, world: int, seed: int, position: list[int],
             expect: Mapping[str, ShardDigest]) -> Iterator[dict[str, Any]]:
    """Endless samples from ``position`` = [epoch, samples read in it]; updates ``position`` as it goes."""
    empty = 0
    while True:
        epoch, skip = position
        got = 0
        for i, sample in enumerate(_rank_stream(urls, rank, world, seed, epoch, expect)):
            got += 1
            if i < skip:
                continue
            position[1] = i + 1
            yield sample
        if got == 0:
            empty += 1
            if empty > 1:
                raise SeeClearError(f"train: rank {rank} read no samples from its shards {urls[:3]}; the shards are "
                                    "empty")
        position[0], position[1] = epoch + 1, 0


def _model_configs(s: dict[str, Any], seed: int) -> tuple[Any, Any]:
    from model.seeclear import SeeClearConfig
    from model.training import TrainConfig

    model_cfg = SeeClearConfig.preset(s["preset"])
    if s["network"]:
        model_cfg = model_cfg.with_overrides(
            network=TrainStageConfig(preset=s["preset"], network=s["network"]).network_config())
    if s["kappa"]:
        model_cfg = model_cfg.with_overrides(diffusion=dataclasses.replace(model_cfg.diffusion, kappa=s["kappa"]))
    cfg = TrainConfig(lr=s["lr"], min_lr=s["min_lr"], steps=s["steps"], warmup=s["warmup"], ema_decay=s["ema_decay"],
                      grad_clip=s["grad_clip"] or None, stage=s["stage"], clips_per_sample=s["clips_per_sample"],
                      crop_size=s["crop"], batch_size=s["batch"], seed=seed)
    return model_cfg, cfg


def _validate(model: Any, val_urls: list[str], n: int, steps: int, seed: int,
              expect: Mapping[str, ShardDigest]) -> dict[str, float]:
    import numpy as np
    import torch

    from seeclear_bench.data.shards import iter_shard
    from seeclear_bench.metrics.fidelity import psnr, ssim

    device = next(model.parameters()).device
    scores: list[tuple[float, float]] = []
    samples = (s for url in val_urls for s in iter_shard(url, verify=True, expect=expect.get(url)))
    for i, sample in enumerate(itertools.islice(samples, n)):
        lr = torch.from_numpy(np.ascontiguousarray(sample.lr)).permute(0, 3, 1, 2).float().div(255).to(device)
        gen = torch.Generator(device=device).manual_seed(_seed(seed, i))
        out = model.sample(lr[None], generator=gen, steps=min(steps, model.process.T))[0]
        pred = out.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        scores.append((float(psnr(pred, sample.hr, channel="rgb").clamp(max=100).mean()),
                       float(ssim(pred, sample.hr, channel="rgb").mean())))
    if not scores:
        return {"psnr": math.nan, "ssim": math.nan}
    return {"psnr": sum(p for p, _ in scores) / len(scores), "ssim": sum(s for _, s in scores) / len(scores)}


def _raise_recorded_failure(url: str) -> None:
    """Raise the one line a worker recorded at ``url`` (`_train_loop`), if it did; the record is removed."""
    if not io.exists(url):
        return
    from seeclear_bench.errors import Failure

    failure = Failure(**io.read_json(url))
    io.remove(url)
    raise failure.error()


def _train_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker function (one per rank): `_train_worker`, failing fast on errors that would happen again.

    Ray Train restarts the worker group after any worker error, up to ``max_failures`` times, and cannot tell a dead
    node from a corrupt shard. A `SeeClearError` (bad input, a shard that fails its digest, no space left) would fail
    every restart the same way, so the rank that meets one records it (``failure_url``) before raising; the restarted
    workers find the record and return at once, and the driver raises its one line. Other errors (a peer that died
    mid all-reduce, a killed worker) are left to Ray Train's restarts, which resume from the last checkpoint.
    """
    if io.exists(config["failure_url"]):
        return
    try:
        _train_worker(config)
    except SeeClearError as exc:
        from seeclear_bench.errors import Failure

        failure = Failure.capture(exc, "a training worker")
        io.write_json(config["failure_url"], dataclasses.asdict(failure))
        raise


def _train_worker(config: dict[str, Any]) -> None:
    """The training of one rank (see the module docstring)."""
    import shutil
    import tempfile

    import ray
    import ray.train
    import torch
    import torch.distributed as dist
    from tqdm.auto import tqdm

    from model.seeclear import SeeClear
    from model.training import EMA, augment, make_optimizer, make_scheduler, train_step
    from seeclear_bench.checkpoints import load_checkpoint, save_checkpoint
    from seeclear_bench.distillers import distiller_for

    s, seed, out_url = config["settings"], config["seed"], config["out_url"]
    urls, val_urls = config["urls"], config["val_urls"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    use_gpu = bool(s["use_gpu"])
    device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
    if not use_gpu:
        torch.set_num_threads(max(1, int(s["cpus_per_worker"])))
    if s["deterministic"]:
        torch.use_deterministic_algorithms(True, warn_only=True)
    rank_url = io.join(out_url, "workers", f"rank-{rank}.json")
    attempts = int(io.read_json(rank_url).get("attempts", 0)) if io.exists(rank_url) else 0
    io.write_json(rank_url, {"rank": rank, "world": world, "pid": os.getpid(), "host": socket.gethostname(),
                             "node_id": ray.get_runtime_context().get_node_id(), "started": time.time(),
                             "attempts": attempts + 1})
    model_cfg, cfg = _model_configs(s, seed)
    step_cfg = dataclasses.replace(cfg, grad_clip=None)  # clipping happens after the all-reduce

    # -- resume: Ray's checkpoint, else the newest valid one in the run folder, else init_from, else fresh --------
    start_url = None
    ray_ckpt = ray.train.get_checkpoint()
    if ray_ckpt is not None:
        start_url = ray_ckpt.path if ray_ckpt.filesystem.type_name == "local" else None
        if start_url is None:
            with ray_ckpt.as_directory() as folder:
                start_url = tempfile.mkdtemp(prefix="seeclear-resume-")
                shutil.copytree(folder, start_url, dirs_exist_ok=True)
    if start_url is None:
        start_url = _latest_valid(out_url)
    extras: dict[str, Any] = {}
    # the frozen CLIPSeg (preset paper, or train.network) is loaded from disk by every worker; never trained or saved
    pretrained = distiller_for(model_cfg.network, s["distiller"], device=str(device))
    if start_url is not None:
        model, extras = load_checkpoint(start_url, device=device, distiller=pretrained)
        saved = extras["train_config"]
        if extras["config"] != model_cfg or saved is None or dataclasses.replace(saved, steps=cfg.steps) != cfg:
            raise SeeClearError(f"{out_url} holds a run trained with other settings ({start_url}); only train.steps "
                                "may change on resume: use the same [train] settings, another --out, or delete it")
    elif s["init_from"]:
        model, _ = load_checkpoint(s["init_from"], device=device, distiller=pretrained)
        if model.config.network != model_cfg.network:
            raise SeeClearError(f"train.init_from {s['init_from']} holds another network than train.preset "
                                f"{s['preset']!r} with train.network; make them match")
    else:
        with torch.random.fork_rng(devices=[]):  # the same initial weights on every rank, for a given seed
            torch.manual_seed(seed)
            model = SeeClear(model_cfg, distiller=pretrained)
        model.to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    ema = EMA(model, cfg.ema_decay)
    step = 0
    position = [0, 0]
    if start_url is not None:
        step = extras["step"]
        optimizer.load_state_dict(extras["optimizer_state"])
        scheduler.load_state_dict(extras["scheduler_state"])
        ema.load_state_dict(extras["ema_state"])
        positions = extras["extra"].get("positions", [])
        if len(positions) == world:
            position = list(positions[rank])
        else:  # another world size deals the shards differently: start a fresh epoch after the furthest one read
            position = [max((p[0] for p in positions), default=0) + 1, 0]
            if rank == 0:
                log.warning("resuming %s with %d workers instead of %d: the rest of data epoch %d is skipped and "
                            "epoch %d starts", start_url, world, len(positions), position[0] - 1, position[0])
    synced = _SyncedOptimizer(optimizer, accum=s["grad_accum"], clip=cfg.grad_clip, world=world)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if use_gpu and torch.cuda.is_bf16_supported()
                else contextlib.nullcontext())

    log_url, val_url = io.join(out_url, "log.csv"), io.join(out_url, "val.csv")
    rows = _read_csv(log_url, upto=step) if rank == 0 else []
    val_rows = _read_csv(val_url, upto=step) if rank == 0 else []
    expect = {url: ShardDigest(int(n), str(h)) for url, (n, h) in config.get("expect", {}).items()}
    samples = _samples(urls, rank, world, seed, position, expect)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=rank != 0 or not config["progress"])
    t0 = time.perf_counter()
    last_time = t0

    def checkpoint(metrics: dict[str, Any]) -> None:
        gathered: list[Any] = [None] * world
        if world > 1:
            dist.all_gather_object(gathered, list(position))
        else:
            gathered = [list(position)]
        if rank != 0:
            ray.train.report(metrics)
            return
        folder = tempfile.mkdtemp(prefix="seeclear-ckpt-")
        try:
            save_checkpoint(folder, model, train_config=cfg, ema=ema, optimizer=optimizer, scheduler=scheduler,
                            step=step, extra={"positions": gathered, "world": world, "spec_hash": config["spec_hash"],
                                              "shards": len(urls)})
            _write_csv(log_url, rows, LOG_COLUMNS)
            _write_csv(val_url, val_rows, VAL_COLUMNS)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                             checkpoint_dir_name=f"step-{step:08d}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    while step < cfg.steps:
        losses, micro = [], 0
        while True:
            batch_lr, batch_hr = [], []
            for i in range(cfg.batch_size):
                sample = next(samples)
                gen = torch.Generator().manual_seed(_seed(seed, step, micro, rank, i))
                try:
                    lr, hr = augment(sample["lr"], sample["hr"], cfg=cfg, scale=model_cfg.scale,
                                     clip_frames=model_cfg.clip_frames, generator=gen)
                except ValueError as exc:
                    raise SeeClearError(f"train: sample {sample.get('key')!r}: {exc}") from exc
                batch_lr.append(lr)
                batch_hr.append(hr)
            shapes = {tuple(h.shape) for h in batch_hr}
            if len(shapes) > 1:
                raise SeeClearError(f"train: samples of one batch differ in shape {sorted(shapes)}; set train.crop")
            batch = {"lr": torch.stack(batch_lr).to(device), "hr": torch.stack(batch_hr).to(device)}
            with autocast:
                out = train_step(model, batch, synced, None, None, step_cfg,  # type: ignore[arg-type]  # duck-typed
                                 torch.Generator().manual_seed(_seed(seed, step, micro, rank)))
            losses.append(out["loss"])
            micro += 1
            if micro == s["grad_accum"]:
                break
        scheduler.step()
        ema.update(model)
        loss = torch.tensor([sum(losses) / len(losses)], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(loss)
        step += 1
        now = time.perf_counter()
        gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if use_gpu else 0.0
        metrics = {"step": step, "loss": float(loss) / world, "lr": out["lr"], "grad_norm": synced.grad_norm}
        if rank == 0:
            rows.append({"step": step, "epoch": position[0], "loss": f"{metrics['loss']:.6g}", "lr": f"{out['lr']:.6g}",
                         "grad_norm": f"{synced.grad_norm:.6g}",
                         "samples_per_s": f"{cfg.batch_size * s['grad_accum'] * world / max(now - last_time, 1e-9):.4g}",
                         "gpu_mem_mb": f"{gpu_mb:.1f}", "seconds": f"{now - t0:.3f}"})
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{out['lr']:.2e}")
            if s["validate_every"] and val_urls and step % s["validate_every"] == 0:
                # sample() switches to eval mode and back; the EMA weights are scored on a copy of the model
                averaged = copy.deepcopy(model)
                ema.copy_to(averaged)
                scores = {**_validate(model, val_urls, s["validate_samples"], s["validate_steps"], seed, expect),
                          **{f"ema_{k}": v for k, v in _validate(averaged, val_urls, s["validate_samples"],
                                                                 s["validate_steps"], seed, expect).items()}}
                del averaged
                val_rows.append({"step": step, **{k: f"{v:.6g}" for k, v in scores.items()}})
            if step % _FLUSH_EVERY == 0:
                _write_csv(log_url, rows, LOG_COLUMNS)
        last_time = now
        if step % s["checkpoint_every"] == 0 or step == cfg.steps:
            checkpoint(metrics)
    bar.close()


def read_log(out_url: str) -> list[dict[str, Any]]:
    """The per-step rows of a training folder's ``log.csv`` (strings, as written)."""
    return _read_csv(io.join(out_url, "log.csv"), upto=None)


def describe(out_url: str) -> dict[str, Any]:
    """``train.json`` of a finished training folder."""
    return json.loads(io.read_bytes(io.join(out_url, "train.json")))
