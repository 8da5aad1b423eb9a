"""Infer stage: SeeClear on whole videos with Ray Data, the CaTeGory memory carried from clip to clip.

Owns `run` (the spec's ``infer`` stage), `infer_videos` (video rows -> frames + records), the video row builders
(`videos_from_shard_set`, `videos_from_url`) and `video_state`.

One Ray Data row is one video, so all of a video's clips go through one actor, in order (``SeeClear.sample`` carries
the memory across them); different videos run in parallel on a pool of callable-class actors (fractional CPUs; one
GPU each on GPU clusters) that load the checkpoint once. Each video's frames are written atomically as PNGs named by
their frame index (``00000012.png``) under ``<out>/<dataset>/<clip>/`` (with ``mp4``, also ``<clip>.mp4`` there:
H.264, CRF 18, yuv420p) and its record ``_records/video.json`` (checkpoint hash, preset, steps, seed, the SHA-256 of
every frame and of the mp4) last: a video without a valid record is redone whole, one with a record whose frames
verify is skipped (asked for an mp4 it lacks, the mp4 is encoded from its verified frames). A killed actor is restarted by Ray
Data and its video retried; a video is never written by two actors at once because each row is one task.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any, Final, Literal

from seeclear_bench import io
from seeclear_bench.config import TRAINED_CHECKPOINT, RunConfig
from seeclear_bench.errors import Failure, SeeClearError, one_line
from seeclear_bench.layout import PredictionSet, RunLayout

log = logging.getLogger(__name__)

METHOD: Final = "seeclear"
RECORD: Final = "video"  # the record of a whole video: <clip>/_records/video.json


# -- inputs -------------------------------------------------------------------------------------------------------
def videos_from_shard_set(url: str, dataset: str = "") -> list[dict[str, Any]]:
    """One row per clip of a prepared shard set: ``{"dataset", "clip_id", "kind": "shards", "clip", "input"}``
    (``clip``: the :class:`ShardClip` as JSON, its shards' recorded digests included; ``input``: the set's digest)."""
    from seeclear_bench.data.shardset import ShardSet

    shard_set = ShardSet.open(url, dataset=dataset)
    return [{"dataset": shard_set.dataset, "clip_id": clip.clip_id, "kind": "shards", "clip": clip.to_json(),
             "input": shard_set.digest} for clip in shard_set.clip_refs().values()]


def videos_from_url(url: str, *, dataset: str, layout: str = "auto") -> list[dict[str, Any]]:
    """One row per clip of LR frame folders or video files at ``url`` (any fsspec URL, layouts of
    ``seeclear_bench.data.sources.discover_clips``): ``{"dataset", "clip_id", "kind", "url", "frame_urls"}``."""
    from seeclear_bench.data.sources import discover_clips

    return [{"dataset": dataset, "clip_id": ref.clip_id, "kind": ref.kind, "url": ref.url,
             "frame_urls": list(ref.frame_urls)} for ref in discover_clips(url, layout=layout, dataset=dataset)]


def videos_from_input(url: str, *, dataset: str = "", layout: str = "auto") -> list[dict[str, Any]]:
    """Rows for any LR input: a prepared shard set (a folder with ``manifest.json``; its ``lr`` frames), or frame
    folders / video files (`videos_from_url`). ``dataset`` (checked as a plain name) defaults to the folder's name,
    made plain (:func:`seeclear_bench.names.plain_slug`)."""
    from seeclear_bench.data.schema import MANIFEST_NAME
    from seeclear_bench.names import check_name, plain_slug

    name = check_name(dataset, "--dataset") if dataset else \
        plain_slug(io.basename(url.rstrip("/")).rsplit(".", 1)[0] or "input")
    if io.exists(io.join(url, MANIFEST_NAME)):
        return videos_from_shard_set(url, name)
    return videos_from_url(url, dataset=name, layout=layout)


def read_video(row: dict[str, Any]) -> tuple[list[int], Any]:
    """A row's LR frames: (frame indices, (t h w 3) uint8); shard windows are merged by frame index, every shard
    verified against its manifest digest."""
    if row["kind"] == "shards":
        from seeclear_bench.data.shardset import ShardClip

        return ShardClip.from_json(row["clip"]).frames("lr")
    from seeclear_bench.data.sources import ClipRef, read_clip

    ref = ClipRef(dataset=row["dataset"], clip_id=row["clip_id"], url=row["url"], kind=row["kind"],
                  frame_urls=tuple(row.get("frame_urls") or ()))
    clip = read_clip(ref)
    return list(range(len(clip))), clip


# -- outputs ------------------------------------------------------------------------------------------------------
def video_url(out_url: str, row: dict[str, Any]) -> str:
    """The folder of one video's frames: ``<out>/<dataset>/<clip>`` (:class:`PredictionSet` checks both names)."""
    return PredictionSet(out_url).clip(row["dataset"], row["clip_id"])


