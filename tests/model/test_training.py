"""model.training (cosine schedule, EMA, stages, augmentation) and SeeClear's training loss, its forward (tiny preset)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.seeclear import SeeClear, SeeClearConfig
from model.training import (
    EMA,
    TrainConfig,
    augment,
    lr_at,
    make_optimizer,
    make_scheduler,
    random_crop,
    set_stage,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(perturb_head: bool = True) -> SeeClear:
    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny())
    if perturb_head:  # as after stage 1: with a zero head no gradient reaches the layers before it
        with torch.no_grad():
            model.condenser.head.weight.copy_(torch.randn(model.condenser.head.weight.shape, generator=_gen(5)) * 0.02)
    return model


def _batch(b: int = 1, n: int = 5, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth, learnable HR frames (low-frequency sinusoids that drift over time) and their 4x box-downscaled LR."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    freq = torch.rand(b, 1, 3, 2, generator=g) * 6 + 2
    phase = torch.rand(b, 1, 3, 1, 1, generator=g) * 6 + torch.arange(n).view(1, n, 1, 1, 1) * 0.3
    hr = 0.5 + 0.4 * torch.sin(freq[..., 0, None, None] * xx * 3 + phase) * torch.cos(freq[..., 1, None, None] * yy * 3)
    lr = F.avg_pool2d(hr.flatten(0, 1), 4).unflatten(0, (b, n))
    return {"lr": lr, "hr": hr}


def train_step(model, batch, opt, sched, ema, cfg, gen) -> dict[str, float]:
    """One plain optimizer step on the model's loss (the real loop, with DDP and checkpoints, is
    seeclear_bench.train.run_stage)."""
    opt.zero_grad(set_to_none=True)
    loss = model(batch["lr"], batch["hr"], generator=gen, chain_memory=cfg.stage != "condenser",
                 train_distiller=cfg.stage != "memory", eps=cfg.charbonnier_eps)
    loss.backward()
    lr_used = opt.param_groups[0]["lr"]
    opt.step()
    if sched is not None:
        sched.step()
    if ema is not None:
        ema.update(model)
    return {"loss": float(loss.detach()), "lr": lr_used}


# -- loss, schedule, EMA ---------------------------------------------------------------------------------------------
def test_loss_is_charbonnier_on_unit_frames() -> None:
    """The model's loss is the process's one definition, reported on [0, 1] frames: a condenser that returns a known
    x0 gives mean(sqrt(d^2 + eps^2)) with d on [0, 1]."""
    batch = _batch(n=5)
    offset = torch.tensor(0.01)

    class Known(nn.Module):  # x0_pred = x0 + 2 * offset on [-1, 1], i.e. + offset on [0, 1]
        def forward(self, x_t, t, y, *, semantics, memory=None, read_memory=True):
            return batch["hr"] * 2 - 1 + 2 * offset, []

    known = SeeClear(SeeClearConfig.tiny(), condenser=Known())
    known.condenser.initial_memory = lambda b: None  # type: ignore[attr-defined,method-assign]
    loss = known(batch["lr"], batch["hr"], generator=_gen(0), eps=1e-3)
    assert float(loss) == pytest.approx(math.sqrt(1e-4 + 1e-6), rel=1e-4)


def test_amp_runs_only_the_networks_in_bf16() -> None:
    """Under CPU bf16 autocast the bicubic base, the forward process (block DCT blur, noise) and the residual add stay
    float32 and equal their float32 values; the network's own layers run in bf16."""
    from model.networks.unet import PixelCondenser

    model = _model()
    batch = _batch(n=5)
    x0, y = model.training_targets(batch["lr"], batch["hr"])
    t = torch.tensor([7])
    noise = torch.randn(x0.shape, generator=_gen(3))
    want = model.process.q_sample(x0, y, t, noise)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x0_a, y_a = model.training_targets(batch["lr"], batch["hr"])
        got = model.process.q_sample(x0_a, y_a, t, noise)
    assert x0_a.dtype == y_a.dtype == got.dtype == torch.float32
    assert torch.equal(y_a, y) and torch.equal(got, want)

    seen: dict[str, torch.dtype] = {}
    head = model.condenser.head
    def record(module, inputs, output) -> None:
        seen.setdefault("head", output.dtype)

    hook = head.register_forward_hook(record)
    calls: list[torch.Tensor] = []
    original = PixelCondenser.forward

    def spy(self, *args, **kwargs):
        x0_pred, feats = original(self, *args, **kwargs)
        calls.append(x0_pred)
        return x0_pred, feats

    PixelCondenser.forward = spy  # type: ignore[method-assign]
    try:
        loss_amp = model(batch["lr"], batch["hr"], generator=_gen(1), amp=torch.bfloat16)
        loss_f32 = model(batch["lr"], batch["hr"], generator=_gen(1))
    finally:
        PixelCondenser.forward = original  # type: ignore[method-assign]
        hook.remove()
    assert seen["head"] == torch.bfloat16  # the network ran under autocast
    assert calls[0].dtype == torch.float32  # the residual add (+ y) in float32
    assert loss_amp.dtype == loss_f32.dtype == torch.float32
    assert float(loss_amp.detach()) == pytest.approx(float(loss_f32.detach()), rel=0.05)


