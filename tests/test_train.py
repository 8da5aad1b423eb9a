"""seeclear_bench.train: single-process training on real test-made shards, checkpoints, CSV log and resume."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.training import TrainConfig, lr_at
from seeclear_bench.checkpoints import checkpoint_hash, latest_checkpoint, list_checkpoints, load_checkpoint, step_dir
from seeclear_bench.data import shards
from seeclear_bench.errors import SeeClearError
from seeclear_bench.train import main, resolve_shards, train

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


def _cfg(steps: int) -> TrainConfig:
    return TrainConfig.tiny(steps=steps, crop_size=32, batch_size=2, clips_per_sample=2, stage="joint")


def _log(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


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
    # first call: stop after the first step (out of time), as an interrupted job would
    first = train(shard_dir, str(run), train_cfg=_cfg(4), checkpoint_every=2, max_seconds=0, progress=False)
    assert first["step"] == 1 and first["steps_run"] == 1
    assert latest_checkpoint(str(run)) == step_dir(str(run), 1)
    assert [r["step"] for r in _log(run)] == ["1"]

    second = train(shard_dir, str(run), train_cfg=_cfg(4), checkpoint_every=2, keep_checkpoints=2, progress=False)
    assert second["step"] == 4 and second["steps_run"] == 3  # resumed at step 1, ran 2..4
    assert [s for s, _ in list_checkpoints(str(run))] == [2, 4]  # step 1 pruned (keep 2)
    rows = _log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) and float(r["lr"]) > 0 for r in rows)
    # the cosine schedule continues across the resume: row s used lr_at(s - 1)
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr_at(s, _cfg(4)) for s in range(4)], rel=1e-5)
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["resumed_from"] == step_dir(str(run), 1) and run_json["train"]["stage"] == "joint"

    _, extras = load_checkpoint(second["checkpoint"])
    assert extras["step"] == 4 and extras["train_config"] == _cfg(4)
    assert extras["ema_state"]["num_updates"] == 4  # the EMA state survived the resume
    assert len(checkpoint_hash(second["checkpoint"])) == 64

    third = train(shard_dir, str(run), train_cfg=_cfg(4), progress=False)  # already done: nothing to run
    assert third["steps_run"] == 0 and third["step"] == 4
    with pytest.raises(SeeClearError, match="another model/train config"):
        train(shard_dir, str(run), train_cfg=_cfg(6), progress=False)


@pytest.mark.slow
def test_stage_two_starts_from_stage_one_weights(shard_dir, tmp_path) -> None:
    stage1 = train(shard_dir, str(tmp_path / "s1"), train_cfg=_cfg(1), progress=False)
    cfg2 = TrainConfig.tiny(steps=1, crop_size=32, batch_size=1, stage="memory")
    stage2 = train(shard_dir, str(tmp_path / "s2"), train_cfg=cfg2, init_from=stage1["checkpoint"], progress=False)
    m1, _ = load_checkpoint(stage1["checkpoint"])
    m2, _ = load_checkpoint(stage2["checkpoint"])
    s1, s2 = m1.trainable_state_dict(), m2.trainable_state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1 if not k.startswith("condenser.memory."))  # frozen in stage 2
    assert any(not torch.equal(s1[k], s2[k]) for k in s1 if k.startswith("condenser.memory."))


def test_module_entry_point(shard_dir, tmp_path) -> None:
    result = main([shard_dir, str(tmp_path / "cli"), "--steps", "1", "--crop", "32", "--batch", "1"])
    assert result["step"] == 1 and Path(result["checkpoint"], "COMPLETE").exists()


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
                                 clipseg_input_size=64)
    model_cfg = SeeClearConfig.tiny().with_overrides(network=network)
    done = train(shard_dir, str(tmp_path / "run"), train_cfg=_cfg(2), model_config=model_cfg,
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

    wrong = NetworkConfig.tiny(distiller="clipseg", token_dim=32, seg_channels=133, clipseg_input_size=64)
    with pytest.raises(SeeClearError, match="network.token_dim is 32 but the ClipSegDistiller gives 24"):
        distiller_for(wrong, tiny_clipseg.folder)
    assert distiller_for(NetworkConfig.tiny(), "ignored") is None  # the learned distiller lives in the model
