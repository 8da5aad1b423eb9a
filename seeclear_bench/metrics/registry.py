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
    """

    name: str
    higher_better: bool
    unit: str
    kind: Literal["frame", "clip"]
    description: str
    fn: FrameMetricFn | None = None
    decimals: int = 4
    display_name: str = ""


def _psnr(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import fidelity

    return fidelity.psnr(pred, gt, channel=protocol.channel, crop_border=protocol.crop_border)


def _ssim(pred: FramesLike, gt: FramesLike, protocol: Protocol) -> torch.Tensor:
    from seeclear_bench.metrics import fidelity

    return fidelity.ssim(pred, gt, channel=protocol.channel, crop_border=protocol.crop_border)


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
