"""Upscalers: LR clip -> HR-sized prediction.

``bicubic`` is MATLAB's ``imresize(lr, scale, 'bicubic')`` (the kernel behind the field's bicubic rows, e.g.
26.14 dB on REDS4 and 23.78 dB on Vid4); ``lanczos`` is MATLAB's ``lanczos3``; ``seeclear`` samples a trained SeeClear
checkpoint. Every upscaler is called as ``upscale(lr, scale, key=sample_key)`` on a (t h w 3) uint8 clip and returns
(t, h*scale, w*scale, 3) uint8; ``describe()`` gives what its predictions' records must carry (so that a change of
checkpoint, steps or seed invalidates earlier predictions). This module must not import ray; torch and the model are
imported only by ``seeclear``.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from seeclear_bench.errors import SeeClearError, did_you_mean

if TYPE_CHECKING:
    from seeclear_bench.data.imresize import Kernel


class Upscaler(Protocol):
    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray: ...
    def describe(self) -> dict[str, Any]: ...


def _check_lr(lr: np.ndarray) -> None:
    if lr.ndim != 4 or lr.shape[-1] != 3 or lr.dtype != np.uint8:
        raise SeeClearError(f"expected an LR clip (t, h, w, 3) uint8, got shape {lr.shape} dtype {lr.dtype}")


class ImresizeUpscaler:
    """MATLAB ``imresize`` upscaling with a named kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        from seeclear_bench.data.imresize import imresize

        _check_lr(lr)
        out = imresize(lr, output_shape=(lr.shape[1] * scale, lr.shape[2] * scale), kernel=self.kernel)
        return np.ascontiguousarray(out)

    def describe(self) -> dict[str, Any]:
        return {"kernel": f"matlab-imresize-{self.kernel}"}


def resolve_checkpoint(url: str) -> str:
    """``builtin:NAME`` -> the checkpoint folder shipped in ``seeclear_bench/assets/NAME``; other URLs unchanged."""
    if not url.startswith("builtin:"):
        return url
    name = url.removeprefix("builtin:")
    folder = resources.files("seeclear_bench").joinpath("assets", name)
    if not folder.is_dir():
        shipped = [p.name for p in resources.files("seeclear_bench").joinpath("assets").iterdir()] \
            if resources.files("seeclear_bench").joinpath("assets").is_dir() else []
        raise SeeClearError(f"no built-in checkpoint {name!r}{did_you_mean(name, shipped)}; shipped: {shipped or 'none'} "
                            "(make train-demo builds seeclear-tiny-demo)")
    return str(folder)


class SeeClearUpscaler:
    """Samples a SeeClear checkpoint; the model is loaded once per process (one Ray task loads it once per shard)."""

    def __init__(self, checkpoint: str, *, preset: str = "", steps: int = 1, seed: int = 0, device: str = "auto",
                 distiller: str = "") -> None:
        import torch

        from seeclear_bench.checkpoints import checkpoint_hash, load_checkpoint

        self.url = resolve_checkpoint(checkpoint)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model, extras = load_checkpoint(self.url, device=self.device, distiller=_pretrained_distiller(self.url, distiller, self.device))
        self.model.eval()
        self.preset = _preset_of(extras["config"])
        if preset and self.preset and preset != self.preset:
            raise SeeClearError(f"checkpoint {checkpoint} holds a {self.preset!r} model, the spec asks for {preset!r}")
        self.steps, self.seed = steps, seed
        self.hash = checkpoint_hash(self.url)
        self.source = checkpoint

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        import torch

        _check_lr(lr)
        if scale != self.model.config.scale:
            raise SeeClearError(f"the SeeClear checkpoint upscales x{self.model.config.scale}, the shards are x{scale}")
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int.from_bytes(hashlib.sha256(f"{self.seed}/{key}".encode()).digest()[:8], "little") >> 1)
        x = torch.from_numpy(np.ascontiguousarray(lr)).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
        with torch.no_grad():
            out = self.model.sample(x[None], generator=generator, steps=self.steps)[0]
        return out.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return sampling_record(self.source, checkpoint_hash=self.hash, preset=self.preset, steps=self.steps,
                               seed=self.seed)


def sampling_record(checkpoint: str, *, checkpoint_hash: str, preset: str, steps: int, seed: int) -> dict[str, Any]:
    """What a SeeClear prediction's record must carry for it to be reused. The device is left out: the same
    weights, steps and seed on CPU or GPU count as one configuration."""
    return {"checkpoint": checkpoint, "checkpoint_hash": checkpoint_hash, "preset": preset, "steps": steps,
            "sampling_seed": seed}


def describe_checkpoint(checkpoint: str, *, steps: int = 1, seed: int = 0) -> dict[str, Any]:
    """`sampling_record` of a checkpoint read from its files (the model is not built)."""
    from seeclear_bench.checkpoints import checkpoint_config, checkpoint_hash

    url = resolve_checkpoint(checkpoint)
    return sampling_record(checkpoint, checkpoint_hash=checkpoint_hash(url), preset=_preset_of(checkpoint_config(url)),
                           steps=steps, seed=seed)


def _pretrained_distiller(url: str, source: str, device: str) -> Any:
    """The frozen CLIPSeg distiller when the checkpoint's network uses one (loaded from disk), else None."""
    from seeclear_bench.checkpoints import checkpoint_config
    from seeclear_bench.distillers import distiller_for

    return distiller_for(checkpoint_config(url).network, source, device=device)


def _preset_of(config: Any) -> str:
    from model.seeclear import SeeClearConfig

    for name in ("tiny", "small", "paper"):
        if SeeClearConfig.preset(name).network == config.network:
            return name
    return "custom"


UPSCALERS: dict[str, Upscaler] = {"bicubic": ImresizeUpscaler("bicubic"), "lanczos": ImresizeUpscaler("lanczos3")}
BASELINES = tuple(UPSCALERS)


def get_upscaler(name: str, methods_cfg: Any = None) -> Upscaler:
    """Build the upscaler called ``name`` (``methods_cfg.seeclear`` configures ``seeclear``)."""
    if name in UPSCALERS:
        return UPSCALERS[name]
    if name == "seeclear":
        if methods_cfg is None or not methods_cfg.seeclear.checkpoint:
            raise SeeClearError("method 'seeclear' needs methods.seeclear.checkpoint")
        s = methods_cfg.seeclear
        return SeeClearUpscaler(s.checkpoint, preset=s.preset, steps=s.steps, seed=s.seed, device=s.device,
                                distiller=s.distiller)
    valid = (*BASELINES, "seeclear")
    raise SeeClearError(f"unknown method {name!r}{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
