"""seeclear_bench.checkpoints: round trips (weights, samples, EMA, optimizer, scheduler, memory), completeness,
hashes, and that loading never unpickles anything."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from model.seeclear import SeeClear, SeeClearConfig
from model.training import EMA, TrainConfig, make_optimizer, make_scheduler
from seeclear_bench import io
from seeclear_bench.checkpoints import (
    checkpoint_hash,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import TrainFolder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _trained(cfg: TrainConfig) -> tuple[SeeClear, EMA, torch.optim.Optimizer, object]:
    """A tiny model after one train step, so the optimizer, scheduler and EMA hold real state."""
    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny())
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    ema = EMA(model, cfg.ema_decay)
    hr = torch.rand(1, 5, 3, 32, 32, generator=_gen(0))
    lr = torch.nn.functional.avg_pool2d(hr.flatten(0, 1), 4).unflatten(0, (1, 5))
    model(lr, hr, generator=_gen(1)).backward()
    opt.step()
    sched.step()
    ema.update(model)
    with torch.no_grad():  # a non-zero head, so samples depend on every saved weight
        model.condenser.head.weight.add_(torch.randn(model.condenser.head.weight.shape, generator=_gen(2)) * 0.02)
    return model, ema, opt, sched


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    cfg = TrainConfig.tiny(crop_size=None, clips_per_sample=1)
    model, ema, opt, sched = _trained(cfg)
    memory = model.initial_memory(1).detach()
    memory = type(memory)(memory.semantics + 0.5, memory.textures - 0.25)
    url = str(tmp_path_factory.mktemp("ckpt") / "step-00000001")
    save_checkpoint(url, model, train_config=cfg, ema=ema, optimizer=opt, scheduler=sched, memory=memory, step=1,
                    extra={"epoch": 3})
    return {"url": url, "model": model, "ema": ema, "opt": opt, "sched": sched, "memory": memory, "cfg": cfg}


def test_round_trip_weights_state_and_samples(saved) -> None:
    url = saved["url"]
    assert sorted(p.name for p in Path(url).iterdir()) == [
        "COMPLETE", "config.json", "ema.safetensors", "memory.safetensors", "model.safetensors",
        "optimizer.safetensors", "trainer_state.json",
    ]
    model, extras = load_checkpoint(url)
    original = saved["model"]
    assert extras["config"] == original.config and extras["train_config"] == saved["cfg"]
    assert extras["step"] == 1 and extras["extra"] == {"epoch": 3}
    assert extras["provenance"]["git_commit"]
    for (k, a), (k2, b) in zip(original.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    lr = torch.rand(1, 5, 3, 8, 8, generator=_gen(4))
    original.eval()
    want = original.sample(lr, generator=_gen(9), steps=2)
    assert torch.equal(model.sample(lr, generator=_gen(9), steps=2), want)

    assert torch.equal(extras["memory"].textures, saved["memory"].textures)
    assert torch.equal(extras["memory"].semantics, saved["memory"].semantics)
    ema = EMA(model, 0.5)
    ema.load_state_dict(extras["ema_state"])
    assert ema.num_updates == 1 and ema.decay == saved["ema"].decay
    assert all(torch.equal(ema.shadow[k], v) for k, v in saved["ema"].shadow.items())

    cfg = saved["cfg"]
    opt = make_optimizer(model, cfg)
    opt.load_state_dict(extras["optimizer_state"])
    want_opt, got_opt = saved["opt"].state_dict(), opt.state_dict()
    assert got_opt["param_groups"] == want_opt["param_groups"]
    for index, entry in want_opt["state"].items():
        for name, value in entry.items():
            assert torch.equal(got_opt["state"][index][name], value), (index, name)
    sched = make_scheduler(opt, cfg)
    sched.load_state_dict(extras["scheduler_state"])
    assert sched.state_dict() == saved["sched"].state_dict()


def test_load_ema_weights(saved) -> None:
    model, _ = load_checkpoint(saved["url"], weights="ema")
    state = model.trainable_state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved["ema"].shadow.items())


def test_incomplete_or_missing_checkpoints_are_refused(saved, tmp_path) -> None:
    with pytest.raises(SeeClearError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nothing"))
    copy = tmp_path / "copy"
    fs, _ = io.split(saved["url"])
    fs.copy(saved["url"], str(copy), recursive=True)
    (copy / "model.safetensors").unlink()
    with pytest.raises(SeeClearError, match=r"copy is incomplete: model\.safetensors is missing"):
        load_checkpoint(str(copy))
    (copy / "COMPLETE").unlink()
    with pytest.raises(SeeClearError, match="copy is incomplete: COMPLETE is missing"):
        load_checkpoint(str(copy))
    with pytest.raises(SeeClearError, match="COMPLETE is missing"):
        checkpoint_hash(str(copy))


def test_edited_file_fails_its_hash(saved, tmp_path) -> None:
    copy = tmp_path / "copy"
    io.split(saved["url"])[0].copy(saved["url"], str(copy), recursive=True)
    data = bytearray((copy / "ema.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "ema.safetensors").write_bytes(bytes(data))
    with pytest.raises(SeeClearError, match=r"ema\.safetensors does not match its SHA-256"):
        load_checkpoint(str(copy))


class _Payload:
    """Unpickling this writes a marker file: the proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_loading_never_unpickles(saved, tmp_path) -> None:
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Payload(marker))
    copy = tmp_path / "copy"
    io.split(saved["url"])[0].copy(saved["url"], str(copy), recursive=True)
    (copy / "optimizer.pt").write_bytes(evil)  # a planted pickle next to the real files is never read
    load_checkpoint(str(copy))
    assert not marker.exists()
    # a pickle in place of the weights (with a matching hash, as an attacker would write) is refused, not run
    (copy / "model.safetensors").write_bytes(evil)
    config = json.loads((copy / "config.json").read_text())
    config["files"]["model.safetensors"] = io.sha256_bytes(evil)
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(SeeClearError, match=r"model\.safetensors is not a valid safetensors file"):
        load_checkpoint(str(copy))
    assert not marker.exists()


