"""``seeclear-bench evaluate``: score an outside method's predicted clips against ground truth, one task per clip: on
Ray, or for a small job in this process (`pipelines._ray.use_ray`), with the same task function and results."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pipelines._ray import connect, run_local, run_tasks, use_ray
from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import RunLayout
from seeclear_bench.names import check_name
from seeclear_bench.stages import score_clip_pair


def run(
    pred_url: str,
    gt_url: str,
    *,
    method: str,
    dataset: str,
    protocols: Sequence[str],
    metrics: Sequence[str],
    out_url: str,
    address: str | None = None,
    progress: bool = True,
    task_cpus: float = 0.5,
    executor: str = "auto",
) -> pd.DataFrame:
    """Score every ground-truth clip against the prediction of the same name under each of ``protocols``; saves the
    per-frame, per-clip and per-dataset tables under ``{out_url}/metrics`` and returns the per-clip one.

    Resumable: each clip's rows are kept under ``{out_url}/metrics/parts/<dataset>/<protocol>/<clip>.parquet`` with a record of
    what was scored (protocol, metric hashes, SHA-256 of every decoded frame on both sides); running the same command
    again scores only the metrics and clips whose frames, protocol or metric changed, or that an interrupted run did
    not finish. ``method`` and ``dataset`` must be plain names (they name folders). ``executor``: ``auto`` (a small
    job in this process, else Ray), ``ray`` or ``local``.
    """
    from seeclear_bench.metrics.tables import clip_table, dataset_table, save_table
    from seeclear_bench.provenance import code_version, device_name

    check_name(method, "--method")
    check_name(dataset, "--dataset")
    layout = RunLayout(out_url)
    io.check_writable(out_url)
    gts, preds = _clips(gt_url, dataset), _clips(pred_url, dataset)
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if missing or extra:
        raise SeeClearError(
            f"predictions and ground truth name different clips: missing predictions {missing or 'none'}, "
            f"predictions without ground truth {extra or 'none'}"
        )
    calls = [(preds[c], gts[c], method, dataset, tuple(metrics), tuple(protocols), layout) for c in sorted(gts)]
    if use_ray(executor, len(calls), address):
        connect(address)
        results = run_tasks(_score, calls, desc="evaluate", num_cpus=task_cpus, progress=progress)
    else:
        results = run_local(_score, calls, desc="evaluate", progress=progress)
    frames = pd.concat(results, ignore_index=True)
    for key, value in {**code_version(), "device": device_name(), "predictions": pred_url, "ground_truth": gt_url}.items():
        frames[key] = value
    save_table(frames, layout.metrics("frames"))
    clips = clip_table(frames)
    save_table(clips, layout.metrics("clips"))
    save_table(dataset_table(clips, frames), layout.metrics("datasets"))
    return clips


def _clips(url: str, dataset: str) -> dict[str, object]:
    """Clips by id: a shard set (a folder with manifest.json), or frame folders / videos in any supported layout."""
    from seeclear_bench.data.schema import MANIFEST_NAME
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.data.sources import discover_clips

    if io.exists(io.join(url, MANIFEST_NAME)):
        return dict(ShardSet.open(url, dataset=dataset).clip_refs())
    return {ref.clip_id: ref for ref in discover_clips(url, dataset=dataset)}


def _score(pred: object, gt: object, method: str, dataset: str, metrics: Sequence[str], protocols: Sequence[str],
           layout: RunLayout) -> pd.DataFrame:
    """The Ray task: `score_clip_pair` with positional arguments."""
    return score_clip_pair(pred, gt, method=method, dataset=dataset, metrics=metrics, protocols=protocols,
                           layout=layout)
