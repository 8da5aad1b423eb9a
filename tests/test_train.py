"""seeclear_bench.train: the training loop in one process on real test-made shards: stages, checkpoints, log, resume."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.seeclear import SeeClearConfig
from model.training import TrainConfig, lr_at
from seeclear_bench.checkpoints import (
    checkpoint_hash,
    checkpoint_meta,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from seeclear_bench.data import shards
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import TrainFolder
from seeclear_bench.train import LOG_COLUMNS, resolve_shards, train, trained_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> str:
    """Two shards of 10-frame windows (LR 12x12, HR 48x48): smooth drifting patterns plus noise, uint8."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    infos = []
    for s in range(2):
        samples = []
        for c in range(2):
            t = np.arange(10)[:, None, None, None]
            wave = np.sin(6 * xx[None, :, :, None] + 0.3 * t + np.arange(3) + c)
            hr = 127 + 100 * wave * np.cos(5 * yy[None, :, :, None])
            hr = np.clip(hr + rng.normal(0, 4, hr.shape), 0, 255).astype(np.uint8)
            lr = hr.reshape(10, 12, 4, 12, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
            samples.append(shards.Sample.create(dataset="toy", clip_id=f"c{s}{c}", frame_indices=range(10), lr=lr,
                                                hr=hr, meta={"scale": 4}))
        infos.append(shards.write_shard(str(root / f"shard-{s:06d}.tar"), samples))
    shards.write_manifest(str(root), infos, spec_hash="test")
    return str(root)


def _cfg(steps: int, stage: str = "joint", **kw) -> TrainConfig:
    return TrainConfig.tiny(**{"steps": steps, "crop_size": 32, "batch_size": 2, "clips_per_sample": 2,
                               "stage": stage, **kw})


def _log(run: Path, stage: str = "joint") -> list[dict[str, str]]:
    with open(run / stage / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _train(shard_dir: str, run: Path, stages: list[TrainConfig], **kw):
    return train(shard_dir, str(run), model_config=SeeClearConfig.tiny(), stages=stages, progress=False, **kw)


def test_resolve_shards(shard_dir) -> None:
    want = [f"{shard_dir}/shard-000000.tar", f"{shard_dir}/shard-000001.tar"]
    urls, expect = resolve_shards(shard_dir)  # a shard set: its manifest's digests are checked while streaming
    assert urls == want and sorted(expect) == want and all(len(d.sha256) == 64 for d in expect.values())
    assert resolve_shards(f"{shard_dir}/*.tar") == (want, {})  # bare tars: nothing recorded to check them against
    with pytest.raises(SeeClearError, match="no shards found"):
        resolve_shards(str(Path(shard_dir) / "nothing"))


@pytest.mark.slow
def test_train_checkpoints_logs_and_resumes(shard_dir, tmp_path) -> None:
    run = tmp_path / "run"
    folder = TrainFolder(str(run))
    # first call: stop after the first step (out of time), as an interrupted job would
    first = _train(shard_dir, run, [_cfg(4)], checkpoint_every=2, max_seconds=0)
    assert first["step"] == 1 and first["stages"] == []
    assert latest_checkpoint(folder.checkpoints("joint")) == folder.checkpoint("joint", 1)
    assert [r["step"] for r in _log(run)] == ["1"]
    assert checkpoint_meta(first["checkpoint"])["stages"] == []  # the stage is not complete yet

    second = _train(shard_dir, run, [_cfg(4)], checkpoint_every=2, keep_checkpoints=2, sampling_steps=3)
    assert second["step"] == 4 and second["stages"] == ["joint"]  # resumed at step 1, ran 2..4
    assert [s for s, _ in list_checkpoints(folder.checkpoints("joint"))] == [2, 4]  # step 1 pruned (keep 2)
    rows = _log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert all(np.isfinite(float(r["loss"])) and float(r["lr"]) > 0 for r in rows)
    # the cosine schedule continues across the resume: row s used lr_at(s - 1)
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr_at(s, _cfg(4)) for s in range(4)], rel=1e-5)
    summary = json.loads((run / "train.json").read_text())
    assert summary["plan"]["stages"][0]["stage"] == "joint" and summary["result"]["step"] == 4

    _, extras = load_checkpoint(second["checkpoint"])
    assert extras["step"] == 4 and extras["train_config"] == _cfg(4)
    assert extras["ema_state"]["num_updates"] == 4  # the EMA state survived the resume
    assert extras["stages"] == ["joint"] and extras["sampling_steps"] == 3
    assert len(checkpoint_hash(second["checkpoint"])) == 64

    third = _train(shard_dir, run, [_cfg(4)])  # already done: nothing to run
    assert third["step"] == 4 and [int(r["step"]) for r in _log(run)] == [1, 2, 3, 4]
    with pytest.raises(SeeClearError, match="trained with other settings"):
        _train(shard_dir, run, [_cfg(6, lr=1e-3)])


