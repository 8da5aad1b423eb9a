"""Full-reference fidelity metrics (PSNR, SSIM) under BasicSR/MATLAB conventions, batched in torch float64.

Owns the numerics of PSNR and SSIM and the BT.601 limited-range luma they use on the ``"y"`` channel. The same code
runs on CPU and GPU: inputs stay on the device they arrive on (numpy arrays are scored on the CPU). Frames are processed
in row tiles, so memory stays bounded (and, on CPUs, in cache) on 720p and larger clips.

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

# float64 elements of one tile: SSIM's four statistic maps over the tile's rows, or PSNR's frame differences. The CPU
# tile is sized to stay in the caches (a 720p RGB frame goes 16 rows at a time: larger tiles measured slower on a
# 2-core EPYC, smaller ones pay more per-operation overhead); on GPUs one tile covers a whole 720p frame or more.
_TILE_ELEMS: Final = {"cpu": 1 << 18, "cuda": 1 << 24}
# SSIM's separable filter runs as banded matrix products on blocks of this many output rows (then columns): a block
# of 8 outputs reads 8 + 10 inputs, so a pass costs 18 multiply-adds per output instead of 11, but as a float64 GEMM
# it beats 11 memory-bound shifted multiply-adds over the tile (8 measured faster than 4, 6, 12 and 16).
_BLOCK: Final = 8
# Tiles per trip through SSIM's ring buffer of statistic rows: the last 10 rows are copied back to its top once a trip.
_RING_TILES: Final = 4
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
    weights = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=frames.device) / DATA_RANGE
    return torch.matmul(frames.to(torch.float64), weights).add_(Y_OFFSET)


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
    _, h, w, _ = pred_u8.shape
    pixels = h * w * (3 if channel == "rgb" else 1)
    mse = _squared_error_sums(pred_u8, gt_u8, luma=channel == "y") / pixels
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)  # mse == 0 -> +inf


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
    channels = 3 if channel == "rgb" else 1
    frames, rows = _ssim_tiling(h, w, channels, pred_u8.device)
    out = torch.empty(n, dtype=torch.float64, device=pred_u8.device)
    for start in range(0, n, frames):
        p, g = pred_u8[start : start + frames], gt_u8[start : start + frames]
        out[start : start + frames] = _ssim_map_sums(p, g, rows, luma=channel == "y")
    # Every channel's map has the same size, so the mean over all of them is the mean of the per-channel means.
    return out.div_((h - SSIM_WINDOW + 1) * (w - SSIM_WINDOW + 1) * channels)


def _ssim_tiling(h: int, w: int, channels: int, device: torch.device) -> tuple[int, int]:
    """Frames per chunk and output rows per tile for SSIM on ``(h w channels)`` frames.

    A tile holds the four statistic maps of ``rows`` output rows; frames small enough to fit a tile whole are
    grouped, so that small frames cost few operations.
    """
    halo = SSIM_WINDOW - 1
    per_row = 4 * channels * _padded_width(w - halo)
    budget = _TILE_ELEMS[_device_kind(device)]
    whole = -(-(h - halo) // _BLOCK) * _BLOCK
    if per_row * whole <= budget:
        return max(1, budget // (per_row * whole)), whole
    return 1, max(_BLOCK, budget // per_row // _BLOCK * _BLOCK)


def _padded_width(out_w: int) -> int:
    """Input columns the horizontal pass reads: whole ``_BLOCK``-column output blocks plus the window's halo."""
    return -(-out_w // _BLOCK) * _BLOCK + SSIM_WINDOW - 1


def _ssim_map_sums(pred_u8: torch.Tensor, gt_u8: torch.Tensor, rows: int, *, luma: bool) -> torch.Tensor:
    """Sum over channels and pixels of the 'valid' SSIM map of each frame pair, ``rows`` output rows at a time.

    The separable window is applied as two banded matrix products: down the rows on ``_BLOCK``-row blocks, then across
    the columns on ``_BLOCK``-column blocks, the latter reading the former's output as its transposed operand, so
    that no pass moves data and both run as float64 GEMMs. Four statistic maps are filtered: x, y, x^2 + y^2 and xy
    (sigma_x^2 and sigma_y^2 only ever appear summed), the last two with C1 + C2 folded in. Their rows go through a
    ring buffer, so that each input row is converted once. The result equals the float64 definition up to rounding
    (about 1e-15 on real frames).

    Args:
        pred_u8: ``(f h w 3)`` uint8 frames.
        gt_u8: Same shape.
        rows: Output rows per tile, a multiple of ``_BLOCK``.
        luma: Score BT.601 limited-range luma (one channel) instead of R, G and B.

    Returns:
        ``(f,)`` float64 sums over the ``c x (h - 10) x (w - 10)`` valid SSIM maps (``c`` = 1 or 3 channels).
    """
    f, h, w, _ = pred_u8.shape
    c = 1 if luma else 3
    device, f64 = pred_u8.device, torch.float64
    k, block = SSIM_WINDOW, _BLOCK
    halo = k - 1
    out_h, out_w = h - halo, w - halo
    w_pad = _padded_width(out_w)
    col_blocks = (w_pad - halo) // block
    row_len = f * c * w_pad
    planes = 4 * rows * f * c  # values per column of a tile after the vertical pass
    ring = min(_RING_TILES, -(-out_h // rows))  # tiles per trip through the ring buffer
    # Zeros, not empty: the padding columns and the rows past the last frame row are read (and their outputs dropped),
    # so they must hold finite values: the band's zeros times a NaN there would make a NaN in a kept output.
    stats = torch.zeros(4, halo + ring * rows, f, c, w_pad, dtype=f64, device=device)
    down = torch.empty(4, rows, f, c, w_pad, dtype=f64, device=device)
    across = torch.empty(col_blocks, block, planes, dtype=f64, device=device)
    # mu_x^2 + mu_y^2 + C1 and 2 mu_x mu_y + C1 of a tile, in `down`'s memory once the horizontal pass has read it.
    mu_terms = down.view(-1)[: 2 * rows * f * c * col_blocks * block].view(col_blocks * block, 2, rows, f, c)
    band = torch.zeros(block, block + halo, dtype=f64, device=device)
    band.as_strided((block, k), (block + halo + 1, 1)).copy_(torch.tensor(gaussian_window(), dtype=f64))
    c1 = torch.tensor(SSIM_C1, dtype=f64, device=device)
    # Added to x^2 and xy before filtering: they ride through the filter (its taps sum to 1) into sum_sq and cross.
    c12 = torch.tensor([SSIM_C1 + SSIM_C2, (SSIM_C1 + SSIM_C2) / 2], dtype=f64, device=device).view(2, 1, 1, 1, 1)

    # Views made once. Down the rows: output row block j of a tile reads its rows [j*block, j*block + block + halo).
    flat_stats = stats.view(4, -1, row_len)
    down_in = [
        [
            flat_stats[m, pos * rows : pos * rows + rows + halo].as_strided(
                (rows // block, block + halo, row_len), (block * row_len, row_len, 1)
            )
            for m in range(4)
        ]
        for pos in range(ring)
    ]
    fresh = [stats[:, halo + pos * rows : halo + (pos + 1) * rows] for pos in range(ring)]
    down_out = down.view(4, rows // block, block, row_len).unbind(0)
    # The xy map is filtered with twice the taps: its pass then yields 2 E[xy] + C1 + C2 (see convert).
    band_down = [band.expand(rows // block, block, block + halo)] * 3 + [(2 * band).expand(rows // block, block, block + halo)]
    # Across the columns: column block j reads columns [j*block, j*block + block + halo) of every row of `down`, as
    # a column-major operand, and writes `across` as (column, map, row, frame, channel).
    across_in = down.view(planes, w_pad).as_strided((col_blocks, block + halo, planes), (block, 1, w_pad))
    band_across = band.expand(col_blocks, block, block + halo)
    filtered = across.view(col_blocks * block, 4, rows, f, c)
    mu_x, mu_y, sum_sq, cross = filtered.unbind(1)
    second = filtered[:, 2:]  # (sum_sq, cross), matched by mu_terms = (mu_sq, mu_xy)
    mu_sq, mu_xy = mu_terms.unbind(1)
    kept = cross[:out_w]
    if luma:
        rgb = torch.zeros(max(rows, halo), f, w_pad, 3, dtype=f64, device=device)
        weights = torch.tensor(Y_WEIGHTS, dtype=f64, device=device) / DATA_RANGE

    def convert(slab: torch.Tensor, src: int) -> None:
        """Statistic maps of input rows [src, src + count) into ``slab``, (4 count f c w_pad): x, y, sq, xy."""
        x, y, sq, _ = slab.unbind(0)
        count = x.shape[0]
        for plane, frames in ((x, pred_u8), (y, gt_u8)):
            source = frames[:, src : src + count].transpose(0, 1)  # (count f w 3)
            if luma:  # rows of RGB to float64, then one matrix-vector product per row tile (padding stays 0)
                block_rgb = rgb[:count]
                block_rgb[:, :, :w].copy_(source)
                torch.matmul(block_rgb, weights, out=plane.view(count, f, w_pad)).add_(Y_OFFSET)
            else:
                plane[..., :w].copy_(source.permute(0, 1, 3, 2))
        torch.addcmul(c12, x, slab[:2], out=slab[2:])  # x^2 + C1 + C2, xy + (C1 + C2) / 2
        sq.addcmul_(y, y)

    total = torch.zeros(f, dtype=f64, device=device)
    convert(stats[:, :halo], src=0)
    for tile, top in enumerate(range(0, out_h, rows)):
        pos = tile % ring
        valid = min(rows, out_h - top)
        convert(fresh[pos][:, :valid], src=top + halo)
        for m in range(4):
            torch.bmm(band_down[m], down_in[pos][m], out=down_out[m])
        torch.bmm(band_across, across_in, out=across)
        # SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)), with
        # cross = 2 E[xy] + C1 + C2 and sum_sq = E[x^2 + y^2] + C1 + C2 from the filter.
        torch.addcmul(c1, mu_x, mu_y, value=2.0, out=mu_xy)
        torch.addcmul(c1, mu_x, mu_x, out=mu_sq).addcmul_(mu_y, mu_y)
        second.sub_(mu_terms).mul_(mu_terms)  # the denominator and the numerator
        cross.div_(sum_sq)
        total += (kept if valid == rows else kept[:, :valid]).sum(dim=(0, 1, 3))
        if pos == ring - 1 and top + rows < out_h:
            stats[:, :halo].copy_(stats[:, ring * rows :])
    return total


def _squared_error_sums(pred_u8: torch.Tensor, gt_u8: torch.Tensor, *, luma: bool) -> torch.Tensor:
    """Per-frame sum of squared differences of ``(n h w 3)`` uint8 frames, over RGB or over BT.601 luma.

    Differences are taken on the integers and squared and summed in float64, tile by tile. Over RGB every partial sum
    is an integer below 2^53, so the sum is exact; luma differences are the weighted channel differences (the offset
    cancels).
    """
    n, h, w, _ = pred_u8.shape
    device, f64 = pred_u8.device, torch.float64
    budget = _TILE_ELEMS[_device_kind(device)]
    frames, rows = (max(1, budget // (h * w * 3)), h) if h * w * 3 <= budget else (1, max(1, budget // (w * 3)))
    weights = torch.tensor(Y_WEIGHTS, dtype=f64, device=device) / DATA_RANGE
    sums = torch.zeros(n, dtype=f64, device=device)
    for start in range(0, n, frames):
        for top in range(0, h, rows):
            p, g = pred_u8[start : start + frames, top : top + rows], gt_u8[start : start + frames, top : top + rows]
            diff = p.to(f64).sub_(g.to(f64))
            if luma:
                diff = diff @ weights
            diff = diff.reshape(diff.shape[0], 1, -1)
            sums[start : start + frames] += torch.bmm(diff, diff.transpose(1, 2)).view(-1)
    return sums


def _device_kind(device: torch.device) -> str:
    return "cuda" if device.type == "cuda" else "cpu"


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
