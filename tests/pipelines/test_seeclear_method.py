"""The `seeclear` method inside a run: the predict stage samples whole videos (the CaTeGory memory carried across a
video's clips, exactly `SeeClear.sample`), with the checkpoint's own steps and memory state; records track it."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from seeclear_bench import io
from seeclear_bench.config import MethodsConfig, RunConfig, SeeClearMethodConfig
from seeclear_bench.data.frames import read_frame
from seeclear_bench.errors import SeeClearError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    from model.seeclear import SeeClear, SeeClearConfig
    from seeclear_bench.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny())
    url = str(tmp_path_factory.mktemp("ckpt") / "seeclear-tiny")
    save_checkpoint(url, model, step=0)
    return url


def perturbed_checkpoint(url: str, stages: tuple[str, ...], sampling_steps: int | None = None) -> str:
    """test_infer_ray's tiny checkpoint whose memory changes what the second clip of a video looks like."""
    from test_infer_ray import make_checkpoint  # pytest puts this folder on sys.path

    return make_checkpoint(url, stages=stages, sampling_steps=sampling_steps)


def _cfg(source: str, checkpoint: str, steps: int = 2, *, clips: tuple[str, ...] = ("astronaut_pan", "bunny_010"),
         names: tuple[str, ...] = ("bicubic", "seeclear"), stages: tuple[str, ...] | None = None) -> RunConfig:
    clip_list = ", ".join(f'"{c}"' for c in clips)
    cfg = RunConfig.from_toml(f'[[data.sources]]\nname = "d"\nurl = "{source}"\nlayout = "clips"\n'
                              f'clips = [{clip_list}]\n')
    methods = MethodsConfig(names=names, seeclear=SeeClearMethodConfig(checkpoint=checkpoint, steps=steps, seed=3))
    cfg = dataclasses.replace(cfg, methods=methods, evaluate=dataclasses.replace(cfg.evaluate, metrics=("psnr",)))
    return cfg if stages is None else dataclasses.replace(cfg, stages=stages)


def _frames(out: str, clip: str, n: int) -> np.ndarray:
    return np.stack([read_frame(io.join(out, "predictions", "seeclear", "d", clip, f"{i:08d}.png")) for i in range(n)])


def _sample(checkpoint: str, lr: np.ndarray, key: str, seed: int, steps: int | None, *, use_memory: bool = True,
            alone: bool = False) -> np.ndarray:
    """`SeeClear.sample` on the whole video (``alone``: each 5-frame window sampled from the initial memory, the
    per-window path this stage replaced), seeded as the predict stage seeds a video."""
    from seeclear_bench.checkpoints import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    gen = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8],
                                                       "little") >> 1)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)[None]
    if alone:
        m = model.config.clip_frames
        out = torch.cat([model.sample(x[:, s : s + m], generator=gen, steps=steps, use_memory=use_memory)
                         for s in range(0, x.shape[1], m)], 1)[0]
    else:
        out = model.sample(x, generator=gen, steps=steps, use_memory=use_memory)[0]
    return out.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _lr(out: str, clip: str) -> np.ndarray:
    from seeclear_bench.data.shardset import ShardSet

    return ShardSet.open(io.join(out, "shards", "d"), dataset="d").clip(clip).frames("lr")[1]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def test_seeclear_predictions_are_recorded_and_reproducible(tmp_path, ray_session, untrained_checkpoint):
    from pipelines.run import run
    from seeclear_bench.checkpoints import checkpoint_hash
    from seeclear_bench.data.demo import write_demo_source

    source = str(tmp_path / "src")
    write_demo_source(source, frames=5, size=(64, 96))
    out = str(tmp_path / "run")
    result = run(_cfg(source, untrained_checkpoint), out, progress=False)
    assert result.upscaled == {"written": 4, "skipped": 0}  # 2 videos x 2 methods
    pred_url = io.join(out, "predictions", "seeclear", "d", "astronaut_pan")
    pred = read_frame(io.join(pred_url, "00000002.png")).astype(int)
    base = read_frame(io.join(out, "predictions", "bicubic", "d", "astronaut_pan", "00000002.png")).astype(int)
    # an untrained SeeClear's head is zero, so it returns its residual base: the MATLAB-bicubic upsampled LR
    assert np.abs(pred - base).max() <= 1 and np.mean(pred != base) < 0.01
    assert [io.basename(u) for u in io.glob(io.join(pred_url, "_records", "*.json"))] == ["video.json"]
    record = io.read_json(io.join(pred_url, "_records", "video.json"))
    method = record["identity"]["method"]
    assert method["checkpoint_hash"] == checkpoint_hash(untrained_checkpoint)
    assert method["steps"] == 2 and method["preset"] == "tiny" and method["sampling_seed"] == 3
    assert record["frames"].keys() == {f"{i:08d}.png" for i in range(5)} and record["spec_hash"] == result.spec_hash
    again = run(_cfg(source, untrained_checkpoint), out, progress=False)
    assert again.upscaled == {"written": 0, "skipped": 4}
    changed = run(_cfg(source, untrained_checkpoint, steps=1), out, progress=False)
    assert changed.upscaled == {"written": 2, "skipped": 2}  # only seeclear's videos are redone


