"""Full-reference fidelity metrics (PSNR, SSIM) under BasicSR/MATLAB conventions, batched in torch float64.

Owns the numerics of PSNR and SSIM and the BT.601 limited-range luma they use on the ``"y"`` channel. The same code
runs on CPU and GPU: inputs stay on the device they arrive on (numpy arrays are scored on the CPU). Frames are processed
in chunks, and SSIM's Gaussian filtering in row tiles, so that memory stays bounded on 720p clips.

Conventions (see ``docs/CONVENTIONS.md``): pixel values are on the uint8 grid with peak 255; floating-point predictions
are rounded to that grid first (half to even, as BasicSR's ``tensor2img``); identical frames give ``inf`` PSNR.
SSIM is Wang et al. (2004) as BasicSR's ``calculate_ssim`` / MATLAB ``ssim``: an 11x11 Gaussian window with
sigma 1.5 applied with 'valid' filtering, C1 = (0.01*255)^2, C2 = (0.03*255)^2, computed per channel and averaged
over channels.

This module imports torch and numpy only; it must not import pyiqa, ray or any model.
"""
from __future__ import annotations

import math
from typing import Final, Literal

import numpy as np
import torch

from seeclear_bench.errors import SeeClearError

Channel = Literal["rgb", "y"]
FramesLike = np.ndarray | torch.Tensor

DATA_RANGE: Final = 255.0
SSIM_WINDOW: Final = 11
SSIM_SIGMA: Final = 1.5
SSIM_C1: Final = (0.01 * DATA_RANGE) ** 2
SSIM_C2: Final = (0.03 * DATA_RANGE) ** 2
# MATLAB rgb2ycbcr luma row for R, G, B in [0, 1]; the output lies in [16, 235].
Y_WEIGHTS: Final = (65.481, 128.553, 24.966)
Y_OFFSET: Final = 16.0

