"""Temporal-consistency clip metrics: tOF and the warping error, each in the variants the field uses, named and hashed.

A variant is a frozen :class:`TemporalVariant` holding every choice that changes its number (flow method, weights,
iterations, working resolution, flow input range, pair direction, padding, crop, frame skip, occlusion thresholds,
reduction, scale); :meth:`TemporalVariant.params` goes into the metric's hash so that a leaderboard never mixes
variants. The presets in :data:`VARIANTS` (CONVENTIONS.md section 4; lower is better for all):

``tof``
    TecoGAN ``metrics.py``: OpenCV Farneback (TecoGAN's parameters) on ``cv2.COLOR_RGB2GRAY`` uint8 frames, flow
    ``OF(f_{t-1}, f_t)`` of ground truth and prediction; the flows are centre-cropped to a multiple of 32 with a border
    of at least 8 px (``crop_8x8``); per pair the mean over pixels of ``||OF_gt - OF_pred||_2``; frames
    ``cutfr=2 .. t-3`` only (the first and last 2 skipped), so a clip needs at least 6 frames. No scaling.
``tof-stablevsr``
    StableVSR ``eval.py``: torchvision ``raft_large`` with its default weights (C_T_SKHT_V2, what ``pretrained=True``
    loads), 12 updates, full resolution, frames fed in [0, 1] exactly as ``ToTensor`` gives them (StableVSR does not
    normalise to [-1, 1]), flow from frame ``t`` to ``t-1``; per pair ``mean(|OF_pred - OF_gt|)`` over both components
    and all pixels (so half the per-pixel L1 norm); every pair; x10.
``ewarp``
    Lai et al. (ECCV'18) on the prediction alone, with RAFT-large (C_T_SKHT_V2, 12 updates, inputs in [-1, 1] as
    torchvision expects) standing in for FlowNet2: ``E = 1/(T-1) sum_t sum_i M_t(i) ||f_t(i) - w(f_{t+1})(i)||^2 /
    sum_i M_t(i)`` on RGB in [0, 1] at full resolution, ``w`` the backward warp with the flow ``t -> t+1``, ``M`` the
    forward-backward occlusion mask; x1e3.
``ewarp-evalcrafter``
    EvalCrafter ``metrics/RAFT/optical_flow_scores.py::compute_video_warping_error`` (the code STAR points to): RGB/255,
    0.5x bilinear downsampling (``align_corners=False``), replicate padding to a multiple of 8 kept for the error, RAFT
    with the raft-things weights (torchvision's port C_T_V1), 20 updates, forward and backward, occlusion test as
    ``ewarp``, squared error summed over RGB / valid pixels (not x3). EvalCrafter feeds [0, 1] frames to the original
    RAFT, which itself maps ``x -> 2 x / 255 - 1``; that double scaling is reproduced. Frames are taken as given: the
    MP4 round trip of EvalCrafter is not applied (``mp4_roundtrip=False``). x1e3.
``ewarp-stablevsr``
    ``ewarp`` divided by 3: the reduction of StableVSR's ``util/flow_utils.warp_error`` (squared error / (3 x valid
    pixels)). That helper is never called by StableVSR's ``eval.py``, so no published number uses it; flows, warp and
    mask are those of ``ewarp``, and ``ewarp == 3 * ewarp-stablevsr`` exactly.

Scale: the x10 / x1e3 factors are applied in the value, so stored values, clip and dataset means and their confidence
intervals all read like the papers' tables ("E*warp (x1e-3)" columns) and ``scale`` is part of the hash.

The warping error rewards blur, so the evaluate stage reports it for the ground truth too: :func:`gt_reference_value`
(variants with ``reference == "gt"``). Values are per frame pair: :func:`pair_values` returns the registry's
``ClipValues`` labelling each pair with the index of its later frame (so per-frame tables hold them, and frame-mean
aggregation gives TecoGAN's FrameAvg), and a clip's value (:func:`clip_value`) is the mean over its pairs.

This module imports only the standard library at import time (the registry imports it); torch, OpenCV and
torchvision are imported inside the functions. It must not import pyiqa, ray or any model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from seeclear_bench.errors import SeeClearError, did_you_mean
from seeclear_bench.metrics.protocols import teco_crop_box

if TYPE_CHECKING:
    import torch

    from seeclear_bench.metrics.fidelity import FramesLike
    from seeclear_bench.metrics.flow import OcclusionThresholds, RaftFlow
    from seeclear_bench.metrics.protocols import Protocol, teco_crop_box
    from seeclear_bench.metrics.registry import ClipMetricFn, ClipValues

Quantity = Literal["tof", "ewarp"]
FlowMethod = Literal["farneback", "raft-large"]
# How frames are fed to the flow estimator: "gray-uint8" cv2 RGB2GRAY (Farneback); for RAFT, with x = RGB/255:
# "rgb-unit" x, "rgb-signed" 2x-1 (torchvision's convention), "rgb-unit-raft-rescaled" 2(x/255)-1 (EvalCrafter).
FlowInput = Literal["gray-uint8", "rgb-unit", "rgb-signed", "rgb-unit-raft-rescaled"]
PairOrder = Literal["prev-to-next", "next-to-prev"]
Padding = Literal["none", "flow", "frames"]
Crop = Literal["none", "teco-32-border8"]
ErrorPixels = Literal["none", "rgb-unit"]
Reduction = Literal["l2-norm-mean", "abs-mean", "sq-sum-rgb/valid", "sq-sum-rgb/3valid"]
Reference = Literal["none", "gt"]

HASH_CHARS: Final = 12
TECO_CROP_MULTIPLE: Final = 32
TECO_CROP_MIN_BORDER: Final = 8
# Frame pairs whose working frames are held in memory at once.
_PAIRS_PER_CHUNK: Final = 8


@dataclass(frozen=True, kw_only=True)
class TemporalVariant:
    """Everything that changes a temporal metric's number.

    Attributes:
        name: Metric name (a key of :data:`VARIANTS` for presets).
        quantity: ``"tof"`` (flow difference between prediction and ground truth) or ``"ewarp"`` (warping error of
            the prediction alone).
        flow: ``"farneback"`` (OpenCV, :data:`~seeclear_bench.metrics.flow.FARNEBACK_PARAMS`) or ``"raft-large"``.
        weights: RAFT weights name (a key of :data:`~seeclear_bench.metrics.flow.RAFT_WEIGHT_FILES`); None for Farneback.
        iterations: RAFT refinement updates; None for Farneback.
        flow_input: How frames are fed to the flow estimator (see :data:`FlowInput`).
        pair_order: tOF: direction of each pair's flow, ``"prev-to-next"`` ``OF(f_{t-1}, f_t)`` or ``"next-to-prev"``.
            The warping error always warps ``f_{t+1}`` onto ``f_t`` with the flow ``t -> t+1`` (``"prev-to-next"``).
        resize: Working resolution factor (bilinear, ``align_corners=False``, no antialiasing; 1.0 = full resolution).
        padding: RAFT's replicate padding to a multiple of 8: ``"flow"`` pads for the network and crops the flow back;
            ``"frames"`` pads the working frames, so the error also covers the padding (EvalCrafter); ``"none"``.
        crop: ``"teco-32-border8"`` crops flows to TecoGAN's centre box (:func:`teco_crop_box`), else ``"none"``.
        frame_skip: Frames skipped at each end before pairing (TecoGAN's ``cutfr``).
        error_pixels: Pixels the warping error is measured on (``"rgb-unit"``: RGB / 255); ``"none"`` for tOF.
        occlusion: ``(consistency_rel, consistency_abs, boundary_rel, boundary_abs)`` of the occlusion test, or None.
        reduction: Per-pair reduction: ``"l2-norm-mean"`` mean of the per-pixel L2 norm of the flow difference;
            ``"abs-mean"`` mean absolute flow difference over both components; ``"sq-sum-rgb/valid"`` squared error
            summed over RGB and valid pixels, divided by the valid pixel count; ``"sq-sum-rgb/3valid"`` the same
            divided by 3x the valid pixel count.
        scale: Factor applied to every value (10 for StableVSR's tOF, 1000 for E*warp).
        mp4_roundtrip: Whether frames go through an MP4 encode/decode first (never, here; recorded for clarity).
        reference: ``"gt"`` when the metric is also reported on the ground-truth clip (warping error).
        source: The reference implementation (documentation only; not part of :meth:`params`).
    """

    name: str
    quantity: Quantity
    flow: FlowMethod
    weights: str | None = None
    iterations: int | None = None
    flow_input: FlowInput
    pair_order: PairOrder = "prev-to-next"
    resize: float = 1.0
    padding: Padding = "none"
    crop: Crop = "none"
    frame_skip: int = 0
    error_pixels: ErrorPixels = "none"
    occlusion: tuple[float, float, float, float] | None = None
    reduction: Reduction
    scale: float = 1.0
    mp4_roundtrip: bool = False
    reference: Reference = "none"
    source: str = ""

    def __post_init__(self) -> None:
        for field, literal in (
            ("quantity", Quantity), ("flow", FlowMethod), ("flow_input", FlowInput), ("pair_order", PairOrder),
            ("padding", Padding), ("crop", Crop), ("error_pixels", ErrorPixels), ("reduction", Reduction),
            ("reference", Reference),
        ):
            value, allowed = getattr(self, field), get_args(literal)
            if value not in allowed:
                self._fail(f"{field} must be one of {list(allowed)}, got {value!r}{did_you_mean(str(value), allowed)}")
        if self.flow == "farneback":
            if self.weights is not None or self.iterations is not None or self.flow_input != "gray-uint8":
                self._fail("Farneback takes no weights or iterations and flow_input='gray-uint8'")
            if self.resize != 1.0 or self.padding != "none":
                self._fail("Farneback runs at full resolution without padding (resize=1.0, padding='none')")
        elif not self.weights or type(self.iterations) is not int or self.iterations < 1:
            self._fail(f"RAFT needs a weights name and iterations >= 1, got {self.weights!r} and {self.iterations!r}")
        elif self.flow_input == "gray-uint8" or self.padding == "none":
            self._fail("RAFT takes an RGB flow_input and padding 'flow' or 'frames'")
        if not (isinstance(self.resize, (int, float)) and 0 < self.resize <= 1):
            self._fail(f"resize must be in (0, 1], got {self.resize!r}")
        if isinstance(self.frame_skip, bool) or not isinstance(self.frame_skip, int) or self.frame_skip < 0:
            self._fail(f"frame_skip must be an int >= 0, got {self.frame_skip!r}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            self._fail(f"scale must be a finite number > 0, got {self.scale!r}")
        if self.quantity == "tof":
            if self.reduction not in ("l2-norm-mean", "abs-mean") or self.occlusion or self.error_pixels != "none":
                self._fail("tOF reduces flow differences ('l2-norm-mean' or 'abs-mean'), no occlusion mask or error pixels")
            if self.padding == "frames" or self.reference != "none":
                self._fail("tOF compares with ground truth (reference='none') and crops RAFT padding off (padding='flow')")
        else:
            if self.reduction not in ("sq-sum-rgb/valid", "sq-sum-rgb/3valid") or self.error_pixels != "rgb-unit":
                self._fail("the warping error reduces squared RGB errors ('sq-sum-rgb/valid' or '/3valid') on 'rgb-unit'")
            four = self.occlusion is not None and len(self.occlusion) == 4
            if not four or self.pair_order != "prev-to-next" or self.crop != "none":
                self._fail("the warping error needs 4 occlusion thresholds, pair_order='prev-to-next' and crop='none'")
            if self.resize != 1.0 and self.flow == "farneback":
                self._fail("Farneback warping error runs at full resolution")
        if self.mp4_roundtrip is not False:
            self._fail("an MP4 round trip before scoring is not implemented; encode and decode the clip beforehand")
        object.__setattr__(self, "resize", float(self.resize))
        object.__setattr__(self, "scale", float(self.scale))
        if self.occlusion is not None:
            object.__setattr__(self, "occlusion", tuple(float(v) for v in self.occlusion))

    def _fail(self, message: str) -> None:
        raise SeeClearError(f"temporal metric {self.name!r}: {message}")

    def params(self) -> dict[str, Any]:
        """Every numerics-changing field as a JSON-serialisable dict (all fields but ``name`` and ``source``)."""
        data = dataclasses.asdict(self)
        for key in ("name", "source"):
            data.pop(key)
        if data["occlusion"] is not None:
            data["occlusion"] = list(data["occlusion"])
        if self.flow == "farneback":
            from seeclear_bench.metrics.flow import FARNEBACK_PARAMS

            data["farneback"] = dict(FARNEBACK_PARAMS)
        else:
            from seeclear_bench.metrics.flow import RAFT_WEIGHT_FILES

            data["weights_file"] = RAFT_WEIGHT_FILES.get(str(self.weights), "")
        return data

    @property
    def hash(self) -> str:
        """First 12 hex digits of the sha256 of ``{"name": ..., "params": ...}`` as canonical JSON."""
        canonical = json.dumps({"name": self.name, "params": self.params()}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_CHARS]

    @property
    def min_frames(self) -> int:
        """Shortest clip this variant scores: one pair after skipping ``frame_skip`` frames at each end."""
        return 2 + 2 * self.frame_skip


_LAI_THRESHOLDS: Final = (0.01, 0.5, 0.01, 0.002)

VARIANTS: Final[dict[str, TemporalVariant]] = {
    v.name: v
    for v in (
        TemporalVariant(
            name="tof", quantity="tof", flow="farneback", flow_input="gray-uint8", pair_order="prev-to-next",
            crop="teco-32-border8", frame_skip=2, reduction="l2-norm-mean", scale=1.0,
            source="thunil/TecoGAN metrics.py",
        ),
        TemporalVariant(
            name="tof-stablevsr", quantity="tof", flow="raft-large", weights="raft-large-c-t-skht-v2", iterations=12,
            flow_input="rgb-unit", pair_order="next-to-prev", padding="flow", reduction="abs-mean", scale=10.0,
            source="claudiom4sir/StableVSR eval.py",
        ),
        TemporalVariant(
            name="ewarp", quantity="ewarp", flow="raft-large", weights="raft-large-c-t-skht-v2", iterations=12,
            flow_input="rgb-signed", padding="flow", error_pixels="rgb-unit", occlusion=_LAI_THRESHOLDS,
            reduction="sq-sum-rgb/valid", scale=1e3, reference="gt",
            source="phoenix104104/fast_blind_video_consistency evaluate_WarpError.py (RAFT for FlowNet2)",
        ),
        TemporalVariant(
            name="ewarp-evalcrafter", quantity="ewarp", flow="raft-large", weights="raft-large-c-t-v1", iterations=20,
            flow_input="rgb-unit-raft-rescaled", resize=0.5, padding="frames", error_pixels="rgb-unit",
            occlusion=_LAI_THRESHOLDS, reduction="sq-sum-rgb/valid", scale=1e3, reference="gt",
            source="EvalCrafter metrics/RAFT/optical_flow_scores.py compute_video_warping_error",
        ),
        TemporalVariant(
            name="ewarp-stablevsr", quantity="ewarp", flow="raft-large", weights="raft-large-c-t-skht-v2",
            iterations=12, flow_input="rgb-signed", padding="flow", error_pixels="rgb-unit", occlusion=_LAI_THRESHOLDS,
            reduction="sq-sum-rgb/3valid", scale=1e3, reference="gt",
            source="claudiom4sir/StableVSR util/flow_utils.py warp_error reduction (uncalled helper)",
        ),
    )
}


def get_variant(name: str) -> TemporalVariant:
    """Return the preset variant called ``name``; unknown names raise with the closest match."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise SeeClearError(
            f"unknown temporal metric {name!r}; expected one of {sorted(VARIANTS)}"
            f"{did_you_mean(str(name).lower(), VARIANTS)}"
        ) from None


def pair_values(
    metric: str | TemporalVariant, pred: FramesLike, gt: FramesLike | None = None, *, raft: RaftFlow | None = None
) -> ClipValues:
    """Score every frame pair of one clip.

    Args:
        metric: A variant name (key of :data:`VARIANTS`) or a :class:`TemporalVariant`.
        pred: ``(t h w 3)`` RGB prediction: uint8, or float on the 0-255 scale (rounded to uint8 first, as for
            PSNR); numpy or torch on any device (RAFT runs on that device).
        gt: Ground truth of the same shape; required for tOF, optional (only shape-checked) for the warping error.
        raft: A RAFT estimator to use instead of the one the variant names (loaded from the local weights cache);
            values are then those of the named metric only if it holds the same weights and iterations.

    Returns:
        :class:`~seeclear_bench.metrics.registry.ClipValues`: ``(p,)`` float64 values on ``pred``'s device, one per
        frame pair, already multiplied by the variant's ``scale`` (lower is better), each labelled with the index of
        the later frame of its pair.

    Raises:
        SeeClearError: Unknown metric, invalid frames, a clip shorter than the variant needs, frames too small for
            the crop or for RAFT, missing gt for tOF, or missing RAFT weights.
    """
    import torch

    from seeclear_bench.metrics import fidelity
    from seeclear_bench.metrics.registry import ClipValues

    variant = metric if isinstance(metric, TemporalVariant) else get_variant(metric)
    if gt is None and variant.quantity == "tof":
        raise SeeClearError(f"metric {variant.name!r} compares flows of prediction and ground truth; pass gt")
    pred_u8, gt_u8 = fidelity._prepare(pred, pred if gt is None else gt, channel="rgb", crop_border=0, min_size=1)
    t, h, w, _ = pred_u8.shape
    if t < variant.min_frames:
        skip = f" after skipping {variant.frame_skip} frames at each end" if variant.frame_skip else ""
        raise SeeClearError(
            f"metric {variant.name!r} needs clips of at least {variant.min_frames} frames (one frame pair{skip}), "
            f"got a clip of {t} frames; score longer clips or leave this metric out"
        )
    _check_size(variant, h, w)
    later = list(range(variant.frame_skip + 1, t - variant.frame_skip))
    if variant.quantity == "tof":
        values = _tof_values(variant, pred_u8, gt_u8, later, raft)
    else:
        values = _ewarp_values(variant, pred_u8, later, raft)
    scaled = torch.tensor(values, dtype=torch.float64) * variant.scale
    return ClipValues(values=scaled.to(pred_u8.device), frames=tuple(later))


def clip_value(
    metric: str | TemporalVariant, pred: FramesLike, gt: FramesLike | None = None, *, raft: RaftFlow | None = None
) -> float:
    """The clip's value: the mean of :func:`pair_values` over its pairs (TecoGAN's per-folder mean, Lai's 1/(T-1))."""
    return float(pair_values(metric, pred, gt, raft=raft).values.mean())


def gt_reference_value(metric: str | TemporalVariant, gt_clip: FramesLike, *, raft: RaftFlow | None = None) -> float:
    """The metric computed on the ground-truth clip, reported beside each method's value (warping error rewards blur).

    Raises:
        SeeClearError: The metric has no ground-truth reference (``reference != "gt"``, e.g. tOF, which compares the
            prediction with the ground truth and is 0 on it).
    """
    variant = metric if isinstance(metric, TemporalVariant) else get_variant(metric)
    if variant.reference != "gt":
        with_ref = sorted(name for name, v in VARIANTS.items() if v.reference == "gt")
        raise SeeClearError(
            f"metric {variant.name!r} has no ground-truth reference value (it compares prediction with ground truth); "
            f"metrics with one: {with_ref}"
        )
    return clip_value(variant, gt_clip, None, raft=raft)


def make_clip_fn(name: str) -> ClipMetricFn:
    """The registry's :class:`~seeclear_bench.metrics.registry.ClipMetricFn` for preset ``name``.

    The variant fixes its own colour, crop and frame skipping, so the protocol's channel and crop border do not apply;
    a protocol that scores only some frames (``frame_selection != "all"``) is refused, as for tLP, rather than being
    silently widened to the whole clip.
    """
    variant = get_variant(name)

    def score(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> ClipValues:
        if protocol.frame_selection != "all":
            raise SeeClearError(
                f"{name} compares consecutive frames but protocol {protocol.name!r} scores only frame selection "
                f"{protocol.frame_selection!r}; use a protocol with frame_selection='all'"
            )
        return pair_values(variant, pred, gt)

    score.__name__ = f"clip_value_{name.replace('-', '_')}"
    return score


def warping_error(
    frames: torch.Tensor,
    next_frames: torch.Tensor,
    fw_flow: torch.Tensor,
    bw_flow: torch.Tensor,
    *,
    thresholds: OcclusionThresholds | None = None,
    reduction: Reduction = "sq-sum-rgb/valid",
) -> torch.Tensor:
    """Per-pair warping error of Lai et al. from given flows: ``sum_i M(i) ||f(i) - w(f')(i)||^2 / sum_i M(i)``.

    ``w(f')`` is :func:`~seeclear_bench.metrics.flow.backward_warp` of the next frame with the flow ``f -> f'``, and
    ``M`` the non-occlusion mask of :func:`~seeclear_bench.metrics.flow.occlusion_valid_mask`. The squared error is
    summed over channels; ``"sq-sum-rgb/3valid"`` divides by 3x the valid pixel count instead. A pair without valid
    pixels scores 0 (every masked error is 0; the references fall back to another divisor with the same result).

    Args:
        frames: ``(p c h w)`` float frames ``f_t`` (pixel scale as the metric defines it, e.g. RGB / 255).
        next_frames: ``(p c h w)`` frames ``f_{t+1}``.
        fw_flow: ``(p 2 h w)`` flow ``f_t -> f_{t+1}``.
        bw_flow: ``(p 2 h w)`` flow ``f_{t+1} -> f_t``.
        thresholds: Occlusion test constants (default: Lai et al.'s).
        reduction: ``"sq-sum-rgb/valid"`` or ``"sq-sum-rgb/3valid"``.

    Returns:
        ``(p,)`` float64 errors, unscaled, on ``frames``' device.
    """
    import torch

    from seeclear_bench.metrics.flow import (
        LAI_OCCLUSION,
        backward_warp,
        occlusion_valid_mask,
    )

    if reduction not in ("sq-sum-rgb/valid", "sq-sum-rgb/3valid"):
        raise SeeClearError(f"reduction must be 'sq-sum-rgb/valid' or 'sq-sum-rgb/3valid', got {reduction!r}")
    if frames.shape != next_frames.shape or frames.ndim != 4:
        raise SeeClearError(
            f"warping_error expects two (p, c, h, w) frame stacks of one shape, got {tuple(frames.shape)} and "
            f"{tuple(next_frames.shape)}"
        )
    warped = backward_warp(next_frames, fw_flow.to(frames.device))
    valid = occlusion_valid_mask(fw_flow, bw_flow, thresholds or LAI_OCCLUSION).to(frames.device)
    error = (frames.to(torch.float64) - warped.to(torch.float64)).square().sum(dim=1) * valid
    count = valid.sum(dim=(1, 2)).to(torch.float64)
    if reduction == "sq-sum-rgb/3valid":
        count = count * 3.0
    return error.sum(dim=(1, 2)) / count.clamp(min=1.0)


# -- internals -------------------------------------------------------------------------------------------------------
def _check_size(variant: TemporalVariant, h: int, w: int) -> None:
    if variant.crop == "teco-32-border8" and min(h, w) < TECO_CROP_MULTIPLE + 2 * TECO_CROP_MIN_BORDER:
        raise SeeClearError(
            f"metric {variant.name!r} crops flows to a multiple of 32 with a border of at least 8 px, which needs frames "
            f"of at least 48x48, got {h}x{w}"
        )
    if variant.flow == "raft-large":
        from seeclear_bench.metrics.flow import RAFT_MIN_SIZE, RAFT_MULTIPLE

        wh, ww = math.floor(h * variant.resize), math.floor(w * variant.resize)
        ph, pw = wh + (-wh) % RAFT_MULTIPLE, ww + (-ww) % RAFT_MULTIPLE
        if min(ph, pw) < RAFT_MIN_SIZE:
            need = math.ceil((RAFT_MIN_SIZE - RAFT_MULTIPLE + 1) / variant.resize)
            at = "" if variant.resize == 1.0 else f" at {variant.resize:g}x"
            raise SeeClearError(
                f"metric {variant.name!r} runs RAFT{at}, which needs frames of at least {need}x{need}, got {h}x{w}"
            )


def _chunks(items: list[int], size: int = _PAIRS_PER_CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _working_frames(variant: TemporalVariant, frames_u8: torch.Tensor) -> torch.Tensor:
    """``(n h w 3)`` uint8 -> ``(n 3 h' w')`` float32 RGB/255 at the working resolution (resized, maybe padded)."""
    import torch
    import torch.nn.functional as F

    from seeclear_bench.metrics.flow import pad_to_multiple

    frames = frames_u8.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    if variant.resize != 1.0:
        frames = F.interpolate(frames, scale_factor=variant.resize, mode="bilinear", align_corners=False)
    if variant.padding == "frames":
        frames = pad_to_multiple(frames)
    return frames


def _flow_input(variant: TemporalVariant, frames: torch.Tensor) -> torch.Tensor:
    match variant.flow_input:
        case "rgb-unit":
            return frames
        case "rgb-signed":
            return frames * 2.0 - 1.0
        case "rgb-unit-raft-rescaled":
            return 2.0 * (frames / 255.0) - 1.0
    raise AssertionError(variant.flow_input)  # gray-uint8 is Farneback's, handled by the caller


def _flows(
    variant: TemporalVariant, frames_u8: torch.Tensor, working: torch.Tensor | None, src: list[int], dst: list[int],
    raft: RaftFlow | None,
) -> torch.Tensor:
    """``(p 2 h w)`` float32 flows from ``frames[src[k]]`` to ``frames[dst[k]]`` (indices into the given frames)."""
    import torch

    from seeclear_bench.metrics.flow import farneback_flow, rgb_to_gray

    if variant.flow == "farneback":
        gray = rgb_to_gray(frames_u8.cpu().numpy())
        flow = farneback_flow(gray[src], gray[dst])
        return torch.from_numpy(flow).permute(0, 3, 1, 2).to(frames_u8.device)
    assert raft is not None and working is not None
    net_in = _flow_input(variant, working)
    return raft(net_in[src], net_in[dst])


def _raft_for(variant: TemporalVariant, device: torch.device, raft: RaftFlow | None) -> RaftFlow | None:
    if variant.flow != "raft-large" or raft is not None:
        return raft
    from seeclear_bench.metrics.flow import RaftFlow, locate_raft_weights

    assert variant.weights is not None and variant.iterations is not None
    return RaftFlow(locate_raft_weights(variant.weights, variant.name), iterations=variant.iterations, device=device)


def _tof_values(
    variant: TemporalVariant, pred_u8: torch.Tensor, gt_u8: torch.Tensor, later: list[int], raft: RaftFlow | None
) -> list[float]:
    import torch

    raft = _raft_for(variant, pred_u8.device, raft)
    values: list[float] = []
    for chunk in _chunks(later):
        first = chunk[0] - 1
        window = slice(first, chunk[-1] + 1)
        prev = [i - 1 - first for i in chunk]
        nxt = [i - first for i in chunk]
        src, dst = (prev, nxt) if variant.pair_order == "prev-to-next" else (nxt, prev)
        both = torch.cat([pred_u8[window], gt_u8[window]])
        offset = chunk[-1] + 1 - first
        working = _working_frames(variant, both) if variant.flow == "raft-large" else None
        flows = _flows(variant, both, working, src + [s + offset for s in src], dst + [d + offset for d in dst], raft)
        diff = flows[len(chunk) :].to(torch.float64) - flows[: len(chunk)].to(torch.float64)  # gt - pred
        if variant.crop == "teco-32-border8":
            top, left, ch, cw = teco_crop_box(diff.shape[-2], diff.shape[-1])
            diff = diff[..., top : top + ch, left : left + cw]
        if variant.reduction == "l2-norm-mean":
            per_pair = diff.square().sum(dim=1).sqrt().mean(dim=(1, 2))
        else:
            per_pair = diff.abs().mean(dim=(1, 2, 3))
        values.extend(per_pair.cpu().tolist())
    return values


def _ewarp_values(
    variant: TemporalVariant, pred_u8: torch.Tensor, later: list[int], raft: RaftFlow | None
) -> list[float]:
    from seeclear_bench.metrics.flow import OcclusionThresholds

    assert variant.occlusion is not None
    thresholds = OcclusionThresholds(
        consistency_rel=variant.occlusion[0], consistency_abs=variant.occlusion[1],
        boundary_rel=variant.occlusion[2], boundary_abs=variant.occlusion[3],
    )
    raft = _raft_for(variant, pred_u8.device, raft)
    values: list[float] = []
    for chunk in _chunks(later):
        first = chunk[0] - 1
        frames_u8 = pred_u8[first : chunk[-1] + 1]
        working = _working_frames(variant, frames_u8)
        cur = [i - 1 - first for i in chunk]
        nxt = [i - first for i in chunk]
        flows = _flows(variant, frames_u8, working, cur + nxt, nxt + cur, raft)
        fw, bw = flows[: len(chunk)], flows[len(chunk) :]
        per_pair = warping_error(working[cur], working[nxt], fw, bw, thresholds=thresholds, reduction=variant.reduction)
        values.extend(per_pair.cpu().tolist())
    return values
