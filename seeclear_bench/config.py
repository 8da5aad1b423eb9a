"""Pipeline specs: TOML files read into frozen dataclasses, one per stage, validated before Ray starts.

A spec names the stages to run and configures each one::

    name = "demo"
    seed = 0
    stages = ["prepare", "upscale", "evaluate", "report"]

    [[data.sources]]
    name = "demo"
    url = "demo"

    [degrade]
    kind = "bicubic"
    scale = 4

Unknown keys and values of the wrong type are rejected with one line that names the key and suggests the closest
valid one. Every artifact records the resolved spec and its hash (:func:`spec_hash`).

This module owns parsing, validation and hashing; it must not import ray, torch or the model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, get_args, get_origin

from seeclear_bench.errors import SeeClearError, did_you_mean

Stage = Literal["prepare", "upscale", "evaluate", "report"]
STAGES: tuple[str, ...] = get_args(Stage)
DegradationKind = Literal["bicubic", "blur-downsample", "realistic"]
METHODS: tuple[str, ...] = ("bicubic", "lanczos", "seeclear")


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """One dataset to read.

    Attributes:
        name: Dataset name used in shard keys, tables and leaderboards (e.g. "REDS4").
        url: Folder, video file or ``"demo"`` (the embedded demo footage); any fsspec URL.
        layout: ``auto``, ``reds``, ``vid4``, ``vimeo90k``, ``clips`` or ``video``.
        split: Named split from CONVENTIONS.md (``REDS4``, ``REDSofficial4``, ``Vid4``, ``Vimeo-90K-T``), or "".
        clips: Explicit clip ids to keep (empty: all of the split or folder).
        max_frames: Frames read per clip (0: all).
        start_frame: First frame read per clip.
    """

    name: str
    url: str
    layout: Literal["auto", "reds", "vid4", "vimeo90k", "clips", "video"] = "auto"
    split: str = ""
    clips: tuple[str, ...] = ()
    max_frames: int = 0
    start_frame: int = 0

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ ."):
            raise SeeClearError(f"data.sources.name must be a non-empty name without '/', '\\', '.' or spaces, got {self.name!r}")
        if self.max_frames < 0 or self.start_frame < 0:
            raise SeeClearError(f"data.sources[{self.name}]: max_frames and start_frame must be >= 0")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    sources: tuple[SourceConfig, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SeeClearError(f"data.sources names must be unique, found duplicates: {sorted(dup)}")


@dataclass(frozen=True, kw_only=True)
class DegradeConfig:
    """How LR clips are synthesised from HR (see ``seeclear_bench.data.degradations``).

    Attributes:
        kind: ``bicubic`` (MATLAB imresize, BI), ``blur-downsample`` (13x13 Gaussian, sigma 0.4*scale, BD) or
            ``realistic`` (blur, resize, noise, JPEG, video codec; parameters drift over a clip).
        scale: Integer downscaling factor.
        on_indivisible: ``crop`` HR to a multiple of ``scale`` (recorded) or ``error``.
        realistic: Overrides of :class:`~seeclear_bench.data.degradations.RealisticParams` fields.
    """

    kind: DegradationKind = "bicubic"
    scale: int = 4
    on_indivisible: Literal["crop", "error"] = "crop"
    realistic: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4, 8):
            raise SeeClearError(f"degrade.scale must be one of 2, 3, 4, 8, got {self.scale}")
        if self.kind == "blur-downsample" and self.scale not in (2, 3, 4):
            raise SeeClearError(f"degrade.kind 'blur-downsample' is defined for scales 2, 3 and 4 (BasicSR), got {self.scale}")
        if self.realistic:
            self.realistic_params()  # validates field names and values now, before any work starts

    def realistic_params(self) -> Any:
        from seeclear_bench.data.degradations import RealisticParams

        valid = [f.name for f in dataclasses.fields(RealisticParams)]
        for key in self.realistic:
            if key not in valid:
                raise SeeClearError(f"unknown key degrade.realistic.{key}{did_you_mean(key, valid)}")
        try:
            return RealisticParams(**{k: _coerce_realistic(v) for k, v in self.realistic.items()})
        except TypeError as exc:
            raise SeeClearError(f"degrade.realistic: {exc}") from exc


def _coerce_realistic(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True, kw_only=True)
class ShardsConfig:
    """How clips are cut into WebDataset samples and shards.

    Attributes:
        window: Frames per sample (one sample = one clip window); 0 puts a whole clip in one sample.
        stride: Step between window starts (0: equal to ``window``, i.e. non-overlapping).
        partial: ``keep`` a shorter last window so every frame is covered, or ``drop`` it.
        max_samples_per_shard: Samples per tar before a new shard starts.
        max_shard_bytes: Bytes per tar before a new shard starts (checked between samples).
        clips_per_task: Clips handled by one Ray task.
    """

    window: int = 5
    stride: int = 0
    partial: Literal["keep", "drop"] = "keep"
    max_samples_per_shard: int = 64
    max_shard_bytes: int = 512 * 1024 * 1024
    clips_per_task: int = 1

    def __post_init__(self) -> None:
        for name in ("window", "stride"):
            if getattr(self, name) < 0:
                raise SeeClearError(f"shards.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_samples_per_shard", "max_shard_bytes", "clips_per_task"):
            if getattr(self, name) < 1:
                raise SeeClearError(f"shards.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class SeeClearMethodConfig:
    """The ``seeclear`` method: a trained checkpoint and how to sample it.

    Attributes:
        checkpoint: Checkpoint folder URL, or ``builtin:NAME`` for one shipped in ``seeclear_bench/assets``.
        preset: Expected model preset (``tiny``, ``small``, ``paper``); "" accepts the checkpoint's own.
        steps: Reverse diffusion steps per clip (1..T; fewer than T are evenly respaced).
        seed: Seed of the sampling noise; each sample's generator is seeded by (seed, sample key).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    checkpoint: str = ""
    preset: str = ""
    steps: int = 1
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.preset not in ("", "tiny", "small", "paper"):
            raise SeeClearError(f"methods.seeclear.preset must be tiny, small or paper, got {self.preset!r}{did_you_mean(self.preset, ('tiny', 'small', 'paper'))}")
        if self.steps < 1:
            raise SeeClearError(f"methods.seeclear.steps must be >= 1, got {self.steps}")


