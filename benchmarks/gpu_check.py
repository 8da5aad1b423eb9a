"""One-GPU check of SeeClear (issue 12 item 6): sampling cost of the paper preset, training throughput, a short run.

Run on the device machine (one H100 or H200; its python3 needs only torch and einops: nothing from
``seeclear_bench``, no ray, no data sets, no weights) from the repository root::

    python3 benchmarks/gpu_check.py --out gpu.json

with a command timeout of about 540 s: the whole check keeps to ``--budget-seconds`` (460 s by default, under 8
minutes), which leaves room in a session's device time for a second, shorter try if the first fails
(``python3 benchmarks/gpu_check.py --train-seconds 60 --no-compile --out gpu.json``). Sections run in the order 1, 2,
3, then the compile row of 1: the training run is cut short (its label gives its length) when the earlier sections
ran long, so that about 90 s stay for compiling, which gets what is left (at most ``--compile-timeout``, 200 s).
The script prints one plain-text
table (device name, torch version, then one row per figure) and writes the same rows as JSON to ``--out``, rewritten
after every section, so a run cut short still leaves what it measured. Copy the figures into README together with
the device name the table gives.

What it measures (random weights: the cost of a step does not depend on their values):

1. ``sample_*``: seconds per HR frame of ``SeeClear.sample`` for the ``paper`` preset on one 5-frame clip, LR
   128x128 -> HR 512x512 (x4), 15 reverse steps, after one untimed warm-up call on the same shapes: float32,
   bfloat16 autocast, and bfloat16 autocast with ``torch.compile`` on the Pixel Condenser (compiled in a child
   process with a time limit; "n/a" and the reason when compiling fails or runs out of time). The paper reports
   1.142 s/frame. The paper preset's distiller is a frozen pretrained segmenter loaded from disk, which the device
   machine does not have: the model is built with the learned distiller at the paper preset's sizes as a stand-in
   (``network.distiller="learned"``), so the pretrained distiller's own cost is NOT included.
2. ``train_small`` / ``train_paper``: optimizer steps per second (Adam from ``model.training.make_optimizer``,
   gradient clipping, bfloat16 autocast through ``SeeClear.forward``) on 5-frame clips of 256x256 HR crops (LR
   64x64), at the largest batch of (8, 4, 2, 1) that fits in GPU memory; the paper preset with the same stand-in
   distiller.
3. ``run_small*``: a ``--train-seconds`` (180 s) training run of the ``small`` preset on synthetic clips (drifting
   coloured sinusoid gratings over a translating smooth random texture, LR = exact 4x box downscale of HR) with
   ``make_optimizer``, ``make_scheduler`` (warm-up + cosine sized to the expected step count) and ``EMA``: the mean
   loss in 10 consecutive chunks of the run, and the last chunk's mean against the first's.

``--dry-run`` runs the same sections at toy sizes on any device, CPU included (the ``tiny`` preset in every row,
LR 16x16, 2 reverse steps, 1 timed training step at batch 1, a 2 s run, one torch thread on CPU) in seconds; the
compile row runs its child process without compiling (backend "none": dynamo alone takes minutes to trace even the
tiny condenser on a CPU, most of it in einops' pattern parsing), and on CPU the memory column reads "n/a (cpu)".
``tests/test_gpu_check.py`` runs it.

Imports only the standard library, torch and ``model/`` (the repository root is put on sys.path from this file's
location), so it runs wherever torch and einops are installed.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T0 = time.perf_counter()  # the budget counts from here, imports included

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from model.seeclear import SeeClear, SeeClearConfig  # noqa: E402
from model.training import EMA, TrainConfig, make_optimizer, make_scheduler  # noqa: E402

PAPER_SECONDS_PER_FRAME = 1.142  # SeeClear paper, 15 steps, 128 -> 512
RESULT_PREFIX = "GPU_CHECK_RESULT "  # the compile child's one result line on stdout


@dataclass(frozen=True)
class Sizes:
    """What one mode (full or dry run) measures."""

    sample_preset: str
    lr_side: int
    frames: int
    steps: int
    train_presets: dict[str, str]  # row name -> preset actually built
    crop: int  # HR training crop side
    batches: tuple[int, ...]  # tried largest first
    warmup_steps: int
    timed_steps: int
    run_preset: str
    run_batch_cap: int
    curve_points: int
    compile_backend: str


FULL = Sizes(
    sample_preset="paper", lr_side=128, frames=5, steps=15, train_presets={"small": "small", "paper": "paper"},
    crop=256, batches=(8, 4, 2, 1), warmup_steps=2, timed_steps=5, run_preset="small", run_batch_cap=4,
    curve_points=10, compile_backend="inductor",
)
DRY = Sizes(
    sample_preset="tiny", lr_side=16, frames=5, steps=2, train_presets={"small": "tiny", "paper": "tiny"},
    crop=64, batches=(1,), warmup_steps=1, timed_steps=1, run_preset="tiny", run_batch_cap=1,
    curve_points=10, compile_backend="none",
)


# -- the report ----------------------------------------------------------------------------------------------------
class Report:
    """The rows of the one table; rewritten to ``path`` (JSON) after every row so a cut-short run keeps its figures."""

    def __init__(self, path: str | None, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self.rows: list[dict[str, Any]] = []
        self.start = T0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def add(self, key: str, label: str, value: float | None, unit: str, mem: float | str | None, note: str) -> None:
        """One row: ``value`` None means n/a (the reason in ``note``); ``mem`` GiB, or a string such as "n/a (cpu)"."""
        row = {"key": key, "label": label, "value": value, "unit": unit, "peak_mem_gib": mem, "note": note}
        self.rows.append(row)
        print(f"[{self.elapsed():6.1f}s] {format_row(row)}", file=sys.stderr, flush=True)
        self.save()

    def save(self, done: bool = False) -> None:
        if not self.path:
            return
        data = {**self.header, "complete": done, "elapsed_s": round(self.elapsed(), 1), "rows": self.rows}
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    def table(self) -> str:
        head = " | ".join(f"{k}: {v}" for k, v in self.header.items() if k != "settings")
        lines = [head, f"settings: {self.header['settings']}", ""]
        cells = [(r["label"], fmt_value(r), fmt_mem(r["peak_mem_gib"]), r["note"]) for r in self.rows]
        titles = ("figure", "value", "peak GPU mem", "note")
        widths = [max(len(c[i]) for c in [titles, *cells]) for i in range(3)]
        for cell in [titles, tuple("-" * w for w in widths) + ("-" * 4,), *cells]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(cell[:3], widths)) + "  " + cell[3])
        lines.append(f"\ntotal {self.elapsed():.0f} s")
        return "\n".join(lines)


def fmt_value(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        return "n/a"
    digits = 3 if abs(value) < 100 else 1
    return f"{value:.{digits}f} {row['unit']}".strip()


def fmt_mem(mem: float | str | None) -> str:
    return f"{mem:.2f} GiB" if isinstance(mem, float | int) else str(mem or "-")


def format_row(row: dict[str, Any]) -> str:
    return f"{row['label']}: {fmt_value(row)}, mem {fmt_mem(row['peak_mem_gib'])}; {row['note']}"


# -- device helpers ------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | str:
    if device.type != "cuda":
        return f"n/a ({device.type})"
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu x{os.cpu_count()} ({platform.machine()}, {platform.processor() or 'unknown'})"


def is_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or the plain RuntimeError some kernels (cuDNN, cuBLAS) raise when out of memory."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


# -- models and data -----------------------------------------------------------------------------------------------
def stand_in_config(preset: str) -> tuple[SeeClearConfig, str]:
    """The preset's config with the learned distiller (same token_dim / seg_channels); the note says what changed."""
    cfg = SeeClearConfig.preset(preset)
    if cfg.network.distiller == "learned":
        return cfg, "learned distiller"
    frozen = cfg.network.distiller
    cfg = cfg.with_overrides(network=cfg.network.with_overrides(distiller="learned"))
    return cfg, f"distiller: learned stand-in for the frozen {frozen} (its cost not included)"


