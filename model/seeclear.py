"""SeeClear assembled: Semantic Distiller + Pixel Condenser + blurring-ResShift, and video sampling (Alg. 1).

Owns `SeeClearConfig` (network + diffusion + clip/tiling settings, presets, JSON-able dict form) and `SeeClear`
(the nn.Module holding the distiller and the condenser, with the process as a plain attribute). `SeeClear.sample`
runs Alg. 1 on a whole video:

1. split the LR video (b n 3 h w) in [0, 1] into ``clip_frames``-frame clips, the last padded by repeating its last
   frame (the padding is dropped from the output);
2. per clip: y = MATLAB-bicubic Up(LR) in [-1, 1] (the residual base and diffusion end state), replicate-padded to
   a multiple of the condenser's size multiple; the distiller runs ONCE on y; T (or ``steps``) reverse steps of the
   process, each calling the condenser with the clip's semantics and the current CaTeGory memory;
3. after the clip's last step, the memory is updated from that step's decoder features and carried to the next clip.

Tiling (``tile`` set): a frame larger than ``tile`` is denoised tile by tile at every step (tiles overlap by
``tile_overlap``, both multiples of the size multiple, so every decoder level's grid lines up); x0 predictions and
the decoder features used by the memory update are blended with separable linear ramps (weights normalised by their
sum). The state, the noise and the posterior stay whole-frame, so tiles never drift apart.

Frames are in [0, 1] outside and [-1, 1] inside. Imports torch and einops only; never ``seeclear_bench`` or ray, no
file I/O, no device moves (everything follows the input's device).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import NetworkConfig
from model.diffusion import BlurringResShift, DiffusionConfig, sample_loop
from model.networks import (
    ClipSegDistiller,
    MemoryState,
    PixelCondenser,
    SemanticDistiller,
    Semantics,
    check_distiller,
    make_learned_distiller,
)
from model.upsample import upsample_bicubic

__all__ = ["SeeClear", "SeeClearConfig"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(where: str, given: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(allowed)}")


@dataclass(frozen=True, kw_only=True)
class SeeClearConfig:
    """Everything needed to rebuild a SeeClear model.

    Attributes:
        network: sizes of the condenser, InCAM, CaTeGory and the distiller.
        diffusion: the blurring-ResShift process (T, kappa, schedules, blur).
        scale: super-resolution factor s (LR h x w -> HR sh x sw).
        clip_frames: frames per clip m (SeeClear: 5); at most ``network.frames`` (the frame embedding's size).
        tile: None to denoise whole frames; else the side of square HR tiles for frames larger than that (a multiple
            of ``network.size_multiple``).
        tile_overlap: HR pixels shared by neighbouring tiles (a multiple of ``network.size_multiple``, < tile).

    Raises:
        ValueError: naming the field, on an invalid value.
    """

    network: NetworkConfig
    diffusion: DiffusionConfig
    scale: int = 4
    clip_frames: int = 5
    tile: int | None = None
    tile_overlap: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.network, NetworkConfig) or not isinstance(self.diffusion, DiffusionConfig):
            raise ValueError("SeeClearConfig needs network: NetworkConfig and diffusion: DiffusionConfig")
        if not _is_int(self.scale) or self.scale < 1:
            raise ValueError(f"scale must be an int >= 1, got {self.scale!r}")
        if not _is_int(self.clip_frames) or not 1 <= self.clip_frames <= self.network.frames:
            raise ValueError(
                f"clip_frames must be an int in 1..network.frames ({self.network.frames}), got {self.clip_frames!r}"
            )
        mult = self.network.size_multiple
        if not _is_int(self.tile_overlap) or self.tile_overlap < 0 or self.tile_overlap % mult:
            raise ValueError(f"tile_overlap must be a multiple of {mult} (>= 0), got {self.tile_overlap!r}")
        if self.tile is not None:
            if not _is_int(self.tile) or self.tile < mult or self.tile % mult:
                raise ValueError(f"tile must be None or a positive multiple of {mult} (HR pixels), got {self.tile!r}")
            if self.tile_overlap >= self.tile:
                raise ValueError(f"tile_overlap ({self.tile_overlap}) must be smaller than tile ({self.tile})")

    @property
    def size_multiple(self) -> int:
        """HR frames are replicate-padded to a multiple of this before sampling (condenser and DCT patch)."""
        return math.lcm(self.network.size_multiple, self.diffusion.patch_size)

    def with_overrides(self, **overrides: Any) -> SeeClearConfig:
        """A copy with top-level fields replaced (validated again)."""
        return replace(self, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> SeeClearConfig:
        """CPU tests and the demo: `NetworkConfig.tiny()` (~1.04 M condenser parameters), the default process."""
        return cls(network=NetworkConfig.tiny(), diffusion=DiffusionConfig(), **overrides)

    @classmethod
    def small(cls, **overrides: Any) -> SeeClearConfig:
        """Single-GPU training at 256x256 HR crops: `NetworkConfig.small()` (~41 M), the default process."""
        return cls(network=NetworkConfig.small(), diffusion=DiffusionConfig(), **overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> SeeClearConfig:
        """The paper's size (~234 M condenser parameters, T = 15) with the frozen Mask2Former (panoptic) distiller."""
        return cls(network=NetworkConfig.paper(), diffusion=DiffusionConfig(), **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SeeClearConfig:
        """`tiny`, `small` or `paper` by name."""
        presets = {"tiny": cls.tiny, "small": cls.small, "paper": cls.paper}
        if name not in presets:
            _check_keys("SeeClearConfig.preset", {name: None}, list(presets))
        return presets[name](**overrides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists); `from_dict` inverts it."""
        network = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.network).items()}
        return {
            "network": network,
            "diffusion": dataclasses.asdict(self.diffusion),
            "scale": self.scale,
            "clip_frames": self.clip_frames,
            "tile": self.tile,
            "tile_overlap": self.tile_overlap,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeeClearConfig:
        """Rebuild from `to_dict`'s form; unknown keys (at any level) raise ValueError with a close-match hint.

        Missing network/diffusion fields take their defaults; ``network`` and ``diffusion`` themselves are required.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"SeeClearConfig.from_dict expects a mapping, got {type(data).__name__}")
        top = [f.name for f in dataclasses.fields(cls)]
        _check_keys("SeeClearConfig", data, top)
        for name in ("network", "diffusion"):
            if not isinstance(data.get(name), Mapping):
                raise ValueError(f"SeeClearConfig.{name} must be a mapping of its fields, got {data.get(name)!r}")
        network = dict(data["network"])
        _check_keys("SeeClearConfig.network", network, [f.name for f in dataclasses.fields(NetworkConfig)])
        if isinstance(network.get("channel_mult"), list):
            network["channel_mult"] = tuple(network["channel_mult"])
        diffusion = dict(data["diffusion"])
        _check_keys("SeeClearConfig.diffusion", diffusion, [f.name for f in dataclasses.fields(DiffusionConfig)])
        rest = {k: v for k, v in data.items() if k not in ("network", "diffusion")}
        return cls(network=NetworkConfig(**network), diffusion=DiffusionConfig(**diffusion), **rest)


# -- tiling --------------------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` (one tile of the whole length when it fits).

    Steps of ``tile - overlap``; the last tile is moved back to end at ``length``, so it may overlap more.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(length: int, overlap: int, like: Tensor) -> Tensor:
    """(length,) weights rising linearly over ``overlap`` samples at both ends (1 in the middle), never 0."""
    i = torch.arange(length, device=like.device, dtype=like.dtype)
    if overlap <= 0:
        return torch.ones_like(i)
    return torch.minimum((i + 1) / (overlap + 1), (length - i) / (overlap + 1)).clamp(max=1.0)


class _Blender:
    """Accumulates (... h w) tiles of a (... H W) canvas with separable linear ramps, then normalises."""

    def __init__(self, like: Tensor, size: tuple[int, int]) -> None:
        self.out = like.new_zeros(*like.shape[:-2], *size)
        self.weight = like.new_zeros(*size)

    def add(self, tile: Tensor, top: int, left: int, overlap: int) -> None:
        h, w = tile.shape[-2:]
        wmap = _ramp(h, overlap, tile)[:, None] * _ramp(w, overlap, tile)[None, :]
        self.out[..., top : top + h, left : left + w] += tile * wmap
        self.weight[top : top + h, left : left + w] += wmap

    def result(self) -> Tensor:
        return self.out / self.weight


class SeeClear(nn.Module):
    """The SeeClear model: a Semantic Distiller, the Pixel Condenser (with InCAM and CaTeGory) and the process.

    Args:
        config: the model config.
        distiller: the Semantic Distiller; None builds the `LearnedDistiller` of ``config.network`` (a pretrained
            distiller must be passed in built, its weights loaded outside ``model/``).
        condenser: the denoiser; None builds `PixelCondenser(config.network)`. Any module with the condenser's
            ``forward(x_t, t, y, *, semantics, memory, read_memory) -> (x0_pred, decoder_features)``, ``initial_memory`` and
            ``update_memory`` works (tests use position-independent ones).

    Attributes:
        config: the config.
        distiller: the distiller module.
        condenser: the condenser module.
        process: the `BlurringResShift` process (a plain object, no parameters).

    Raises:
        ValueError: a pretrained-distiller config without a distiller, or a distiller whose output sizes do not match.
    """

    def __init__(
        self,
        config: SeeClearConfig,
        *,
        distiller: SemanticDistiller | None = None,
        condenser: nn.Module | None = None,
    ) -> None:
        super().__init__()
        net = config.network
        if distiller is None:
            if net.distiller != "learned":
                raise ValueError(
                    f"network.distiller is {net.distiller!r}: pass the built distiller (e.g. "
                    "ClipSegDistiller.from_model(...)) as SeeClear(config, distiller=...)"
                )
            distiller = make_learned_distiller(net)
        check_distiller(net, distiller)
        self.config = config
        self.distiller = distiller
        self.condenser = condenser if condenser is not None else PixelCondenser(net)
        self.process = BlurringResShift(config.diffusion)

    # -- parameters ------------------------------------------------------------------------------------------------
    @property
    def pretrained_distiller(self) -> bool:
        """True for a frozen pretrained distiller (CLIPSeg, Mask2Former): never trained, never saved with the model."""
        return bool(getattr(self.distiller, "frozen", False)) or isinstance(self.distiller, ClipSegDistiller)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The weights a checkpoint holds: ``condenser.*`` and, for the learned distiller, ``distiller.*``."""
        state = {f"condenser.{k}": v for k, v in self.condenser.state_dict().items()}
        if not self.pretrained_distiller:
            state.update({f"distiller.{k}": v for k, v in self.distiller.state_dict().items()})
        return state

    def load_trainable_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Load `trainable_state_dict`'s keys (exactly those; ValueError naming missing/unexpected keys)."""
        want = set(self.trainable_state_dict())
        missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
        if missing or unexpected:
            raise ValueError(
                f"weights do not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; check the config/preset"
            )
        self.condenser.load_state_dict(
            {k[len("condenser.") :]: v for k, v in state.items() if k.startswith("condenser.")}
        )
        if not self.pretrained_distiller:
            self.distiller.load_state_dict(
                {k[len("distiller.") :]: v for k, v in state.items() if k.startswith("distiller.")}
            )

    # -- building blocks -------------------------------------------------------------------------------------------
    def upsample(self, lr: Tensor) -> Tensor:
        """y = MATLAB-bicubic Up(LR) mapped to [-1, 1]: (b n 3 h w) in [0, 1] -> (b n 3 sh sw)."""
        return upsample_bicubic(lr * 2 - 1, self.config.scale)

    def distill(self, y: Tensor) -> Semantics:
        """The distiller on a clip's upsampled frames y (b m 3 H W) in [-1, 1] (Eq. 8-9)."""
        return self.distiller(y)

    def initial_memory(self, batch_size: int) -> MemoryState:
        """CaTeGory's learned initial state for ``batch_size`` videos."""
        return self.condenser.initial_memory(batch_size)

    def update_memory(
        self, memory: MemoryState, decoder_features: Sequence[Tensor], semantics: Semantics
    ) -> MemoryState:
        """CaTeGory's update from a clip's decoder features (Eq. 16-18)."""
        return self.condenser.update_memory(memory, decoder_features, semantics)

    def denoise(
        self, x_t: Tensor, t: Tensor, y: Tensor, *, semantics: Semantics, memory: MemoryState | None = None,
        read_memory: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """One condenser call, tiled when ``config.tile`` is set and the frames are larger than a tile.

        Args:
            x_t: (b m 3 H W) input-scaled state (``process.scale_input``).
            t: (b,) long steps in 1..T.
            y: (b m 3 H W) upsampled LR in [-1, 1].
            semantics: the clip's distiller output (tokens (b m k d), seg (b m s h w) over the whole frame).
            memory: CaTeGory state of the b videos (None: the learned initial state).
            read_memory: False skips every CaTeGory read (the memory has no effect on x0_pred).

        Returns:
            (x0_pred (b m 3 H W), decoder features deepest first (b m c_k h_k w_k)); tiled features are blended
            onto the whole frame (H and W must then be multiples of ``config.size_multiple``).
        """
        tile = self.config.tile
        hgt, wid = y.shape[-2:]
        if tile is None or (hgt <= tile and wid <= tile):
            return self.condenser(x_t, t, y, semantics=semantics, memory=memory, read_memory=read_memory)
        mult = self.config.network.size_multiple
        if hgt % mult or wid % mult:
            raise ValueError(f"tiled denoising needs H and W divisible by {mult}, got {hgt}x{wid}; pad the frames")
        overlap = self.config.tile_overlap
        x0_blend = _Blender(y, (hgt, wid))
        feat_blend: list[_Blender] = []
        seg = semantics.seg
        sh, sw = seg.shape[-2] / hgt, seg.shape[-1] / wid
        for top in tile_starts(hgt, tile, overlap):
            for left in tile_starts(wid, tile, overlap):
                th, tw = min(tile, hgt), min(tile, wid)
                window = (..., slice(top, top + th), slice(left, left + tw))
                rows = slice(round(top * sh), round((top + th) * sh))
                seg_tile = seg[..., rows, round(left * sw) : round((left + tw) * sw)]
                x0, feats = self.condenser(
                    x_t[window], t, y[window], semantics=Semantics(semantics.tokens, seg_tile), memory=memory,
                    read_memory=read_memory,
                )
                x0_blend.add(x0, top, left, overlap)
                if not feat_blend:
                    feat_blend = [
                        _Blender(f, (hgt * f.shape[-2] // th, wid * f.shape[-1] // tw)) for f in feats
                    ]
                for blend, f in zip(feat_blend, feats):
                    r = th // f.shape[-2]
                    blend.add(f, top // r, left // r, overlap // r)
        return x0_blend.result(), [b.result() for b in feat_blend]

    # -- training --------------------------------------------------------------------------------------------------
    def forward(
        self,
        lr: Tensor,
        hr: Tensor,
        *,
        generator: torch.Generator | Sequence[torch.Generator],
        chain_memory: bool = False,
        train_distiller: bool = True,
        eps: float = 1e-3,
        amp: torch.dtype | None = None,
    ) -> Tensor:
        """SeeClear's training loss on a batch of consecutive clips (Sec. 4.1; SEECLEAR.md Sec. 7 memory handling).

        The loss is the diffusion process's one definition (`BlurringResShift.training_loss`, Charbonnier on x0):
        per sample t ~ U{1..T} (shared by its clips); per clip y = Up(LR), semantics = distiller(y) once, x_t =
        q_sample(x0, y, t, noise), x0_pred = condenser(scale_input(x_t), t, y, memory). With ``chain_memory`` the
        memory is updated from each clip's decoder features before the next clip reads it (gradients flow through the
        latest update only: the state entering update j >= 2 is detached). The result is the mean over clips, on
        [0, 1]-scaled frames (``eps`` in those units).

        This is the module's forward so that a DistributedDataParallel wrapper sees the whole step (its gradient
        hooks, ``no_sync``); call ``model(lr, hr, generator=...)``.

        Precision: with ``amp`` (e.g. torch.bfloat16) only the networks run under autocast (distiller, condenser
        and the memory update); the bicubic base, the forward process (block DCT blur, noise), the input scaling,
        the residual add and the loss stay float32, also when the caller has autocast enabled.

        Args:
            lr: (b n 3 h w) in [0, 1], n a multiple of ``config.clip_frames``.
            hr: (b n 3 sh sw) in [0, 1].
            generator: draws t and the noise (on its own device; moved to the data's). One generator per sample
                (a sequence of b) makes each sample's t and noise independent of the batch it is in, so b samples on
                one rank and b/2 on each of two ranks see the same draws.
            chain_memory: carry the CaTeGory memory across the sample's clips (stages memory and joint).
            train_distiller: build the graph through the distiller (False: it runs under no_grad).
            eps: Charbonnier epsilon on [0, 1] frames.
            amp: autocast dtype for the networks, or None for float32 throughout.

        Returns:
            The scalar loss (float32).

        Raises:
            ValueError: on bad batch shapes.
        """
        m = self.config.clip_frames
        if lr.ndim != 5 or hr.ndim != 5 or lr.shape[:2] != hr.shape[:2] or lr.shape[1] % m:
            raise ValueError(
                f"batch lr/hr must be (b n 3 h w) with n a multiple of clip_frames {m}, got {tuple(lr.shape)} and "
                f"{tuple(hr.shape)}"
            )
        device_type = hr.device.type
        with torch.autocast(device_type, enabled=False):
            x0_all, y_all = self.training_targets(lr.float(), hr.float())
            b = hr.shape[0]
            gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
            if len(gens) not in (1, b):
                raise ValueError(f"pass one generator or one per sample ({b}), got {len(gens)}")

            def draw(fn: Any, shape: tuple[int, ...]) -> Tensor:
                if len(gens) == 1:
                    return fn((b, *shape), generator=gens[0], device=gens[0].device).to(hr.device)
                return torch.stack([fn(shape, generator=g, device=g.device) for g in gens]).to(hr.device)

            t = draw(lambda size, **kw: torch.randint(1, self.process.T + 1, size, **kw), ()).long()

        network = self._autocast(device_type, amp)
        memory = self.initial_memory(b)
        losses = []
        n_clips = lr.shape[1] // m
        for c in range(n_clips):
            x0, y = x0_all[:, c * m : (c + 1) * m], y_all[:, c * m : (c + 1) * m]
            with torch.set_grad_enabled(train_distiller and torch.is_grad_enabled()), network():
                semantics = self.distill(y)
            features: list[list[Tensor]] = []
            with torch.autocast(device_type, enabled=False):
                noise = draw(torch.randn, tuple(x0.shape[1:]))
                # the process works on [-1, 1]: eps doubles and the loss halves, so it equals Charbonnier on [0, 1]
                losses.append(0.5 * self.process.training_loss(
                    self._loss_denoiser, x0, y, t=t, noise=noise, eps=2 * eps, semantics=semantics, memory=memory,
                    features=features, network=network))
            if chain_memory and c + 1 < n_clips:
                with network():
                    memory = self.update_memory(memory if c == 0 else memory.detach(), features[-1], semantics)
        return torch.stack(losses).mean()

    @staticmethod
    def _autocast(device_type: str, amp: torch.dtype | None) -> Callable[[], Any]:
        """A factory of the context the networks run in: autocast to ``amp``, or nothing."""
        if amp is None:
            return contextlib.nullcontext
        return lambda: torch.autocast(device_type, dtype=amp)

    def _loss_denoiser(self, x_t: Tensor, t: Tensor, y: Tensor, **cond: Any) -> Tensor:
        """The condenser as the process's training loss calls it: under ``cond["network"]()``, its decoder features
        appended to ``cond["features"]``, x0 returned in float32."""
        with cond["network"]():
            x0_pred, feats = self.denoise(x_t, t, y, semantics=cond["semantics"], memory=cond["memory"])
        cond["features"].append(feats)
        return x0_pred.float()

    def training_targets(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor]:
        """(x0, y) of the training loss in float32: the HR frames and the bicubic base Up(LR), both in [-1, 1]."""
        x0 = hr * 2 - 1
        y = self.upsample(lr)
        if y.shape != x0.shape:
            raise ValueError(f"hr must be {self.config.scale}x the lr size, got {tuple(lr.shape)} and {tuple(hr.shape)}")
        return x0, y

    # -- sampling --------------------------------------------------------------------------------------------------
    def _check_video(self, lr: Tensor, name: str) -> None:
        if lr.ndim != 5 or lr.shape[2] != 3 or not lr.is_floating_point() or lr.shape[1] < 1:
            raise ValueError(f"{name} must be a float tensor (b n 3 h w) in [0, 1], got {lr.dtype} {tuple(lr.shape)}")
        lo, hi = float(lr.min()), float(lr.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"{name} must hold values in [0, 1], got range [{lo:.3f}, {hi:.3f}]; divide uint8 by 255")

    @torch.no_grad()
    def sample_clip(
        self,
        lr_clip: Tensor,
        *,
        memory: MemoryState,
        generator: torch.Generator | None,
        steps: int | None = None,
        use_memory: bool = True,
    ) -> tuple[Tensor, MemoryState]:
        """Sample one clip and update the memory after its last step (Alg. 1 lines 2-44).

        Runs in the module's current mode; `sample` switches to eval mode (do the same when calling this directly).

        Args:
            lr_clip: (b m 3 h w) LR frames in [0, 1], m <= ``config.clip_frames`` (pad short clips yourself).
            memory: CaTeGory state read by every step of this clip.
            generator: torch.Generator on the input's device (None: torch's global generator).
            steps: reverse steps (None: T); fewer use the respaced sampler.
            use_memory: False reads no memory and returns ``memory`` unchanged (for weights whose memory never
                trained).

        Returns:
            (hr_clip (b m 3 sh sw) in [0, 1], the memory for the next clip).
        """
        self._check_video(lr_clip, "lr_clip")
        b, m = lr_clip.shape[:2]
        if m > self.config.clip_frames:
            raise ValueError(f"lr_clip has {m} frames; a clip holds at most {self.config.clip_frames}")
        y = self.upsample(lr_clip)
        hgt, wid = y.shape[-2:]
        mult = self.config.size_multiple
        pad = (0, -wid % mult, 0, -hgt % mult)
        if any(pad):
            y = F.pad(y.flatten(0, 1), pad, mode="replicate").unflatten(0, (b, m))
        semantics = self.distill(y)
        last: dict[str, list[Tensor]] = {}

        def denoiser(x_t: Tensor, t: Tensor, y_: Tensor) -> Tensor:
            x0, feats = self.denoise(x_t, t, y_, semantics=semantics, memory=memory, read_memory=use_memory)
            last["features"] = feats  # the final call is the last reverse step
            return x0

        x0 = sample_loop(self.process, denoiser, y, generator=generator, steps=steps)
        if not use_memory:
            return ((x0[..., :hgt, :wid] + 1) * 0.5).clamp(0, 1), memory
        new_memory = self.update_memory(memory, last["features"], semantics).detach()
        hr = ((x0[..., :hgt, :wid] + 1) * 0.5).clamp(0, 1)
        return hr, new_memory

    @torch.no_grad()
    def sample(
        self, lr_video: Tensor, *, generator: torch.Generator | None, steps: int | None = None,
        use_memory: bool = True,
    ) -> Tensor:
        """Super-resolve whole videos clip by clip, carrying the CaTeGory memory (Alg. 1).

        Args:
            lr_video: (b n 3 h w) LR frames in [0, 1], any n >= 1.
            generator: torch.Generator on lr_video's device; the same seed gives the same sample.
            steps: reverse steps per clip (None: the trained T; fewer: evenly respaced).
            use_memory: False samples every clip without CaTeGory reads (weights whose memory never trained, e.g.
                after stage ``condenser`` only).

        Returns:
            (b n 3 sh sw) in [0, 1].

        Raises:
            ValueError: on a bad shape, range or step count.
        """
        self._check_video(lr_video, "lr_video")
        was_training = self.training
        self.eval()
        try:
            b, n = lr_video.shape[:2]
            m = self.config.clip_frames
            memory = self.initial_memory(b).detach()
            outputs = []
            for start in range(0, n, m):
                clip = lr_video[:, start : start + m]
                if clip.shape[1] < m:  # pad the last clip by repeating its last frame
                    clip = torch.cat([clip, clip[:, -1:].expand(-1, m - clip.shape[1], -1, -1, -1)], dim=1)
                hr, memory = self.sample_clip(clip, memory=memory, generator=generator, steps=steps,
                                              use_memory=use_memory)
                outputs.append(hr[:, : min(m, n - start)])
            return torch.cat(outputs, dim=1)
        finally:
            self.train(was_training)