def test_cosine_schedule_values_and_scheduler() -> None:
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, steps=110, warmup=10)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(35, cfg) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, cfg) == pytest.approx(1e-5) and lr_at(500, cfg) == pytest.approx(1e-5)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    seen = []
    for _ in range(111):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, cfg) for s in range(111)])


def test_ema_math_warmup_copy_and_state() -> None:
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = EMA(lin, 0.9)
    assert ema.current_decay() == pytest.approx(0.1)  # min(0.9, (1 + 0) / (10 + 0))
    with torch.no_grad():
        lin.weight.fill_(2.0)
    ema.update(lin)
    assert ema.shadow["weight"].item() == pytest.approx(0.1 * 1 + 0.9 * 2)
    d = 2 / 11
    with torch.no_grad():
        lin.weight.fill_(3.0)
    ema.update(lin)
    assert ema.shadow["weight"].item() == pytest.approx(d * 1.9 + (1 - d) * 3)
    plain = EMA(lin, 0.9, warmup=False)
    with torch.no_grad():
        lin.weight.fill_(4.0)
    plain.update(lin)
    assert plain.shadow["weight"].item() == pytest.approx(0.9 * 3 + 0.1 * 4)
    plain.copy_to(lin)
    assert lin.weight.item() == pytest.approx(3.1)
    again = EMA(lin, 0.5)
    again.load_state_dict(ema.state_dict())
    assert again.num_updates == 2 and again.decay == 0.9 and torch.equal(again.shadow["weight"], ema.shadow["weight"])


def test_ema_tracks_only_the_saved_weights_of_seeclear() -> None:
    model = _model()
    ema = EMA(model, 0.999)
    assert set(ema.shadow) == {k for k, v in model.trainable_state_dict().items() if v.is_floating_point()}
    assert all(k.startswith(("condenser.", "distiller.")) for k in ema.shadow)


def test_train_config_validation_and_round_trip() -> None:
    cfg = TrainConfig.tiny(stage="joint")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="did you mean 'grad_clip'"):
        TrainConfig.from_dict({"grad_clp": 1.0})
    with pytest.raises(ValueError, match="did you mean 'memory'"):
        TrainConfig(stage="memroy")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(steps=10, warmup=10)


# -- stages ------------------------------------------------------------------------------------------------------
def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("stage", ["condenser", "memory", "joint"])
def test_stage_trains_exactly_its_parameters(stage: str) -> None:
    model = _model()
    cfg = TrainConfig.tiny(stage=stage, lr=1e-3, crop_size=None)
    opt = make_optimizer(model, cfg)
    memory_names = {f"condenser.memory.{k}" for k, _ in model.condenser.memory.named_parameters()}
    grad = {k for k, p in model.named_parameters() if p.requires_grad}
    distiller = {k for k, _ in model.named_parameters() if k.startswith("distiller.")}
    condenser = {k for k, _ in model.named_parameters() if k.startswith("condenser.")} - memory_names
    want = {"condenser": condenser | distiller, "memory": memory_names, "joint": condenser | memory_names | distiller}
    assert grad == want[stage]
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for k, p in model.named_parameters() if k in want[stage]
    )
    before = _snapshot(model)
    out = train_step(model, _batch(n=10), opt, make_scheduler(opt, cfg), None, cfg, _gen(0))
    assert math.isfinite(out["loss"]) and out["lr"] == pytest.approx(lr_at(0, cfg))
    changed = _changed(before, model)
    assert changed <= want[stage]  # frozen weights are bit-for-bit unchanged
    assert changed & (memory_names if stage == "memory" else condenser)
    if stage != "memory":
        assert changed & distiller  # the learned distiller trains in stages 1 and 3
    if stage == "condenser":
        assert not changed & memory_names


