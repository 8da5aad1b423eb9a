"""Single-process SeeClear training on WebDataset shards: the CPU/one-GPU counterpart of the Ray Train pipeline.

Owns `train`: shards (fsspec URLs) -> `make_webdataset` + DataLoader -> seeded `augment` per sample -> batches ->
`model.training.train_step`, with a tqdm bar, a per-step CSV log (``log.csv``: step, epoch, loss, lr, grad_norm,
seconds), checkpoints every N steps (``checkpoints/step-XXXXXXXX``, the newest ``keep_checkpoints`` kept) and resume
from the newest complete checkpoint. The run folder also gets ``run.json`` (configs, shards, provenance).

Determinism: the data order of epoch e uses seed ``train.seed + e``; sample i of step s is augmented with a
generator seeded from (seed, s, i), and step s draws t and the noise from one seeded from (seed, s), so a resumed
run repeats the same augmentation and noise for the same step numbers.

Also runnable as ``python -m seeclear_bench.train SHARDS OUT [--steps N ...]``. Imports torch, webdataset and the
model inside functions (``import seeclear_bench`` stays cheap); never imports ray.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io as _pyio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from seeclear_bench import io, provenance
from seeclear_bench.checkpoints import (
    COMPLETE,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    step_dir,
)
from seeclear_bench.errors import SeeClearError

log = logging.getLogger(__name__)

LOG_CSV: Final = "log.csv"
RUN_JSON: Final = "run.json"
LOG_COLUMNS: Final = ("step", "epoch", "loss", "lr", "grad_norm", "seconds")
_FLUSH_EVERY: Final = 50


def resolve_shards(shards: str | Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Shard URLs from a list, a folder with ``manifest.json``, a folder of ``*.tar`` or a glob pattern, and the
    size and SHA-256 the manifest records per URL (a shard set is read through :class:`ShardSet`, and every shard is
    checked as it streams; bare tars, globs and lists have no manifest, so only their frames' own digests are checked).
    """
    from seeclear_bench.data.shardset import ShardSet

    expect: dict[str, Any] = {}
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


def _seed(*parts: int) -> int:
    return hash(tuple(parts)) & (2**63 - 1)  # tuples of ints hash the same in every process


def _read_log(url: str, upto: int) -> list[dict[str, Any]]:
    if not io.exists(url):
        return []
    rows = list(csv.DictReader(_pyio.StringIO(io.read_bytes(url).decode())))
    return [row for row in rows if int(row["step"]) <= upto]


def _write_log(url: str, rows: list[dict[str, Any]]) -> None:
    buf = _pyio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    io.write_bytes(url, buf.getvalue().encode())


def _prune(run_url: str, keep: int) -> None:
    for _, url in list_checkpoints(run_url)[:-keep]:
        io.remove(io.join(url, COMPLETE))  # first, so a half-deleted folder never looks complete
        io.remove(url, recursive=True)


