"""Optical flow, backward warping and occlusion masks for the temporal metrics.

Owns the two flow estimators the temporal metrics use and the geometry around them:

- OpenCV Farneback on grayscale uint8 frames with TecoGAN's parameters (``metrics.py`` of thunil/TecoGAN):
  ``pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0``.
- torchvision's RAFT-large, always built with ``weights=None`` and loaded from a local state-dict file (``.pth`` as
  torchvision publishes them, or ``.safetensors``); nothing is ever downloaded.
- Backward warping by bilinear ``grid_sample`` in pixel coordinates with border clamping, which is what the
  FlowNet2 ``Resample2d`` layer used by fast_blind_video_consistency and EvalCrafter computes.
- The forward-backward occlusion test of Lai et al. (ECCV'18, fast_blind_video_consistency ``utils.detect_occlusion``).

Flows are ``(n 2 h w)`` float32 tensors, channel 0 the horizontal (x) and channel 1 the vertical (y) displacement in
pixels, such that ``src(y, x) ~ dst(y + flow[1], x + flow[0])`` for a flow from ``src`` to ``dst``.

This module imports numpy at import time (the metric registry reads its constants); torch, OpenCV and torchvision are
imported inside the functions that need them. It must not import pyiqa, ray or any model.
"""
from __future__ import annotations

import functools
import io as _bytes_io
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict, cast

import numpy as np

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    import torch


class _FarnebackParams(TypedDict):
    pyr_scale: float
    levels: int
    winsize: int
    iterations: int
    poly_n: int
    poly_sigma: float
    flags: int


# cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0) in TecoGAN metrics.py.
FARNEBACK_PARAMS: Final[_FarnebackParams] = {
    "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0,
}
# Weight names passed to seeclear_bench.metrics.weights.locate, and torchvision's published file for each
# (the 8 hex digits are the start of the file's sha256).
RAFT_WEIGHT_FILES: Final = {
    # torchvision's DEFAULT (raft_large(pretrained=True) -> C_T_SKHT_V2); StableVSR eval.py uses it.
    "raft-large-c-t-skht-v2": "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    # Ported by torchvision from princeton-vl/RAFT raft-things.pth (FlyingChairs + FlyingThings3D); EvalCrafter's RAFT.
    "raft-large-c-t-v1": "raft_large_C_T_V1-22a6c225.pth",
}
RAFT_MULTIPLE: Final = 8
# torchvision's correlation pyramid needs feature maps of at least 16x16, i.e. 128x128 input pixels.
RAFT_MIN_SIZE: Final = 128
# RAFT input pixels (image pairs x h x w) per forward pass; bounds the correlation volume's memory.
_RAFT_PIXELS_PER_BATCH: Final = {"cpu": 1 << 20, "cuda": 1 << 22}


@dataclass(frozen=True, kw_only=True)
class OcclusionThresholds:
    """Constants of the forward-backward occlusion test (fast_blind_video_consistency ``detect_occlusion``).

    A pixel is occluded when ``|F + B_w|^2 > consistency_rel * (|F|^2 + |B_w|^2) + consistency_abs`` or when it lies
    on a motion boundary, ``|grad F|^2 > boundary_rel * |F|^2 + boundary_abs`` (see :func:`occlusion_valid_mask`).
    """

    consistency_rel: float = 0.01
    consistency_abs: float = 0.5
    boundary_rel: float = 0.01
    boundary_abs: float = 0.002

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.consistency_rel, self.consistency_abs, self.boundary_rel, self.boundary_abs)


LAI_OCCLUSION: Final = OcclusionThresholds()


