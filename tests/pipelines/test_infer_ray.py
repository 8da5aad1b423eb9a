"""The predict stage on Ray actors (pipelines/upscale.py) as `seeclear-bench infer` uses it: whole videos through one
actor, SeeClear's memory carried across clips; resume; mp4; every method on any LR input."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def make_checkpoint(url: str, stages: tuple[str, ...] = ("condenser", "memory"), sampling_steps: int | None = None) -> str:
    """A tiny SeeClear whose weights (head and CaTeGory memory included) are perturbed away from their zero inits,
    so that the memory carried from clip to clip changes the output; recorded as having trained ``stages``."""
    import torch

    from model.seeclear import SeeClear, SeeClearConfig
    from seeclear_bench.checkpoints import save_checkpoint

    gen = torch.Generator().manual_seed(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SeeClear(SeeClearConfig.tiny())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return save_checkpoint(url, model, step=0, stages=stages, sampling_steps=sampling_steps)


def infer_videos(rows, out: str, *, checkpoint: str, steps: int = 1, **kwargs) -> dict[str, int]:
    """SeeClear on ``rows`` into ``out`` through the predict stage, as `seeclear-bench infer` runs it."""
    from pipelines.upscale import predict_videos
    from seeclear_bench.config import MethodsConfig, SeeClearMethodConfig

    methods = MethodsConfig(names=("seeclear",), seeclear=SeeClearMethodConfig(checkpoint=checkpoint, steps=steps))
    return predict_videos(rows, {"seeclear": out}, methods, desc="infer", **kwargs)


def make_videos(root, *, frames: int = 10) -> str:
    """LR videos as folders of PNG frames (the demo's clips at 32x32): 10 frames = two 5-frame SeeClear clips."""
    from seeclear_bench.data.demo import write_demo_source

    url = str(root / "lr")
    write_demo_source(url, frames=frames, size=(32, 32))
    return url


def reference(checkpoint: str, lr: np.ndarray, key: str, *, carry: bool) -> np.ndarray:
    """SeeClear on a whole video, clip by clip with the same noise, carrying the memory or resetting it per clip."""
    import torch

    from seeclear_bench.checkpoints import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    model.eval()
    gen = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(f"0/{key}".encode()).digest()[:8], "little") >> 1)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)[None]
    m = model.config.clip_frames
    memory, outs = model.initial_memory(1), []
    for start in range(0, x.shape[1], m):
        hr, new = model.sample_clip(x[:, start : start + m], memory=memory if carry else model.initial_memory(1),
                                    generator=gen, steps=1)
        memory = new
        outs.append(hr)
    out = torch.cat(outs, 1)[0]
    return out.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.timeout(420)
def test_memory_carries_across_clips_and_runs_resume(ray_session, tmp_path):
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.predict import RECORD, read_video, videos_from_url

    ckpt = make_checkpoint(str(tmp_path / "ckpt"))
    rows = [r for r in videos_from_url(make_videos(tmp_path), dataset="lr", layout="clips")
            if r["clip_id"] in ("astronaut_pan", "coffee_zoom")]
    out = tmp_path / "out"
    assert infer_videos(rows, str(out), checkpoint=ckpt, steps=1, progress=False) == {"written": 2, "skipped": 0}

    row = rows[0]
    _, lr, _ = read_video(row)
    frames = np.stack([decode_frame((out / "lr" / row["clip_id"] / f"{i:08d}.png").read_bytes()) for i in range(10)])
    key = f"lr/{row['clip_id']}"
    carried, reset = reference(ckpt, lr, key, carry=True), reference(ckpt, lr, key, carry=False)
    # Equal up to float reduction order (the actor runs 1 thread, this process several): a level here and there.
    def diff(a, b):
        return np.abs(a.astype(int) - b.astype(int))

    assert diff(frames, carried).max() <= 2 and diff(frames, carried).mean() < 0.02  # memory carried, in order
    assert diff(frames[:5], reset[:5]).max() <= 2  # the first clip reads the initial memory either way
    assert diff(frames[5:], reset[5:]).mean() > 20 * max(diff(frames[5:], carried[5:]).mean(), 0.01), (
        diff(frames[5:], reset[5:]).mean(), diff(frames[5:], carried[5:]).mean())  # clip 2 saw clip 1's memory

    import json

    record = json.loads((out / "lr" / row["clip_id"] / "_records" / f"{RECORD}.json").read_text())
    assert record["identity"]["method"]["steps"] == 1 and len(record["frames"]) == 10
    assert len(record["identity"]["method"]["checkpoint_hash"]) == 64 and record["identity"]["method"]["memory"] == "on"

    assert infer_videos(rows, str(out), checkpoint=ckpt, steps=1, progress=False) == {"written": 0, "skipped": 2}
    (out / "lr" / rows[1]["clip_id"] / "00000003.png").write_bytes(b"damaged")
    assert infer_videos(rows, str(out), checkpoint=ckpt, steps=1, progress=False) == {"written": 1, "skipped": 1}


