"""Ray Train / Ray Data throughput of SeeClear: training samples/s with 1 and 2 workers, inference frames/s.

    .venv/bin/python benchmarks/bench_train.py [--preset tiny] [--steps 20] [--gpu]

Shards are cut from the embedded demo footage (64x64 HR, x4 bicubic LR, 5-frame samples) into a temporary folder.
Training throughput is taken from ``log.csv`` over the steps after the first two (Ray start-up and the first
step's warm-up excluded); inference counts output frames over the Ray Data run (actor start-up included). On a GPU
(``--gpu``) it also times the ``paper`` preset's 15-step sampling of one 128->512 frame (the paper: 1.142 s).
"""
from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path


def make_shards(root: Path) -> list[str]:
    from seeclear_bench.stages import prepare_demo_shards

    return prepare_demo_shards(str(root), spec_hash="bench")


def train_rate(shards: list[str], out: Path, *, workers: int, steps: int, preset: str, gpu: bool) -> float:
    from pipelines.train import fit, plan_for
    from seeclear_bench.config import TrainStageConfig
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.layout import TrainFolder
    from seeclear_bench.train import read_log

    shard_set = ShardSet.open(str(Path(shards[0]).parent))  # the one reader: every shard verified as it streams

    batch = 2
    settings = TrainStageConfig(workers=workers, use_gpu=gpu, cpus_per_worker=0.5 if not gpu else 2,
                                checkpoint_every=steps, preset=preset, max_failures=0,
                                config={"steps": steps, "warmup": 1, "batch_size": batch, "clips_per_sample": 1,
                                        "crop_size": 32 if not gpu else 128})
    plan = plan_for(settings, shard_set.shard_urls(), expect=shard_set.expected())
    fit(plan, str(out), settings, progress=False)
    log = read_log(TrainFolder(str(out)), "condenser")
    rows = log[2:]
    seconds = float(rows[-1]["seconds"]) - float(log[1]["seconds"])
    return len(rows) * batch * workers / seconds


def infer_rate(root: Path, steps: int, actors: int) -> tuple[float, int]:
    import torch

    from model.seeclear import SeeClear, SeeClearConfig
    from pipelines.upscale import predict_videos
    from seeclear_bench.checkpoints import save_checkpoint
    from seeclear_bench.config import MethodsConfig, SeeClearMethodConfig
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.predict import videos_from_url

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ckpt = save_checkpoint(str(root / "ckpt"), SeeClear(SeeClearConfig.tiny()), step=0)
    write_demo_source(str(root / "lr"), frames=10, size=(32, 32))
    rows = videos_from_url(str(root / "lr"), dataset="lr", layout="clips")
    start = time.perf_counter()
    methods = MethodsConfig(names=("seeclear",), seeclear=SeeClearMethodConfig(checkpoint=ckpt, steps=steps))
    predict_videos(rows, {"seeclear": str(root / "out")}, methods, actors=actors, progress=False)
    frames = 10 * len(rows)
    return frames / (time.perf_counter() - start), frames


def paper_frame_seconds() -> float:
    """Seconds per 128->512 frame of the paper preset at 15 steps (random weights; CLIPSeg-free timing not possible:
    the paper preset needs the CLIPSeg distiller, so the learned distiller of the same size is used)."""
    import dataclasses

    import torch

    from model.seeclear import SeeClear, SeeClearConfig

    cfg = SeeClearConfig.paper()
    cfg = cfg.with_overrides(network=dataclasses.replace(cfg.network, distiller="learned"))
    model = SeeClear(cfg).cuda().eval()
    lr = torch.rand(1, cfg.clip_frames, 3, 128, 128, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model.sample(lr, generator=gen, steps=15)
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.sample(lr, generator=gen, steps=15)
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / cfg.clip_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--infer-steps", type=int, default=1)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--num-cpus", type=int, default=0)
    args = parser.parse_args()

    import os

    import ray

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray.init(num_cpus=args.num_cpus or None, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    import torch

    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, " + (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = make_shards(root)
        one = train_rate(shards, root / "w1", workers=1, steps=args.steps, preset=args.preset, gpu=args.gpu)
        two = train_rate(shards, root / "w2", workers=2, steps=args.steps, preset=args.preset, gpu=args.gpu)
        fps, frames = infer_rate(root, args.infer_steps, actors=2)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine}; ray {ray.__version__}, torch {torch.__version__}")
    print(f"train ({args.preset}, batch 2/worker, crop {128 if args.gpu else 32}): 1 worker {one:.2f} samples/s, "
          f"2 workers {two:.2f} samples/s, scaling ratio {two / one:.2f}x")
    print(f"infer (tiny, 32x32 -> 128x128, {args.infer_steps} step(s), 2 actors): {fps:.2f} frames/s over {frames} frames")
    if args.gpu and torch.cuda.is_available():
        print(f"paper preset, 15 steps, one 128->512 frame: {paper_frame_seconds():.3f} s (paper: 1.142 s)")
    ray.shutdown()


if __name__ == "__main__":
    main()
