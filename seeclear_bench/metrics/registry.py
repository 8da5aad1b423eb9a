"""The metric catalogue: one :class:`MetricSpec` per metric name, and per-frame scoring of a clip under a protocol.

Owns metric metadata (ranking direction, unit, display precision) and the one function signature every frame metric
shares, :class:`FrameMetricFn`: ``fn(pred, gt, protocol) -> (n,) float64 tensor``. Adding LPIPS, DISTS or a temporal
metric means adding a spec to :data:`METRICS` whose function reads what it needs from the protocol (and, for learned
metrics, loads local weights lazily inside the function).

Importing this module is cheap: torch and the metric implementations are imported inside the metric functions, so
tables and leaderboards can use the metadata without torch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from typing import Protocol as TypingProtocol

import numpy as np

from seeclear_bench.errors import SeeClearError, did_you_mean
from seeclear_bench.metrics.protocols import Protocol

if TYPE_CHECKING:
    import torch

    from seeclear_bench.metrics.fidelity import FramesLike


class FrameMetricFn(TypingProtocol):
    """Scores ``(n h w 3)`` frame pairs under a protocol, returning ``(n,)`` float64 values on the inputs' device."""

    def __call__(self, pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor: ...


@dataclass(frozen=True)
class MetricSpec:
    """Static description of a metric.

    Attributes:
        name: Key in :data:`METRICS` and in the ``metric`` column of results tables.
        higher_better: Ranking direction (PSNR, SSIM: True; LPIPS, DISTS, tOF: False).
        unit: Display unit ("dB", "" for unitless).
        kind: ``"frame"``: one value per scored frame; ``"clip"``: one value per clip.
        description: One line naming the definition and the reference implementation it matches.
        fn: The scoring function (``kind == "frame"``), shared signature :class:`FrameMetricFn`.
        decimals: Digits after the decimal point in leaderboards.
        display_name: Column label in leaderboards (default: ``name`` upper-cased).
        clip_fn: The scoring function (``kind == "clip"``), shared signature :class:`ClipMetricFn`.
        reference: ``"full"`` compares with ground truth; ``"none"`` scores the prediction alone (gt is ignored).
        weights: Names in :data:`seeclear_bench.metrics.weights.WEIGHTS` of the local files the metric loads.
        protocol_fields: The :class:`Protocol` fields the metric's values depend on (:func:`same_values_under`).
            tOF, tLP and warping error fix their own colour and crop, so only the frame selection matters to them.
    """

    name: str
    higher_better: bool
    unit: str
    kind: Literal["frame", "clip"]
    description: str
    fn: FrameMetricFn | None = None
    decimals: int = 4
    display_name: str = ""
    clip_fn: ClipMetricFn | None = None
    reference: Literal["full", "none"] = "full"
    weights: tuple[str, ...] = ()
    protocol_fields: tuple[str, ...] = ("channel", "crop", "crop_border", "rounding", "frame_selection")


# what the tables do with a metric's rows: the dataset mean, and the mean of infinite values
_AGGREGATION_FIELDS: Final = ("aggregation", "inf_policy", "psnr_cap", "data_range")
_RGB_FIELDS: Final = ("crop", "crop_border", "rounding", "frame_selection")


def same_values_under(name: str, protocol: Protocol) -> str:
    """A key of what metric ``name`` reads of ``protocol`` (:attr:`MetricSpec.protocol_fields`) and how its rows are
    aggregated: two protocols with the same key give the metric identical rows and means, so a clip scored under
    several protocols scores it once (under the first) and lists it once."""
    import hashlib
    import json

    fields = {f: getattr(protocol, f) for f in (*get_metric(name).protocol_fields, *_AGGREGATION_FIELDS)}
    canonical = json.dumps({"metric": name, "protocol": fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def apply_protocol_crop(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> tuple[FramesLike, FramesLike, int]:
    """Cut ``(n h w 3)`` frames to the protocol's ``teco-32`` box; returns (pred, gt, border crop still to apply)."""
    if protocol.crop != "teco-32":
        return pred, gt, protocol.crop_border
    from seeclear_bench.metrics.protocols import teco_crop_box

    top, left, ch, cw = teco_crop_box(int(gt.shape[-3]), int(gt.shape[-2]))
    box = (Ellipsis, slice(top, top + ch), slice(left, left + cw), slice(None))
    return pred[box], gt[box], 0


def _psnr(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import fidelity

    pred, gt, border = apply_protocol_crop(pred, gt, protocol)
    return fidelity.psnr(pred, gt, channel=protocol.channel, crop_border=border)


def _ssim(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import fidelity

    pred, gt, border = apply_protocol_crop(pred, gt, protocol)
    return fidelity.ssim(pred, gt, channel=protocol.channel, crop_border=border)


METRICS: Final[dict[str, MetricSpec]] = {
    "psnr": MetricSpec(
        name="psnr",
        higher_better=True,
        unit="dB",
        kind="frame",
        description="PSNR, peak 255, float64 on uint8-rounded frames; BasicSR calculate_psnr",
        fn=_psnr,
        decimals=2,
    ),
    "ssim": MetricSpec(
        name="ssim",
        higher_better=True,
        unit="",
        kind="frame",
        description="SSIM, 11x11 Gaussian sigma 1.5, valid filtering, per channel then mean; BasicSR/MATLAB ssim",
        fn=_ssim,
        decimals=4,
    ),
}


def get_metric(name: str) -> MetricSpec:
    """Return the spec of metric ``name``.

    Raises:
        SeeClearError: Unknown name; the message lists the metrics and the closest match.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise SeeClearError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}{did_you_mean(str(name).lower(), METRICS)}") from None


def compute_frame_metrics(
    pred: FramesLike, gt: FramesLike, *, metrics: Sequence[str], protocol: Protocol
) -> dict[str, np.ndarray]:
    """Score one clip's frames with several frame metrics under ``protocol``.

    The protocol's frame selection is applied here: the values belong to frames ``protocol.frame_indices(t)`` in that
    order (pass those indices on to :func:`seeclear_bench.metrics.tables.frame_rows`).

    Args:
        pred: ``(t h w 3)`` RGB prediction (uint8, or float on the 0-255 scale), numpy or torch, any device.
        gt: ``(t h w 3)`` ground truth.
        metrics: Metric names, each a key of :data:`METRICS` with ``kind == "frame"``.
        protocol: The scoring protocol.

    Returns:
        ``{name: (s,) float64 array}`` for the ``s`` selected frames; PSNR is ``inf`` on identical frames.

    Raises:
        SeeClearError: Unknown, repeated or non-frame metric names (checked before any work), mismatched clip lengths
            and every input problem :mod:`seeclear_bench.metrics.fidelity` reports.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        raise SeeClearError(f"metrics must name at least one of {sorted(METRICS)}, got an empty list")
    specs = [get_metric(name) for name in metrics]
    for i, spec in enumerate(specs):
        if spec.name in metrics[:i]:
            raise SeeClearError(f"metric {spec.name!r} is listed twice in {list(metrics)}; list each metric once")
        if spec.kind != "frame" or spec.fn is None:
            raise SeeClearError(f"metric {spec.name!r} is a {spec.kind} metric; compute_frame_metrics scores frame metrics only")
    pred_len, gt_len = _clip_length(pred), _clip_length(gt)
    if pred_len != gt_len:
        raise SeeClearError(
            f"pred has {pred_len} frames but gt has {gt_len}; score clips of equal length (nothing is truncated silently)"
        )
    index = protocol.frame_indices(pred_len)
    if len(index) != pred_len:
        pred, gt = pred[index], gt[index]
    results: dict[str, np.ndarray] = {}
    for spec in specs:
        assert spec.fn is not None
        values = spec.fn(pred, gt, protocol)
        results[spec.name] = values.detach().cpu().numpy().astype(np.float64, copy=False)
    return results


def _clip_length(frames: FramesLike) -> int:
    shape = tuple(getattr(frames, "shape", ()))
    if len(shape) != 4:
        raise SeeClearError(f"a clip must be shaped (t, h, w, 3), got {shape or type(frames).__name__}")
    return int(shape[0])


# -- learned metrics (LPIPS, DISTS, tLP, no-reference IQA); networks load local weights inside the functions --------
@dataclass(frozen=True)
class ClipValues:
    """What a clip metric returns: one value per temporal step, each attributed to a frame of the clip.

    The clip's value is the mean of ``values`` (the metric's definition). Stored as rows of the per-frame table
    (``frame`` = the label), frame-mean aggregation over a dataset reproduces TecoGAN's FrameAvg and clip-mean its
    FolderAvg.

    Attributes:
        values: ``(k,)`` float64 step values.
        frames: ``k`` frame indices, e.g. the later frame ``t`` of each pair ``(t-1, t)``.
    """

    values: torch.Tensor
    frames: tuple[int, ...]


class ClipMetricFn(TypingProtocol):
    """Scores a whole ``(t h w 3)`` clip pair under a protocol, returning per-step :class:`ClipValues`."""

    def __call__(self, pred: FramesLike, gt: FramesLike, protocol: Protocol) -> ClipValues: ...


def _lpips_alex(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import perceptual

    pred, gt, border = apply_protocol_crop(pred, gt, protocol)
    return perceptual.lpips(pred, gt, net="alex", crop_border=border)


def _lpips_vgg(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import perceptual

    pred, gt, border = apply_protocol_crop(pred, gt, protocol)
    return perceptual.lpips(pred, gt, net="vgg", crop_border=border)


def _dists(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import perceptual

    pred, gt, border = apply_protocol_crop(pred, gt, protocol)
    return perceptual.dists(pred, gt, crop_border=border)


def _no_reference(metric: Literal["niqe", "musiq", "clipiqa"]) -> FrameMetricFn:
    def score(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
        from seeclear_bench.metrics import perceptual

        pred, _, border = apply_protocol_crop(pred, gt, protocol)
        return perceptual.no_reference(pred, metric=metric, crop_border=border)

    return score


def _tlp(variant: Literal["tecogan", "stablevsr"]) -> ClipMetricFn:
    def score(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> ClipValues:
        from seeclear_bench.metrics import perceptual

        if protocol.frame_selection != "all":
            raise SeeClearError(
                f"tLP compares consecutive frames but protocol {protocol.name!r} scores only frame selection "
                f"{protocol.frame_selection!r}; use a protocol with frame_selection='all'"
            )
        return perceptual.tlp(pred, gt, variant=variant)

    return score


METRICS.update(
    {
        "lpips": MetricSpec(
            name="lpips",
            higher_better=False,
            unit="",
            kind="frame",
            description="LPIPS v0.1 AlexNet, RGB in [-1, 1] (x/127.5-1), protocol crop; lpips package = pyiqa 'lpips'",
            fn=_lpips_alex,
            weights=("alexnet", "lpips-alex-v0.1"),
            protocol_fields=_RGB_FIELDS,
        ),
        "lpips-vgg": MetricSpec(
            name="lpips-vgg",
            higher_better=False,
            unit="",
            kind="frame",
            description="LPIPS v0.1 VGG16, RGB in [-1, 1] (x/127.5-1), protocol crop; BasicSR calculate_lpips.py",
            fn=_lpips_vgg,
            display_name="LPIPS-VGG",
            weights=("vgg16", "lpips-vgg-v0.1"),
            protocol_fields=_RGB_FIELDS,
        ),
        "dists": MetricSpec(
            name="dists",
            higher_better=False,
            unit="",
            kind="frame",
            description="DISTS (Ding et al. 2020), RGB in [0, 1], protocol crop; pyiqa 'dists' architecture (pyiqa needed)",
            fn=_dists,
            weights=("vgg16", "dists"),
            protocol_fields=_RGB_FIELDS,
        ),
        "tlp": MetricSpec(
            name="tlp",
            higher_better=False,
            unit="",
            kind="clip",
            description="tLP x100: mean |LPIPS(g_t-1,g_t)-LPIPS(b_t-1,b_t)|, AlexNet v0.1, crop_8x8, 2 end frames skipped; TecoGAN",
            clip_fn=_tlp("tecogan"),
            decimals=2,
            display_name="tLP",
            weights=("alexnet", "lpips-alex-v0.1"),
            protocol_fields=("frame_selection",),
        ),
        "tlp-stablevsr": MetricSpec(
            name="tlp-stablevsr",
            higher_better=False,
            unit="",
            kind="clip",
            description="tLP x1e3: mean |LPIPS(g_t-1,g_t)-LPIPS(b_t-1,b_t)| over all pairs, AlexNet v0.1, full frame; StableVSR",
            clip_fn=_tlp("stablevsr"),
            decimals=2,
            display_name="tLP-StableVSR",
            weights=("alexnet", "lpips-alex-v0.1"),
            protocol_fields=("frame_selection",),
        ),
        "niqe": MetricSpec(
            name="niqe",
            higher_better=False,
            unit="",
            kind="frame",
            description="NIQE, no reference (gt ignored), pyiqa 'niqe' (Y of YIQ, original parameters; pyiqa needed)",
            fn=_no_reference("niqe"),
            reference="none",
            decimals=3,
            weights=("niqe",),
            protocol_fields=_RGB_FIELDS,
        ),
        "musiq": MetricSpec(
            name="musiq",
            higher_better=True,
            unit="",
            kind="frame",
            description="MUSIQ KonIQ-10k, no reference (gt ignored), pyiqa 'musiq' (pyiqa needed)",
            fn=_no_reference("musiq"),
            reference="none",
            decimals=2,
            display_name="MUSIQ",
            weights=("musiq-koniq",),
            protocol_fields=_RGB_FIELDS,
        ),
        "clipiqa": MetricSpec(
            name="clipiqa",
            higher_better=True,
            unit="",
            kind="frame",
            description="CLIP-IQA (RN50, antonym prompts), no reference (gt ignored), pyiqa 'clipiqa' (pyiqa needed)",
            fn=_no_reference("clipiqa"),
            reference="none",
            display_name="CLIP-IQA",
            weights=("clip-rn50",),
            protocol_fields=_RGB_FIELDS,
        ),
    }
)


# -- temporal flow-based metrics (tOF, warping error); definitions in seeclear_bench.metrics.temporal --------------
def _temporal_spec(name: str, *, display_name: str, description: str, decimals: int) -> MetricSpec:
    from seeclear_bench.metrics import temporal  # standard library only at import time

    variant = temporal.get_variant(name)
    return MetricSpec(
        name=name,
        higher_better=False,
        unit="",
        kind="clip",
        description=description,
        clip_fn=temporal.make_clip_fn(name),
        decimals=decimals,
        display_name=display_name,
        reference="none" if variant.quantity == "ewarp" else "full",
        weights=(variant.weights,) if variant.weights else (),
        protocol_fields=("frame_selection",),
    )


METRICS.update(
    {
        spec.name: spec
        for spec in (
            _temporal_spec(
                "tof", display_name="tOF", decimals=4,
                description="tOF: mean ||OF(g_t-1,g_t)-OF(b_t-1,b_t)||_2, Farneback on gray, crop_8x8, 2 end frames skipped; TecoGAN",
            ),
            _temporal_spec(
                "tof-stablevsr", display_name="tOF-StableVSR", decimals=3,
                description="tOF x10: mean |OF_b-OF_g| over both components, RAFT-large C_T_SKHT_V2 12 it., [0,1] input, all pairs; StableVSR",
            ),
            _temporal_spec(
                "ewarp", display_name="E*warp", decimals=3,
                description="E_warp x1e3 (Lai et al.) of the prediction, RAFT-large C_T_SKHT_V2 fwd+bwd, occlusion mask, sum RGB / valid px",
            ),
            _temporal_spec(
                "ewarp-evalcrafter", display_name="E*warp-EvalCrafter", decimals=3,
                description="E_warp x1e3 as EvalCrafter: RGB/255, 0.5x bilinear, RAFT-things (C_T_V1) 20 it. fwd+bwd, occlusion, / valid px",
            ),
            _temporal_spec(
                "ewarp-stablevsr", display_name="E*warp-StableVSR", decimals=3,
                description="E_warp x1e3 / 3 (StableVSR warp_error reduction: / 3 x valid px); otherwise as ewarp",
            ),
        )
    }
)


def metric_params(name: str) -> dict[str, object]:
    """Every numerics-changing choice metric ``name`` makes beyond the protocol, for hashing.

    Temporal metrics return their :meth:`~seeclear_bench.metrics.temporal.TemporalVariant.params` (flow method,
    weights, iterations, resolution, input range, padding, crop, frame skip, occlusion thresholds, reduction, scale);
    other metrics the names of the weight files they load.
    """
    from seeclear_bench.metrics import temporal

    spec = get_metric(name)
    if name in temporal.VARIANTS:
        return temporal.VARIANTS[name].params()
    return {"weights": list(spec.weights)} if spec.weights else {}


def metric_hash(name: str) -> str:
    """First 12 hex digits of the sha256 of ``{"name": name, "params": metric_params(name)}`` as canonical JSON.

    Rows of two metrics (or two versions of one metric) with different hashes must not share a leaderboard column.
    """
    import hashlib
    import json

    canonical = json.dumps({"name": name, "params": metric_params(name)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def compute_clip_metrics(
    pred: FramesLike, gt: FramesLike, *, metrics: Sequence[str], protocol: Protocol
) -> dict[str, ClipValues]:
    """Score one whole clip with several clip metrics (tOF, tLP, warping error) under ``protocol``.

    Args:
        pred: ``(t h w 3)`` RGB prediction (uint8, or float on the 0-255 scale), numpy or torch, any device.
        gt: ``(t h w 3)`` ground truth (shape-checked also by metrics that score the prediction alone).
        metrics: Metric names, each a key of :data:`METRICS` with ``kind == "clip"``.
        protocol: The scoring protocol (clip metrics need ``frame_selection == "all"``).

    Returns:
        ``{name: ClipValues}``: per-step values labelled by frame; a clip's value is ``values.mean()``.

    Raises:
        SeeClearError: Unknown, repeated or non-clip metric names (checked before any work), mismatched clip lengths,
            and every input problem the metrics report (too few frames, frames too small, missing weights).
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        clip_names = sorted(n for n, s in METRICS.items() if s.kind == "clip")
        raise SeeClearError(f"metrics must name at least one of {clip_names}, got an empty list")
    specs = [get_metric(name) for name in metrics]
    for i, spec in enumerate(specs):
        if spec.name in metrics[:i]:
            raise SeeClearError(f"metric {spec.name!r} is listed twice in {list(metrics)}; list each metric once")
        if spec.kind != "clip" or spec.clip_fn is None:
            raise SeeClearError(f"metric {spec.name!r} is a {spec.kind} metric; compute_clip_metrics scores clip metrics only")
    pred_len, gt_len = _clip_length(pred), _clip_length(gt)
    if pred_len != gt_len:
        raise SeeClearError(
            f"pred has {pred_len} frames but gt has {gt_len}; score clips of equal length (nothing is truncated silently)"
        )
    results: dict[str, ClipValues] = {}
    for spec in specs:
        assert spec.clip_fn is not None
        results[spec.name] = spec.clip_fn(pred, gt, protocol)
    return results