def test_hash_is_stable_and_tracks_the_weights(saved, tmp_path) -> None:
    model = saved["model"]
    a = save_checkpoint(str(tmp_path / "a"), model, step=5)
    b = save_checkpoint(str(tmp_path / "b"), model, step=7, extra={"note": "other step, same weights"})
    assert checkpoint_hash(a) == checkpoint_hash(b)
    assert len(checkpoint_hash(a)) == 64
    with torch.no_grad():
        model.condenser.stem.bias.add_(1e-3)
    c = save_checkpoint(str(tmp_path / "c"), model, step=5)
    assert checkpoint_hash(c) != checkpoint_hash(a)
    with torch.no_grad():
        model.condenser.stem.bias.sub_(1e-3)


def step_dir(root: str, step: int) -> str:
    return TrainFolder(root).checkpoint("condenser", step)


def test_overwrite_replaces_files_and_latest_checkpoint(saved, tmp_path) -> None:
    run = str(tmp_path / "run")
    model = saved["model"]
    save_checkpoint(step_dir(run, 2), model, ema=saved["ema"], step=2)
    save_checkpoint(step_dir(run, 10), model, step=10)
    Path(step_dir(run, 20)).mkdir(parents=True)  # an interrupted save: no COMPLETE
    assert latest_checkpoint(TrainFolder(run).checkpoints("condenser")) == step_dir(run, 10)
    save_checkpoint(step_dir(run, 2), model, step=2)  # overwrite without EMA: the stale ema file goes
    assert not Path(step_dir(run, 2), "ema.safetensors").exists()
    assert latest_checkpoint(str(tmp_path / "empty")) is None


@pytest.mark.slow
def test_clipseg_weights_are_not_saved_and_the_distiller_is_frozen(tmp_path) -> None:
    """A CLIPSeg-backed model saves only the condenser; loading needs the distiller passed in; no stage trains it."""
    from transformers import CLIPSegConfig

    from model.config import NetworkConfig
    from model.diffusion import DiffusionConfig
    from model.networks import ClipSegDistiller
    from model.training import set_stage

    clip_cfg = CLIPSegConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 8, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=24, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    ids = torch.cat([torch.zeros(4, 1, dtype=torch.long), torch.randint(2, 50, (4, 3), generator=_gen(7)),
                     torch.ones(4, 1, dtype=torch.long)], 1)
    torch.manual_seed(0)
    distiller = ClipSegDistiller.from_config(clip_cfg, input_ids=ids, vocabulary=("a", "b", "c", "d"), n_tokens=5)
    cfg = SeeClearConfig(network=NetworkConfig.tiny(distiller="clipseg", token_dim=24, seg_channels=4, n_tokens=5),
                         diffusion=DiffusionConfig())
    model = SeeClear(cfg, distiller=distiller)
    for stage in ("condenser", "memory", "joint"):
        set_stage(model, stage)
        assert not any(p.requires_grad for p in model.distiller.parameters()), stage
    url = save_checkpoint(str(tmp_path / "clip"), model, step=0)
    from safetensors.torch import load

    keys = load((Path(url) / "model.safetensors").read_bytes()).keys()
    assert keys and all(k.startswith("condenser.") for k in keys)
    with pytest.raises(SeeClearError, match="pass the built distiller"):
        load_checkpoint(url)
    loaded, _ = load_checkpoint(url, distiller=distiller)
    assert all(torch.equal(a, b) for a, b in zip(loaded.condenser.state_dict().values(),
                                                  model.condenser.state_dict().values()))