def test_memory_update_gets_gradients_only_when_clips_are_chained() -> None:
    update = ("condenser.memory.cross_attn.", "condenser.memory.semantic_link.", "condenser.memory.texture_gate.")
    for stage, frames, chained in (("joint", 10, True), ("joint", 5, False), ("condenser", 10, False)):
        model = _model()
        cfg = TrainConfig.tiny(stage=stage, crop_size=None)
        opt = make_optimizer(model, cfg)
        train_step(model, _batch(n=frames), opt, None, None, cfg, _gen(0))
        grads = [p.grad for k, p in model.named_parameters() if k.startswith(update)]
        got = any(g is not None and g.abs().sum() > 0 for g in grads)
        assert got == chained, (stage, frames)


@pytest.mark.slow
def test_loss_falls_on_a_fixed_tiny_batch() -> None:
    model = _model(perturb_head=False)  # from scratch: the condenser starts at the bicubic base exactly
    cfg = TrainConfig.tiny(lr=2e-3, min_lr=2e-3, steps=100, warmup=0, crop_size=None, clips_per_sample=1)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    ema = EMA(model, 0.9)
    batch = _batch(n=5, size=32)
    losses = [train_step(model, batch, opt, sched, ema, cfg, _gen(0))["loss"] for _ in range(20)]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses  # measured: 0.067 -> ~0.014 after 20 steps
    assert ema.num_updates == 20


def test_loss_rejects_ragged_clips() -> None:
    model = _model()
    with pytest.raises(ValueError, match="multiple of clip_frames"):
        batch = _batch(n=7)
        model(batch["lr"], batch["hr"], generator=_gen(0))


def test_per_sample_generators_make_draws_independent_of_the_batch() -> None:
    """One generator per sample: the loss of a batch of 2 is the mean of the two samples' losses alone."""
    model = _model()
    batch = _batch(b=2, n=10)
    both = model(batch["lr"], batch["hr"], generator=[_gen(0), _gen(1)], chain_memory=True)
    alone = [model(batch["lr"][i : i + 1], batch["hr"][i : i + 1], generator=[_gen(i)], chain_memory=True)
             for i in range(2)]
    assert float(both.detach()) == pytest.approx(float(sum(alone).detach()) / 2, rel=1e-5)


# -- augmentation --------------------------------------------------------------------------------------------------
def test_augment_keeps_lr_and_hr_aligned_and_is_seeded() -> None:
    batch = _batch(b=1, n=12, size=64, seed=3)
    lr, hr = batch["lr"][0], batch["hr"][0]  # lr = 4x4 box mean of hr, so alignment is checkable exactly
    cfg = TrainConfig.tiny(crop_size=32, clips_per_sample=2)
    outs = []
    for seed in range(8):
        a_lr, a_hr = augment(lr, hr, cfg=cfg, scale=4, clip_frames=5, generator=_gen(seed))
        assert a_lr.shape == (10, 3, 8, 8) and a_hr.shape == (10, 3, 32, 32)
        torch.testing.assert_close(F.avg_pool2d(a_hr, 4), a_lr, rtol=0, atol=1e-6)
        outs.append(a_hr)
    _, b_hr = augment(lr, hr, cfg=cfg, scale=4, clip_frames=5, generator=_gen(0))
    assert torch.equal(b_hr, outs[0])
    assert len({tuple(o.flatten()[:64].tolist()) for o in outs}) > 4  # different seeds, different samples
    # fewer frames than clips_per_sample clips: as many whole clips as there are
    short_lr, _ = augment(lr[:7], hr[:7], cfg=cfg, scale=4, clip_frames=5, generator=_gen(0))
    assert short_lr.shape[0] == 5


def test_random_crop_is_scale_aligned_and_checks_sizes() -> None:
    lr = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    hr = lr.repeat_interleave(4, -1).repeat_interleave(4, -2)  # nearest 4x: hr[4i:4i+4, 4j:4j+4] = lr[i, j]
    c_lr, c_hr = random_crop(lr, hr, crop=16, scale=4, generator=_gen(1))
    assert torch.equal(c_hr, c_lr.repeat_interleave(4, -1).repeat_interleave(4, -2))
    with pytest.raises(ValueError, match="multiple of the scale"):
        random_crop(lr, hr, crop=14, scale=4, generator=_gen(1))
    with pytest.raises(ValueError, match="larger than the frames"):
        random_crop(lr, hr, crop=32, scale=4, generator=_gen(1))


def test_set_stage_rejects_unknown_stage() -> None:
    with pytest.raises(ValueError, match="did you mean 'joint'"):
        set_stage(_model(), "jiont")  # type: ignore[arg-type]
