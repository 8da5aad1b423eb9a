"""Shard preparation throughput: a plain single-process loop vs Ray with 1 and 2 workers, same clips, same process.

    python benchmarks/bench_prepare.py [--frames 20] [--height 192] [--width 320] [--repeat 2]

Prints frames per second for each way and the ratios against the loop, and checks that all three wrote
byte-identical shards (the shard set must not depend on the number of workers).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from seeclear_bench.config import DataConfig, RayConfig, RunConfig, ShardsConfig, SourceConfig, spec_hash
from seeclear_bench.data.demo import write_demo_source
from seeclear_bench.data.shardset import ShardSet
from seeclear_bench.identity import shards_identity
from seeclear_bench.layout import RunLayout
from seeclear_bench.stages import prepare_group


def shard_digests(run_url: str, dataset: str) -> dict[str, str]:
    shard_set = ShardSet.open(RunLayout(run_url).shards(dataset), dataset=dataset)
    return {entry.name: entry.sha256 for entry in shard_set.entries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per demo clip")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=2, help="timed repetitions per way (best is reported)")
    args = parser.parse_args()

    import ray

    from pipelines import prepare

    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    source_url = str(work / "source")
    write_demo_source(source_url, frames=args.frames, size=(args.height, args.width))
    cfg = RunConfig(
        name="bench-prepare",
        stages=("prepare",),
        data=DataConfig(sources=(SourceConfig(name="bench", url=source_url, layout="clips"),)),
        shards=ShardsConfig(window=5, clips_per_task=1),
        ray=RayConfig(task_cpus=1.0),
    )
    digest = spec_hash(cfg)
    clips = prepare.discover(cfg, RunLayout(str(work)))
    identity = shards_identity(cfg, cfg.data.sources[0])
    n_frames = args.frames * len(clips["bench"])
    results: dict[str, float] = {}
    digests: dict[str, dict[str, str]] = {}

    def timed(label: str, fn) -> None:  # noqa: ANN001
        best = float("inf")
        for rep in range(args.repeat):
            run_url = str(work / f"{label.replace(' ', '-')}-{rep}")
            started = time.perf_counter()
            fn(run_url)
            best = min(best, time.perf_counter() - started)
            digests[label] = shard_digests(run_url, "bench")
        results[label] = n_frames / best
        print(f"{label:<22} {results[label]:8.1f} frames/s  (best of {args.repeat}: {best:.2f} s)", flush=True)

    def loop(run_url: str) -> None:
        from seeclear_bench.data.shards import write_manifest

        layout = RunLayout(run_url)
        infos = [info for group, ref in enumerate(clips["bench"])
                 for info in prepare_group(cfg, cfg.data.sources[0], [ref], group, layout, identity)]
        write_manifest(layout.shards("bench"), infos, spec_hash=digest, extra={})

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"workload: {len(clips['bench'])} clips x {args.frames} frames of {args.height}x{args.width} HR, "
          f"bicubic x4, windows of 5 frames, PNG shards")
    timed("plain loop", loop)
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            # one untimed task per worker first, so the timing excludes worker start-up
            prepare.run(cfg, RunLayout(str(work / f"warmup-{workers}")), digest, clips=clips, progress=False)
            timed(f"ray {workers} worker(s)",
                  lambda url: prepare.run(cfg, RunLayout(url), digest, clips=clips, progress=False))
        finally:
            ray.shutdown()
    base = results["plain loop"]
    for label, fps in results.items():
        print(f"ratio {label:<22} / plain loop = {fps / base:5.2f}")
    identical = len({tuple(sorted(d.items())) for d in digests.values()}) == 1
    print(f"shards byte-identical across the three ways: {identical}")


if __name__ == "__main__":
    main()
