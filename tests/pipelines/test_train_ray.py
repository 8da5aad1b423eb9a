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


def settings(steps: int = 6, *, config=None, stages=None, **overrides) -> TrainStageConfig:
    """A [train] table: 2 workers at 0.5 CPU, tiny model, one condenser stage unless told otherwise."""
    base = {"workers": 2, "cpus_per_worker": 0.5, "checkpoint_every": 3, "max_failures": 0,
            "config": {"steps": steps, "lr": 1e-2, "min_lr": 1e-2, "warmup": 1, "batch_size": 2, "crop_size": 32,
                       "clips_per_sample": 1, "ema_decay": 0.995, **(config or {})},
            "stages": tuple(stages or ({"stage": "condenser"},))}
    return TrainStageConfig(**{**base, **overrides})


def fit(shard_urls, out, s: TrainStageConfig, *, expect=None, seed: int = 0):
    from pipelines.train import fit as ray_fit
    from pipelines.train import plan_for

    return ray_fit(plan_for(s, shard_urls, seed=seed, expect=expect), str(out), s, progress=False)


def read_log(out, stage: str = "condenser"):
    from seeclear_bench.layout import TrainFolder
    from seeclear_bench.train import read_log as read

    return read(TrainFolder(str(out)), stage)


def eval_loss(model, shard_urls) -> float:
    """The model's loss on a fixed batch at fixed t and noise."""
    import torch

    from model.training import TrainConfig, augment
    from seeclear_bench.data.shards import make_webdataset

    model = copy.deepcopy(model)
    samples = list(make_webdataset(shard_urls, split_by_node=False))[:4]
    cfg = TrainConfig.tiny(crop_size=32, clips_per_sample=1, stage="condenser", batch_size=4)
    gen = torch.Generator().manual_seed(0)
    pairs = [augment(s["lr"], s["hr"], cfg=cfg, scale=4, clip_frames=model.config.clip_frames, generator=gen)
             for s in samples]
    lr, hr = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    with torch.no_grad():
        losses = [float(model(lr, hr, generator=torch.Generator().manual_seed(k))) for k in range(3)]
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("train-shards"))


@pytest.mark.timeout(600)
def test_two_workers_learn_checkpoint_and_resume(ray_session, shards, tmp_path):
    import torch

    from model.seeclear import SeeClear, SeeClearConfig
    from seeclear_bench.checkpoints import list_checkpoints, load_checkpoint
    from seeclear_bench.seeds import derive_seed

    out = str(tmp_path / "run")
    first = fit(shards, out, settings(10, checkpoint_every=5))
    assert first["step"] == 10 and [s for s, _ in list_checkpoints(f"{out}/condenser/checkpoints")] == [5, 10]
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == list(range(1, 11))

    second = fit(shards, out, settings(20, checkpoint_every=5))
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
        torch.manual_seed(derive_seed(0, "init"))
        initial = SeeClear(SeeClearConfig.tiny())
    trained, _ = load_checkpoint(second["checkpoint"])
    before, after = eval_loss(initial, shards), eval_loss(trained, shards)
    assert after < before * 0.85, (before, after)

    # another worker count: the shards are dealt differently, so the next data epoch starts (README says so)
    third = fit(shards, out, settings(22, checkpoint_every=5, workers=1))
    rows3 = read_log(out)
    assert third["step"] == 22 and [int(r["step"]) for r in rows3] == list(range(1, 23))
    assert int(rows3[20]["epoch"]) == max(p[0] for p in extras["extra"]["positions"]) + 1