@pytest.mark.timeout(420)
def test_infer_command_on_frames_and_shards_with_mp4(ray_session, tmp_path):
    """`seeclear-bench infer` on frame folders and on a shard set; --mp4 encodes from verified frames when only the
    mp4 is missing; a re-run skips everything."""
    import json
    import shutil

    from typer.testing import CliRunner

    from seeclear_bench.cli import app
    from seeclear_bench.data.frames import read_frame
    from seeclear_bench.data.video import decode_video
    from seeclear_bench.errors import SeeClearError
    from seeclear_bench.predict import RECORD
    from seeclear_bench.stages import prepare_demo_shards

    ckpt = make_checkpoint(str(tmp_path / "ckpt"))
    lr = make_videos(tmp_path)
    for clip in ("chelsea_pan", "bunny_010", "bunny_040"):
        shutil.rmtree(f"{lr}/{clip}")
    out = tmp_path / "out"
    runner = CliRunner()

    def infer(*args):
        done = runner.invoke(app, ["infer", *args, "--checkpoint", ckpt, "--steps", "1", "--out", str(out),
                                   "--no-progress"])
        assert done.exit_code == 0, done.output
        return done.output

    assert "2 video(s) written, 0 already complete" in infer(lr, "--layout", "clips")
    folder = out / "lr" / "astronaut_pan"
    pngs = sorted(folder.glob("*.png"))
    stamps = [p.stat().st_mtime_ns for p in pngs]
    assert len(pngs) == 10 and not (folder / "astronaut_pan.mp4").exists()

    assert "2 video(s) written" in infer(lr, "--layout", "clips", "--mp4", "--fps", "12")
    assert [p.stat().st_mtime_ns for p in pngs] == stamps  # the mp4 came from the verified frames, not a resample
    video = decode_video(str(folder / "astronaut_pan.mp4"))
    frames = np.stack([read_frame(str(p)) for p in pngs])
    assert video.shape == frames.shape == (10, 128, 128, 3)
    # this perturbed test model outputs near-noise, which H.264 keeps only roughly; but every decoded frame is
    # nearest to its own PNG: the mp4 holds these frames, in order
    mse = ((video[:, None].astype(float) - frames[None].astype(float)) ** 2).mean(axis=(2, 3, 4))
    assert list(mse.argmin(axis=1)) == list(range(10)) and (mse.diagonal() < 0.5 * np.sort(mse, 1)[:, 1]).all()
    record = json.loads((folder / "_records" / f"{RECORD}.json").read_text())
    assert record["video"]["fps"] == record["video"]["rate"] == 12 and record["video"]["name"] == "astronaut_pan.mp4"
    assert record["video"]["sha256"] == hashlib.sha256((folder / "astronaut_pan.mp4").read_bytes()).hexdigest()
    assert "0 video(s) written, 2 already complete" in infer(lr, "--layout", "clips", "--mp4", "--fps", "12")

    shards = prepare_demo_shards(str(tmp_path / "sh"), frames=10, size=(64, 64))
    shard_set = str(Path(shards[0]).parent)
    assert "5 video(s) written" in infer(shard_set, "--dataset", "heldout")
    got = sorted(p.name for p in (out / "heldout").iterdir())
    assert got == ["astronaut_pan", "bunny_010", "bunny_040", "chelsea_pan", "coffee_zoom"]
    assert read_frame(str(out / "heldout" / "coffee_zoom" / "00000009.png")).shape == (64, 64, 3)

    # any method through the same path: bicubic on the frame folders is MATLAB imresize of each frame
    bicubic = tmp_path / "bicubic"
    done = runner.invoke(app, ["infer", lr, "--layout", "clips", "--method", "bicubic", "--out", str(bicubic)])
    assert "method bicubic needs the scale of frame folders and videos; pass --scale" in str(done.exception)
    done = runner.invoke(app, ["infer", lr, "--layout", "clips", "--method", "bicubic", "--scale", "4", "--out",
                               str(bicubic), "--no-progress"])
    assert done.exit_code == 0 and "2 video(s) written" in done.output, done.output
    from seeclear_bench.data.imresize import imresize

    lr_frames = np.stack([read_frame(str(p)) for p in sorted((Path(lr) / "astronaut_pan").glob("*.png"))])
    got = np.stack([read_frame(str(p)) for p in sorted((bicubic / "lr" / "astronaut_pan").glob("*.png"))])
    assert np.array_equal(got, imresize(lr_frames, output_shape=(128, 128)))
    record = json.loads((bicubic / "lr" / "astronaut_pan" / "_records" / f"{RECORD}.json").read_text())
    assert record["identity"] == {"shards": "", "scale": 4, "method": {"kernel": "matlab-imresize-bicubic"}}

    # a video file as input: the mp4 keeps its frame rate (fps 0 = the input's own)
    from seeclear_bench.data.video import encode_video, video_rate

    clip = np.stack([read_frame(str(p)) for p in sorted((Path(lr) / "coffee_zoom").glob("*.png"))])
    encode_video(clip, str(tmp_path / "in" / "zoom.mp4"), fps=15, crf=0, pix_fmt="yuv444p")
    assert "1 video(s) written" in infer(str(tmp_path / "in" / "zoom.mp4"), "--mp4")
    made = out / "zoom" / "zoom" / "zoom.mp4"
    assert video_rate(str(made)) == 15 and decode_video(str(made)).shape == (10, 128, 128, 3)

    # a damaged input frame: one line naming the video and the frame, exit 1, the other video still written
    bad = tmp_path / "bad"
    shutil.copytree(lr, bad)
    (bad / "coffee_zoom" / "00000004.png").write_bytes(b"not a png")
    done = runner.invoke(app, ["infer", str(bad), "--layout", "clips", "--checkpoint", ckpt, "--out",
                               str(tmp_path / "out-bad"), "--no-progress"])
    message = str(done.exception)  # `seeclear-bench` prints it as one line and exits 1 (tests/cli)
    assert isinstance(done.exception, SeeClearError) and "\n" not in message
    assert message.startswith("infer: 1 of 2 video(s) failed (bad/coffee_zoom:") and "00000004.png" in message
    assert len(list((tmp_path / "out-bad" / "bad" / "astronaut_pan").glob("*.png"))) == 10
    assert not (tmp_path / "out-bad" / "bad" / "coffee_zoom" / "_records" / f"{RECORD}.json").exists()