def train(
    shard_urls: str | Sequence[str],
    out_url: str,
    *,
    preset: str = "tiny",
    train_cfg: Any = None,
    model_config: Any = None,
    init_from: str | None = None,
    checkpoint_every: int = 200,
    keep_checkpoints: int = 3,
    resume: bool = True,
    device: str = "cpu",
    num_workers: int = 0,
    max_seconds: float | None = None,
    progress: bool = True,
    distiller: str = "",
) -> dict[str, Any]:
    """Train SeeClear on shards in one process, checkpointing and resuming.

    Args:
        shard_urls: shard URLs, or a folder/glob (see `resolve_shards`). Samples need >= clip_frames frames
            (``clips_per_sample * clip_frames`` to chain memory across clips).
        out_url: the run folder (log.csv, run.json, checkpoints/).
        preset: `SeeClearConfig` preset (tiny, small, paper) when ``model_config`` is None.
        train_cfg: a `TrainConfig` (None: ``TrainConfig.tiny()``).
        model_config: a `SeeClearConfig` overriding the preset.
        init_from: a checkpoint whose model weights start a fresh run (e.g. stage 2 from stage 1); ignored when
            the run resumes.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many of the newest checkpoints to keep.
        resume: continue from the newest complete checkpoint in ``out_url`` when there is one.
        device: torch device string.
        num_workers: DataLoader workers decoding shards (0: in this process).
        max_seconds: stop (with a checkpoint) once this much wall time has passed in this call.
        progress: show a tqdm bar.
        distiller: for presets with the frozen CLIPSeg distiller (``paper``): a save_pretrained folder or a hub id
            in the local Hugging Face cache ("" = CIDAS/clipseg-rd64-refined); a missing one is a one-line error.

    Returns:
        {"step", "steps_run", "loss" (mean of the last 50 logged steps), "checkpoint", "log", "seconds",
        "seconds_per_step"}.

    Raises:
        SeeClearError: no shards, bad sizes, a resumed run whose configs differ, unwritable output.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from model.seeclear import SeeClear, SeeClearConfig
    from model.training import (
        EMA,
        TrainConfig,
        augment,
        make_optimizer,
        make_scheduler,
        train_step,
    )
    from seeclear_bench.data.shards import make_webdataset

    cfg = TrainConfig.tiny() if train_cfg is None else train_cfg
    try:
        model_cfg = SeeClearConfig.preset(preset) if model_config is None else model_config
    except ValueError as exc:
        raise SeeClearError(str(exc)) from exc
    if checkpoint_every < 1 or keep_checkpoints < 1:
        raise SeeClearError(
            f"checkpoint_every and keep_checkpoints must be >= 1, got {checkpoint_every} and {keep_checkpoints}"
        )
    urls, expect = resolve_shards(shard_urls)
    io.check_writable(out_url)
    log_url = io.join(out_url, LOG_CSV)

    start = latest_checkpoint(out_url) if resume else None
    extras: dict[str, Any] = {}
    from seeclear_bench.distillers import distiller_for

    # the frozen CLIPSeg (network.distiller "clipseg") comes from disk, never trained; None for the learned one
    pretrained = distiller_for(model_cfg.network, distiller, device=device)
    if start is not None:
        model, extras = load_checkpoint(start, device=device, distiller=pretrained)
        if extras["config"] != model_cfg or extras["train_config"] != cfg:
            raise SeeClearError(
                f"{out_url} holds a run with another model/train config ({start}); pass the same configs, "
                "a new out_url, or resume=False"
            )
        log.info("resuming from %s (step %d)", start, extras["step"])
    elif init_from is not None:
        model, _ = load_checkpoint(init_from, device=device, distiller=pretrained)
        if model.config != model_cfg:
            raise SeeClearError(f"init_from {init_from} holds another model config than the one requested")
    else:
        model = SeeClear(model_cfg, distiller=pretrained).to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    ema = EMA(model, cfg.ema_decay)
    step, epoch = 0, 0
    if start is not None:
        step, epoch = extras["step"], int(extras["extra"].get("epoch", 0))
        if extras["optimizer_state"] is not None:
            optimizer.load_state_dict(extras["optimizer_state"])
        if extras["scheduler_state"] is not None:
            scheduler.load_state_dict(extras["scheduler_state"])
        if extras["ema_state"] is not None:
            ema.load_state_dict(extras["ema_state"])
    rows = _read_log(log_url, step) if start is not None else []
    io.write_json(io.join(out_url, RUN_JSON), {
        "model": model_cfg.to_dict(), "train": cfg.to_dict(), "preset": preset, "shards": urls,
        "init_from": init_from, "resumed_from": start, "provenance": provenance.record(device=device),
    })

    def checkpoint() -> str:
        url = save_checkpoint(
            step_dir(out_url, step), model, train_config=cfg, ema=ema, optimizer=optimizer, scheduler=scheduler,
            step=step, extra={"epoch": epoch, "shards": len(urls)},
        )
        _write_log(log_url, rows)
        _prune(out_url, keep_checkpoints)
        return url

    t0 = time.perf_counter()
    first_step = step
    last_url = start
    pending: list[tuple[Any, Any]] = []
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    stop = step >= cfg.steps
    while not stop:
        dataset = make_webdataset(urls, shuffle=True, seed=cfg.seed + epoch, expect=expect)
        loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
        seen = 0
        for sample in loader:
            seen += 1
            gen = torch.Generator().manual_seed(_seed(cfg.seed, step, len(pending)))
            try:
                pending.append(augment(sample["lr"], sample["hr"], cfg=cfg, scale=model_cfg.scale,
                                       clip_frames=model_cfg.clip_frames, generator=gen))
            except ValueError as exc:
                raise SeeClearError(f"sample {sample.get('key')!r}: {exc}") from exc
            if len(pending) < cfg.batch_size:
                continue
            shapes = {tuple(hr.shape) for _, hr in pending}
            if len(shapes) > 1:
                raise SeeClearError(f"samples of one batch differ in shape {sorted(shapes)}; set train.crop_size")
            batch = {"lr": torch.stack([lr for lr, _ in pending]).to(device),
                     "hr": torch.stack([hr for _, hr in pending]).to(device)}
            pending = []
            out = train_step(model, batch, optimizer, scheduler, ema, cfg,
                             torch.Generator().manual_seed(_seed(cfg.seed, step)))
            step += 1
            rows.append({"step": step, "epoch": epoch, "loss": f"{out['loss']:.6g}", "lr": f"{out['lr']:.6g}",
                         "grad_norm": f"{out['grad_norm']:.6g}", "seconds": f"{time.perf_counter() - t0:.3f}"})
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4f}", lr=f"{out['lr']:.2e}")
            out_of_time = max_seconds is not None and time.perf_counter() - t0 >= max_seconds
            if step % checkpoint_every == 0 or step >= cfg.steps or out_of_time:
                last_url = checkpoint()
            elif step % _FLUSH_EVERY == 0:
                _write_log(log_url, rows)
            if step >= cfg.steps or out_of_time:
                stop = True
                break
        if seen == 0:
            raise SeeClearError(f"the shards hold no samples: {urls[:3]}{'...' if len(urls) > 3 else ''}")
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - t0
    recent = [float(r["loss"]) for r in rows[-50:]]
    return {
        "step": step,
        "steps_run": step - first_step,
        "loss": sum(recent) / len(recent) if recent else float("nan"),
        "checkpoint": last_url,
        "log": log_url,
        "seconds": seconds,
        "seconds_per_step": seconds / max(step - first_step, 1),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m seeclear_bench.train SHARDS OUT``: a minimal entry point (the CLI command lives in cli.py)."""
    from model.training import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m seeclear_bench.train", description=(train.__doc__ or "").partition("\n")[0])
    parser.add_argument("shards", help="shard folder (with manifest.json), glob or .tar")
    parser.add_argument("out", help="run folder")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"])
    parser.add_argument("--steps", type=int, default=TrainConfig.tiny().steps)
    parser.add_argument("--lr", type=float, default=TrainConfig.tiny().lr)
    parser.add_argument("--crop", type=int, default=TrainConfig.tiny().crop_size)
    parser.add_argument("--batch", type=int, default=TrainConfig.tiny().batch_size)
    parser.add_argument("--stage", default="condenser", choices=["condenser", "memory", "joint"])
    parser.add_argument("--clips", type=int, default=TrainConfig.tiny().clips_per_sample, help="clips per sample")
    parser.add_argument("--kappa", type=float, default=None, help="override the preset's diffusion kappa")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--init-from", default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from model.seeclear import SeeClearConfig

    cfg = TrainConfig.tiny(steps=args.steps, lr=args.lr, crop_size=args.crop, batch_size=args.batch,
                           stage=args.stage, seed=args.seed, clips_per_sample=args.clips,
                           min_lr=min(TrainConfig.tiny().min_lr, args.lr))
    model_cfg = SeeClearConfig.preset(args.preset)
    if args.kappa is not None:
        model_cfg = model_cfg.with_overrides(diffusion=dataclasses.replace(model_cfg.diffusion, kappa=args.kappa))
    result = train(args.shards, args.out, preset=args.preset, model_config=model_cfg, train_cfg=cfg,
                   init_from=args.init_from, checkpoint_every=args.checkpoint_every, max_seconds=args.max_seconds,
                   device=args.device)
    print(result)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