def video_identity(row: dict[str, Any], method_config: dict[str, Any]) -> dict[str, Any]:
    """What a video's record must name to be reused: its input (the shard set's digest; empty for frame folders
    and videos, whose frames are read as they are) and the sampling settings."""
    from seeclear_bench.identity import prediction_identity

    return prediction_identity(str(row.get("input", "")), method_config)


def video_state(out_url: str, row: dict[str, Any], method_config: dict[str, Any], *,
                mp4: dict[str, Any] | None = None) -> Literal["complete", "frames", "missing"]:
    """``complete``: the video's record names its identity (`video_identity`) and every frame it lists verifies
    (and, with ``mp4`` settings, its mp4 was made with them and verifies); ``frames``: the frames are complete but the
    mp4 asked for is missing, stale or damaged; ``missing``: the video must be super-resolved (again)."""
    from seeclear_bench.stages import verified_record

    predictions = PredictionSet(out_url)
    dataset, clip = row["dataset"], row["clip_id"]
    record = verified_record(predictions, dataset, clip, predictions.record(dataset, clip, RECORD),
                             video_identity(row, method_config))
    if record is None:
        return "missing"
    if mp4 is None:
        return "complete"
    video = record.get("video") or {}
    if {k: video.get(k) for k in mp4} != mp4 or not isinstance(video.get("name"), str):
        return "frames"
    url = predictions.member(dataset, clip, video["name"])
    if not io.exists(url) or io.sha256_url(url) != video["sha256"]:
        return "frames"
    return "complete"


def mp4_settings(fps: int) -> dict[str, Any]:
    """How `VideoSuperResolver` encodes a video's mp4 (recorded; a change re-encodes it). ``fps`` 0: the input
    video's own frame rate (rounded), 25 for frame folders and shards; the rate used is recorded as ``rate``."""
    return {"codec": "libx264", "crf": 18, "pix_fmt": "yuv420p", "fps": int(fps)}