# -- Farneback -------------------------------------------------------------------------------------------------------
def rgb_to_gray(frames: np.ndarray) -> np.ndarray:
    """OpenCV ``COLOR_RGB2GRAY`` of uint8 frames (``0.299 R + 0.587 G + 0.114 B``, OpenCV's fixed-point rounding).

    Args:
        frames: ``(n h w 3)`` or ``(h w 3)`` uint8 RGB.

    Returns:
        ``(n h w)`` (or ``(h w)``) uint8 luma, as TecoGAN's ``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)``.
    """
    import cv2

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.shape[-1:] != (3,) or frames.ndim not in (3, 4):
        raise SeeClearError(f"rgb_to_gray expects uint8 frames shaped (n, h, w, 3), got {frames.dtype} {frames.shape}")
    if frames.ndim == 3:
        return cv2.cvtColor(np.ascontiguousarray(frames), cv2.COLOR_RGB2GRAY)
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def farneback_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Dense Farneback flow from ``src`` to ``dst`` with TecoGAN's parameters (:data:`FARNEBACK_PARAMS`).

    Args:
        src: ``(n h w)`` (or ``(h w)``) uint8 grayscale frames.
        dst: Frames of the same shape.

    Returns:
        ``(n h w 2)`` (or ``(h w 2)``) float32 flow, ``[..., 0]`` = dx, ``[..., 1]`` = dy, with
        ``src(y, x) ~ dst(y + dy, x + dx)`` (OpenCV's convention, kept channels-last as TecoGAN uses it).
    """
    import cv2

    src, dst = np.asarray(src), np.asarray(dst)
    if src.shape != dst.shape or src.dtype != np.uint8 or dst.dtype != np.uint8 or src.ndim not in (2, 3):
        raise SeeClearError(
            f"farneback_flow expects two uint8 grayscale stacks of one shape (n, h, w), got {src.dtype} {src.shape} "
            f"and {dst.dtype} {dst.shape}"
        )
    p = FARNEBACK_PARAMS

    def one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            # None: OpenCV allocates the output flow (its stubs type this optional output array as required).
            np.ascontiguousarray(a), np.ascontiguousarray(b), cast(np.ndarray, None), p["pyr_scale"], p["levels"],
            p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], p["flags"],
        )

    if src.ndim == 2:
        return one(src, dst)
    if len(src) == 0:
        return np.zeros((0, *src.shape[1:], 2), dtype=np.float32)
    # OpenCV's Farneback runs on one core and releases the GIL: the pairs run on a thread per core.
    workers = min(len(src), os.cpu_count() or 1)
    if workers == 1:
        return np.stack([one(a, b) for a, b in zip(src, dst)])
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="farneback") as pool:
        return np.stack(list(pool.map(one, src, dst)))


# -- RAFT ------------------------------------------------------------------------------------------------------------
def locate_raft_weights(weights: str, metric: str) -> Path:
    """Local file of RAFT weights ``weights`` (a key of :data:`RAFT_WEIGHT_FILES`), via the weights cache.

    Raises:
        SeeClearError: The weights are not in the local cache (the message names ``metric``, the file and where to put
            it, from :func:`seeclear_bench.metrics.weights.locate`), or the weights module is unavailable.
    """
    if weights not in RAFT_WEIGHT_FILES:
        raise SeeClearError(f"unknown RAFT weights {weights!r}; expected one of {sorted(RAFT_WEIGHT_FILES)}")
    try:
        from seeclear_bench.metrics.weights import locate
    except ImportError as exc:
        raise SeeClearError(
            f"metric {metric!r} needs RAFT weights {RAFT_WEIGHT_FILES[weights]} but the weights cache module "
            f"is unavailable ({exc}); pass the weights file explicitly"
        ) from None
    return Path(locate(weights))


def read_state_dict(weights: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a local path or fsspec URL: ``.safetensors``, else a ``torch.save`` file (weights only).

    Raises:
        SeeClearError: The file is missing or is not a state dict of tensors.
    """
    import torch

    url = os.fspath(weights)
    if not io.exists(url):
        raise SeeClearError(f"RAFT weights file {url} does not exist; put torchvision's raft_large state dict there")
    data = io.read_bytes(url)
    try:
        if url.endswith(".safetensors"):
            from safetensors.torch import load as load_safetensors

            state = load_safetensors(data)
        else:
            state = torch.load(_bytes_io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors have no common base class
        raise SeeClearError(f"cannot read RAFT weights {url}: {exc}".splitlines()[0]) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SeeClearError(f"RAFT weights {url} hold a {type(state).__name__}, expected a state dict of tensors")
    return dict(state)


def build_raft(state: Mapping[str, torch.Tensor], source: str = "state dict") -> torch.nn.Module:
    """torchvision ``raft_large(weights=None)`` with ``state`` loaded strictly, in eval mode, on the CPU.

    Raises:
        SeeClearError: Missing or unexpected keys or mismatched shapes (e.g. princeton-vl's own ``raft-things.pth``,
            whose keys differ: use torchvision's port of it, ``raft_large_C_T_V1``).
    """
    from torchvision.models.optical_flow import raft_large

    model = raft_large(weights=None, progress=False)
    _check_shapes(model, state, source)
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    if missing or unexpected:
        raise SeeClearError(
            f"{source} is not a torchvision raft_large state dict: {len(missing)} missing keys (e.g. "
            f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); use torchvision's raft_large files "
            f"({', '.join(RAFT_WEIGHT_FILES.values())})"
        )
    return model.eval()


def _check_shapes(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise SeeClearError(
                f"{source}: tensor {key!r} has shape {tuple(value.shape)}, raft_large expects {tuple(own[key].shape)}; "
                "this is not a raft_large (large) checkpoint"
            )


@functools.lru_cache(maxsize=2)
def _cached_raft(url: str, stamp: str, size: int, device: str) -> torch.nn.Module:
    # Keyed by file identity so that a replaced weights file is re-read; two entries cover the two RAFT weights.
    return build_raft(read_state_dict(url), source=f"RAFT weights {url}").to(device)


class RaftFlow:
    """RAFT-large optical flow (torchvision) from a local weights file, behind a plain callable.

    Frames are padded to a multiple of 8 by edge replication, split evenly between the two sides as princeton-vl
    RAFT's ``InputPadder`` does in its default mode, and the flow is cropped back to the input size. Inputs are passed
    to the network as given: choosing their range is the caller's (torchvision's convention is [-1, 1]).

    Args:
        weights: Path or URL of a state-dict file, or a state dict.
        iterations: Recurrent refinement steps (``num_flow_updates``; torchvision's default 12, EvalCrafter 20).
        device: Where the network runs.
    """

    def __init__(
        self,
        weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
        *,
        iterations: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise SeeClearError(f"RAFT iterations must be an int >= 1, got {iterations!r}")
        import torch

        self.iterations = iterations
        self.device = torch.device(device)
        if isinstance(weights, Mapping):
            self.model = build_raft(weights).to(self.device)
        else:
            url = os.fspath(weights)
            fs, path = io.split(url)
            if not io.exists(url):
                raise SeeClearError(
                    f"RAFT weights file {url} does not exist; put torchvision's raft_large state dict there"
                )
            info = fs.info(path)
            stamp = str(info.get("mtime") or info.get("LastModified") or info.get("created") or "")
            self.model = _cached_raft(url, stamp, int(info.get("size") or 0), str(self.device))

    def __call__(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        """Flow from ``image1`` to ``image2``.

        Args:
            image1: ``(n 3 h w)`` float images in the range the network is meant to see.
            image2: Images of the same shape.

        Returns:
            ``(n 2 h w)`` float32 flow on ``image1``'s device.

        Raises:
            SeeClearError: Shapes differ, or the frames (after padding) are smaller than 128x128.
        """
        import torch
        import torch.nn.functional as F

        if image1.shape != image2.shape or image1.ndim != 4 or image1.shape[1] != 3:
            raise SeeClearError(
                "RAFT expects two (n, 3, h, w) image batches of one shape, got "
                f"{tuple(image1.shape)} and {tuple(image2.shape)}"
            )
        n, _, h, w = image1.shape
        pads = replicate_padding(h, w, RAFT_MULTIPLE)
        ph, pw = h + pads[2] + pads[3], w + pads[0] + pads[1]
        if min(ph, pw) < RAFT_MIN_SIZE:
            raise SeeClearError(
                f"RAFT needs frames of at least {RAFT_MIN_SIZE}x{RAFT_MIN_SIZE} at its working resolution, got {h}x{w}; "
                "score larger frames or use a Farneback-based metric"
            )
        out_device = image1.device
        per_batch = max(1, _RAFT_PIXELS_PER_BATCH["cuda" if self.device.type == "cuda" else "cpu"] // (ph * pw))
        flows = []
        with torch.inference_mode():
            for start in range(0, n, per_batch):
                a = image1[start : start + per_batch].to(self.device, torch.float32)
                b = image2[start : start + per_batch].to(self.device, torch.float32)
                if any(pads):
                    a, b = F.pad(a, pads, mode="replicate"), F.pad(b, pads, mode="replicate")
                flow = self.model(a, b, num_flow_updates=self.iterations)[-1]
                flows.append(flow[:, :, pads[2] : pads[2] + h, pads[0] : pads[0] + w].to(out_device))
        if not flows:
            return torch.zeros((0, 2, h, w), dtype=torch.float32, device=out_device)
        return torch.cat(flows)


def replicate_padding(h: int, w: int, multiple: int = RAFT_MULTIPLE) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` padding up to a multiple, split as RAFT's ``InputPadder`` ('sintel' mode)."""
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def pad_to_multiple(images: torch.Tensor, multiple: int = RAFT_MULTIPLE) -> torch.Tensor:
    """Pad ``(n c h w)`` images by edge replication to a multiple of ``multiple`` (see :func:`replicate_padding`)."""
    import torch.nn.functional as F

    pads = replicate_padding(images.shape[-2], images.shape[-1], multiple)
    return F.pad(images, pads, mode="replicate") if any(pads) else images


# -- warping and occlusion --------------------------------------------------------------------------------------------
def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``x + flow(x)``: bilinear, coordinates clamped to the frame (edge replication).

    With ``flow`` the flow from frame ``a`` to frame ``b``, ``backward_warp(b, flow)`` aligns ``b`` to ``a``. This
    equals FlowNet2's ``Resample2d`` (used by fast_blind_video_consistency and EvalCrafter): ``grid_sample`` with
    ``align_corners=True`` and ``padding_mode="border"`` on the pixel grid. The sampling runs in float64 so that the
    round trip through ``grid_sample``'s [-1, 1] coordinates is exact to ~1e-14 px (in float32 it shifts samples by
    up to ~1e-5 px, so a zero flow would not reproduce the frame exactly).

    Args:
        image: ``(n c h w)`` float.
        flow: ``(n 2 h w)`` float displacements in pixels (x, y).

    Returns:
        ``(n c h w)`` warped image, ``image``'s dtype and device.
    """
    import torch
    import torch.nn.functional as F

    same_grid = image.shape[0] == flow.shape[0] and image.shape[-2:] == flow.shape[-2:]
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2 or not same_grid:
        raise SeeClearError(
            f"backward_warp expects image (n, c, h, w) and flow (n, 2, h, w) of one n, h, w, got {tuple(image.shape)} "
            f"and {tuple(flow.shape)}"
        )
    _, _, h, w = image.shape
    flow = flow.to(image.device, torch.float64)
    ys = torch.arange(h, dtype=torch.float64, device=image.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64, device=image.device).view(1, 1, w)
    grid_x = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    grid_y = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((grid_x, grid_y), dim=-1)
    warped = F.grid_sample(image.to(torch.float64), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return warped.to(image.dtype)


def occlusion_valid_mask(
    fw_flow: torch.Tensor, bw_flow: torch.Tensor, thresholds: OcclusionThresholds = LAI_OCCLUSION
) -> torch.Tensor:
    """Non-occluded pixels of frame ``a`` for warping frame ``b`` onto it (Lai et al. forward-backward check).

    With ``F = fw_flow`` (``a -> b``) and ``B_w = backward_warp(bw_flow, F)`` (the ``b -> a`` flow read at ``x + F(x)``),
    a pixel is occluded when ``|F + B_w|^2 > c_rel (|F|^2 + |B_w|^2) + c_abs`` (the two flows disagree) or when
    ``|dF/dx|^2 + |dF/dy|^2 > b_rel |F|^2 + b_abs`` (a motion boundary; forward differences ``F[i] - F[i+1]``, zero on
    the last row and column). This is fast_blind_video_consistency's ``detect_occlusion`` as that project and
    EvalCrafter call it, ``detect_occlusion(bw_flow, fw_flow)``: in its own argument names the test reads
    ``|warp(fw) + bw|^2 > 0.01 (|warp(fw)|^2 + |bw|^2) + 0.5`` or ``|grad bw|^2 > 0.01 |bw|^2 + 0.002``.

    Args:
        fw_flow: ``(n 2 h w)`` flow from ``a`` to ``b``.
        bw_flow: ``(n 2 h w)`` flow from ``b`` to ``a``.
        thresholds: The test's constants (default: Lai et al.'s).

    Returns:
        ``(n h w)`` bool, True where the pixel is visible in both frames (the mask ``M`` of the warping error).
    """
    import torch

    if fw_flow.shape != bw_flow.shape or fw_flow.ndim != 4 or fw_flow.shape[1] != 2:
        raise SeeClearError(
            "occlusion_valid_mask expects two (n, 2, h, w) flows of one shape, got "
            f"{tuple(fw_flow.shape)} and {tuple(bw_flow.shape)}"
        )
    bw_warped = backward_warp(bw_flow, fw_flow)
    mismatch = (fw_flow + bw_warped).square().sum(dim=1)
    scale = fw_flow.square().sum(dim=1) + bw_warped.square().sum(dim=1)
    occluded = mismatch > thresholds.consistency_rel * scale + thresholds.consistency_abs
    du = torch.zeros_like(fw_flow)
    dv = torch.zeros_like(fw_flow)
    du[..., :, :-1] = fw_flow[..., :, :-1] - fw_flow[..., :, 1:]
    dv[..., :-1, :] = fw_flow[..., :-1, :] - fw_flow[..., 1:, :]
    gradient = (du.square() + dv.square()).sum(dim=1)
    boundary = gradient > thresholds.boundary_rel * fw_flow.square().sum(dim=1) + thresholds.boundary_abs
    return ~(occluded | boundary)
