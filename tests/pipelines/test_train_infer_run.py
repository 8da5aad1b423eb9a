"""One `seeclear-bench run` from raw frames to a leaderboard with the train stage in it: prepare -> train (Ray
Train, 2 CPU workers) -> upscale (the one predict stage, Ray actors: bicubic and the trained SeeClear on whole videos;
the spec also lists its old name ``infer``, read as the same stage) -> evaluate -> report.

The network uses the frozen CLIPSeg distiller (the paper's kind; here a test-made tiny one loaded from its
save_pretrained folder through ``train.distiller`` and ``train.network``), so the whole paper path runs: every
worker loads CLIPSeg from disk, checkpoints hold none of it, and the prediction actors load it again.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def spec(src: str, clipseg: str) -> dict:
    return {
        "name": "train-infer", "seed": 0,
        "stages": ["prepare", "train", "upscale", "infer", "evaluate", "report"],
        "data": {"sources": [
            {"name": "tr", "url": src, "layout": "clips", "clips": ["astronaut_pan", "coffee_zoom"]},
            {"name": "ho", "url": src, "layout": "clips", "clips": ["chelsea_pan"]},
        ]},
        "shards": {"window": 5, "max_samples_per_shard": 2},
        "train": {"datasets": ["tr"], "val_datasets": ["ho"], "workers": 2, "cpus_per_worker": 0.5,
                  "config": {"steps": 3, "warmup": 1, "batch_size": 1, "crop_size": 32, "clips_per_sample": 1},
                  "checkpoint_every": 3, "max_failures": 0, "validate_every": 3, "validate_samples": 1,
                  "network": {"distiller": "clipseg", "token_dim": 24, "seg_channels": 133,
                              "distiller_scale": 2},
                  "distiller": clipseg},
        "infer": {"actors": 1, "cpus_per_actor": 0.5},
        "methods": {"names": ["bicubic", "seeclear"], "seeclear": {"steps": 1}},
        "evaluate": {"metrics": ["psnr", "ssim"]},
        "ray": {"task_cpus": 0.5},
    }


@pytest.mark.timeout(600)
def test_one_command_trains_infers_evaluates_and_reports(ray_session, tiny_clipseg, tmp_path, one_torch_thread):
    import pandas as pd

    from pipelines.run import run
    from seeclear_bench.checkpoints import checkpoint_config, checkpoint_hash
    from seeclear_bench.config import RunConfig
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.data.frames import read_frame
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.methods import SeeClearUpscaler
    from seeclear_bench.predict import read_video, videos_from_shard_set
    from seeclear_bench.train import trained_checkpoint

    src = str(tmp_path / "src")
    write_demo_source(src, frames=10, size=(64, 64))
    cfg = RunConfig.from_dict(spec(src, tiny_clipseg.folder))
    assert cfg.seeclear_distiller() == tiny_clipseg.folder  # the trained checkpoint is sampled with train's CLIPSeg
    out = str(tmp_path / "run")
    result = run(cfg, out, progress=False)

    assert result.trained["step"] == 3
    val = pd.read_csv(f"{out}/train/condenser/val.csv")
    assert list(val["step"]) == [3] and val[["psnr", "ema_psnr"]].stack().between(5, 60).all()
    assert val[["ssim", "ema_ssim"]].stack().between(0, 1).all()
    assert result.upscaled == {"written": 2, "skipped": 0}  # "upscale" and "infer" are one stage: 1 video x 2 methods
    trained = trained_checkpoint(RunLayout(out).train())
    assert trained is not None and checkpoint_config(trained).network.distiller == "clipseg"

    # the predicted video is exactly the trained checkpoint's EMA weights sampled over the whole video with the same
    # CLIPSeg
    folder = tmp_path / "run" / "predictions" / "seeclear" / "ho" / "chelsea_pan"
    record = json.loads((folder / "_records" / "video.json").read_text())
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 10
    (row,) = videos_from_shard_set(f"{out}/shards/ho", "ho")
    _, lr, _ = read_video(row)
    want = SeeClearUpscaler(trained, distiller=tiny_clipseg.folder, device="cpu", steps=1, weights="ema")(
        lr, 4, key="ho/chelsea_pan")
    got = np.stack([read_frame(str(p)) for p in pngs])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float order only (1 thread each)
    method = record["identity"]["method"]
    assert method["checkpoint_hash"] == checkpoint_hash(trained) and method["weights"] == "ema"
    assert method["memory"] == "off: never trained (stages: condenser)"

    frames = pd.read_parquet(f"{out}/metrics/frames.parquet")
    assert set(frames["dataset"]) == {"ho"}  # training data is not scored
    assert set(frames["method"]) == {"bicubic", "seeclear"}
    assert len(frames[(frames["method"] == "seeclear") & (frames["metric"] == "psnr")]) == 10
    assert (tmp_path / "run" / "leaderboard.md").exists()

    again = run(cfg, out, progress=False)  # everything verified and reused
    assert again.upscaled == {"written": 0, "skipped": 2} and again.trained["step"] == 3
