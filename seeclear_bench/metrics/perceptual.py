"""Learned perceptual metrics on uint8 RGB frames: LPIPS (AlexNet, VGG; v0.1), DISTS, tLP and no-reference IQA.

Owns the metric definitions around the networks: input validation (shared with PSNR/SSIM), the pixel mapping each
backend expects, batching in memory-bounded chunks, and tLP's frame pairing, cropping and scale. The networks and
their weights come from :mod:`seeclear_bench.metrics.iqa` (the only module importing ``lpips``/``pyiqa``), which
never downloads and raises a :class:`~seeclear_bench.errors.SeeClearError` naming the missing file.

Input convention, as for PSNR/SSIM: ``(n h w 3)`` RGB uint8 (or float on the 0-255 scale, rounded to the uint8 grid
first), numpy or torch. Pixel mappings:

- LPIPS and TecoGAN's tLP: ``x / 127.5 - 1`` in [-1, 1], evaluated in float64 and rounded to float32 (what
  ``lpips.im2tensor`` gives TecoGAN's ``metrics.py``).
- StableVSR's tLP: ``2 * (x / 255) - 1`` in float32 (torchmetrics LPIPS with ``normalize=True`` on ``ToTensor``).
- DISTS and the no-reference metrics: ``x / 255`` in [0, 1], float32 (pyiqa's input range).

Computation runs in float32 under ``torch.inference_mode`` on ``device`` (default: the inputs' CUDA device, else
CUDA when available, else CPU); results are float64 on the inputs' device (CPU for numpy input).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

import torch

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import iqa
from seeclear_bench.metrics.fidelity import FramesLike, _prepare

if TYPE_CHECKING:
    from seeclear_bench.metrics.registry import ClipValues

Trunk = Literal["alex", "vgg"]
NoReference = Literal["niqe", "musiq", "clipiqa"]
TLPVariant = Literal["tecogan", "stablevsr"]

# Smallest frame side the trunks accept (AlexNet's stride-4 conv and pools, DISTS's four stride-2 poolings); NIQE
# scores whole 96x96 blocks.
MIN_SIZE: Final = 32
NO_REFERENCE_MIN_SIZE: Final = {"niqe": 96, "musiq": MIN_SIZE, "clipiqa": MIN_SIZE}
# Pixels per chunk (both images of a pair together): bounds trunk activations to a few GB on CPU.
_CHUNK_PIXELS: Final = {"cpu": 1 << 21, "cuda": 1 << 24}
# TecoGAN metrics.py: frames skipped at each end of a clip (cutfr) and the tLP scale ("tLP100").
TECO_CUT_FRAMES: Final = 2
TLP_SCALE: Final[dict[str, float]] = {"tecogan": 100.0, "stablevsr": 1e3}


def resolve_device(device: torch.device | str | None, frames: FramesLike) -> torch.device:
    """``device`` if given; else the frames' CUDA device; else CUDA when available; else the CPU."""
    if device is not None:
        return torch.device(device)
    if isinstance(frames, torch.Tensor) and frames.device.type == "cuda":
        return frames.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lpips(
    pred: FramesLike,
    gt: FramesLike,
    *,
    net: Trunk = "alex",
    crop_border: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """LPIPS v0.1 distance per frame (Zhang et al. 2018; ``lpips`` package, inputs ``x / 127.5 - 1``).

    Args:
        pred: ``(n h w 3)`` (or one ``(h w 3)`` frame) RGB prediction, uint8 or float on the 0-255 scale.
        gt: Ground truth of the same shape.
        net: ``"alex"`` (pyiqa ``lpips``, TecoGAN, torchmetrics) or ``"vgg"`` (BasicSR ``calculate_lpips.py``).
        crop_border: Pixels removed from each border first.
        device: Where the network runs (see :func:`resolve_device`).

    Returns:
        ``(n,)`` float64, lower is better; 0 for identical frames.

    Raises:
        SeeClearError: Input problems (as :func:`~seeclear_bench.metrics.fidelity.psnr`, naming the frame), frames
            smaller than 32 px after cropping, or missing weights (naming metric, file and directory).
    """
    if net not in ("alex", "vgg"):
        raise SeeClearError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    pred_u8, gt_u8 = _prepare(pred, gt, channel="rgb", crop_border=crop_border, min_size=MIN_SIZE)
    run_on = resolve_device(device, pred)
    model = iqa.load_network("lpips-alex" if net == "alex" else "lpips-vgg", run_on)
    out = torch.empty(pred_u8.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for start, stop in _chunks(pred_u8, run_on, images_per_frame=2):
            x0 = _to_signed_unit(pred_u8[start:stop], run_on, "tecogan")
            x1 = _to_signed_unit(gt_u8[start:stop], run_on, "tecogan")
            out[start:stop] = iqa.lpips_distance(model, x0, x1).double().cpu()
    return out.to(pred_u8.device)


def dists(
    pred: FramesLike, gt: FramesLike, *, crop_border: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """DISTS per frame (Ding et al. 2020) through pyiqa's DISTS architecture, inputs ``x / 255``.

    Args:
        pred: ``(n h w 3)`` (or one ``(h w 3)`` frame) RGB prediction, uint8 or float on the 0-255 scale.
        gt: Ground truth of the same shape.
        crop_border: Pixels removed from each border first.
        device: Where the network runs (see :func:`resolve_device`).

    Returns:
        ``(n,)`` float64, lower is better.

    Raises:
        SeeClearError: As :func:`lpips`.
    """
    pred_u8, gt_u8 = _prepare(pred, gt, channel="rgb", crop_border=crop_border, min_size=MIN_SIZE)
    run_on = resolve_device(device, pred)
    model = iqa.load_network("dists", run_on)
    out = torch.empty(pred_u8.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for start, stop in _chunks(pred_u8, run_on, images_per_frame=2):
            x0 = _to_unit(pred_u8[start:stop], run_on)
            x1 = _to_unit(gt_u8[start:stop], run_on)
            out[start:stop] = iqa.dists_distance(model, x0, x1).double().cpu()
    return out.to(pred_u8.device)


def no_reference(
    pred: FramesLike, *, metric: NoReference, crop_border: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """A pyiqa no-reference quality score per frame: NIQE (lower is better), MUSIQ-KonIQ or CLIP-IQA (higher).

    Args:
        pred: ``(n h w 3)`` (or one ``(h w 3)`` frame) RGB frames, uint8 or float on the 0-255 scale.
        metric: ``"niqe"``, ``"musiq"`` or ``"clipiqa"`` (pyiqa's presets of those names).
        crop_border: Pixels removed from each border first.
        device: Where the network runs (see :func:`resolve_device`).

    Returns:
        ``(n,)`` float64.

    Raises:
        SeeClearError: As :func:`lpips` (NIQE needs frames of at least 96x96).
    """
    if metric not in ("niqe", "musiq", "clipiqa"):
        raise SeeClearError(f"no-reference metric must be 'niqe', 'musiq' or 'clipiqa', got {metric!r}")
    frames_u8, _ = _prepare(pred, pred, channel="rgb", crop_border=crop_border, min_size=NO_REFERENCE_MIN_SIZE[metric])
    run_on = resolve_device(device, pred)
    model = iqa.load_network(metric, run_on)
    out = torch.empty(frames_u8.shape[0], dtype=torch.float64)
    with torch.inference_mode():
        for start, stop in _chunks(frames_u8, run_on, images_per_frame=1):
            out[start:stop] = iqa.no_reference_score(model, _to_unit(frames_u8[start:stop], run_on)).double().cpu()
    return out.to(frames_u8.device)


def tlp(
    pred: FramesLike, gt: FramesLike, *, variant: TLPVariant = "tecogan", device: torch.device | str | None = None
) -> ClipValues:
    """Temporal LPIPS of a clip: per step ``|LPIPS(g_{t-1}, g_t) - LPIPS(b_{t-1}, b_t)| * scale`` (AlexNet, v0.1).

    ``"tecogan"`` (TecoGAN ``metrics.py``, "tLP100"): frames are centre-cropped to a multiple of 32 with at least
    8 px removed on each side (:func:`teco_crop`), the first and last 2 frames are skipped (steps ``t = 3 .. T-3``),
    scale 100, inputs ``x / 127.5 - 1``. ``"stablevsr"`` (StableVSR ``eval.py``): every step ``t = 1 .. T-1`` at full
    size, scale 1000, inputs ``2 * x / 255 - 1``. The clip value is the mean over steps (TecoGAN's per-folder mean).

    Each frame goes through the trunk once; the distances of consecutive frames come from the shared features.

    Args:
        pred: ``(t h w 3)`` RGB prediction ``b``, uint8 or float on the 0-255 scale.
        gt: ``(t h w 3)`` ground truth ``g``.
        variant: ``"tecogan"`` or ``"stablevsr"``.
        device: Where the network runs (see :func:`resolve_device`).

    Returns:
        :class:`~seeclear_bench.metrics.registry.ClipValues`: ``(k,)`` float64 step values (lower is better) on the
        inputs' device, each labelled with the index ``t`` of the later frame of its pair.

    Raises:
        SeeClearError: Input problems, or too few frames for one step (TecoGAN needs at least 6).
    """
    from seeclear_bench.metrics.registry import ClipValues

    if variant not in TLP_SCALE:
        raise SeeClearError(f"tLP variant must be one of {sorted(TLP_SCALE)}, got {variant!r}")
    pred_u8, gt_u8 = _prepare(pred, gt, channel="rgb", crop_border=0, min_size=MIN_SIZE)
    n_frames, h, w, _ = pred_u8.shape
    if variant == "tecogan":
        first, last = TECO_CUT_FRAMES, n_frames - TECO_CUT_FRAMES  # frames [first, last) are read
        top, left, crop_h, crop_w = teco_crop(h, w)
        if crop_h < MIN_SIZE or crop_w < MIN_SIZE:
            raise SeeClearError(
                f"TecoGAN's tLP crops {h}x{w} frames to {crop_h}x{crop_w}; it needs frames of at least 48x48"
            )
        pred_u8 = pred_u8[:, top : top + crop_h, left : left + crop_w]
        gt_u8 = gt_u8[:, top : top + crop_h, left : left + crop_w]
    else:
        first, last = 0, n_frames
    if last - first < 2:
        need = 2 * TECO_CUT_FRAMES + 2 if variant == "tecogan" else 2
        raise SeeClearError(f"tLP ({variant}) needs a clip of at least {need} frames, got {n_frames}")
    run_on = resolve_device(device, pred)
    model = iqa.load_network("lpips-alex", run_on)
    with torch.inference_mode():
        gt_steps = _consecutive_lpips(model, gt_u8[first:last], run_on, variant)
        pred_steps = _consecutive_lpips(model, pred_u8[first:last], run_on, variant)
    values = (gt_steps - pred_steps).abs() * TLP_SCALE[variant]
    return ClipValues(values=values.to(pred_u8.device), frames=tuple(range(first + 1, last)))


def teco_crop(h: int, w: int) -> tuple[int, int, int, int]:
    """TecoGAN's ``crop_8x8`` window ``(top, left, height, width)``; see :func:`~seeclear_bench.metrics.protocols.teco_crop_box`."""
    from seeclear_bench.metrics.protocols import teco_crop_box

    return teco_crop_box(h, w)


def _consecutive_lpips(
    model: torch.nn.Module, frames_u8: torch.Tensor, device: torch.device, variant: str
) -> torch.Tensor:
    """LPIPS between frames ``i-1`` and ``i`` for ``i = 1 .. s-1`` of ``(s h w 3)`` frames, ``(s-1,)`` float64 CPU."""
    out = torch.empty(frames_u8.shape[0] - 1, dtype=torch.float64)
    previous: list[torch.Tensor] | None = None
    for start, stop in _chunks(frames_u8, device, images_per_frame=1):
        feats = iqa.lpips_features(model, _to_signed_unit(frames_u8[start:stop], device, variant))
        if previous is not None:  # the pair straddling the chunk boundary
            out[start - 1] = float(iqa.lpips_from_features(model, previous, [f[:1] for f in feats])[0])
        if stop - start > 1:
            inner = iqa.lpips_from_features(model, [f[:-1] for f in feats], [f[1:] for f in feats])
            out[start : stop - 1] = inner.double().cpu()
        previous = [f[-1:] for f in feats]
    return out


def _to_signed_unit(frames_u8: torch.Tensor, device: torch.device, variant: str) -> torch.Tensor:
    """``(f h w 3)`` uint8 -> ``(f 3 h w)`` float32 in [-1, 1] on ``device`` (mapping per module docstring)."""
    x = frames_u8.to(device).permute(0, 3, 1, 2)
    if variant == "stablevsr":
        return x.to(torch.float32).div_(255.0).mul_(2.0).sub_(1.0)
    return x.to(torch.float64).div_(127.5).sub_(1.0).to(torch.float32)


def _to_unit(frames_u8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(f h w 3)`` uint8 -> ``(f 3 h w)`` float32 ``x / 255`` on ``device``."""
    return frames_u8.to(device).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def _chunks(frames: torch.Tensor, device: torch.device, *, images_per_frame: int) -> list[tuple[int, int]]:
    n, h, w, _ = frames.shape
    budget = _CHUNK_PIXELS["cuda" if device.type == "cuda" else "cpu"]
    size = max(1, budget // (images_per_frame * h * w))
    return [(start, min(start + size, n)) for start in range(0, n, size)]