def build(preset: str, device: torch.device) -> tuple[SeeClear, str]:
    cfg, note = stand_in_config(preset)
    torch.manual_seed(0)
    model = SeeClear(cfg).to(device)
    millions = sum(p.numel() for p in model.condenser.parameters()) / 1e6
    dist = sum(p.numel() for p in model.distiller.parameters()) / 1e6
    return model, f"{preset}: {millions:.2f} M condenser + {dist:.2f} M distiller params; {note}"


def synthetic_clips(
    batch: int, frames: int, hr_side: int, scale: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr (b n 3 h w), hr (b n 3 H W)) in [0, 1]: drifting colour gratings over a translating smooth texture.

    HR: 4 sinusoid gratings per clip (random orientation, 0.01..0.3 cycles/pixel, phase, drift of up to 2 pixels
    per frame along their normal, random colour weights; a convex mix, so [0, 1]) blended 70/30 with a bilinearly
    enlarged random texture moving by a random whole-pixel shift per frame. LR: the exact 4x box (mean) downscale.
    """
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    k, side = 4, hr_side
    coords = torch.arange(side, device=device, dtype=torch.float32)
    ys, xs = coords[:, None], coords[None, :]
    freq = 2 * math.pi * (0.01 + 0.29 * rand(batch, k))
    theta, phase = 2 * math.pi * rand(batch, k), 2 * math.pi * rand(batch, k)
    drift = 4 * (rand(batch, k) - 0.5)  # pixels per frame
    t = torch.arange(frames, device=device, dtype=torch.float32)
    fx, fy = (freq * theta.cos())[..., None, None, None], (freq * theta.sin())[..., None, None, None]
    shift = (freq * drift)[..., None] * t  # (b k n)
    waves = 0.5 + 0.5 * torch.sin(fx * xs + fy * ys + (phase[..., None] - shift)[..., None, None])  # (b k n H W)
    colour = rand(batch, k, 3) + 0.05
    colour = colour / colour.sum(dim=1, keepdim=True)
    gratings = torch.einsum("bknhw,bkc->bnchw", waves, colour)
    pad = 4 * frames
    texture = F.interpolate(rand(batch, 3, (side + pad) // 8 + 1, (side + pad) // 8 + 1), size=(side + pad,) * 2,
                            mode="bilinear", align_corners=False)
    step = (rand(batch, 2) * 4).long()  # whole pixels per frame, 0..3 in y and x
    moved = torch.stack([
        torch.stack([texture[i, :, s * int(step[i, 0]) : s * int(step[i, 0]) + side,
                             s * int(step[i, 1]) : s * int(step[i, 1]) + side] for s in range(frames)])
        for i in range(batch)
    ])
    hr = (0.7 * gratings + 0.3 * moved).clamp(0, 1)
    lr = F.avg_pool2d(hr.flatten(0, 1), scale).unflatten(0, (batch, frames))
    return lr.contiguous(), hr.contiguous()


# -- 1. sampling ---------------------------------------------------------------------------------------------------
def time_sampling(
    model: SeeClear, sizes: Sizes, device: torch.device, dtype: torch.dtype | None
) -> tuple[float, float | str, float]:
    """(seconds per frame, peak memory, warm-up seconds) of one clip, after a warm-up call on the same shapes."""
    gen = torch.Generator(device=device).manual_seed(0)
    lr = torch.rand(1, sizes.frames, 3, sizes.lr_side, sizes.lr_side, generator=gen, device=device)
    model.eval()
    with torch.no_grad(), autocast(device, dtype):
        start = time.perf_counter()
        model.sample(lr, generator=gen, steps=sizes.steps)  # warm-up (cudnn autotuning, compilation)
        sync(device)
        warm = time.perf_counter() - start
        reset_peak(device)
        start = time.perf_counter()
        out = model.sample(lr, generator=gen, steps=sizes.steps)
        sync(device)
        seconds = time.perf_counter() - start
    if not torch.isfinite(out).all():
        raise RuntimeError("the sample holds non-finite values")
    return seconds / sizes.frames, peak_gib(device), warm


def sample_note(seconds_per_frame: float, sizes: Sizes, extra: str) -> str:
    ratio = f"{seconds_per_frame / PAPER_SECONDS_PER_FRAME:.2f}x the paper's {PAPER_SECONDS_PER_FRAME} s/frame"
    return f"{ratio}; {extra}" if sizes.sample_preset == "paper" else f"dry run ({sizes.sample_preset}); {extra}"


def section_sampling(report: Report, sizes: Sizes, device: torch.device) -> None:
    side = sizes.lr_side
    report.add("sample_paper", "SeeClear paper: sample 128->512, 15 steps", PAPER_SECONDS_PER_FRAME, "s/frame", None,
               "as the paper reports it (its own distiller included); the reference for the rows below")
    what = f"{sizes.sample_preset}{'' if sizes.sample_preset == 'paper' else ' (dry run)'} sample {side}->{4 * side}, {sizes.steps} steps"
    try:
        model, model_note = build(sizes.sample_preset, device)
    except Exception as exc:  # one failed section must not lose the others
        for key, kind in (("sample_fp32", "fp32"), ("sample_bf16", "bf16 autocast")):
            report.add(key, f"{what}, {kind}", None, "s/frame", None, f"n/a ({short_error(exc)})")
        return
    for key, kind, dtype in (("sample_fp32", "fp32", None), ("sample_bf16", "bf16 autocast", torch.bfloat16)):
        try:
            spf, mem, _ = time_sampling(model, sizes, device, dtype)
            report.add(key, f"{what}, {kind}", spf, "s/frame", mem, sample_note(spf, sizes, model_note))
        except Exception as exc:
            report.add(key, f"{what}, {kind}", None, "s/frame", None, f"n/a ({short_error(exc)})")
        free_memory(device)
    del model
    free_memory(device)


def einops_in_graph() -> None:
    """Have dynamo put einops calls into the graph whole instead of tracing einops' pattern parser.

    With einops >= 0.8.2 and torch >= 2.8 dynamo traces through einops' Python (the parser's lru_cache does not
    apply while tracing): on a CPU that took ~85 s of the ~100 s it took to trace even the tiny condenser, against
    ~15 s with this. The graph is the same: AOTAutograd still lowers the calls to the same aten ops for inductor.
    """
    import einops

    names = ("rearrange", "repeat", "reduce", "einsum")
    torch.compiler.allow_in_graph([getattr(einops, n) for n in names if hasattr(einops, n)])


def compile_child(sizes: Sizes, device: torch.device, backend: str) -> dict[str, Any]:
    """In the child process: the bf16 sampling timing with the condenser compiled (``nn.Module.compile``)."""
    model, model_note = build(sizes.sample_preset, device)
    if backend != "none":
        einops_in_graph()
        model.condenser.compile(backend=backend)
    spf, mem, warm = time_sampling(model, sizes, device, torch.bfloat16)
    return {"seconds_per_frame": spf, "peak_mem_gib": mem, "compile_s": warm, "note": model_note}


def section_compile(report: Report, sizes: Sizes, device: torch.device, args: argparse.Namespace) -> None:
    side = sizes.lr_side
    backend = args.compile_backend or sizes.compile_backend
    label = f"{sizes.sample_preset}{'' if sizes.sample_preset == 'paper' else ' (dry run)'} sample {side}->{4 * side}, {sizes.steps} steps, bf16 + compile(condenser)"
    left = args.budget_seconds - report.elapsed() - 10
    limit = min(args.compile_timeout, left)
    if args.no_compile:
        report.add("sample_compile", label, None, "s/frame", None, "n/a (--no-compile)")
        return
    if limit < (5 if args.dry_run else 60):
        report.add("sample_compile", label, None, "s/frame", None, f"n/a (skipped: {left:.0f} s of the budget left)")
        return
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-child", "--device", str(device),
           "--compile-backend", backend]
    if args.dry_run:
        cmd.append("--dry-run")
    # own process group: on timeout the child and inductor's compile workers are ended together
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        report.add("sample_compile", label, None, "s/frame", None,
                   f"n/a (compile + warm-up + timed run exceeded {limit:.0f} s; backend {backend})")
        return
    result = next((json.loads(line[len(RESULT_PREFIX):]) for line in out.splitlines()
                   if line.startswith(RESULT_PREFIX)), None)
    if proc.returncode != 0 or result is None:
        tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or [f"exit {proc.returncode}"]
        report.add("sample_compile", label, None, "s/frame", None, f"n/a (compile failed: {tail[0][:200]})")
        return
    spf = result["seconds_per_frame"]
    bf16 = next((r["value"] for r in report.rows if r["key"] == "sample_bf16"), None)
    gain = f"{bf16 / spf:.2f}x eager bf16" if bf16 else "eager bf16 n/a"
    how = ("NOT compiled (backend none: the child-process path only)" if backend == "none"
           else f"backend {backend}, einops allow_in_graph")
    extra = f"{how}, compile + warm-up {result['compile_s']:.0f} s, {gain}; {result['note']}"
    report.add("sample_compile", label, spf, "s/frame", result["peak_mem_gib"], sample_note(spf, sizes, extra))


# -- 2. training throughput ----------------------------------------------------------------------------------------
def train_config(sizes: Sizes, batch: int, **overrides: Any) -> TrainConfig:
    return TrainConfig(batch_size=batch, crop_size=sizes.crop, clips_per_sample=1, **overrides)


def train_step(
    model: SeeClear, optimizer: torch.optim.Optimizer, cfg: TrainConfig, lr: torch.Tensor, hr: torch.Tensor,
    generator: torch.Generator, amp: torch.dtype | None,
) -> torch.Tensor:
    """One optimizer step (the loss is the model's forward); returns the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = model(lr, hr, generator=generator, chain_memory=False, train_distiller=True, eps=cfg.charbonnier_eps,
                 amp=amp)
    loss.backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], cfg.grad_clip)
    optimizer.step()
    return loss.detach()


