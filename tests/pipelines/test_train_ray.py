"""Ray Train training of SeeClear (pipelines/train.py): 2 CPU workers learn, checkpoint and resume; corrupt shards.

Real demo footage cut into real WebDataset shards; one local Ray for the session (``ray_session``, 2 CPUs), workers
at 0.5 CPU each.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path

import pytest

from seeclear_bench.config import RunConfig, TrainStageConfig
from seeclear_bench.errors import SeeClearError

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def make_shards(root, *, frames: int = 10, per_shard: int = 2, darken: int = 40) -> list[str]:
    """Demo clips (64x64 HR, x4 bicubic LR darkened by ``darken`` levels) as 5-frame samples in shards.

    The darkened LR gives the model something it can learn in a few steps (the brightness offset, through the
    zero-initialised head's bias), so "the loss falls" is visible in a 20-step CPU test; a plain x4 bicubic task
    starts at the bicubic error, which a tiny model beats only after hundreds of steps.
    """
    import numpy as np

    from seeclear_bench.data.shards import Sample, iter_shard, write_shard
    from seeclear_bench.stages import prepare_demo_shards

    plain = prepare_demo_shards(str(root), frames=frames, max_samples_per_shard=per_shard, spec_hash="test")
    urls = []
    for url in plain:
        samples = [Sample(key=s.key, dataset=s.dataset, clip_id=s.clip_id, frame_indices=s.frame_indices,
                          lr=np.clip(s.lr.astype(np.int16) - darken, 0, 255).astype(np.uint8), hr=s.hr,
                          meta={"scale": 4}) for s in iter_shard(url)]
        urls.append(str(root / "shards" / Path(url).name))
        write_shard(urls[-1], samples)
    return urls


def settings(**overrides) -> TrainStageConfig:
    base = {"workers": 2, "cpus_per_worker": 0.5, "steps": 6, "lr": 1e-2, "min_lr": 1e-2, "warmup": 1, "batch": 2,
            "crop": 32, "checkpoint_every": 3, "max_failures": 0}
    return TrainStageConfig(**{**base, **overrides})


def eval_loss(model, shard_urls) -> float:
    """Charbonnier loss of a fixed batch at fixed t and noise (train_step with a zero learning rate)."""
    import torch

    from model.training import TrainConfig, augment, set_stage, train_step
    from seeclear_bench.data.shards import make_webdataset

    model = copy.deepcopy(model)
    samples = list(make_webdataset(shard_urls, split_by_node=False))[:4]
    cfg = TrainConfig.tiny(crop_size=32, clips_per_sample=1, stage="condenser", batch_size=4)
    gen = torch.Generator().manual_seed(0)
    pairs = [augment(s["lr"], s["hr"], cfg=cfg, scale=4, clip_frames=model.config.clip_frames, generator=gen)
             for s in samples]
    batch = {"lr": torch.stack([p[0] for p in pairs]), "hr": torch.stack([p[1] for p in pairs])}
    params = set_stage(model, "condenser")
    losses = [train_step(model, batch, torch.optim.SGD(params, lr=0.0), None, None, cfg,
                         torch.Generator().manual_seed(k))["loss"] for k in range(3)]
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("train-shards"))


@pytest.mark.timeout(600)
def test_two_workers_learn_checkpoint_and_resume(ray_session, shards, tmp_path):
    import torch

    from model.seeclear import SeeClear, SeeClearConfig
    from pipelines.train import fit, read_log
    from seeclear_bench.checkpoints import list_checkpoints, load_checkpoint

    out = str(tmp_path / "run")
    first = fit(shards, out, settings=settings(steps=10, checkpoint_every=5), progress=False)
    assert first["step"] == 10 and [s for s, _ in list_checkpoints(out)] == [5, 10]
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 11))

    second = fit(shards, out, settings=settings(steps=20, checkpoint_every=5), progress=False)
    assert second["step"] == 20
    again = read_log(out)
    assert [int(r["step"]) for r in again] == list(range(1, 21))  # continued: no step repeated or missing
    assert again[:10] == rows  # the first run's rows kept as they were
    assert all(float(r["samples_per_s"]) > 0 and float(r["lr"]) == pytest.approx(1e-2) for r in again[1:])
    _, extras = load_checkpoint(second["checkpoint"])
    assert extras["step"] == 20 and len(extras["extra"]["positions"]) == 2
    assert extras["ema_state"]["num_updates"] == 20  # EMA went on from the resumed state, not from zero
    assert extras["scheduler_state"]["last_epoch"] == 20  # so did the schedule (lr is constant in this test)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        initial = SeeClear(SeeClearConfig.tiny())
    trained, _ = load_checkpoint(second["checkpoint"])
    before, after = eval_loss(initial, shards), eval_loss(trained, shards)
    assert after < before * 0.85, (before, after)

    # another worker count: the shards are dealt differently, so the next data epoch starts (README says so)
    third = fit(shards, out, settings=settings(steps=22, checkpoint_every=5, workers=1), progress=False)
    rows3 = read_log(out)
    assert third["step"] == 22 and [int(r["step"]) for r in rows3] == list(range(1, 23))
    assert int(rows3[20]["epoch"]) == max(p[0] for p in extras["extra"]["positions"]) + 1


@pytest.mark.timeout(300)
def test_corrupt_shard_is_named(ray_session, shards, tmp_path):
    import shutil

    from pipelines.train import fit

    bad = tmp_path / "bad.tar"
    shutil.copy(shards[0], bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\x00" * 4096  # inside a PNG member: fails its checks
    bad.write_bytes(bytes(data))
    with pytest.raises(SeeClearError, match="bad.tar"):
        fit([str(bad), *shards[1:2]], str(tmp_path / "run"), settings=settings(steps=4, workers=1), progress=False)


@pytest.mark.timeout(400)
def test_an_error_that_would_happen_again_is_not_retried(ray_session, shards, tmp_path):
    """A shard that fails its manifest digest fails every restart the same way: with max_failures=2 the rank that met
    it trains once, the restarted group ends at once, and the driver raises that one line."""
    import json

    from pipelines.train import fit
    from seeclear_bench.data.shards import ShardDigest

    expect = {url: ShardDigest(Path(url).stat().st_size, hashlib.sha256(Path(url).read_bytes()).hexdigest())
              for url in shards[:2]}
    expect[shards[0]] = ShardDigest(expect[shards[0]].n_bytes, "0" * 64)  # the manifest says otherwise
    out = tmp_path / "run"
    with pytest.raises(SeeClearError) as err:
        fit(shards[:2], str(out), settings=settings(steps=4, workers=1, max_failures=2), progress=False, expect=expect)
    assert "\n" not in str(err.value) and f"{Path(shards[0]).name} fails its SHA-256 check: expected {'0' * 64}" \
        in str(err.value)
    assert json.loads((out / "workers" / "rank-0.json").read_text())["attempts"] == 1  # not 3
    assert not list(out.glob("_failure-*.json"))


def test_train_table_is_validated():
    with pytest.raises(SeeClearError, match="did you mean 'workers'"):
        RunConfig.from_dict({"train": {"worker": 2}})
    with pytest.raises(SeeClearError, match="train.datasets names 'nope'"):
        RunConfig.from_dict({"stages": ["train"], "data": {"sources": [{"name": "a", "url": "demo"}]},
                             "train": {"datasets": ["nope"]}})
    cfg = RunConfig.from_dict({"stages": ["prepare", "train", "infer", "evaluate"],
                               "data": {"sources": [{"name": "a", "url": "demo"}]}, "train": {"datasets": ["a"]},
                               "methods": {"names": ["bicubic", "seeclear"]}})
    assert cfg.methods.seeclear.checkpoint == "run:train"
    assert dataclasses.replace(cfg.train, workers=3).workers == 3
    assert "train" not in RunConfig.demo().to_dict()  # older specs keep their hash


def test_train_network_and_distiller_fields():
    with pytest.raises(SeeClearError, match=r"unknown key 'train.network.base_chanels' \(did you mean 'base_channels'"):
        RunConfig.from_dict({"train": {"network": {"base_chanels": 8}}})
    with pytest.raises(SeeClearError, match="train.network: network.base_channels must be an int >= 1, got 0"):
        RunConfig.from_dict({"train": {"network": {"base_channels": 0}}})
    net = TrainStageConfig(preset="tiny", network={"distiller": "clipseg", "token_dim": 512, "seg_channels": 133,
                                                   "channel_mult": [1, 2, 2, 4]}).network_config()
    assert (net.distiller, net.token_dim, net.channel_mult, net.base_channels) == ("clipseg", 512, (1, 2, 2, 4), 16)
    plain = RunConfig.from_dict({"stages": [], "train": {"workers": 1}}).to_dict()["train"]
    assert "network" not in plain and "distiller" not in plain  # specs written before these fields keep their hash
    paper = RunConfig.from_url(str(Path(__file__).parents[2] / "pipelines" / "specs" / "reds-paper.toml"))
    assert paper.train.preset == "paper" and paper.seeclear_distiller() == paper.train.distiller != ""
    own = RunConfig.from_dict({"stages": ["prepare", "train"], "data": {"sources": [{"name": "a", "url": "demo"}]},
                               "train": {"datasets": ["a"], "distiller": "/models/clipseg"},
                               "methods": {"seeclear": {"distiller": "/other"}}})
    assert own.seeclear_distiller() == "/other"
