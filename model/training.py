"""What SeeClear training (Sec. 4.1) is made of, as pure functions: the settings of a stage and its pieces.

Owns `TrainConfig` (the one config type of a training stage), stage selection (`set_stage`), `make_optimizer` (Adam,
beta1 0.5, beta2 0.999), `make_scheduler` (linear warm-up then cosine decay to ``min_lr``), `EMA` and seeded
augmentation (`augment`: temporal window and reverse, scale-aligned random crop, flips/transpose). The loss is the
model's forward (`SeeClear.forward`, over the process's `training_loss`); the one training loop that runs a stage
(optimizer steps, accumulation, clipping, EMA, checkpoints, resume, one or many DDP ranks) is
``seeclear_bench/train.py``.

Stages (SeeClear Sec. 4.1; which parameters train):

- ``"condenser"``: the Pixel Condenser without CaTeGory (its memory module stays frozen at its zero init, so every
  memory read is exactly the identity), plus the learned distiller. Clips are not chained: each reads the initial
  memory.
- ``"memory"``: CaTeGory alone (its parameters C_bar, T_bar, reads and update); everything else frozen, the learned
  distiller included.
- ``"joint"``: everything trainable (the condenser with its memory, and the learned distiller).
A pretrained distiller (CLIPSeg) is frozen in every stage; the learned distiller trains in stages 1 and 3.

Memory in training (SEECLEAR.md Sec. 7): a sample holds k = ``clips_per_sample`` consecutive clips; all clips share
one t. Clip 1 reads the learned initial memory; in stages ``memory``/``joint`` the memory is then updated from clip
1's decoder features at that t and clip 2 reads the updated memory, and so on (k - 1 updates per sample; sampling a
100-frame video runs ~20). Gradients flow through the latest update only (the state entering update j >= 2 is
detached), so each clip's loss back-propagates through one update; the loss is the mean over clips.

Imports torch only (plus model/); never ``seeclear_bench`` or ray, no file I/O, no device moves of the model.
Randomness comes only from the torch.Generator passed in.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from model.seeclear import SeeClear

__all__ = [
    "EMA",
    "Stage",
    "TrainConfig",
    "augment",
    "lr_at",
    "make_optimizer",
    "make_scheduler",
    "random_crop",
    "random_flip",
    "random_window",
    "set_stage",
]

Stage = Literal["condenser", "memory", "joint"]
STAGES: tuple[str, ...] = ("condenser", "memory", "joint")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Hyper-parameters of one training stage (defaults: SEECLEAR.md Sec. 7, stage 1).

    Attributes:
        lr: peak learning rate.
        min_lr: learning rate at the end of the cosine decay.
        steps: optimizer steps of the stage (the cosine reaches min_lr there).
        warmup: steps of linear warm-up from lr/warmup to lr before the cosine starts.
        ema_decay: EMA decay (with the (1+n)/(10+n) warm-up of `EMA`).
        grad_clip: max global gradient norm; None disables clipping.
        stage: which parameters train (module docstring).
        clips_per_sample: consecutive clips per training sample (memory chaining in stages memory/joint).
        crop_size: HR crop side (a multiple of the scale); None trains on whole frames.
        batch_size: samples per rank per micro-step (the global batch is batch_size x grad_accum x ranks).
        grad_accum: micro-steps (backward passes) per optimizer step.
        seed: seed of the data order, augmentation, timesteps and noise.
        charbonnier_eps: epsilon of the Charbonnier loss on [0, 1]-scaled frames.
        betas: Adam betas (the paper's (0.5, 0.999)).
        flips: random horizontal/vertical flips and (square crops) transposes.
        temporal_reverse: reverse the frame order with probability 1/2.

    Raises:
        ValueError: naming the field, on an invalid value.
    """

    lr: float = 1e-4
    min_lr: float = 1e-6
    steps: int = 300_000
    warmup: int = 0
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    stage: Stage = "condenser"
    clips_per_sample: int = 2
    crop_size: int | None = 256
    batch_size: int = 16
    grad_accum: int = 1
    seed: int = 0
    charbonnier_eps: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    flips: bool = True
    temporal_reverse: bool = True

    def __post_init__(self) -> None:
        for name in ("lr", "charbonnier_eps"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"train.{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if not (_positive(self.min_lr) or self.min_lr == 0) or self.min_lr > self.lr:
            raise ValueError(f"train.min_lr must lie in [0, lr={self.lr}], got {self.min_lr!r}")
        for name, low in (("steps", 1), ("warmup", 0), ("clips_per_sample", 1), ("batch_size", 1),
                           ("grad_accum", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"train.{name} must be an int >= {low}, got {value!r}")
        if self.warmup >= self.steps:
            raise ValueError(f"train.warmup ({self.warmup}) must be smaller than train.steps ({self.steps})")
        decay = self.ema_decay
        if isinstance(decay, bool) or not (isinstance(decay, (int, float)) and 0.0 <= decay < 1.0):
            raise ValueError(f"train.ema_decay must be a float in [0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None and not _positive(self.grad_clip):
            raise ValueError(f"train.grad_clip must be None or > 0, got {self.grad_clip!r}")
        if self.stage not in STAGES:
            raise ValueError(f"train.stage must be one of {STAGES}, got {self.stage!r}{_hint(self.stage, STAGES)}")
        if self.crop_size is not None and (not isinstance(self.crop_size, int) or self.crop_size < 1):
            raise ValueError(f"train.crop_size must be None or a positive int (HR pixels), got {self.crop_size!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")

    @classmethod
    def tiny(cls, **overrides: Any) -> TrainConfig:
        """CPU demo/test settings for `SeeClearConfig.tiny()`: 64x64 HR crops, batch 2, 2 clips, lr 2e-4."""
        base: dict[str, Any] = {
            "lr": 2e-4, "min_lr": 1e-5, "steps": 2000, "ema_decay": 0.995, "crop_size": 64, "batch_size": 2
        }
        base.update(overrides)
        base.setdefault("warmup", min(50, base["steps"] // 10))
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; `from_dict` inverts it."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from `to_dict`'s form; unknown keys raise ValueError with a close-match hint."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ValueError(f"TrainConfig: unknown key {key!r}{_hint(str(key), names)}; valid: {', '.join(names)}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _hint(name: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- stages, optimizer, schedule ----------------------------------------------------------------------------------
def _memory_parameters(model: SeeClear) -> list[nn.Parameter]:
    memory = getattr(model.condenser, "memory", None)
    return list(memory.parameters()) if isinstance(memory, nn.Module) else []


def set_stage(model: SeeClear, stage: Stage) -> list[nn.Parameter]:
    """Set requires_grad for ``stage`` (module docstring) and return the trainable parameters.

    Raises:
        ValueError: an unknown stage, or stage "memory" for a condenser without a ``memory`` module.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}{_hint(str(stage), STAGES)}")
    memory = {id(p) for p in _memory_parameters(model)}
    if stage == "memory" and not memory:
        raise ValueError("stage 'memory' needs a condenser with a CaTeGory `memory` module")
    model.requires_grad_(False)
    trainable: list[nn.Parameter] = []
    for p in model.condenser.parameters():
        if stage == "joint" or (stage == "condenser") == (id(p) not in memory):
            trainable.append(p)
    if stage != "memory" and not model.pretrained_distiller:
        trainable.extend(model.distiller.parameters())
    for p in trainable:
        p.requires_grad_(True)
    return trainable


def make_optimizer(model: SeeClear, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam(betas = cfg.betas, the paper's (0.5, 0.999)) over the parameters of ``cfg.stage`` (calls `set_stage`)."""
    return torch.optim.Adam(set_stage(model, cfg.stage), lr=cfg.lr, betas=cfg.betas)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine from lr to min_lr.

    warm-up: lr (step + 1) / warmup for step < warmup; then progress p = (step - warmup) / (steps - warmup), clamped
    to [0, 1], gives min_lr + (lr - min_lr) (1 + cos(pi p)) / 2.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(max((step - cfg.warmup) / (cfg.steps - cfg.warmup), 0.0), 1.0)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR giving `lr_at` (call ``scheduler.step()`` once per optimizer step; its state is JSON-able)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, cfg) / cfg.lr)


# -- EMA -----------------------------------------------------------------------------------------------------------
def _weights(model: nn.Module) -> dict[str, Tensor]:
    state = model.trainable_state_dict() if isinstance(model, SeeClear) else model.state_dict()
    return {k: v for k, v in state.items() if v.is_floating_point()}


class EMA:
    """Exponential moving average of the model's saved floating-point weights (`SeeClear.trainable_state_dict`).

    update n (0-based) uses d = min(decay, (1 + n) / (10 + n)) when ``warmup`` (so early averages are not dominated
    by the initial weights), else d = decay: shadow <- d shadow + (1 - d) weight.

    Args:
        model: the model to track (a SeeClear or any nn.Module, whose state_dict is used).
        decay: the decay in [0, 1).
        warmup: use the (1 + n) / (10 + n) warm-up.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in _weights(model).items()}

    def current_decay(self) -> float:
        """The d the next `update` uses."""
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow <- d shadow + (1 - d) weights, then count the update."""
        d = self.current_decay()
        for name, value in _weights(model).items():
            self.shadow[name].lerp_(value.detach(), 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's tracked weights with the averages (keep a copy first to restore them)."""
        weights = _weights(model)
        for name, value in self.shadow.items():
            weights[name].copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """{"decay", "warmup", "num_updates", "shadow": {name: tensor}}."""
        return {
            "decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates, "shadow": dict(self.shadow)
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict`'s content; the shadow's names must match the tracked weights."""
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(shadow)), sorted(set(shadow) - set(self.shadow))
            raise ValueError(f"EMA state does not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        self.decay, self.warmup = float(state["decay"]), bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for name, value in shadow.items():
            self.shadow[name].copy_(value)


# -- augmentation (seeded, pure) ----------------------------------------------------------------------------------
def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=generator, device=generator.device).item())


def _check_pair(lr: Tensor, hr: Tensor, scale: int) -> None:
    if lr.ndim != 4 or hr.ndim != 4 or lr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"expected lr (n c h w) and hr (n c H W), got {tuple(lr.shape)} and {tuple(hr.shape)}")
    if hr.shape[-2:] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        raise ValueError(f"hr must be {scale}x the lr size, got lr {tuple(lr.shape[-2:])}, hr {tuple(hr.shape[-2:])}")


def random_window(lr: Tensor, hr: Tensor, *, frames: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``frames`` consecutive frames at a random start of (n c h w) / (n c H W) clips (n >= frames)."""
    n = lr.shape[0]
    if n < frames:
        raise ValueError(f"a sample needs at least {frames} frames, got {n}")
    start = _randint(n - frames + 1, generator)
    return lr[start : start + frames], hr[start : start + frames]


def random_crop(
    lr: Tensor, hr: Tensor, *, crop: int, scale: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Aligned random crop: an HR ``crop`` x ``crop`` window whose corner lies on the LR grid (crop % scale == 0).

    Args:
        lr: (n c h w).
        hr: (n c sh sw).
        crop: HR side, a multiple of scale, at most the HR size.
        scale: the SR factor.
        generator: torch.Generator.

    Returns:
        (lr (n c crop/s crop/s), hr (n c crop crop)), views of the inputs.
    """
    _check_pair(lr, hr, scale)
    if crop % scale:
        raise ValueError(f"crop size {crop} must be a multiple of the scale {scale}")
    c = crop // scale
    h, w = lr.shape[-2:]
    if h < c or w < c:
        raise ValueError(f"crop {crop} (LR {c}) is larger than the frames (LR {h}x{w}); lower train.crop_size")
    top, left = _randint(h - c + 1, generator), _randint(w - c + 1, generator)
    return (
        lr[..., top : top + c, left : left + c],
        hr[..., top * scale : (top + c) * scale, left * scale : (left + c) * scale],
    )


def random_flip(lr: Tensor, hr: Tensor, *, generator: torch.Generator, transpose: bool = True) -> tuple[Tensor, Tensor]:
    """The same random horizontal flip, vertical flip and (square frames, ``transpose``) transpose for both."""
    draws = [_randint(2, generator) for _ in range(3)]
    if draws[0]:
        lr, hr = lr.flip(-1), hr.flip(-1)
    if draws[1]:
        lr, hr = lr.flip(-2), hr.flip(-2)
    if transpose and draws[2] and lr.shape[-2] == lr.shape[-1]:
        lr, hr = lr.transpose(-2, -1), hr.transpose(-2, -1)
    return lr, hr


def augment(
    lr: Tensor, hr: Tensor, *, cfg: TrainConfig, scale: int, clip_frames: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One training sample: temporal window of k clips, temporal reverse, aligned crop, flips.

    k = min(cfg.clips_per_sample, n // clip_frames) so shorter samples still train (with fewer chained clips).

    Args:
        lr: (n 3 h w) in [0, 1].
        hr: (n 3 sh sw) in [0, 1].
        cfg: the train config (crop_size, clips_per_sample, flips, temporal_reverse).
        scale: the SR factor.
        clip_frames: frames per clip m.
        generator: torch.Generator; the same state gives the same sample.

    Returns:
        (lr (k*m 3 c/s c/s), hr (k*m 3 c c)), contiguous copies.
    """
    _check_pair(lr, hr, scale)
    k = min(cfg.clips_per_sample, lr.shape[0] // clip_frames)
    lr, hr = random_window(lr, hr, frames=max(k, 1) * clip_frames, generator=generator)
    if cfg.temporal_reverse and _randint(2, generator):
        lr, hr = lr.flip(0), hr.flip(0)
    if cfg.crop_size is not None:
        lr, hr = random_crop(lr, hr, crop=cfg.crop_size, scale=scale, generator=generator)
    if cfg.flips:
        lr, hr = random_flip(lr, hr, generator=generator)
    return lr.contiguous(), hr.contiguous()