@pytest.mark.slow
def test_stages_run_in_order_each_from_the_previous_ema(shard_dir, tmp_path) -> None:
    """condenser then memory in one call: the memory stage starts from the condenser stage's EMA weights (its frozen
    weights stay exactly those), and each checkpoint records the stages it completed."""
    run = tmp_path / "run"
    folder = TrainFolder(str(run))
    stages = [_cfg(2, "condenser", clips_per_sample=1), _cfg(1, "memory", batch_size=1)]
    done = _train(shard_dir, run, stages)
    assert done["stages"] == ["condenser", "memory"] and done["stage"] == "memory"
    first = latest_checkpoint(folder.checkpoints("condenser"))
    assert checkpoint_meta(first)["stages"] == ["condenser"] and not checkpoint_meta(first)["memory"]
    assert checkpoint_meta(done["checkpoint"])["stages"] == ["condenser", "memory"]
    assert checkpoint_meta(done["checkpoint"])["memory"]
    ema1, _ = load_checkpoint(first, weights="ema")
    m2, _ = load_checkpoint(done["checkpoint"])
    s1, s2 = ema1.trainable_state_dict(), m2.trainable_state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1 if not k.startswith("condenser.memory."))  # frozen in stage 2
    assert any(not torch.equal(s1[k], s2[k]) for k in s1 if k.startswith("condenser.memory."))
    assert trained_checkpoint(folder) == done["checkpoint"]
    again = _train(shard_dir, run, stages)  # both finished: nothing runs
    assert again["stages"] == ["condenser", "memory"] and len(_log(run, "memory")) == 1


def test_frozen_clipseg_trains_from_its_folder_and_is_never_saved(shard_dir, tiny_clipseg, tmp_path) -> None:
    """A network with the frozen CLIPSeg distiller (the paper's kind, here a test-made tiny one): trained and
    sampled with the distiller loaded from its save_pretrained folder; checkpoints and exports hold none of it."""
    from safetensors import safe_open

    from model.config import NetworkConfig
    from model.seeclear import SeeClearConfig
    from seeclear_bench.checkpoints import checkpoint_config, export_checkpoint
    from seeclear_bench.distillers import distiller_for
    from seeclear_bench.methods import SeeClearUpscaler

    network = NetworkConfig.tiny(distiller="clipseg", token_dim=tiny_clipseg.token_dim, seg_channels=133,
                                 distiller_scale=2)
    model_cfg = SeeClearConfig.tiny().with_overrides(network=network)
    done = train(shard_dir, str(tmp_path / "run"), stages=[_cfg(2)], model_config=model_cfg,
                 distiller=tiny_clipseg.folder, progress=False)
    assert done["step"] == 2 and np.isfinite(done["loss"])
    ckpt = done["checkpoint"]
    assert checkpoint_config(ckpt) == model_cfg
    with safe_open(f"{ckpt}/model.safetensors", framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("distiller.") for k in keys)  # CLIPSeg comes from its own folder
    with pytest.raises(SeeClearError, match="pass the built distiller"):
        load_checkpoint(ckpt)

    pretrained = distiller_for(network, tiny_clipseg.folder)
    model, _ = load_checkpoint(ckpt, distiller=pretrained)
    frames = torch.rand(1, 5, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        sem = model.distiller(frames)
    assert sem.tokens.shape == (1, 5, network.n_tokens, 24) and sem.seg.shape == (1, 5, 133, 12, 12)

    exported = export_checkpoint(ckpt, str(tmp_path / "export"), weights="ema")  # no CLIPSeg needed to export
    lr = np.random.default_rng(1).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    a = SeeClearUpscaler(exported, distiller=tiny_clipseg.folder, device="cpu")
    b = SeeClearUpscaler(exported, distiller=tiny_clipseg.folder, device="cpu")
    out = a(lr, 4, key="clip")
    assert out.shape == (5, 48, 48, 3) and np.array_equal(out, b(lr, 4, key="clip"))

    wrong = NetworkConfig.tiny(distiller="clipseg", token_dim=32, seg_channels=133, distiller_scale=2)
    with pytest.raises(SeeClearError, match="network.token_dim is 32 but the ClipSegDistiller gives 24"):
        distiller_for(wrong, tiny_clipseg.folder)
    assert distiller_for(NetworkConfig.tiny(), "ignored") is None  # the learned distiller lives in the model


def test_train_command_runs_the_stages_and_refuses_mismatched_lists(shard_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from seeclear_bench.cli import app

    out = tmp_path / "cli"
    runner = CliRunner()
    done = runner.invoke(app, ["train", shard_dir, "--out", str(out), "--stages", "condenser,memory", "--steps", "1",
                               "--crop-size", "32", "--batch-size", "1", "--clips-per-sample", "1,2",
                               "--sampling-steps", "2", "--no-progress"])
    assert done.exit_code == 0, done.output
    meta = checkpoint_meta(trained_checkpoint(TrainFolder(str(out))))
    assert meta["stages"] == ["condenser", "memory"] and meta["sampling_steps"] == 2
    bad = runner.invoke(app, ["train", shard_dir, "--out", str(tmp_path / "bad"), "--stages", "condenser",
                              "--steps", "1,2", "--no-progress"])
    assert bad.exit_code != 0 and "--steps gives 2 values for 1 stages" in str(bad.exception)