def time_training(model: SeeClear, sizes: Sizes, batch: int, device: torch.device) -> tuple[float, float | str]:
    """(steps per second, peak memory) at ``batch``; raises torch.cuda.OutOfMemoryError when it does not fit."""
    cfg = train_config(sizes, batch)
    optimizer = make_optimizer(model, cfg)
    model.train()
    gen = torch.Generator(device=device).manual_seed(0)
    lr, hr = synthetic_clips(batch, sizes.frames, sizes.crop, model.config.scale, gen, device)
    reset_peak(device)
    for _ in range(sizes.warmup_steps):
        train_step(model, optimizer, cfg, lr, hr, gen, torch.bfloat16)
    sync(device)
    start = time.perf_counter()
    losses = [train_step(model, optimizer, cfg, lr, hr, gen, torch.bfloat16) for _ in range(sizes.timed_steps)]
    sync(device)
    seconds = time.perf_counter() - start
    if not torch.isfinite(torch.stack(losses)).all():
        raise RuntimeError("non-finite training loss")
    return sizes.timed_steps / seconds, peak_gib(device)


def section_training(report: Report, sizes: Sizes, device: torch.device) -> dict[str, tuple[int, float]]:
    """Rows train_small and train_paper; returns {row name: (batch, steps/s)} of those that ran."""
    fitted: dict[str, tuple[int, float]] = {}
    for name, preset in sizes.train_presets.items():
        key, lr_side = f"train_{name}", sizes.crop // 4
        shown = name if name == preset else f"{name} (dry run: {preset})"
        label = f"train {shown} bf16, 5x{sizes.crop}^2 HR (LR {lr_side}^2)"
        try:
            model, model_note = build(preset, device)
        except Exception as exc:
            report.add(key, label, None, "steps/s", None, f"n/a ({short_error(exc)})")
            continue
        tried: list[str] = []
        for batch in sizes.batches:
            oom = False
            try:
                rate, mem = time_training(model, sizes, batch, device)
            except Exception as exc:
                oom = is_oom(exc)
                if not oom:
                    report.add(key, f"{label}, batch {batch}", None, "steps/s", None, f"n/a ({short_error(exc)})")
                    break
            if oom:  # outside the except block, so the traceback's tensors are gone before emptying the cache
                tried.append(f"OOM at batch {batch}")
                model.zero_grad(set_to_none=True)
                free_memory(device)
                continue
            fitted[name] = (batch, rate)
            oom_note = f" ({', '.join(tried)})" if tried else ""
            note = (f"largest of {sizes.batches} that fits{oom_note}; {rate * batch * sizes.frames:.1f} frames/s; "
                    f"{sizes.timed_steps} timed steps after {sizes.warmup_steps} warm-up; {model_note}")
            report.add(key, f"{label}, batch {batch}", rate, "steps/s", mem, note)
            break
        else:
            report.add(key, label, None, "steps/s", None, f"n/a ({', '.join(tried)})")
        del model
        free_memory(device)
    return fitted