@dataclass(frozen=True, kw_only=True)
class MethodsConfig:
    """Upscalers run on every LR clip; their predictions are written as PNG frames."""

    names: tuple[str, ...] = ("bicubic", "lanczos")
    seeclear: SeeClearMethodConfig = field(default_factory=SeeClearMethodConfig)

    def __post_init__(self) -> None:
        if "seeclear" in self.names and not self.seeclear.checkpoint:
            raise SeeClearError("methods.names lists 'seeclear' but methods.seeclear.checkpoint is empty; give a checkpoint URL or builtin:NAME")
        for name in self.names:
            if name not in METHODS:
                raise SeeClearError(f"unknown method {name!r} in methods.names{did_you_mean(name, METHODS)}; valid: {', '.join(METHODS)}")
        if len(set(self.names)) != len(self.names):
            raise SeeClearError(f"methods.names has duplicates: {list(self.names)}")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Scoring of predictions against ground truth.

    Attributes:
        metrics: Metric names (see ``seeclear-bench info``).
        protocol: Protocol preset used for every dataset not in ``protocols``.
        protocols: Per-dataset protocol preset, e.g. ``{Vid4 = "basicsr-vid4-y"}``.
        gpus_per_task: GPU share of each scoring task when the cluster has GPUs (learned metrics and RAFT then run on
            the GPU); ignored on CPU-only clusters.
    """

    metrics: tuple[str, ...] = ("psnr", "ssim")
    protocol: str = "basicsr-reds4-rgb"
    protocols: dict[str, str] = field(default_factory=dict)
    gpus_per_task: float = 0.25

    def __post_init__(self) -> None:
        from seeclear_bench.metrics.protocols import get_protocol
        from seeclear_bench.metrics.registry import METRICS

        for name in self.metrics:
            if name not in METRICS:
                raise SeeClearError(f"unknown metric {name!r} in evaluate.metrics{did_you_mean(name, METRICS)}")
        for name in (self.protocol, *self.protocols.values()):
            get_protocol(name)
        if not 0 <= self.gpus_per_task <= 8:
            raise SeeClearError(f"evaluate.gpus_per_task must be in [0, 8], got {self.gpus_per_task}")

    def protocol_for(self, dataset: str) -> str:
        return self.protocols.get(dataset, self.protocol)


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    title: str = "seeclear-bench leaderboard"
    reference_method: str = "bicubic"


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """Resources asked of Ray. Fractional CPUs keep a 2-core machine from deadlocking."""

    task_cpus: float = 0.5
    num_cpus: int = 0  # for a local Ray started by the run (0: all cores)

    def __post_init__(self) -> None:
        if not 0 < self.task_cpus <= 64:
            raise SeeClearError(f"ray.task_cpus must be in (0, 64], got {self.task_cpus}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole pipeline spec."""

    name: str = "run"
    seed: int = 0
    stages: tuple[Stage, ...] = STAGES
    data: DataConfig = field(default_factory=DataConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if "prepare" in self.stages and not self.data.sources:
            raise SeeClearError("the spec runs 'prepare' but lists no [[data.sources]]")
        order = [s for s in STAGES if s in self.stages]
        if list(self.stages) != order:
            raise SeeClearError(f"stages must be in pipeline order {list(STAGES)}, got {list(self.stages)}")

    # -- serialisation -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, data, "")

    @classmethod
    def from_toml(cls, text: str, source: str = "spec") -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SeeClearError(f"{source} is not valid TOML: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_url(cls, url: str) -> RunConfig:
        from seeclear_bench import io

        return cls.from_toml(io.read_bytes(url).decode("utf-8"), source=url)

    @classmethod
    def demo(cls) -> RunConfig:
        """The embedded demo spec that ships inside the package."""
        text = resources.files("seeclear_bench").joinpath("specs/demo.toml").read_text("utf-8")
        return cls.from_toml(text, source="demo.toml")

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def spec_hash(cfg: Any) -> str:
    """Short SHA-256 of the canonical JSON of a config dataclass (or dict)."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else _jsonable(cfg)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# -- generic, typed construction ------------------------------------------------------------------------------
def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SeeClearError(f"{where or 'spec'} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise SeeClearError(f"unknown key {path!r}{did_you_mean(key, names)}; valid keys here: {', '.join(names)}")
        kwargs[key] = _convert(hints[key], value, path)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        raise SeeClearError(f"{where or 'spec'} is missing required key(s): {', '.join(missing) or exc}") from exc


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = did_you_mean(str(value), [str(c) for c in choices])
            raise SeeClearError(f"{path} must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SeeClearError(f"{path} must be a list, got {type(value).__name__} {value!r}")
        item = get_args(tp)[0]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SeeClearError(f"{path} must be a table, got {type(value).__name__}")
        _, vt = get_args(tp)
        return {k: (v if vt is Any else _convert(vt, v, f"{path}.{k}")) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise SeeClearError(f"internal: union types are not supported in specs ({path})")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SeeClearError(f"{path} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise SeeClearError(f"{path} must be {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value
