"""The predict stage's unit of work, free of Ray: one whole LR video through every method that still needs it.

Owns the video rows (`videos_from_shard_set`, `videos_from_url`, `videos_from_input`: one JSON-able row per video),
reading a row's LR frames (`read_video`), the state of a method's prediction of a video (`video_state`),
`predict_video` (what one actor does with one row), the record format and `read_predicted_frames` (how evaluate
reads what this stage wrote), and `run_methods` (the spec's methods with ``run:train`` resolved).

A method predicts a whole video in one call (:mod:`seeclear_bench.methods`), so SeeClear carries its CaTeGory memory
across all of a video's clips. Each video's frames are written atomically as PNGs named by frame index
(``00000012.png``) under ``<predictions>/<dataset>/<clip>/`` (with ``mp4``, also ``<clip>.mp4``: H.264, CRF 18,
yuv420p), then its record ``_records/video.json`` last: the identity (:func:`seeclear_bench.identity.
prediction_identity`), the SHA-256 of every frame and of the mp4, the device and provenance. A video whose record
names the same identity and whose frames verify is skipped; asked for an mp4 it lacks, the mp4 is encoded from its
verified frames. ``pipelines/upscale.py`` runs this on Ray actors; it imports no ray.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError, one_line
from seeclear_bench.layout import PredictionSet, frame_name

if TYPE_CHECKING:
    import numpy as np

    from seeclear_bench.config import MethodsConfig, RunConfig
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.methods import Upscaler

log = logging.getLogger(__name__)

RECORD: Final = "video"  # the record of a whole video: <clip>/_records/video.json
State = Literal["complete", "frames", "missing"]


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


def read_video(row: Mapping[str, Any]) -> tuple[list[int], np.ndarray, int]:
    """A row's whole LR video: (frame indices, ``(t h w 3)`` uint8, the input's scale or 0 when it has none).

    A shard set's windows are merged by frame index (every shard verified against its manifest digest), and its
    scale is its HR size over its LR size.
    """
    import numpy as np

    if row["kind"] == "shards":
        from seeclear_bench.data.shardset import ShardClip

        by_index = ShardClip.from_json(row["clip"]).both()
        indices = sorted(by_index)
        lr, hr = by_index[indices[0]]
        return indices, np.stack([by_index[i][0] for i in indices]), hr.shape[0] // lr.shape[0]
    from seeclear_bench.data.sources import ClipRef, read_clip

    ref = ClipRef(dataset=row["dataset"], clip_id=row["clip_id"], url=row["url"], kind=row["kind"],
                  frame_urls=tuple(row.get("frame_urls") or ()))
    clip = read_clip(ref)
    return list(range(len(clip))), clip, 0


# -- state --------------------------------------------------------------------------------------------------------
def video_identity(row: Mapping[str, Any], described: dict[str, Any]) -> dict[str, Any]:
    """What a method's record of this video must name to be reused: the input (the shard set's digest; empty for
    frame folders and videos), the scale asked for and the method's description."""
    from seeclear_bench.identity import prediction_identity

    return prediction_identity(str(row.get("input", "")), described, int(row.get("scale") or 0))


