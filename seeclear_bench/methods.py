"""Methods: a whole LR video in, its HR video out. The one interface every method of the predict stage implements.

A method (:class:`Upscaler`) is called as ``method(lr_video, scale, key="<dataset>/<clip>")`` on a whole video,
``(t h w 3)`` uint8 with every frame in order, and returns ``(t, h*scale, w*scale, 3)`` uint8; ``describe()`` returns
the JSON-able settings its outputs depend on (recorded with every prediction, so that a change of kernel,
checkpoint, steps or seed redoes them). The predict stage (``pipelines/upscale.py``) builds each method once per
actor (`get_upscaler`), hands it whole videos and does not know which method it runs.

Built-ins: ``bicubic`` is MATLAB's ``imresize(lr, scale, 'bicubic')`` (the kernel behind the field's bicubic rows,
e.g. 26.14 dB on REDS4 and 23.78 dB on Vid4); ``lanczos`` is MATLAB's ``lanczos3``; ``seeclear`` samples a SeeClear
checkpoint over the whole video in one ``SeeClear.sample`` call, so its CaTeGory memory is carried from clip to clip.
A method of your own needs no edit here: a spec's ``[methods.NAME]`` table names a Python entry point or a program
(:mod:`seeclear_bench.plugins`), which `get_upscaler`, `describe_method` and `uses_gpu` dispatch to. A method may also
have ``provenance()``: JSON-able facts recorded with each prediction that are not part of its identity.

This module must not import ray; torch and the model are imported only by ``seeclear``.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import numpy as np

from seeclear_bench.errors import SeeClearError, did_you_mean

if TYPE_CHECKING:
    from seeclear_bench.data.imresize import Kernel


class Upscaler(Protocol):
    """A super-resolution method over whole videos."""

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        """Super-resolve one whole video.

        Args:
            lr: ``(t h w 3)`` uint8, every frame of the video in order.
            scale: integer upscaling factor.
            key: the video's name (``<dataset>/<clip>``), for methods that seed per video.

        Returns:
            ``(t, h*scale, w*scale, 3)`` uint8.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """The settings its outputs depend on, JSON-able (not the device: CPU and GPU count as one setting)."""
        ...


def check_lr(lr: np.ndarray) -> None:
    """Refuse anything but an LR video ``(t h w 3)`` uint8 with at least one frame."""
    if lr.ndim != 4 or lr.shape[-1] != 3 or lr.dtype != np.uint8 or len(lr) < 1:
        raise SeeClearError(f"expected an LR video (t, h, w, 3) uint8, got shape {lr.shape} dtype {lr.dtype}")


