"""Throughput of seeclear_bench's batched PSNR+SSIM against straightforward per-frame numpy references.

Usage: ``python benchmarks/bench_metrics.py --frames 8 [--channel rgb|y|both] [--device cpu|cuda] [--ref-frames N]
[--threads N]``

Both sides score the same synthetic 720p (720x1280x3) uint8 frames under the same definition (BasicSR/MATLAB PSNR and
SSIM: 11x11 Gaussian window, sigma 1.5, 'valid' filtering). Two per-frame references run in the same process:

* ``direct``: the definition as written: the 11x11 window applied as 121 shifted multiply-adds per statistic map
  (what BasicSR does with ``cv2.filter2D`` and the 2-D window), five maps per channel, one frame at a time.
* ``separable``: the same, with the window split into two 11-tap passes; a stronger numpy baseline.

The references are timed on ``--ref-frames`` frames (their cost is linear in frames) and the results are checked
against ours. The figures are frames per second of PSNR and SSIM together.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from seeclear_bench.metrics import fidelity

Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def _taps() -> np.ndarray:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _filter_direct(a: np.ndarray, window: np.ndarray) -> np.ndarray:
    k = window.shape[0]
    h, w = a.shape[0] - k + 1, a.shape[1] - k + 1
    out = np.zeros((h, w))
    for i in range(k):
        for j in range(k):
            out += window[i, j] * a[i : i + h, j : j + w]
    return out


def _filter_separable(a: np.ndarray, taps: np.ndarray) -> np.ndarray:
    k = taps.shape[0]
    h, w = a.shape[0] - k + 1, a.shape[1] - k + 1
    down = np.zeros((h, a.shape[1]))
    for i in range(k):
        down += taps[i] * a[i : i + h]
    out = np.zeros((h, w))
    for j in range(k):
        out += taps[j] * down[:, j : j + w]
    return out


def _ssim_plane(x: np.ndarray, y: np.ndarray, filt: Callable[[np.ndarray], np.ndarray]) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = filt(x), filt(y)
    var_x, var_y = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def reference_frame(pred: np.ndarray, gt: np.ndarray, channel: str, filt: Callable) -> tuple[float, float]:
    """PSNR and SSIM of one (h, w, 3) uint8 frame pair, plain numpy float64."""
    p, g = pred.astype(np.float64), gt.astype(np.float64)
    if channel == "y":
        p, g = (p @ Y_WEIGHTS + 16.0)[..., None], (g @ Y_WEIGHTS + 16.0)[..., None]
    mse = np.mean((p - g) ** 2)
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    ssim = float(np.mean([_ssim_plane(p[..., c], g[..., c], filt) for c in range(p.shape[-1])]))
    return psnr, ssim


def _ours(pred: torch.Tensor, gt: torch.Tensor, channel: str) -> tuple[np.ndarray, np.ndarray]:
    p = fidelity.psnr(pred, gt, channel=channel)
    s = fidelity.ssim(pred, gt, channel=channel)
    if pred.device.type == "cuda":
        torch.cuda.synchronize()
    return p.cpu().numpy(), s.cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--ref-frames", type=int, default=None, help="frames for the references (default min(2, frames))")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--channel", choices=("rgb", "y", "both"), default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings for our implementation")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    shape = (args.frames, args.height, args.width, 3)
    gt = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pred = np.clip(gt.astype(np.int16) + rng.integers(-12, 13, size=shape), 0, 255).astype(np.uint8)
    ref_frames = args.ref_frames if args.ref_frames is not None else min(2, args.frames)
    device = torch.device(args.device)
    pred_t, gt_t = torch.from_numpy(pred).to(device), torch.from_numpy(gt).to(device)

    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"torch={torch.__version__} torch_threads={torch.get_num_threads()} numpy={np.__version__} "
          f"device={device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}")
    print(f"frames: {args.frames} x {args.height}x{args.width}x3 uint8; references timed on {ref_frames} frame(s)")

    taps = _taps()
    window = np.outer(taps, taps)
    for channel in ("rgb", "y") if args.channel == "both" else (args.channel,):
        _ours(pred_t[:1], gt_t[:1], channel)  # warm-up (allocator, CUDA context)
        best = math.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            ours_psnr, ours_ssim = _ours(pred_t, gt_t, channel)
            best = min(best, time.perf_counter() - start)
        ours_fps = args.frames / best
        print(f"[{channel}] ours (batched torch float64): {ours_fps:8.2f} frames/s")
        for ref_name, filt in (("direct", lambda a: _filter_direct(a, window)),
                               ("separable", lambda a: _filter_separable(a, taps))):
            start = time.perf_counter()
            ref = [reference_frame(pred[i], gt[i], channel, filt) for i in range(ref_frames)]
            ref_fps = ref_frames / (time.perf_counter() - start)
            err_psnr = max(abs(r[0] - o) for r, o in zip(ref, ours_psnr))
            err_ssim = max(abs(r[1] - o) for r, o in zip(ref, ours_ssim))
            print(f"[{channel}] reference {ref_name:<9} (numpy, per frame): {ref_fps:8.3f} frames/s  "
                  f"ratio ours/ref = {ours_fps / ref_fps:7.1f}x  (max |diff| PSNR {err_psnr:.1e} dB, SSIM {err_ssim:.1e})")


if __name__ == "__main__":
    main()