@pytest.mark.timeout(300)
def test_corrupt_shard_is_named(ray_session, shards, tmp_path):
    import shutil

    bad = tmp_path / "bad.tar"
    shutil.copy(shards[0], bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\x00" * 4096  # inside a PNG member: fails its checks
    bad.write_bytes(bytes(data))
    with pytest.raises(SeeClearError, match="bad.tar"):
        fit([str(bad), *shards[1:2]], tmp_path / "run", settings(4, workers=1))


@pytest.mark.timeout(400)
def test_an_error_that_would_happen_again_is_not_retried(ray_session, shards, tmp_path):
    """A shard that fails its manifest digest fails every restart the same way: with max_failures=2 the rank that met
    it trains once, the restarted group ends at once, and the driver raises that one line."""
    import json

    from seeclear_bench.data.shards import ShardDigest

    expect = {url: ShardDigest(Path(url).stat().st_size, hashlib.sha256(Path(url).read_bytes()).hexdigest())
              for url in shards[:2]}
    expect[shards[0]] = ShardDigest(expect[shards[0]].n_bytes, "0" * 64)  # the manifest says otherwise
    out = tmp_path / "run"
    with pytest.raises(SeeClearError) as err:
        fit(shards[:2], out, settings(4, workers=1, max_failures=2), expect=expect)
    assert "\n" not in str(err.value) and f"{Path(shards[0]).name} fails its SHA-256 check: expected {'0' * 64}" \
        in str(err.value)
    assert json.loads((out / "condenser" / "workers" / "rank-0.json").read_text())["attempts"] == 1  # not 3
    assert not list(out.glob("*/_failure-*.json"))


@pytest.mark.timeout(600)
def test_two_ddp_workers_of_batch_b_equal_one_worker_of_batch_2b(ray_session, shards, tmp_path):
    """DistributedDataParallel (gloo, through ray.train.torch.prepare_model): 2 workers with batch 1 and 2 micro-steps
    end on the same weights as 1 worker (the same loop in this process) with batch 2 and 2 micro-steps, from the
    same start and data: the global batches hold the same samples with the same augmentation, t and noise, and DDP
    averages the gradients before clipping."""
    import torch

    from model.seeclear import SeeClear
    from pipelines.train import plan_for
    from seeclear_bench.checkpoints import load_checkpoint
    from seeclear_bench.seeds import derive_seed
    from seeclear_bench.train import train

    one = shards[:1]  # fewer shards than ranks: rank r reads every 2nd sample from r
    config = {"lr": 1e-3, "min_lr": 1e-3, "grad_accum": 2, "grad_clip": 0.05}
    ddp = fit(one, tmp_path / "ddp", settings(3, config={**config, "batch_size": 1}))
    s = settings(3, config={**config, "batch_size": 2}, workers=1)
    plan = plan_for(s, one)
    local = train(one, str(tmp_path / "local"), model_config=plan.model, stages=plan.stages, progress=False,
                  checkpoint_every=3)
    a, _ = load_checkpoint(ddp["checkpoint"])
    b, _ = load_checkpoint(local["checkpoint"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(0, "init"))
        start = SeeClear(plan.model).trainable_state_dict()
    sa, sb = a.trainable_state_dict(), b.trainable_state_dict()
    da = torch.cat([(sa[k] - start[k]).flatten() for k in start])
    db = torch.cat([(sb[k] - start[k]).flatten() for k in start])
    # Adam normalises each gradient, so a weight whose gradient is ~0 may step either way on round-off (measured: 3
    # weights in 1e5); the updates as a whole agree to 0.2% and the losses and gradient norms to 6 digits
    assert float(db.norm()) > 0.1 and float((da - db).norm() / db.norm()) < 0.01
    for column in ("loss", "grad_norm"):
        got = [float(r[column]) for r in read_log(tmp_path / "ddp")]
        want = [float(r[column]) for r in read_log(tmp_path / "local")]
        assert got == pytest.approx(want, rel=1e-4), column


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


def test_train_stages_table():
    s = TrainStageConfig(config={"lr": 1e-3, "batch_size": 2, "crop_size": 64, "steps": 10, "grad_clip": 0},
                         stages=({"stage": "condenser"}, {"stage": "memory", "lr": 1e-4, "clips_per_sample": 3},
                                 {"stage": "joint", "steps": 5}))
    configs = s.stage_configs(7)
    assert [c.stage for c in configs] == ["condenser", "memory", "joint"]
    assert [c.lr for c in configs] == [1e-3, 1e-4, 1e-3] and [c.steps for c in configs] == [10, 10, 5]
    assert configs[1].clips_per_sample == 3 and all(c.seed == 7 and c.grad_clip is None for c in configs)
    with pytest.raises(SeeClearError, match=r"unknown key 'train.stages\[0\].batch' \(did you mean 'batch_size'"):
        TrainStageConfig(stages=({"stage": "condenser", "batch": 2},))
    with pytest.raises(SeeClearError, match="lists stage 'memory' twice"):
        TrainStageConfig(stages=({"stage": "memory"}, {"stage": "memory"}))
    with pytest.raises(SeeClearError, match=r"train.stages\[0\] \(joint\): train.warmup"):
        TrainStageConfig(stages=({"stage": "joint", "steps": 5, "warmup": 5},))
    with pytest.raises(SeeClearError, match="spec's top-level seed"):
        TrainStageConfig(config={"seed": 3})
    paper = RunConfig.from_url(str(Path(__file__).parents[2] / "pipelines" / "specs" / "reds-paper.toml"))
    assert [c.stage for c in paper.train.stage_configs(paper.seed)] == ["condenser", "memory", "joint"]


def test_train_network_and_distiller_fields():
    with pytest.raises(SeeClearError, match=r"unknown key 'train.network.base_chanels' \(did you mean 'base_channels'"):
        RunConfig.from_dict({"train": {"network": {"base_chanels": 8}}})
    with pytest.raises(SeeClearError, match="train.network: network.base_channels must be an int >= 1, got 0"):
        RunConfig.from_dict({"train": {"network": {"base_channels": 0}}})
    net = TrainStageConfig(preset="tiny", network={"distiller": "clipseg", "token_dim": 512, "seg_channels": 133,
                                                   "channel_mult": [1, 2, 2, 4]}).network_config()
    assert (net.distiller, net.token_dim, net.channel_mult, net.base_channels) == ("clipseg", 512, (1, 2, 2, 4), 16)
    paper = RunConfig.from_url(str(Path(__file__).parents[2] / "pipelines" / "specs" / "reds-paper.toml"))
    assert paper.train.preset == "paper" and paper.seeclear_distiller() == paper.train.distiller != ""
    own = RunConfig.from_dict({"stages": ["prepare", "train"], "data": {"sources": [{"name": "a", "url": "demo"}]},
                               "train": {"datasets": ["a"], "distiller": "/models/clipseg"},
                               "methods": {"seeclear": {"distiller": "/other"}}})
    assert own.seeclear_distiller() == "/other"