class VideoSuperResolver:
    """The Ray Data callable class: loads the checkpoint once, then super-resolves one video per call.

    Args:
        out_url: where videos are written (``<out>/<dataset>/<clip>``).
        checkpoint: a checkpoint folder URL (or ``builtin:NAME``).
        preset, steps, seed, device, distiller: as ``methods.seeclear``.
        extra_record: JSON-able fields added to every record (provenance, spec hash).
        mp4: `mp4_settings` to also write ``<clip>.mp4``, or None.
    """

    def __init__(self, out_url: str, checkpoint: str, preset: str = "", steps: int = 1, seed: int = 0,
                 device: str = "auto", extra_record: dict[str, Any] | None = None, distiller: str = "",
                 mp4: dict[str, Any] | None = None) -> None:
        self.out_url = out_url
        self.mp4 = mp4
        self.extra = dict(extra_record or {})
        self.failure: Failure | None = None
        try:
            from seeclear_bench.methods import SeeClearUpscaler

            self.upscaler = SeeClearUpscaler(checkpoint, preset=preset, steps=steps, seed=seed, device=device,
                                             distiller=distiller)
            io.write_json(io.join(out_url, "_actors", f"actor-{os.getpid()}.json"), {"pid": os.getpid()})
        except Exception as exc:
            # A constructor that raises kills the actor, and Ray Data reports ActorDiedError with the cause buried in
            # hundreds of lines; kept and reported for every video instead, it reaches the user as its one line.
            self.failure = Failure.capture(exc, f"the inference actor loading {checkpoint}")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One output row per video: ``video``, ``frames`` written, and for a failure its one line (``error``), its
        traceback and ``actor_failed`` (the actor could not be built, so no video could be done)."""
        videos, frames, errors, tracebacks, actor_failed = [], [], [], [], []
        for text in batch["row"]:
            row = json.loads(str(text))
            videos.append(f"{row['dataset']}/{row['clip_id']}")
            failure, n = self.failure, 0
            if failure is None:
                try:
                    n = self.write_video(row)["n"]
                except Exception as exc:  # any error is this video's, in one line; the other videos go on
                    failure = Failure.capture(exc)
            frames.append(n)
            errors.append(failure.message if failure else "")
            tracebacks.append(failure.traceback if failure else "")
            actor_failed.append(failure is not None and failure is self.failure)
        return {"video": videos, "frames": frames, "error": errors, "traceback": tracebacks,
                "actor_failed": actor_failed}

    def write_video(self, row: dict[str, Any]) -> dict[str, Any]:
        """Super-resolve one video (memory carried across its clips) and write its frames, then its record."""
        import numpy as np

        from seeclear_bench.data.frames import decode_frame, encode_png
        from seeclear_bench.layout import frame_name

        predictions = PredictionSet(self.out_url)
        dataset, clip = row["dataset"], row["clip_id"]
        folder = predictions.clip(dataset, clip)
        record_url = predictions.record(dataset, clip, RECORD)
        described = self.upscaler.describe()
        if self.mp4 is not None and row.get("state") == "frames":
            # the driver found the frames verified, only the mp4 missing or stale: encode it from them
            record = io.read_json(record_url)
            hr = np.stack([decode_frame(io.read_bytes(url), name=url)
                           for url in (predictions.member(dataset, clip, n) for n in sorted(record["frames"]))])
            io.remove(record_url)
            io.write_json(record_url, {**record, "video": self._write_mp4(folder, row, hr)})
            return {**row, "n": len(hr)}
        indices, lr = read_video(row)
        key = f"{dataset}/{clip}"
        hr = self.upscaler(lr, self.upscaler.model.config.scale, key=key)
        io.remove(record_url)  # a redone video must not look complete while it is being written
        checksums = {}
        for index, frame in zip(indices, hr):
            data = encode_png(frame)
            io.write_bytes(predictions.frame(dataset, clip, index), data)
            checksums[frame_name(index)] = io.sha256_bytes(data)
        record = {
            "method": METHOD, "identity": video_identity(row, described),
            "device": self.upscaler.device, "dataset": dataset,
            "clip": clip, "frames": checksums, "clip_frames": self.upscaler.model.config.clip_frames,
            **self.extra,
        }
        if self.mp4 is not None:
            record["video"] = self._write_mp4(folder, row, hr)
        io.write_json(record_url, record)
        return {**row, "n": len(indices)}

    def _write_mp4(self, folder: str, row: dict[str, Any], hr: Any) -> dict[str, Any]:
        from seeclear_bench.data.video import encode_video

        assert self.mp4 is not None
        name = f"{row['clip_id']}.mp4"
        settings = self.mp4
        rate = settings["fps"]
        if not rate:
            from seeclear_bench.data.video import video_rate

            rate = max(1, round(video_rate(row["url"]) or 25)) if row.get("kind") == "video" else 25
        encode_video(hr, io.join(folder, name), codec=settings["codec"], fps=rate, crf=settings["crf"],
                     pix_fmt=settings["pix_fmt"])
        return {"name": name, **settings, "rate": rate, "sha256": io.sha256_url(io.join(folder, name))}


def infer_videos(
    rows: Sequence[dict[str, Any]],
    out_url: str,
    *,
    checkpoint: str,
    preset: str = "",
    steps: int = 1,
    seed: int = 0,
    device: str = "auto",
    distiller: str = "",
    mp4: bool = False,
    fps: int = 0,
    cpus_per_actor: float = 0.5,
    actors: int = 0,
    extra_record: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Super-resolve every video row with a Ray Data actor pool; skip videos already complete and verified.

    Args:
        rows: from `videos_from_shard_set` / `videos_from_url`.
        out_url: output root (``<out>/<dataset>/<clip>/<frame>.png``).
        checkpoint: checkpoint folder URL or ``builtin:NAME``.
        preset, steps, seed, device: sampling settings (as ``methods.seeclear``).
        distiller: the frozen CLIPSeg's folder or cached hub id, for checkpoints whose network uses it.
        mp4: also write each video as ``<clip>.mp4`` (H.264) beside its frames, at ``fps`` frames per second (0: an
            input video's own rate, else 25).
        cpus_per_actor: CPU share of each actor.
        actors: most actors (0: one per GPU, else 2).
        extra_record: added to every record.
        progress: Ray Data's progress bars.

    Returns:
        {"written": videos written, "skipped": videos already complete}.

    Raises:
        SeeClearError: a bad checkpoint (the actors could not load it: its own line, naming the checkpoint), a video
            that failed (the first one's line; with ``--debug`` its traceback in the actor), or a video still
            incomplete after the run. Every failure inside Ray comes back as one line.
    """
    import ray

    from pipelines._ray import cluster_gpus, root_cause

    if not rows:
        return {"written": 0, "skipped": 0}
    keys = [(r["dataset"], r["clip_id"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise SeeClearError(f"infer: duplicate videos in the input: {sorted({k for k in keys if keys.count(k) > 1})[:3]}")
    from seeclear_bench.methods import describe_checkpoint

    described = describe_checkpoint(checkpoint, steps=steps, seed=seed)
    video = mp4_settings(fps) if mp4 else None
    states = [video_state(out_url, r, described, mp4=video) for r in rows]
    todo = [{**r, "state": state} for r, state in zip(rows, states) if state != "complete"]
    if todo:
        gpus = cluster_gpus()
        use_gpu = gpus >= 1 and device != "cpu"
        pool = actors or (int(gpus) if use_gpu else 2)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        if not log.isEnabledFor(logging.INFO):  # Ray Data's execution plan and timing are for --verbose only
            logging.getLogger("ray.data").setLevel(logging.ERROR)
        items = ray.data.from_items([{"row": json.dumps(r)} for r in todo], override_num_blocks=len(todo))
        ds = items.map_batches(
            VideoSuperResolver, batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, min(pool, len(todo)))),
            num_cpus=cpus_per_actor, num_gpus=1 if use_gpu else 0,
            fn_constructor_kwargs={"out_url": out_url, "checkpoint": checkpoint, "preset": preset, "steps": steps,
                                   "seed": seed, "device": device, "extra_record": extra_record,
                                   "distiller": distiller, "mp4": video},
        )
        try:
            failed = [r for r in ds.take_all() if r["error"]]
        except Exception as exc:  # Ray's own failures (an actor that died past its restarts): one line too
            cause = root_cause(exc)
            if isinstance(cause, SeeClearError):
                raise SeeClearError(str(cause)) from None
            raise SeeClearError(f"infer: {one_line(cause, 'the inference actors')}") from exc
        if failed:
            first = Failure(message=str(failed[0]["error"]), kind="", traceback=str(failed[0]["traceback"]))
            if failed[0]["actor_failed"]:  # no video could be done: the actor's own line names the cause
                raise first.error()
            others = "; the others are written" if len(failed) < len(todo) else ""
            raise first.error(f"infer: {len(failed)} of {len(todo)} video(s) failed ({failed[0]['video']}: "
                              f"{first.message}){others}")
    missing = [f"{r['dataset']}/{r['clip_id']}" for r in todo
               if video_state(out_url, r, described, mp4=video) != "complete"]
    if missing:
        raise SeeClearError(f"infer: {len(missing)} video(s) incomplete after the run ({missing[:3]}); run it again")
    return {"written": len(todo), "skipped": len(rows) - len(todo)}


def trained_checkpoint(layout: RunLayout, weights: Literal["model", "ema"] = "ema") -> str:
    """The ``train`` stage's newest checkpoint exported as a slim inference checkpoint (``weights``), once per step.

    Raises:
        SeeClearError: the run holds no complete checkpoint.
    """
    from pipelines.train import _latest_valid
    from seeclear_bench.checkpoints import checkpoint_hash, export_checkpoint

    train = layout.train()
    src = _latest_valid(train)
    if src is None:
        raise SeeClearError(f"{TRAINED_CHECKPOINT}: no complete checkpoint under {train}; run 'train'")
    dst = io.join(train, "export", f"{src.rstrip('/').rsplit('/', 1)[-1]}-{weights}")
    marker = io.join(dst, "SOURCE.json")
    if io.exists(marker) and io.read_json(marker).get("source_hash") == checkpoint_hash(src):
        return dst
    export_checkpoint(src, dst, weights=weights)
    io.write_json(marker, {"source": src, "source_hash": checkpoint_hash(src), "weights": weights})
    return dst


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, checkpoint: str | None = None,
        progress: bool = True) -> dict[str, int]:
    """The ``infer`` stage: SeeClear on every clip of ``cfg.infer.datasets`` (default: all sources), written where
    ``evaluate`` reads predictions (``predictions/seeclear``).

    Args:
        checkpoint: overrides ``methods.seeclear.checkpoint`` (``run.py`` passes the trained one for ``run:train``).
    """
    from seeclear_bench.provenance import record

    s = cfg.methods.seeclear
    url = checkpoint or s.checkpoint
    if url == TRAINED_CHECKPOINT:
        url = trained_checkpoint(layout, cfg.infer.weights)
    datasets = list(cfg.infer.datasets) or [src.name for src in cfg.data.sources]
    rows = [row for d in datasets for row in videos_from_shard_set(layout.shards(d), d)]
    return infer_videos(rows, layout.predictions(METHOD).root, checkpoint=url, preset=s.preset,
                        steps=s.steps, seed=s.seed, device=s.device, distiller=cfg.seeclear_distiller(),
                        mp4=cfg.infer.mp4, fps=cfg.infer.fps,
                        cpus_per_actor=cfg.infer.cpus_per_actor,
                        actors=cfg.infer.actors, extra_record=record(spec_hash=spec_hash, seed=cfg.seed),
                        progress=progress)
