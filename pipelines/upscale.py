"""The predict stage (spec name ``upscale``; ``infer`` is the same stage): every method on whole videos, on a pool
of Ray actors.

One video is one actor call: its LR frames are read once (shards verified) and go, in order, through every method
that still needs them, so SeeClear carries its CaTeGory memory from clip to clip. Videos run in parallel on a pool of
callable-class actors (`VideoPredictor`; fractional CPUs, one GPU each when a method uses one and the cluster has
GPUs) that build the methods once; each actor takes the next video when it finishes one. What one video does is
:func:`seeclear_bench.predict.predict_video`; this module schedules videos and turns every failure into one line. A
killed actor is restarted by Ray (``SYSTEM_RETRIES`` times) and its video retried; a video is never written by two
actors at once because each is one call. (Plain actors rather than Ray Data's ``map_batches``: with one row per call
there is nothing to stream, and Ray Data's actor pools log an error-level line to the driver's stderr on every run,
ray-project/ray#57733, which would break the one-line contract of every command.)

``seeclear-bench run`` calls `run`; ``seeclear-bench infer`` calls `predict_videos` on any LR input.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from seeclear_bench.config import MethodsConfig, RunConfig
from seeclear_bench.errors import Failure, SeeClearError, one_line
from seeclear_bench.layout import RunLayout

log = logging.getLogger(__name__)


class VideoPredictor:
    """The actor: builds the methods once, then predicts one video per call.

    Args:
        outputs: method name -> its prediction folder (``<out>/<dataset>/<clip>``).
        methods: the settings of the methods that have any (``MethodsConfig``).
        weights: ``model`` or ``ema`` weights of a SeeClear training checkpoint.
        extra_record: JSON-able fields added to every record (provenance, spec hash).
        mp4: `seeclear_bench.predict.mp4_settings` to also write ``<clip>.mp4``, or None.
    """

    def __init__(self, outputs: Mapping[str, str], methods: MethodsConfig, weights: Literal["model", "ema"] = "model",
                 extra_record: dict[str, Any] | None = None, mp4: dict[str, Any] | None = None) -> None:
        from seeclear_bench.methods import get_upscaler

        self.outputs = dict(outputs)
        self.extra = dict(extra_record or {})
        self.mp4 = mp4
        self.methods: dict[str, Any] = {}
        self.failures: dict[str, Failure] = {}
        for name in self.outputs:
            try:
                self.methods[name] = get_upscaler(name, methods, weights=weights)
            except Exception as exc:
                # A constructor that raises kills the actor, and Ray reports ActorDiedError with the cause buried in
                # many lines; kept and reported for every video instead, it reaches the user as its one line.
                self.failures[name] = Failure.capture(exc, f"the prediction actor building method {name}")

    def __call__(self, text: str) -> dict[str, Any]:
        """Predict one video (a JSON row with ``todo``); returns ``video``, ``written`` (methods), and for a failure its
        one line (``error``), its traceback and ``actor_failed`` (a method the video needs could not be built)."""
        row = json.loads(text)
        built = [self.failures[m] for m in row["todo"] if m in self.failures]
        failure, written = (built[0] if built else None), 0
        try:
            written = self.write_video(row)
        except Exception as exc:  # any error is this video's, in one line; the other videos go on
            failure = failure or Failure.capture(exc)
        return {"video": f"{row['dataset']}/{row['clip_id']}", "written": written,
                "error": failure.message if failure else "", "traceback": failure.traceback if failure else "",
                "actor_failed": bool(built)}

    def write_video(self, row: dict[str, Any]) -> int:
        """Predict one video with every built method its row needs; returns how many were written."""
        from seeclear_bench.predict import predict_video

        methods = {m: self.methods[m] for m in row["todo"] if m in self.methods}
        return predict_video(row, methods, self.outputs, extra_record=self.extra, mp4=self.mp4)


def _run_pool(rows: Sequence[dict[str, Any]], kwargs: dict[str, Any], *, size: int, num_cpus: float,
              num_gpus: float, desc: str, progress: bool) -> list[dict[str, Any]]:
    """Every row through a pool of ``size`` `VideoPredictor` actors, each taking the next row when it is done;
    returns their results (any order). The actors are killed at the end, also when Ray itself fails."""
    import ray
    from tqdm.auto import tqdm

    from pipelines._ray import SYSTEM_RETRIES

    actor_class: Any = ray.remote(VideoPredictor).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                                      max_restarts=SYSTEM_RETRIES, max_task_retries=SYSTEM_RETRIES)
    actors: list[Any] = [actor_class.remote(**kwargs) for _ in range(max(1, min(size, len(rows))))]
    queue = [json.dumps(r) for r in reversed(rows)]
    running: dict[Any, Any] = {}
    results = []
    interrupted = False
    try:
        with tqdm(total=len(rows), desc=desc, unit="video", disable=None if progress else True, leave=False) as bar:
            for actor in actors:
                if queue:
                    running[actor.__call__.remote(queue.pop())] = actor
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor = running.pop(ref)
                results.append(ray.get(ref))
                bar.update(1)
                if queue:
                    running[actor.__call__.remote(queue.pop())] = actor
    except KeyboardInterrupt:
        # Killed mid-call, each actor's call would be reported by Ray on the driver's stdout ("Task ... failed ...
        # will be retried"); the CLI shuts Ray down next, which ends the actors with the job, silently.
        interrupted = True
        raise
    finally:
        for actor in [] if interrupted else actors:
            with contextlib.suppress(Exception):  # Ray may be shutting down
                ray.kill(actor)
    return results


def predict_videos(
    rows: Sequence[dict[str, Any]],
    outputs: Mapping[str, str],
    methods: MethodsConfig,
    *,
    weights: Literal["model", "ema"] = "model",
    scale: int = 0,
    mp4: bool = False,
    fps: int = 0,
    cpus_per_actor: float = 0.5,
    actors: int = 0,
    extra_record: dict[str, Any] | None = None,
    desc: str = "upscale",
    progress: bool = True,
) -> dict[str, int]:
    """Predict every video row with every method of ``outputs`` on a pool of actors; skip the (method, video) pairs
    already complete and verified.

    Args:
        rows: from `seeclear_bench.predict.videos_from_shard_set` / `videos_from_input`.
        outputs: method name -> output root (``<out>/<dataset>/<clip>/<frame>.png``).
        methods: the methods' settings (``MethodsConfig``; ``seeclear``'s checkpoint, steps, seed, ...; the
            ``[methods.NAME]`` tables of methods of your own, :mod:`seeclear_bench.plugins`).
        weights: ``model`` or ``ema`` weights of a SeeClear training checkpoint.
        scale: upscaling factor asked for (0: a shard set's own, else the method's, e.g. a SeeClear checkpoint's).
        mp4: also write each video as ``<clip>.mp4`` (H.264) beside its frames, at ``fps`` frames per second (0: an
            input video's own rate, else 25).
        cpus_per_actor: CPU share of each actor.
        actors: most actors (0: one per GPU when a method uses one, else 2).
        extra_record: added to every record.
        desc: the stage or command named in errors.
        progress: a progress bar.

    Returns:
        {"written": (method, video) pairs predicted, "skipped": pairs already complete}.

    Raises:
        SeeClearError: a method that cannot be described (a missing or corrupt checkpoint: before any Ray work) or
            built (its own line, from the actors), a video that failed (the first one's line; with ``--debug`` its
            traceback in the actor), or a video still incomplete after the run. Every failure inside Ray comes back
            as one line.
    """
    import ray

    from pipelines._ray import cluster_gpus, root_cause
    from seeclear_bench.methods import describe_method, uses_gpu
    from seeclear_bench.predict import mp4_settings, video_state

    keys = [(r["dataset"], r["clip_id"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise SeeClearError(f"{desc}: duplicate videos in the input: {sorted({k for k in keys if keys.count(k) > 1})[:3]}")
    described = {name: describe_method(name, methods, weights=weights) for name in outputs}
    for name, settings in described.items():
        if not scale and not settings.get("scale") and any(r["kind"] != "shards" for r in rows):
            raise SeeClearError(f"{desc}: method {name} needs the scale of frame folders and videos; pass --scale")
    video = mp4_settings(fps) if mp4 else None
    rows = [{**r, "scale": scale} for r in rows]

    def todo_of(row: dict[str, Any]) -> dict[str, str]:
        states = {m: video_state(url, row, described[m], mp4=video) for m, url in outputs.items()}
        return {m: s for m, s in states.items() if s != "complete"}

    todo = [{**r, "todo": t} for r in rows if (t := todo_of(r))]
    pairs = len(rows) * len(outputs)
    written = sum(len(r["todo"]) for r in todo)
    if todo:
        gpus = cluster_gpus()
        use_gpu = gpus >= 1 and any(uses_gpu(m, methods) for m in outputs)
        kwargs = {"outputs": dict(outputs), "methods": methods, "weights": weights, "extra_record": extra_record,
                  "mp4": video}
        try:
            results = _run_pool(todo, kwargs, size=actors or (int(gpus) if use_gpu else 2), num_cpus=cpus_per_actor,
                                num_gpus=1 if use_gpu else 0, desc=desc, progress=progress)
        except ray.exceptions.RayError as exc:  # Ray's own failures (an actor that died past its restarts): one line
            raise SeeClearError(f"{desc}: {one_line(root_cause(exc), 'the prediction actors')}") from exc
        failed = sorted((r for r in results if r["error"]), key=lambda r: (not r["actor_failed"], r["video"]))
        if failed:
            first = Failure(message=str(failed[0]["error"]), kind="", traceback=str(failed[0]["traceback"]))
            if failed[0]["actor_failed"]:  # a method could not be built: its own line names the cause
                raise first.error()
            others = "; the others are written" if len(failed) < len(todo) else ""
            video = failed[0]["video"]
            # a method's failure already reads "method <name> on <video>: ..." (predict_video): the video named once
            said = first.message if f" on {video}: " in first.message else f"{video}: {first.message}"
            raise first.error(f"{desc}: {len(failed)} of {len(todo)} video(s) failed ({said}){others}")
    missing = [f"{m} {r['dataset']}/{r['clip_id']}" for r in todo for m in r["todo"]
               if video_state(outputs[m], r, described[m], mp4=video) != "complete"]
    if missing:
        raise SeeClearError(f"{desc}: {len(missing)} prediction(s) incomplete after the run ({missing[:3]}); run it "
                            "again")
    return {"written": written, "skipped": pairs - written}


def run(cfg: RunConfig, layout: RunLayout, spec_hash: str, *, progress: bool = True) -> dict[str, int]:
    """The predict stage of a run: every method of ``methods.names`` on every video of the predicted datasets
    (:meth:`RunConfig.predicted_datasets`), written where ``evaluate`` reads them (``predictions/<method>``)."""
    from seeclear_bench.predict import run_methods, videos_from_shard_set
    from seeclear_bench.provenance import record

    methods, weights = run_methods(cfg, layout)
    rows = [row for d in cfg.predicted_datasets() for row in videos_from_shard_set(layout.shards(d), d)]
    outputs = {name: layout.predictions(name).root for name in cfg.methods.names}
    return predict_videos(rows, outputs, methods, weights=weights, mp4=cfg.infer.mp4, fps=cfg.infer.fps,
                          cpus_per_actor=cfg.infer.cpus_per_actor, actors=cfg.infer.actors,
                          extra_record=record(spec_hash=spec_hash, seed=cfg.seed), desc="upscale", progress=progress)
