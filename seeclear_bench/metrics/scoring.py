"""Scoring one clip with any mix of frame and clip metrics, into rows of the per-frame table.

Frame metrics (PSNR, SSIM, LPIPS, ...) give one row per scored frame; clip metrics (tOF, tLP, warping error) give one
row per temporal step, labelled with its later frame, so that clip-mean aggregation reproduces a clip's value and
frame-mean a dataset's FrameAvg. Metrics that score the prediction alone (warping error, NIQE, ...) are also computed
on the ground-truth clip once, as the method ``ground-truth``: warping error rewards blur, so a method's value only
means something beside the ground truth's.

Every row carries ``metric_hash``: the metric's parameters and, for learned metrics, the SHA-256 of the weight files
used, so a leaderboard can refuse to put two variants (or two weight files) in one column.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import pandas as pd

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import Protocol

GT_METHOD: Final = "ground-truth"


def split_metrics(metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Names of the frame metrics and of the clip metrics in ``metrics`` (unknown names raise with a hint)."""
    from seeclear_bench.metrics.registry import get_metric

    specs = [get_metric(name) for name in metrics]
    return [s.name for s in specs if s.kind == "frame"], [s.name for s in specs if s.kind == "clip"]


@functools.cache
def row_metric_hash(name: str) -> str:
    """The metric's parameter hash, extended with the SHA-256 of its weight files when it has any."""
    from seeclear_bench.metrics.registry import get_metric, metric_hash

    spec = get_metric(name)
    if not spec.weights:
        return metric_hash(name)
    from seeclear_bench.metrics.weights import digests

    payload = json.dumps({"metric": metric_hash(name), "weights": digests(spec.weights)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def score_clip(
    preds: Mapping[str, np.ndarray],
    gt: np.ndarray,
    *,
    dataset: str,
    clip: str,
    metrics: Sequence[str],
    protocol: Protocol,
    frames: Sequence[int] | None = None,
    gt_reference: bool = True,
) -> pd.DataFrame:
    """Score every method's prediction of one clip.

    Args:
        preds: ``{method: (t h w 3) uint8}`` predictions, each the same shape as ``gt``.
        gt: ``(t h w 3)`` uint8 ground truth.
        dataset: Dataset name for the rows.
        clip: Clip id for the rows.
        metrics: Metric names (frame and clip metrics may be mixed).
        protocol: The scoring protocol.
        frames: The clip's frame numbers (default ``0..t-1``); rows are labelled with these.
        gt_reference: Also score the ground truth with the metrics that read the prediction alone.

    Returns:
        The per-frame table rows (``seeclear_bench.metrics.tables`` schema) plus ``metric_hash``.
    """
    from seeclear_bench.metrics.registry import get_metric

    frame_names, clip_names = split_metrics(metrics)
    numbers = list(range(len(gt))) if frames is None else [int(f) for f in frames]
    if len(numbers) != len(gt):
        raise SeeClearError(f"{dataset}/{clip}: {len(numbers)} frame numbers for a clip of {len(gt)} frames")
    parts = []
    for method, pred in preds.items():
        if pred.shape != gt.shape:
            raise SeeClearError(
                f"{dataset}/{clip}: prediction of {method} is {tuple(pred.shape)}, ground truth {tuple(gt.shape)}; "
                "frame counts and sizes must match exactly (nothing is cropped or truncated)"
            )
        try:
            parts.extend(_score_one(method, pred, gt, dataset, clip, frame_names, clip_names, protocol, numbers))
        except SeeClearError as exc:
            message = str(exc)
            raise SeeClearError(message if f"{dataset}/{clip}" in message else f"{dataset}/{clip} ({method}): {message}") from None
    if gt_reference:
        prediction_only = [n for n in (*frame_names, *clip_names) if get_metric(n).reference == "none"]
        if prediction_only:
            parts.extend(_score_one(GT_METHOD, gt, gt, dataset, clip,
                                    [n for n in frame_names if n in prediction_only],
                                    [n for n in clip_names if n in prediction_only], protocol, numbers))
    if not parts:
        raise SeeClearError(f"{dataset}/{clip}: nothing to score (no predictions given)")
    rows = pd.concat(parts, ignore_index=True)
    rows["metric_hash"] = rows["metric"].map(row_metric_hash)
    return rows


def _score_one(method: str, pred: np.ndarray, gt: np.ndarray, dataset: str, clip: str, frame_names: list[str],
               clip_names: list[str], protocol: Protocol, numbers: list[int]) -> list[pd.DataFrame]:
    from seeclear_bench.metrics.registry import (
        compute_clip_metrics,
        compute_frame_metrics,
    )
    from seeclear_bench.metrics.tables import frame_rows

    parts = []
    if frame_names:
        values = compute_frame_metrics(pred, gt, metrics=frame_names, protocol=protocol)
        scored = [numbers[i] for i in protocol.frame_indices(len(gt))]
        parts.append(frame_rows(method=method, dataset=dataset, clip=clip, values=values, protocol=protocol, frames=scored))
    if clip_names:
        for name, result in compute_clip_metrics(pred, gt, metrics=clip_names, protocol=protocol).items():
            parts.append(frame_rows(method=method, dataset=dataset, clip=clip,
                                    values={name: result.values.detach().cpu().numpy()}, protocol=protocol,
                                    frames=[numbers[i] for i in result.frames]))
    return parts


def digest_frames(frames: Sequence[bytes] | np.ndarray) -> str:
    """SHA-256 over the SHA-256 of each frame (its encoded bytes, or a decoded array's raw bytes), in order: identifies
    exactly which frames one method (or the ground truth) had when a clip was scored."""
    digest = hashlib.sha256()
    for frame in frames:
        data = frame if isinstance(frame, bytes) else np.ascontiguousarray(frame).tobytes()
        digest.update(hashlib.sha256(data).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()