def verified_record(predictions: PredictionSet, dataset: str, clip: str, record_url: str,
                    identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """A prediction record whose every listed frame (``"frames"``: name -> SHA-256, plain names inside the clip's
    folder) exists and verifies, and that names ``identity`` (None: any); None otherwise (missing, other inputs or
    settings, or a damaged frame)."""
    if not io.exists(record_url):
        return None
    record = io.read_json(record_url)
    if not isinstance(record, dict) or not record.get("frames") or \
            (identity is not None and record.get("identity") != identity):
        return None
    for name, digest in record["frames"].items():
        frame_url = predictions.member(dataset, clip, name)
        if not io.exists(frame_url) or io.sha256_url(frame_url) != digest:
            return None
    return dict(record)


def video_state(out_url: str, row: Mapping[str, Any], described: dict[str, Any], *,
                mp4: dict[str, Any] | None = None) -> State:
    """``complete``: the video's record under ``out_url`` names its identity (`video_identity`) and every frame it
    lists verifies (and, with ``mp4`` settings, its mp4 was made with them and verifies); ``frames``: the frames are
    complete but the mp4 asked for is missing, stale or damaged; ``missing``: the video must be predicted (again)."""
    predictions = PredictionSet(out_url)
    dataset, clip = row["dataset"], row["clip_id"]
    record = verified_record(predictions, dataset, clip, predictions.record(dataset, clip, RECORD),
                             video_identity(row, described))
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
    """How a video's mp4 is encoded (recorded; a change re-encodes it). ``fps`` 0: the input video's own frame rate
    (rounded), 25 for frame folders and shards; the rate used is recorded as ``rate``."""
    return {"codec": "libx264", "crf": 18, "pix_fmt": "yuv420p", "fps": int(fps)}


# -- one video ----------------------------------------------------------------------------------------------------
def predict_video(row: Mapping[str, Any], methods: Mapping[str, Upscaler], outputs: Mapping[str, str], *,
                  extra_record: Mapping[str, Any] | None = None, mp4: dict[str, Any] | None = None) -> int:
    """Predict one whole video with each method of ``methods`` that ``row["todo"]`` lists, writing each one's frames
    and then its record; returns how many methods were written.

    Args:
        row: a video row plus ``todo`` (method -> `video_state`, not ``complete``) and ``scale`` (asked for; 0: the
            input's own, else the method's).
        methods: built methods by name (those of ``todo`` to run now).
        outputs: the prediction folder of each method (``<out>/<dataset>/<clip>``).
        extra_record: JSON-able fields added to every record (provenance, spec hash).
        mp4: `mp4_settings`, to also write ``<clip>.mp4``; None: frames only.

    Raises:
        SeeClearError: an unreadable input (naming it), a method that fails or returns the wrong frame count, size
            or dtype (``method <name> on <dataset>/<clip>: <what>``), or no scale known.
    """
    from seeclear_bench.methods import hr_problem
    from seeclear_bench.provenance import device_name

    dataset, clip = row["dataset"], row["clip_id"]
    video: tuple[list[int], np.ndarray, int] | None = None
    written = 0
    for name, method in methods.items():
        state = row["todo"][name]
        predictions = PredictionSet(outputs[name])
        record_url = predictions.record(dataset, clip, RECORD)
        if state == "frames" and mp4 is not None:  # the frames verified, only the mp4 is missing or stale
            record = io.read_json(record_url)
            io.remove(record_url)
            io.write_json(record_url, {**record, "video": _write_mp4(predictions, row, _read_frames(predictions, row, record), mp4)})
            written += 1
            continue
        if video is None:
            video = read_video(row)
        indices, lr, input_scale = video
        described = method.describe()
        scale = _scale(row, input_scale, described, name)
        try:
            hr = method(lr, scale, key=f"{dataset}/{clip}")
        except Exception as exc:
            raise SeeClearError(f"method {name} on {dataset}/{clip}: {one_line(exc)}") from exc
        problem = hr_problem(hr, lr, scale)
        if problem:
            raise SeeClearError(f"method {name} on {dataset}/{clip}: {problem}")
        provenance = getattr(method, "provenance", None)  # what is recorded beyond the identity (plug-ins)
        _write(predictions, row, indices, hr, {
            "method": name, "identity": video_identity(row, described), "dataset": dataset, "clip": clip,
            "scale": scale, "device": device_name(), **({"method_provenance": provenance()} if provenance else {}),
            **(extra_record or {})}, mp4)
        written += 1
    return written


def _scale(row: Mapping[str, Any], input_scale: int, described: Mapping[str, Any], name: str) -> int:
    asked = int(row.get("scale") or 0)
    if asked and input_scale and asked != input_scale:
        raise SeeClearError(f"{row['dataset']}/{row['clip_id']} is a x{input_scale} shard set, asked for x{asked}")
    scale = asked or input_scale or int(described.get("scale") or 0)
    if not scale:
        raise SeeClearError(f"method {name} needs a scale for {row['dataset']}/{row['clip_id']}: pass --scale")
    return scale


def _write(predictions: PredictionSet, row: Mapping[str, Any], indices: list[int], hr: np.ndarray,
           record: dict[str, Any], mp4: dict[str, Any] | None) -> None:
    """Frames first, the record last; every older record of the clip (a redone video, or per-window records of
    earlier versions) is removed before anything is written, so the clip never looks complete while it is."""
    from seeclear_bench._pause import pause_point
    from seeclear_bench.data.frames import encode_png

    dataset, clip = row["dataset"], row["clip_id"]
    for old in predictions.records(dataset, clip):
        io.remove(old)
    checksums = {}
    for index, frame in zip(indices, hr):
        data = encode_png(frame)
        io.write_bytes(predictions.frame(dataset, clip, index), data)
        checksums[frame_name(index)] = io.sha256_bytes(data)
        if len(checksums) == 1:  # test-only: a fault test kills the actor here, mid-video (seeclear_bench._pause)
            pause_point("predict-first-frame-written")
    record["frames"] = checksums
    if mp4 is not None:
        record["video"] = _write_mp4(predictions, row, hr, mp4)
    io.write_json(predictions.record(dataset, clip, RECORD), record)


def _read_frames(predictions: PredictionSet, row: Mapping[str, Any], record: Mapping[str, Any]) -> np.ndarray:
    import numpy as np

    from seeclear_bench.data.frames import decode_frame

    urls = [predictions.member(row["dataset"], row["clip_id"], n) for n in sorted(record["frames"])]
    return np.stack([decode_frame(io.read_bytes(url), name=url) for url in urls])


def _write_mp4(predictions: PredictionSet, row: Mapping[str, Any], hr: np.ndarray,
               settings: dict[str, Any]) -> dict[str, Any]:
    from seeclear_bench.data.video import encode_video

    name = f"{row['clip_id']}.mp4"
    url = predictions.member(row["dataset"], row["clip_id"], name)
    rate = settings["fps"]
    if not rate:
        from seeclear_bench.data.video import video_rate

        rate = max(1, round(video_rate(row["url"]) or 25)) if row.get("kind") == "video" else 25
    encode_video(hr, url, codec=settings["codec"], fps=rate, crf=settings["crf"], pix_fmt=settings["pix_fmt"])
    return {"name": name, **settings, "rate": rate, "sha256": io.sha256_url(url)}


# -- what evaluate reads ------------------------------------------------------------------------------------------
def read_predicted_frames(predictions: PredictionSet, method: str, dataset: str, clip: str, indices: list[int],
                          input_digest: str) -> list[tuple[str, bytes]]:
    """The encoded frames ``indices`` of a method's prediction of one video of a shard set, as (URL, bytes), each
    checked against the video's record.

    Raises:
        SeeClearError: no record (never predicted, or interrupted), a prediction made from another shard set, or a
            frame missing or differing from its record; each says to run the predict stage again.
    """
    again = "run the 'upscale' stage again"
    record_url = predictions.record(dataset, clip, RECORD)
    record = io.read_json(record_url) if io.exists(record_url) else None
    if not isinstance(record, dict) or not isinstance(record.get("frames"), dict):
        raise SeeClearError(f"no complete {method} prediction of {dataset}/{clip} ({record_url} is missing); {again}")
    made_from = (record.get("identity") or {}).get("shards")
    if made_from != input_digest:
        raise SeeClearError(f"the {method} prediction of {dataset}/{clip} was made from shard set {made_from!r}, "
                            f"not the one scored ({input_digest}); {again}")
    out = []
    for index in indices:
        name = frame_name(index)
        url = predictions.member(dataset, clip, name)
        data = io.read_bytes(url) if name in record["frames"] and io.exists(url) else None
        if data is None or io.sha256_bytes(data) != record["frames"][name]:
            state = "is missing" if data is None else "does not match its record"
            raise SeeClearError(f"frame {name} of the {method} prediction of {dataset}/{clip} {state}; {again}")
        out.append((url, data))
    return out


# -- the run's methods --------------------------------------------------------------------------------------------
def run_methods(cfg: RunConfig, layout: RunLayout) -> tuple[MethodsConfig, Literal["model", "ema"]]:
    """The spec's methods as the predict stage builds them, and the weights SeeClear loads: with
    ``methods.seeclear.checkpoint = "run:train"``, the train stage's newest verified checkpoint
    (``seeclear_bench.train.trained_checkpoint``), its ``infer.weights``, and the distiller it trained with.

    Raises:
        SeeClearError: ``run:train`` and the run's train folder holds no verified checkpoint.
    """
    import dataclasses

    from seeclear_bench.config import TRAINED_CHECKPOINT

    s = cfg.methods.seeclear
    if "seeclear" not in cfg.methods.names or s.checkpoint != TRAINED_CHECKPOINT:
        return cfg.methods, "model"
    from seeclear_bench.train import trained_checkpoint

    folder = layout.train()
    url = trained_checkpoint(folder)
    if url is None:
        raise SeeClearError(f"{TRAINED_CHECKPOINT}: no verified checkpoint under {folder.root}; run the 'train' stage")
    seeclear = dataclasses.replace(s, checkpoint=url, distiller=cfg.seeclear_distiller())
    return dataclasses.replace(cfg.methods, seeclear=seeclear), cfg.infer.weights
