"""``seeclear-bench evaluate``: score an outside method's predicted clips against ground truth, one Ray task per clip."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pipelines._ray import connect, run_tasks
from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.stages import score_clip_pair, shard_clips


def run(
    pred_url: str,
    gt_url: str,
    *,
    method: str,
    dataset: str,
    protocol: str,
    metrics: Sequence[str],
    out_url: str,
    address: str | None = None,
    progress: bool = True,
    task_cpus: float = 0.5,
) -> pd.DataFrame:
    """Score every ground-truth clip against the prediction of the same name; returns the per-clip table.

    Resumable: each clip's rows are kept under ``{out_url}/parts/<dataset>/<clip>.parquet`` with a record of what
    was scored (method, protocol, metric hashes, SHA-256 of every decoded frame); running the same command again
    re-scores only clips whose frames, protocol or metrics changed, or that an interrupted run did not finish.
    """
    from seeclear_bench.metrics.tables import clip_table, save_table
    from seeclear_bench.provenance import code_version, device_name

    io.check_writable(out_url)
    gts, preds = _clips(gt_url, dataset), _clips(pred_url, dataset)
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if missing or extra:
        raise SeeClearError(
            f"predictions and ground truth name different clips: missing predictions {missing or 'none'}, "
            f"predictions without ground truth {extra or 'none'}"
        )
    connect(address)
    calls = [(preds[c], gts[c], method, dataset, tuple(metrics), protocol,
              io.join(out_url, "parts", dataset, f"{c}.parquet")) for c in sorted(gts)]
    results = run_tasks(_score, calls,
                        desc="evaluate", num_cpus=task_cpus, progress=progress)
    frames = pd.concat(results, ignore_index=True)
    for key, value in {**code_version(), "device": device_name(), "predictions": pred_url, "ground_truth": gt_url}.items():
        frames[key] = value
    save_table(frames, io.join(out_url, "frames"))
    clips = clip_table(frames)
    save_table(clips, io.join(out_url, "clips"))
    return clips


def _clips(url: str, dataset: str) -> dict[str, object]:
    """Clips by id: a shard set (a folder with manifest.json), or frame folders / videos in any supported layout."""
    from seeclear_bench.data.sources import discover_clips

    if io.exists(io.join(url, "manifest.json")):
        return dict(shard_clips(url, dataset))
    return {ref.clip_id: ref for ref in discover_clips(url, dataset=dataset)}


def _score(pred: object, gt: object, method: str, dataset: str, metrics: Sequence[str], protocol: str,
           part_url: str) -> pd.DataFrame:
    """The Ray task: `score_clip_pair` with positional arguments."""
    return score_clip_pair(pred, gt, method=method, dataset=dataset, metrics=metrics, protocol_name=protocol,
                           part_url=part_url)