# -- 3. a short training run ---------------------------------------------------------------------------------------
def section_run(
    report: Report, sizes: Sizes, device: torch.device, seconds: float, fitted: dict[str, tuple[int, float]]
) -> None:
    preset = sizes.run_preset
    batch, rate = fitted.get("small", (min(2, sizes.run_batch_cap), 1.0))
    batch_run = min(batch, sizes.run_batch_cap)
    expected = max(int(rate * batch / batch_run * seconds), 2)  # the cosine schedule ends near the last step
    warmup = min(20, expected // 10)
    cfg = train_config(sizes, batch_run, lr=2e-4, min_lr=1e-5, steps=expected, warmup=warmup, ema_decay=0.999)
    label = f"run {preset} {seconds:.0f} s, batch {batch_run}"
    try:
        model, model_note = build(preset, device)
        optimizer = make_optimizer(model, cfg)
        scheduler = make_scheduler(optimizer, cfg)
        ema = EMA(model, cfg.ema_decay)
        model.train()
        data_gen = torch.Generator(device=device).manual_seed(1)
        noise_gen = torch.Generator(device=device).manual_seed(2)
        reset_peak(device)
        losses: list[tuple[float, float]] = []  # (seconds since start, loss)
        start = time.perf_counter()
        while not losses or time.perf_counter() - start < seconds:
            lr, hr = synthetic_clips(batch_run, sizes.frames, sizes.crop, model.config.scale, data_gen, device)
            loss = train_step(model, optimizer, cfg, lr, hr, noise_gen, torch.bfloat16)
            scheduler.step()
            ema.update(model)
            losses.append((time.perf_counter() - start, float(loss)))  # float() syncs: the clock is honest
        mem = peak_gib(device)
        del model, optimizer, ema
        free_memory(device)
    except Exception as exc:
        report.add("run_small", label, None, "loss", None, f"n/a ({short_error(exc)})")
        return
    if not all(math.isfinite(v) for _, v in losses):
        report.add("run_small", label, None, "loss", mem, "n/a (non-finite loss)")
        return
    chunks = min(sizes.curve_points, len(losses))
    bounds = [round(i * len(losses) / chunks) for i in range(chunks + 1)]
    parts = [losses[bounds[i] : bounds[i + 1]] for i in range(chunks)]
    means = [sum(v for _, v in part) / len(part) for part in parts]
    total = losses[-1][0]
    note = (f"{len(losses)} steps ({len(losses) / total:.2f}/s), lr 2e-4 warm-up {warmup} + cosine to step "
            f"{expected}, EMA, grad clip {cfg.grad_clip}; synthetic gratings + texture, 4x box LR; {model_note}")
    report.add("run_small", f"{label}: final chunk mean loss", means[-1], "", mem, note)
    ratio = means[-1] / means[0]
    verdict = "the loss went down" if ratio < 1 else "the loss did not go down"
    report.add("run_small_ratio", "  final / first chunk mean loss", ratio, "", None,
               f"{verdict} (first chunk {means[0]:.4f}, final {means[-1]:.4f}; t is random per step, so chunks are noisy)")
    for i, (part, mean) in enumerate(zip(parts, means)):
        t0 = losses[bounds[i] - 1][0] if bounds[i] else 0.0
        report.add(f"run_small_curve_{i + 1:02d}",
                   f"  loss, steps {bounds[i] + 1}-{bounds[i + 1]} ({t0:.0f}-{part[-1][0]:.0f} s)",
                   mean, "", None, f"mean over {len(part)} steps")


# -- main ----------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="also write the table's rows as JSON to this file")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes (tiny preset), runs on CPU in seconds")
    parser.add_argument("--device", help="default: cuda if available (required without --dry-run), else cpu")
    parser.add_argument("--train-seconds", type=float, help="length of the training run (default 180; dry run 2)")
    parser.add_argument("--budget-seconds", type=float, default=460.0,
                        help="wall-clock budget of the whole check; the training run and compile shrink to fit")
    parser.add_argument("--compile-timeout", type=float, default=200.0, help="most seconds for the compile row")
    parser.add_argument("--compile-backend",
                        help='torch.compile backend (default inductor; dry run "none": the child runs uncompiled)')
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if not args.dry_run and not args.device.startswith("cuda"):
        parser.error("the full check needs a CUDA GPU; use --dry-run for the CPU smoke run")
    if args.train_seconds is None:
        args.train_seconds = 2.0 if args.dry_run else 180.0
    return args


@contextlib.contextmanager
def section(name: str) -> Iterator[None]:
    print(f"-- {name}", file=sys.stderr, flush=True)
    yield


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = DRY if args.dry_run else FULL
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif args.dry_run:
        torch.set_num_threads(1)  # tiny networks gain nothing from intra-op threads and lose a lot on a shared CPU
    if args.compile_child:
        result = compile_child(sizes, device, args.compile_backend or sizes.compile_backend)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    threads = f"; {torch.get_num_threads()} torch threads" if device.type == "cpu" else ""
    tf32 = (f"matmul tf32 {torch.backends.cuda.matmul.allow_tf32}, cudnn tf32 {torch.backends.cudnn.allow_tf32}, "
            f"cudnn.benchmark {torch.backends.cudnn.benchmark}")
    header = {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "mode": "dry-run" if args.dry_run else "full",
        "settings": f"{sizes.frames}-frame clips, x4, random weights; fp32 rows: {tf32}{threads}",
    }
    report = Report(args.out, header)
    fitted: dict[str, tuple[int, float]] = {}

    def training() -> None:
        fitted.update(section_training(report, sizes, device))

    def run() -> None:
        reserve = 0.0 if args.no_compile else (5.0 if args.dry_run else 90.0)
        left = args.budget_seconds - report.elapsed() - reserve - 15
        section_run(report, sizes, device, max(min(args.train_seconds, left), 1.0), fitted)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("1. sampling", lambda: section_sampling(report, sizes, device)),
        ("2. training throughput", training),
        ("3. training run", run),
        ("1b. sampling with torch.compile", lambda: section_compile(report, sizes, device, args)),
    ]
    for name, fn in steps:
        with section(name):
            fn()
    order = ("sample_paper", "sample_fp32", "sample_bf16", "sample_compile")  # the compile row ran last
    report.rows.sort(key=lambda r: order.index(r["key"]) if r["key"] in order else len(order))
    report.save(done=True)
    print(report.table(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