class ImresizeUpscaler:
    """MATLAB ``imresize`` upscaling with a named kernel, frame by frame."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        from seeclear_bench.data.imresize import imresize

        check_lr(lr)
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
    """Samples a SeeClear checkpoint over whole videos; the model is loaded once (one prediction actor loads it once).

    Sampling settings come from the spec where it gives them and from the checkpoint otherwise
    (:func:`seeclear_bench.checkpoints.checkpoint_meta`): ``steps`` 0 samples with the steps the checkpoint was
    validated at, else the model's T; a checkpoint whose CaTeGory memory never trained (no ``memory`` or ``joint``
    stage) is sampled with the memory read off, and `describe` says so (``"memory": "off: never trained (stages:
    condenser)"``).

    Args:
        checkpoint: checkpoint folder URL or ``builtin:NAME``.
        preset: expected preset ("" accepts the checkpoint's).
        steps: reverse steps per clip (0: the checkpoint's, see above).
        seed: seed of the sampling noise; each video's generator is seeded by (seed, key).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        distiller: the frozen CLIPSeg, for checkpoints whose network uses it.
        weights: ``model`` or ``ema`` weights of a training checkpoint.
    """

    def __init__(self, checkpoint: str, *, preset: str = "", steps: int = 0, seed: int = 0, device: str = "auto",
                 distiller: str = "", weights: Literal["model", "ema"] = "model") -> None:
        import torch

        from seeclear_bench.checkpoints import checkpoint_hash, load_checkpoint, memory_trained

        self.url = resolve_checkpoint(checkpoint)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.model, extras = load_checkpoint(self.url, device=self.device, weights=weights,
                                             distiller=_pretrained_distiller(self.url, distiller, self.device))
        self.model.eval()
        self.preset = _preset_of(extras["config"])
        if preset and self.preset and preset != self.preset:
            raise SeeClearError(f"checkpoint {checkpoint} holds a {self.preset!r} model, the spec asks for {preset!r}")
        meta = {"stages": extras["stages"], "sampling_steps": extras["sampling_steps"],
                "memory": memory_trained(extras["stages"])}
        self.sample_steps, self.use_memory = sampling_plan(steps, meta, self.model.config, checkpoint)
        self.record = sampling_record(checkpoint, checkpoint_hash=checkpoint_hash(self.url), preset=self.preset,
                                      steps=self.sample_steps or self.model.config.diffusion.steps, seed=seed,
                                      weights=weights, scale=self.model.config.scale, stages=meta["stages"],
                                      memory=self.use_memory)
        self.seed = seed

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        """Sample the whole video in one ``SeeClear.sample`` call (clip by clip, the memory carried)."""
        import torch

        check_lr(lr)
        if scale != self.model.config.scale:
            raise SeeClearError(f"the SeeClear checkpoint upscales x{self.model.config.scale}, the input asks x{scale}")
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int.from_bytes(hashlib.sha256(f"{self.seed}/{key}".encode()).digest()[:8], "little") >> 1)
        x = torch.from_numpy(np.ascontiguousarray(lr)).to(self.device).permute(0, 3, 1, 2).float().div(255.0)
        with torch.no_grad():
            out = self.model.sample(x[None], generator=generator, steps=self.sample_steps,
                                    use_memory=self.use_memory)[0]
        return out.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return dict(self.record)


def sampling_plan(steps: int, meta: dict[str, Any], config: Any, checkpoint: str) -> tuple[int | None, bool]:
    """``(steps for SeeClear.sample, use_memory)``: the spec's steps, else the checkpoint's ``sampling_steps``, else
    None (the model's T); the memory read only when it was trained.

    Raises:
        SeeClearError: more steps than the model's T.
    """
    chosen = steps or meta.get("sampling_steps") or None
    if chosen is not None and not 1 <= int(chosen) <= config.diffusion.steps:
        raise SeeClearError(f"checkpoint {checkpoint} samples with 1..{config.diffusion.steps} steps (its T), "
                            f"asked for {chosen}")
    return (None if chosen is None else int(chosen)), bool(meta.get("memory"))


def memory_note(stages: list[str], memory: bool) -> str:
    """How the CaTeGory memory is used, for a prediction's record: ``on``, or ``off: never trained (stages: ...)``."""
    return "on" if memory else f"off: never trained (stages: {', '.join(stages) or 'none recorded'})"


def sampling_record(checkpoint: str, *, checkpoint_hash: str, preset: str, steps: int, seed: int,
                    weights: str, scale: int, stages: list[str], memory: bool) -> dict[str, Any]:
    """What a SeeClear prediction's record must carry for it to be reused: the checkpoint (URL as given, hash of its
    weights and model config), which weights, the preset, the reverse steps it ran (a number, also when they came
    from the checkpoint or T), the seed, the scale and whether the memory was read. The device is left out: the same
    weights, steps and seed on CPU or GPU count as one configuration."""
    return {"checkpoint": checkpoint, "checkpoint_hash": checkpoint_hash, "weights": weights, "preset": preset,
            "steps": int(steps), "sampling_seed": seed, "scale": int(scale), "memory": memory_note(stages, memory)}


def describe_checkpoint(checkpoint: str, *, steps: int = 0, seed: int = 0,
                        weights: Literal["model", "ema"] = "model") -> dict[str, Any]:
    """`SeeClearUpscaler.describe` of a checkpoint, read from its files (every file verified; the model is not
    built).

    Raises:
        SeeClearError: a missing, incomplete or corrupt checkpoint, or steps the model cannot take.
    """
    from seeclear_bench.checkpoints import checkpoint_config, checkpoint_hash, checkpoint_meta

    url = resolve_checkpoint(checkpoint)
    config, meta = checkpoint_config(url), checkpoint_meta(url)
    sample_steps, memory = sampling_plan(steps, meta, config, checkpoint)
    return sampling_record(checkpoint, checkpoint_hash=checkpoint_hash(url), preset=_preset_of(config),
                           steps=sample_steps or config.diffusion.steps, seed=seed, weights=weights,
                           scale=config.scale, stages=list(meta["stages"]), memory=memory)


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


# -- the registry: every method the predict stage can run -----------------------------------------------------------
UPSCALERS: dict[str, Upscaler] = {"bicubic": ImresizeUpscaler("bicubic"), "lanczos": ImresizeUpscaler("lanczos3")}
BASELINES = tuple(UPSCALERS)  # the kernel baselines: no weights, no settings
METHOD_NAMES: Final = (*BASELINES, "seeclear")


def _unknown(name: str) -> SeeClearError:
    return SeeClearError(f"unknown method {name!r}{did_you_mean(name, METHOD_NAMES)}; valid: {', '.join(METHOD_NAMES)}")


def hr_problem(hr: Any, lr: np.ndarray, scale: int) -> str | None:
    """What is wrong with a method's output for ``lr`` at ``scale`` (frame count, size, channels, dtype), or None."""
    want = (len(lr), lr.shape[1] * scale, lr.shape[2] * scale, 3)
    shape, dtype = getattr(hr, "shape", None), str(getattr(hr, "dtype", ""))
    if shape is None or not isinstance(hr, np.ndarray):
        return f"returned a {type(hr).__name__}, expected a numpy array {want} uint8"
    if hr.ndim != 4 or hr.shape[-1] != 3:
        return f"returned shape {tuple(shape)}, expected (t, h*scale, w*scale, 3) = {want}"
    if hr.shape[0] != want[0]:
        return f"returned {hr.shape[0]} frames for {want[0]} LR frames"
    if tuple(shape) != want:
        return f"returned frames of {shape[2]}x{shape[1]}, expected {want[2]}x{want[1]} (x{scale} of {lr.shape[2]}x{lr.shape[1]})"
    if dtype != "uint8":
        return f"returned dtype {dtype}, expected uint8 (0..255)"
    return None


def _plugin(name: str, methods_cfg: Any) -> Any:
    """The ``[methods.<name>]`` table of a method of your own, or None."""
    return None if methods_cfg is None else getattr(methods_cfg, "plugins", {}).get(name)


def get_upscaler(name: str, methods_cfg: Any = None, *, weights: Literal["model", "ema"] = "model") -> Upscaler:
    """Build the method called ``name``; ``methods_cfg`` (a ``MethodsConfig``) holds the settings of those that have
    any (``seeclear``: its checkpoint, loaded with ``weights``; your own: its ``[methods.NAME]`` table)."""
    if name in UPSCALERS:
        return UPSCALERS[name]
    if (plugin := _plugin(name, methods_cfg)) is not None:
        from seeclear_bench.plugins import build_plugin

        return build_plugin(name, plugin)
    if name == "seeclear":
        s = _seeclear_settings(methods_cfg)
        return SeeClearUpscaler(s.checkpoint, preset=s.preset, steps=s.steps, seed=s.seed, device=s.device,
                                distiller=s.distiller, weights=weights)
    raise _unknown(name)


def describe_method(name: str, methods_cfg: Any = None, *, weights: Literal["model", "ema"] = "model") -> dict[str, Any]:
    """``get_upscaler(name, ...).describe()`` without building the method (the driver's resume check)."""
    if name in UPSCALERS:
        return UPSCALERS[name].describe()
    if (plugin := _plugin(name, methods_cfg)) is not None:
        from seeclear_bench.plugins import describe_plugin

        return describe_plugin(name, plugin)
    if name == "seeclear":
        s = _seeclear_settings(methods_cfg)
        return describe_checkpoint(s.checkpoint, steps=s.steps, seed=s.seed, weights=weights)
    raise _unknown(name)


def uses_gpu(name: str, methods_cfg: Any = None) -> bool:
    """Whether the method computes on a GPU when the cluster has one (its actors then ask Ray for one)."""
    if (plugin := _plugin(name, methods_cfg)) is not None:
        return bool(plugin.gpu)
    return name == "seeclear" and _seeclear_settings(methods_cfg).device != "cpu"


def _seeclear_settings(methods_cfg: Any) -> Any:
    if methods_cfg is None or not methods_cfg.seeclear.checkpoint:
        raise SeeClearError("method 'seeclear' needs methods.seeclear.checkpoint")
    return methods_cfg.seeclear