@pytest.mark.slow
def test_the_run_samples_whole_videos_with_the_memory_carried_and_the_checkpoints_steps(
        tmp_path, ray_session, one_torch_thread):
    """10-frame videos cut into 5-frame shard windows: the run's predict stage gives exactly `SeeClear.sample` over
    the whole video, whose second clip reads the memory the first one wrote (sampling each window alone differs)."""
    from pipelines.run import run
    from seeclear_bench.data.demo import write_demo_source

    ckpt = perturbed_checkpoint(str(tmp_path / "ckpt"), ("condenser", "memory"), sampling_steps=2)
    source = str(tmp_path / "src")
    write_demo_source(source, frames=10, size=(64, 64))
    out = str(tmp_path / "run")
    cfg = _cfg(source, ckpt, steps=0, clips=("astronaut_pan",), names=("seeclear",), stages=("prepare", "upscale"))
    assert run(cfg, out, progress=False).upscaled == {"written": 1, "skipped": 0}

    lr = _lr(out, "astronaut_pan")
    got = _frames(out, "astronaut_pan", 10)
    whole = _sample(ckpt, lr, "d/astronaut_pan", 3, 2)
    alone = _sample(ckpt, lr, "d/astronaut_pan", 3, 2, alone=True)
    assert _diff(got, whole).max() <= 2 and _diff(got, whole).mean() < 0.02  # float order only (1 thread each)
    assert _diff(got[:5], alone[:5]).max() <= 2  # the first clip reads the initial memory either way
    assert _diff(got[5:], alone[5:]).mean() > 20 * max(_diff(got[5:], whole[5:]).mean(), 0.01)  # the memory carried
    method = io.read_json(io.join(out, "predictions", "seeclear", "d", "astronaut_pan", "_records",
                                  "video.json"))["identity"]["method"]
    assert method["steps"] == 2 and method["memory"] == "on"  # steps 0 in the spec: the checkpoint's own


@pytest.mark.slow
def test_a_checkpoint_whose_memory_never_trained_is_sampled_with_the_memory_off(tmp_path, ray_session,
                                                                                one_torch_thread):
    from pipelines.run import run
    from seeclear_bench.data.demo import write_demo_source

    ckpt = perturbed_checkpoint(str(tmp_path / "ckpt"), ("condenser",))
    source = str(tmp_path / "src")
    write_demo_source(source, frames=10, size=(64, 64))
    out = str(tmp_path / "run")
    cfg = _cfg(source, ckpt, steps=1, clips=("astronaut_pan",), names=("seeclear",), stages=("prepare", "upscale"))
    run(cfg, out, progress=False)
    got = _frames(out, "astronaut_pan", 10)
    off = _sample(ckpt, _lr(out, "astronaut_pan"), "d/astronaut_pan", 3, 1, use_memory=False)
    assert _diff(got, off).max() <= 2 and _diff(got, off).mean() < 0.02
    record = io.read_json(io.join(out, "predictions", "seeclear", "d", "astronaut_pan", "_records", "video.json"))
    assert record["identity"]["method"]["memory"] == "off: never trained (stages: condenser)"