# float64 elements per frame chunk (both images) and per SSIM row tile (all four statistic maps). The CPU tile is
# sized to stay in cache; on GPUs one tile covers a whole chunk.
_CHUNK_ELEMS: Final = {"cpu": 1 << 23, "cuda": 1 << 26}
_TILE_ELEMS: Final = {"cpu": 1 << 18, "cuda": 1 << 27}
_FLOAT_DTYPES: Final = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> list[float]:
    """Normalised 1-D Gaussian taps, ``exp(-(i - c)^2 / (2 sigma^2))`` summing to 1 (as OpenCV getGaussianKernel).

    The 2-D SSIM window is the outer product of this vector with itself.
    """
    centre = (size - 1) / 2
    taps = [math.exp(-((i - centre) ** 2) / (2 * sigma * sigma)) for i in range(size)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def rgb_to_y(frames: torch.Tensor) -> torch.Tensor:
    """BT.601 limited-range luma of MATLAB ``rgb2ycbcr`` on the 0-255 scale, float64, not rounded.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 255]; Y lies in [16, 235].

    Args:
        frames: ``(... h w 3)`` RGB on the 0-255 scale, any real dtype.

    Returns:
        ``(... h w)`` float64 luma.
    """
    red, green, blue = frames.unbind(-1)
    luma = red.to(torch.float64, copy=True).mul_(Y_WEIGHTS[0] / DATA_RANGE)
    luma.add_(green, alpha=Y_WEIGHTS[1] / DATA_RANGE).add_(blue, alpha=Y_WEIGHTS[2] / DATA_RANGE)
    return luma.add_(Y_OFFSET)


def psnr(pred: FramesLike, gt: FramesLike, *, channel: Channel, crop_border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio per frame, ``10 log10(255^2 / MSE)``, in dB.

    Args:
        pred: ``(n h w 3)`` (or one ``(h w 3)`` frame) RGB prediction: uint8, or floating point on the 0-255 scale
            (rounded to the uint8 grid first). numpy array or torch tensor.
        gt: Ground truth of the same shape.
        channel: ``"rgb"`` (MSE over the three channels) or ``"y"`` (BT.601 limited-range luma, see :func:`rgb_to_y`).
        crop_border: Pixels removed from each border before scoring.

    Returns:
        ``(n,)`` float64 tensor on the inputs' device; ``inf`` where a frame equals its ground truth.

    Raises:
        SeeClearError: Mismatched shapes, an unsupported dtype, NaN/inf or out-of-range values (naming the frame),
            or a crop that leaves nothing.
    """
    pred_u8, gt_u8 = _prepare(pred, gt, channel=channel, crop_border=crop_border, min_size=1)
    out = torch.empty(pred_u8.shape[0], dtype=torch.float64, device=pred_u8.device)
    for start, stop in _chunks(pred_u8):
        p, g = pred_u8[start:stop], gt_u8[start:stop]
        if channel == "rgb":
            # Differences of uint8 values squared and summed in int64 are exact, whatever the frame size.
            diff = p.to(torch.int32) - g.to(torch.int32)
            mse = (diff * diff).sum(dim=(1, 2, 3)).to(torch.float64) / diff[0].numel()
        else:
            diff = rgb_to_y(p) - rgb_to_y(g)
            mse = (diff * diff).mean(dim=(1, 2))
        out[start:stop] = 10.0 * torch.log10(DATA_RANGE**2 / mse)  # mse == 0 -> +inf
    return out


def ssim(pred: FramesLike, gt: FramesLike, *, channel: Channel, crop_border: int = 0) -> torch.Tensor:
    """Structural similarity per frame (Wang et al. 2004), exactly as BasicSR / MATLAB compute it.

    Each channel's SSIM map uses local statistics under an 11x11 Gaussian window (sigma 1.5) with 'valid' filtering,
    so the map is ``(h - 10) x (w - 10)``; the channel score is the map's mean and the frame score the mean over
    channels (one channel for ``"y"``).

    Args:
        pred: ``(n h w 3)`` (or one ``(h w 3)`` frame) RGB prediction: uint8, or floating point on the 0-255 scale
            (rounded to the uint8 grid first). numpy array or torch tensor.
        gt: Ground truth of the same shape.
        channel: ``"rgb"`` or ``"y"`` (BT.601 limited-range luma, see :func:`rgb_to_y`).
        crop_border: Pixels removed from each border before scoring.

    Returns:
        ``(n,)`` float64 tensor on the inputs' device; 1.0 where a frame equals its ground truth.

    Raises:
        SeeClearError: As :func:`psnr`, and for frames smaller than the 11x11 window after cropping.
    """
    pred_u8, gt_u8 = _prepare(pred, gt, channel=channel, crop_border=crop_border, min_size=SSIM_WINDOW)
    n, h, w, _ = pred_u8.shape
    taps = gaussian_window()
    out = torch.empty(n, dtype=torch.float64, device=pred_u8.device)
    for start, stop in _chunks(pred_u8):
        p, g = pred_u8[start:stop], gt_u8[start:stop]
        if channel == "rgb":
            planes_p, planes_g = p.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)  # (f c h w), uint8 views
        else:
            planes_p, planes_g = rgb_to_y(p)[:, None], rgb_to_y(g)[:, None]  # (f 1 h w)
        f, c = planes_p.shape[:2]
        total = _ssim_map_sum(planes_p.reshape(f * c, h, w), planes_g.reshape(f * c, h, w), taps)
        out[start:stop] = (total / ((h - SSIM_WINDOW + 1) * (w - SSIM_WINDOW + 1))).reshape(f, c).mean(dim=1)
    return out


def _ssim_map_sum(x_planes: torch.Tensor, y_planes: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Sum of the SSIM map of each plane pair, filtering row tile by row tile.

    Args:
        x_planes: ``(m h w)`` planes on the 0-255 scale (uint8 or float64).
        y_planes: Same shape.
        taps: 1-D Gaussian taps (odd length ``k``).

    Returns:
        ``(m,)`` float64 sums over the ``(h - k + 1) x (w - k + 1)`` valid SSIM map.
    """
    m, h, w = x_planes.shape
    k = len(taps)
    out_h = h - k + 1
    tile_rows = max(8, _TILE_ELEMS[_device_kind(x_planes)] // (4 * m * w))
    total = torch.zeros(m, dtype=torch.float64, device=x_planes.device)
    for row in range(0, out_h, tile_rows):
        rows = min(tile_rows, out_h - row)
        # The four local statistics share one buffer so that the filter runs once over all of them, in place.
        # sigma_x^2 + sigma_y^2 only ever appears summed, so x^2 + y^2 is filtered once instead of x^2 and y^2 apart.
        buf = torch.empty((4, m, rows + k - 1, w), dtype=torch.float64, device=x_planes.device)
        x, y, sum_sq, cross = buf.unbind(0)
        x.copy_(x_planes[:, row : row + rows + k - 1])
        y.copy_(y_planes[:, row : row + rows + k - 1])
        torch.mul(x, x, out=sum_sq).addcmul_(y, y)
        torch.mul(x, y, out=cross)
        mu_x, mu_y, sum_sq, cross = _filter_valid(buf, taps).unbind(0)  # each (m rows w-k+1)
        mu_xy = mu_x * mu_y
        mu_sq = (mu_x * mu_x).addcmul_(mu_y, mu_y)
        # numerator (2 mu_xy + C1)(2 sigma_xy + C2) over denominator (mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)
        cross.sub_(mu_xy).mul_(2.0).add_(SSIM_C2).mul_(mu_xy.mul_(2.0).add_(SSIM_C1))
        sum_sq.sub_(mu_sq).add_(SSIM_C2).mul_(mu_sq.add_(SSIM_C1))
        total += cross.div_(sum_sq).sum(dim=(1, 2))
    return total


def _filter_valid(maps: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Separable 'valid' correlation of the last two axes with ``outer(taps, taps)``.

    Shifted multiply-adds (one fused ``add_`` per tap and axis) move less memory than ``conv2d`` in float64, which
    has no vectorised CPU kernel, and run unchanged on GPUs.

    Args:
        maps: ``(... h w)`` float64.
        taps: 1-D taps of length ``k``.

    Returns:
        ``(... h-k+1 w-k+1)`` float64.
    """
    k = len(taps)
    h, w = maps.shape[-2] - k + 1, maps.shape[-1] - k + 1
    # Down the rows first: with short row tiles this pass shrinks the data most, leaving less for the second pass.
    down = maps[..., 0:h, :] * taps[0]
    for i in range(1, k):
        down.add_(maps[..., i : i + h, :], alpha=taps[i])
    across = down[..., :, 0:w] * taps[0]
    for i in range(1, k):
        across.add_(down[..., :, i : i + w], alpha=taps[i])
    return across


def _device_kind(t: torch.Tensor) -> str:
    return "cuda" if t.device.type == "cuda" else "cpu"


def _chunks(frames: torch.Tensor) -> list[tuple[int, int]]:
    """Frame ranges whose float64 working set (both images) stays within the device's chunk budget."""
    n = frames.shape[0]
    per_frame = 2 * frames[0].numel() if n else 1
    size = max(1, _CHUNK_ELEMS[_device_kind(frames)] // per_frame)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _prepare(
    pred: FramesLike, gt: FramesLike, *, channel: str, crop_border: int, min_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a prediction/ground-truth pair and return cropped ``(n h w 3)`` uint8 tensors on one device."""
    if channel not in ("rgb", "y"):
        raise SeeClearError(f"channel must be 'rgb' or 'y' (BT.601 limited-range luma), got {channel!r}")
    pred_t = _as_tensor(pred, "pred")
    gt_t = _as_tensor(gt, "gt").to(pred_t.device)
    if tuple(pred_t.shape) != tuple(gt_t.shape):
        raise SeeClearError(
            f"pred and gt must have the same (n, h, w, 3) shape, got pred {tuple(pred_t.shape)} and gt "
            f"{tuple(gt_t.shape)}; resize or crop the prediction to the ground truth's size"
        )
    unit_scale = pred_t.dtype.is_floating_point and gt_t.dtype == torch.uint8 and pred_t.numel()
    if unit_scale and float(pred_t.max()) <= 1.0 and int(gt_t.max()) > 1:
        raise SeeClearError(
            f"pred is {str(pred_t.dtype).removeprefix('torch.')} with every value in [0, 1] while gt reaches "
            f"{int(gt_t.max())}; frames must be on the 0-255 scale, multiply pred by 255"
        )
    pred_u8, gt_u8 = _to_uint8(pred_t, "pred"), _to_uint8(gt_t, "gt")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise SeeClearError(f"crop_border must be an int >= 0, got {crop_border!r}")
    _, h, w, _ = pred_u8.shape
    if min(h, w) - 2 * crop_border < min_size:
        raise SeeClearError(
            f"frames of {h}x{w} with crop_border={crop_border} leave {max(h - 2 * crop_border, 0)}x"
            f"{max(w - 2 * crop_border, 0)} pixels, need at least {min_size}x{min_size}; use a smaller crop_border"
        )
    if crop_border:
        pred_u8 = pred_u8[:, crop_border:-crop_border, crop_border:-crop_border]
        gt_u8 = gt_u8[:, crop_border:-crop_border, crop_border:-crop_border]
    return pred_u8, gt_u8


def _as_tensor(frames: FramesLike, role: str) -> torch.Tensor:
    if isinstance(frames, np.ndarray):
        if frames.dtype.kind not in "uif":  # bool, complex, object, strings: no torch equivalent worth trying
            raise SeeClearError(f"{role} must be uint8 or float frames, got numpy dtype {frames.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
    elif isinstance(frames, torch.Tensor):
        tensor = frames.detach()
    else:
        raise SeeClearError(f"{role} must be a numpy array or torch tensor of frames, got {type(frames).__name__}")
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise SeeClearError(
            f"{role} must be RGB frames shaped (n, h, w, 3) or (h, w, 3), got shape {tuple(tensor.shape)}; "
            "convert grayscale to 3 channels and put channels last"
        )
    return tensor


def _to_uint8(frames: torch.Tensor, role: str) -> torch.Tensor:
    """uint8 frames pass through; float frames must be finite and in [0, 255] and are rounded half to even."""
    if frames.dtype == torch.uint8:
        return frames
    if frames.dtype not in _FLOAT_DTYPES:
        raise SeeClearError(
            f"{role} must be uint8 (or float on the 0-255 scale), got {str(frames.dtype).removeprefix('torch.')}; "
            "convert with .astype(np.uint8) after clipping to [0, 255]"
        )
    flat = frames.reshape(frames.shape[0], -1)
    bad = ~torch.isfinite(flat).all(dim=1)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise SeeClearError(f"{role} frame {index} contains NaN or inf; fix the model output before scoring")
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    bad = (low < 0) | (high > DATA_RANGE)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise SeeClearError(
            f"{role} frame {index} has values in [{float(low[index]):.4g}, {float(high[index]):.4g}], expected [0, 255]; "
            "clamp to [0, 255] first (as BasicSR's tensor2img does)"
        )
    return torch.round(frames.to(torch.float64)).to(torch.uint8)