@pytest.mark.slow
def test_run_train_is_the_newest_verified_checkpoint_of_the_last_trained_stage(tmp_path, ray_session,
                                                                               one_torch_thread):
    """``methods.seeclear.checkpoint = "run:train"``: the predict stage samples the train folder's last stage's newest
    verified checkpoint (``seeclear_bench.train.trained_checkpoint``) with ``infer.weights`` (EMA)."""
    from model.seeclear import SeeClear, SeeClearConfig
    from model.training import EMA
    from pipelines import upscale
    from seeclear_bench.checkpoints import checkpoint_hash, save_checkpoint
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.methods import SeeClearUpscaler
    from seeclear_bench.predict import read_video, videos_from_shard_set
    from seeclear_bench.stages import prepare_demo_shards

    root = tmp_path / "run"
    prepare_demo_shards(str(root), frames=5, size=(64, 64))
    cfg = RunConfig.from_dict({
        "stages": ["train", "upscale"], "data": {"sources": [{"name": "demo", "url": "demo"}, {"name": "tr", "url": "x"}]},
        "train": {"datasets": ["tr"]}, "infer": {"datasets": ["demo"]},
        "methods": {"names": ["seeclear"], "seeclear": {"steps": 1}}})
    assert cfg.methods.seeclear.checkpoint == "run:train"
    layout = RunLayout(str(root))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SeeClear(SeeClearConfig.tiny())
    ema = EMA(model, 0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    folder = layout.train()
    save_checkpoint(folder.checkpoint("condenser", 2), model, ema=ema, step=2, stages=("condenser",))
    newest = save_checkpoint(folder.checkpoint("memory", 1), model, ema=ema, step=1, stages=("condenser", "memory"))
    assert upscale.run(cfg, layout, "test", progress=False) == {"written": 5, "skipped": 0}

    (row,) = [r for r in videos_from_shard_set(layout.shards("demo"), "demo") if r["clip_id"] == "chelsea_pan"]
    clip = root / "predictions" / "seeclear" / "demo" / "chelsea_pan"
    method = io.read_json(str(clip / "_records" / "video.json"))["identity"]["method"]
    assert method["checkpoint"] == newest and method["checkpoint_hash"] == checkpoint_hash(newest)
    assert method["weights"] == "ema" and method["memory"] == "on"
    want = SeeClearUpscaler(newest, steps=1, weights="ema", device="cpu")(read_video(row)[1], 4, key="demo/chelsea_pan")
    got = np.stack([read_frame(str(clip / f"{i:08d}.png")) for i in range(5)])
    assert _diff(got, want).max() <= 2 and _diff(got, want).mean() < 0.02


def test_steps_default_to_the_checkpoints_and_are_checked_against_t(tmp_path):
    from seeclear_bench.methods import describe_checkpoint

    validated = perturbed_checkpoint(str(tmp_path / "a"), ("condenser", "memory", "joint"), sampling_steps=3)
    assert describe_checkpoint(validated)["steps"] == 3  # 0: the checkpoint's own
    assert describe_checkpoint(validated, steps=1)["steps"] == 1  # the spec wins
    plain = perturbed_checkpoint(str(tmp_path / "b"), ())
    t = describe_checkpoint(plain)
    assert t["steps"] == 15 and t["memory"] == "off: never trained (stages: none recorded)"  # tiny's T
    with pytest.raises(SeeClearError, match=r"samples with 1\.\.15 steps \(its T\), asked for 16"):
        describe_checkpoint(plain, steps=16)


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(SeeClearError, match="methods.seeclear.checkpoint is empty"):
        MethodsConfig(names=("seeclear",))
    from seeclear_bench.methods import resolve_checkpoint

    with pytest.raises(SeeClearError, match="no built-in checkpoint 'nope'"):
        resolve_checkpoint("builtin:nope")
