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

import codecs
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
from seeclear_bench.names import check_name

Stage = Literal["prepare", "train", "upscale", "evaluate", "report"]
STAGES: tuple[str, ...] = get_args(Stage)  # pipeline order
# Other names a spec may give a stage. ``infer`` was SeeClear's whole-video stage beside a per-window ``upscale``;
# now ``upscale`` predicts whole videos for every method, so ``infer`` names that same one stage.
STAGE_ALIASES: dict[str, Stage] = {"infer": "upscale"}
DEFAULT_STAGES: tuple[Stage, ...] = ("prepare", "upscale", "evaluate", "report")
DegradationKind = Literal["bicubic", "blur-downsample", "realistic"]
TRAINED_CHECKPOINT = "run:train"  # methods.seeclear.checkpoint: the newest checkpoint of this run's train stage


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
        check_name(self.name, "data.sources.name")
        if any(c in self.name for c in " ."):  # dataset names also name shards and sample keys
            raise SeeClearError(f"data.sources.name {self.name!r} may not contain '.' or spaces")
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
        steps: Reverse diffusion steps per clip (1..T; fewer than T are evenly respaced); 0: the steps the checkpoint
            was validated at (its ``sampling_steps``), else the model's T (15 for the ``paper`` preset).
        seed: Seed of the sampling noise; each video's generator is seeded by (seed, ``<dataset>/<clip>``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        distiller: For checkpoints whose network uses a frozen pretrained distiller (Mask2Former for ``paper``, or
            CLIPSeg): a ``save_pretrained`` folder or a hub id in the local Hugging Face cache ("" = the network's
            default: ``facebook/mask2former-swin-tiny-coco-panoptic`` or ``CIDAS/clipseg-rd64-refined``).
    """

    checkpoint: str = ""
    preset: str = ""
    steps: int = 0
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    distiller: str = ""

    def __post_init__(self) -> None:
        if self.preset not in ("", "tiny", "small", "paper"):
            raise SeeClearError(f"methods.seeclear.preset must be tiny, small or paper, got {self.preset!r}{did_you_mean(self.preset, ('tiny', 'small', 'paper'))}")
        if self.steps < 0:
            raise SeeClearError(f"methods.seeclear.steps must be >= 0 (0: the checkpoint's own), got {self.steps}")


@dataclass(frozen=True, kw_only=True)
class PluginMethodConfig:
    """A method of your own, ``[methods.NAME]`` (see :mod:`seeclear_bench.plugins`): exactly one of ``entry`` and
    ``command``.

    Attributes:
        entry: ``"package.module:factory"``: ``factory(**options)`` returns an object whose ``upscale`` (or itself,
            when callable) takes a whole LR video ``(t h w 3)`` uint8 and the scale and returns ``(t, h*scale,
            w*scale, 3)`` uint8; an optional ``describe()`` is recorded. The module must be importable by the run and
            its Ray workers (installed, or on ``PYTHONPATH``).
        options: Keyword arguments of the entry's factory (part of the method's identity).
        command: A program line, split like a shell would (``shlex``) but never run through one, with ``{lr_dir}``
            (the video's LR frames, ``00000000.png`` ...), ``{out_dir}`` (where the program writes the HR frames,
            named like the inputs) and ``{scale}``.
        timeout: Seconds a command may take on one video (0: no limit).
        gpu: The method computes on a GPU: its actors ask Ray for one when the cluster has GPUs.
    """

    entry: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    timeout: float = 0.0
    gpu: bool = False

    def check(self, name: str) -> None:
        """Validate the table ``[methods.<name>]`` (nothing is imported or run)."""
        from seeclear_bench.plugins import check_entry, command_argv

        where = f"methods.{name}"
        if bool(self.entry) == bool(self.command):
            raise SeeClearError(f"{where} needs exactly one of entry = 'package.module:factory' and command = "
                                f"'program {{lr_dir}} {{out_dir}} {{scale}}', got {'both' if self.entry else 'neither'}")
        if self.entry:
            check_entry(self.entry, where)
            if self.timeout:
                raise SeeClearError(f"{where}.timeout applies to a command; an entry runs in the prediction actor")
        else:
            command_argv(self.command, where)
            if self.options:
                raise SeeClearError(f"{where}.options are an entry's factory arguments; pass a command's settings "
                                    "on its command line")
        if not 0 <= self.timeout <= 7 * 24 * 3600:
            raise SeeClearError(f"{where}.timeout must be in [0, 604800] seconds (0: no limit), got {self.timeout}")
        try:
            json.dumps(self.options, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SeeClearError(f"{where}.options must hold strings, numbers, booleans, lists and tables ({exc})") \
                from exc


@dataclass(frozen=True, kw_only=True)
class MethodsConfig:
    """The methods the predict stage (``upscale``) runs on every whole LR video, and the settings of those that have
    any: the built-ins (:data:`seeclear_bench.methods.METHOD_NAMES`) and your own, each a ``[methods.NAME]`` table in a
    spec (``plugins`` here; any name a folder may have that is not a built-in's)."""

    names: tuple[str, ...] = ("bicubic", "lanczos")
    seeclear: SeeClearMethodConfig = field(default_factory=SeeClearMethodConfig)
    plugins: dict[str, PluginMethodConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from seeclear_bench.methods import METHOD_NAMES

        for name, plugin in self.plugins.items():
            check_name(name, "method name [methods.NAME]")
            if name in METHOD_NAMES or name in ("names", "plugins"):
                raise SeeClearError(f"[methods.{name}]: {name!r} is taken by a built-in method or setting; give your "
                                    "method another name")
            plugin.check(name)
        valid = (*METHOD_NAMES, *self.plugins)
        if "seeclear" in self.names and not self.seeclear.checkpoint:
            raise SeeClearError("methods.names lists 'seeclear' but methods.seeclear.checkpoint is empty; give a checkpoint URL or builtin:NAME")
        for name in self.names:
            if name not in valid:
                raise SeeClearError(f"unknown method {name!r} in methods.names{did_you_mean(name, valid)}; valid: "
                                    f"{', '.join(valid)} (a method of your own is a [methods.NAME] table with entry or "
                                    "command)")
        if len(set(self.names)) != len(self.names):
            raise SeeClearError(f"methods.names has duplicates: {list(self.names)}")

    @classmethod
    def from_table(cls, data: Any, where: str = "methods") -> MethodsConfig:
        """The ``[methods]`` table of a spec: ``names``, ``[methods.seeclear]`` and, under any other key, a table of
        your own method (`PluginMethodConfig`; its unknown keys are refused like the rest of the spec)."""
        if not isinstance(data, dict):
            raise SeeClearError(f"{where} must be a table, got {type(data).__name__}")
        fixed = {k: v for k, v in data.items() if k in ("names", "seeclear")}
        plugins = {}
        for key, value in data.items():
            if key in fixed:
                continue
            if not isinstance(value, dict):
                raise SeeClearError(f"unknown key '{where}.{key}'{did_you_mean(key, ('names', 'seeclear'))}; valid keys "
                                    "here: names, seeclear, or a [methods.NAME] table of your own method")
            if "entry" not in value and "command" not in value:
                raise SeeClearError(f"[{where}.{key}] needs entry = 'package.module:factory' or command = '...'"
                                    f"{did_you_mean(key, ('seeclear',))}")
            check_name(key, "method name [methods.NAME]")
            plugins[key] = _build(PluginMethodConfig, value, f"{where}.{key}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in fixed.items()}, plugins=plugins)


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Scoring of predictions against ground truth.

    Attributes:
        metrics: Metric names (see ``seeclear-bench info``).
        protocol: Protocol preset (or a list of them) used for every dataset not in ``protocols``.
        protocols: Per-dataset protocol preset or list of presets, e.g.
            ``{Vid4 = ["basicsr-vid4-y", "basicsr-reds4-rgb"]}``. Each frame is scored once per protocol, but a metric
            whose values the next protocol does not change (:func:`~seeclear_bench.metrics.registry.same_values_under`:
            tOF under an RGB and a Y protocol) is scored once, under the first.
        gpus_per_task: GPU share of each scoring task when the cluster has GPUs (learned metrics and RAFT then run on
            the GPU); ignored on CPU-only clusters.
    """

    metrics: tuple[str, ...] = ("psnr", "ssim")
    protocol: str | tuple[str, ...] = "basicsr-reds4-rgb"
    protocols: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    gpus_per_task: float = 0.25

    def __post_init__(self) -> None:
        from seeclear_bench.metrics.protocols import get_protocol
        from seeclear_bench.metrics.registry import METRICS

        for name in self.metrics:
            if name not in METRICS:
                raise SeeClearError(f"unknown metric {name!r} in evaluate.metrics{did_you_mean(name, METRICS)}")
        for where, names in (("evaluate.protocol", _names(self.protocol)),
                             *((f"evaluate.protocols.{d}", _names(v)) for d, v in self.protocols.items())):
            if not names:
                raise SeeClearError(f"{where} names no protocol; give one preset or a list of them")
            if len(set(names)) != len(names):
                raise SeeClearError(f"{where} lists a protocol twice: {list(names)}")
            for name in names:
                get_protocol(name)
        if not 0 <= self.gpus_per_task <= 8:
            raise SeeClearError(f"evaluate.gpus_per_task must be in [0, 8], got {self.gpus_per_task}")

    def protocols_for(self, dataset: str) -> tuple[str, ...]:
        """The protocols ``dataset`` is scored under, in order (the first is where protocol-free metrics go)."""
        return _names(self.protocols.get(dataset, self.protocol))


def _names(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    title: str = "seeclear-bench leaderboard"
    reference_method: str = "bicubic"


@dataclass(frozen=True, kw_only=True)
class TrainStageConfig:
    """The ``train`` stage: SeeClear's training stages, in order, with Ray Train on the prepared shards.

    The hyper-parameters of a stage are the fields of ``model.training.TrainConfig`` (the one config type of a
    stage; ``lr``, ``min_lr``, ``steps``, ``warmup``, ``batch_size``, ``grad_accum``, ``crop_size``,
    ``clips_per_sample``, ``grad_clip`` (0: none), ``ema_decay``, ...): ``[train.config]`` gives the values every
    stage shares, and each ``[[train.stages]]`` entry names its stage (``stage = "condenser" | "memory" | "joint"``)
    and any value that differs (the paper: condenser, then memory, then joint, each from the previous stage's EMA
    weights). The seed is the spec's ``seed``.

    Attributes:
        datasets: Prepared datasets (``data.sources`` names) whose shards train the model; they are training data
            only (the predict and evaluate stages skip them when this stage runs).
        val_datasets: Held-out prepared datasets scored (PSNR/SSIM) every ``validate_every`` steps.
        preset: Model preset (``tiny``, ``small``, ``paper``).
        network: Fields of the preset's ``NetworkConfig`` to change (model/config.py), e.g. ``{base_channels = 96}``.
            Checked when the spec is read.
        kappa: Diffusion kappa override (0: the preset's).
        distiller: Where a frozen pretrained distiller comes from when the network uses one (preset ``paper``): a
            ``save_pretrained`` folder every worker can read, or a hub id in the workers' Hugging Face cache ("" =
            the network's default). Never downloaded; never trained or saved in checkpoints. Sampling the trained
            checkpoint in the same spec uses it too, unless ``methods.seeclear.distiller`` says otherwise.
        config: ``TrainConfig`` fields shared by every stage.
        stages: The stages in the order they run, each ``{stage = NAME, <TrainConfig fields that differ>}``.
        workers: Ray Train workers (one DDP rank each).
        use_gpu: One GPU per worker (NCCL); False: CPU workers with gloo.
        amp: bf16 autocast of the networks on GPUs that support it (the diffusion arithmetic stays float32).
        cpus_per_worker: CPU share of each worker; fractional values keep small machines from starving.
        init_from: Checkpoint whose weights (EMA where it has them) start the first stage.
        checkpoint_every: Steps between checkpoints (a stage's last step is always saved).
        keep_checkpoints: Newest checkpoints kept per stage.
        max_failures: Worker-group restarts Ray Train allows per stage (each resumes from the last checkpoint).
        validate_every: Steps between validations (0: never).
        validate_samples: Held-out samples per validation.
        sampling_steps: Reverse steps of validation, recorded in every checkpoint as the steps to sample it with
            (0: the model's T).
        deterministic: Deterministic torch kernels (same seed and workers give the same weights, also after a
            restart from a checkpoint; on CUDA with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).
    """

    datasets: tuple[str, ...] = ()
    val_datasets: tuple[str, ...] = ()
    preset: Literal["tiny", "small", "paper"] = "tiny"
    network: dict[str, Any] = field(default_factory=dict)
    kappa: float = 0.0
    distiller: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    stages: tuple[dict[str, Any], ...] = ({"stage": "condenser"},)
    workers: int = 2
    use_gpu: bool = False
    amp: bool = True
    cpus_per_worker: float = 0.5
    init_from: str = ""
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    max_failures: int = 2
    validate_every: int = 0
    validate_samples: int = 4
    sampling_steps: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        for name in ("workers", "checkpoint_every", "keep_checkpoints", "validate_samples"):
            if getattr(self, name) < 1:
                raise SeeClearError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_failures", "validate_every", "sampling_steps"):
            if getattr(self, name) < 0:
                raise SeeClearError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.cpus_per_worker <= 64:
            raise SeeClearError(f"train.cpus_per_worker must be in (0, 64], got {self.cpus_per_worker}")
        if self.kappa < 0:
            raise SeeClearError(f"train.kappa must be >= 0, got {self.kappa}")
        self.model_config()  # unknown network fields and bad values fail when the spec is read
        self.stage_configs(0)

    def stage_configs(self, seed: int) -> tuple[Any, ...]:
        """One ``TrainConfig`` per stage, in order: ``config`` updated by the stage's entry, with the run's seed.

        Raises:
            SeeClearError: an unknown field (with a close match), a value the TrainConfig refuses, a stage listed twice
                or without its name.
        """
        from model.training import TrainConfig

        names = [f.name for f in dataclasses.fields(TrainConfig)]
        out, seen = [], set()
        for where, table in [("train.config", self.config),
                             *((f"train.stages[{i}]", entry) for i, entry in enumerate(self.stages))]:
            for key in table:
                if key == "seed":
                    raise SeeClearError(f"{where}.seed: the training seed is the spec's top-level seed")
                if key not in names:
                    raise SeeClearError(f"unknown key '{where}.{key}'{did_you_mean(key, names)}; valid keys: "
                                        f"{', '.join(n for n in names if n != 'seed')}")
        for i, entry in enumerate(self.stages):
            if "stage" not in entry:
                raise SeeClearError(f"train.stages[{i}] needs stage = \"condenser\", \"memory\" or \"joint\"")
            if entry["stage"] in seen:
                raise SeeClearError(f"train.stages lists stage {entry['stage']!r} twice")
            seen.add(entry["stage"])
            values = {**self.config, **entry, "seed": seed}
            if values.get("grad_clip") == 0:
                values["grad_clip"] = None
            try:
                out.append(TrainConfig.from_dict(values))
            except (ValueError, TypeError) as exc:
                raise SeeClearError(f"train.stages[{i}] ({entry['stage']}): {exc}") from None
        return tuple(out)

    def model_config(self) -> Any:
        """The ``SeeClearConfig`` of ``preset`` with ``network`` and ``kappa`` applied."""
        from model.seeclear import SeeClearConfig

        model = SeeClearConfig.preset(self.preset).with_overrides(network=self.network_config())
        if self.kappa:
            model = model.with_overrides(diffusion=dataclasses.replace(model.diffusion, kappa=self.kappa))
        return model

    def network_config(self) -> Any:
        """The preset's ``NetworkConfig`` with ``network`` applied.

        Raises:
            SeeClearError: an unknown field (with a close match) or a value the network refuses.
        """
        from model.config import NetworkConfig

        names = [f.name for f in dataclasses.fields(NetworkConfig)]
        for key in self.network:
            if key not in names:
                raise SeeClearError(f"unknown key 'train.network.{key}'{did_you_mean(key, names)}; valid keys: "
                                    f"{', '.join(names)}")
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in self.network.items()}
        try:
            return getattr(NetworkConfig, self.preset)(**overrides)
        except (ValueError, TypeError) as exc:
            raise SeeClearError(f"train.network: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class InferStageConfig:
    """The ``[infer]`` table: settings of the predict stage (``upscale``, also spelled ``infer``), which runs every
    method of ``methods.names`` on whole videos with a pool of Ray actors (one video through one actor, in order, so
    SeeClear carries its memory clip to clip). Predictions go where ``evaluate`` reads them
    (``predictions/<method>/<dataset>/<clip>``).

    Attributes:
        datasets: Prepared datasets to predict and score (empty: every ``data.sources`` entry, less
            ``train.datasets`` when the spec trains).
        cpus_per_actor: CPU share of each prediction actor (GPU clusters: one actor per GPU when a method uses one).
        actors: Most actors in the pool (0: one per GPU, or 2 on CPU).
        weights: ``ema`` or ``model`` weights of the ``train`` stage's checkpoint (``methods.seeclear.checkpoint =
            "run:train"``); a checkpoint given by URL is loaded as saved.
        mp4: Also write each video as ``<clip>.mp4`` (H.264, CRF 18) beside its PNG frames.
        fps: Frame rate of those mp4 files (0: an input video's own rate, else 25).
    """

    datasets: tuple[str, ...] = ()
    cpus_per_actor: float = 0.5
    actors: int = 0
    weights: Literal["ema", "model"] = "ema"
    mp4: bool = False
    fps: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.cpus_per_actor <= 64 or self.actors < 0:
            raise SeeClearError(f"infer.cpus_per_actor must be in (0, 64] and infer.actors >= 0, got "
                                f"{self.cpus_per_actor} and {self.actors}")
        if not 0 <= self.fps <= 240:
            raise SeeClearError(f"infer.fps must be in [0, 240] (0: the input's own rate), got {self.fps}")


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
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    data: DataConfig = field(default_factory=DataConfig)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    infer: InferStageConfig = field(default_factory=InferStageConfig)

    def __post_init__(self) -> None:
        check_name(self.name, "spec name")
        if "prepare" in self.stages and not self.data.sources:
            raise SeeClearError("the spec runs 'prepare' but lists no [[data.sources]]")
        names = [s.name for s in self.data.sources]
        for key, datasets in (("train.datasets", self.train.datasets), ("train.val_datasets", self.train.val_datasets),
                              ("infer.datasets", self.infer.datasets)):
            for name in datasets:
                if name not in names:
                    raise SeeClearError(f"{key} names {name!r}, which is not a data.sources name{did_you_mean(name, names)}")
        if "train" in self.stages and not self.train.datasets:
            raise SeeClearError("the spec runs 'train' but train.datasets is empty; name the data.sources to train on")
        if self.methods.seeclear.checkpoint == TRAINED_CHECKPOINT and "train" not in self.stages:
            raise SeeClearError(f"methods.seeclear.checkpoint is {TRAINED_CHECKPOINT!r} but the spec does not run "
                                "'train'; add the stage or give a checkpoint URL")
        for stage in self.stages:
            if stage not in STAGES:
                raise SeeClearError(f"unknown stage {stage!r} in stages{did_you_mean(str(stage), STAGES)}; valid: "
                                    f"{', '.join(STAGES)}")
        order = [s for s in STAGES if s in self.stages]
        if list(self.stages) != order:
            raise SeeClearError(f"stages must be in pipeline order {list(STAGES)}, got {list(self.stages)}")

    # -- serialisation -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build and validate; a stage alias (:data:`STAGE_ALIASES`: ``infer``) becomes its stage, listed once; with a
        ``train`` stage an empty ``methods.seeclear.checkpoint`` becomes ``"run:train"`` (the checkpoint that stage
        trains)."""
        if isinstance(data, dict) and isinstance(data.get("stages"), list):
            data = {**data, "stages": _resolve_aliases(data["stages"], data.get("methods"))}
        if isinstance(data, dict) and "train" in (data.get("stages") or ()):
            methods = data.get("methods")
            seeclear = methods.get("seeclear") if isinstance(methods, dict) else None
            if isinstance(methods, dict) and (seeclear is None or isinstance(seeclear, dict)) \
                    and not (seeclear or {}).get("checkpoint"):
                data = {**data, "methods": {**methods, "seeclear": {**(seeclear or {}), "checkpoint": TRAINED_CHECKPOINT}}}
        return _build(cls, data, "")

    @classmethod
    def from_toml(cls, text: str | bytes, source: str = "spec") -> RunConfig:
        """Build from TOML text, or from the raw bytes of a spec file (UTF-8, a leading byte-order mark allowed).

        Raises:
            SeeClearError: Bytes that are not UTF-8 (naming ``source`` and the byte offset), invalid TOML, or an
                invalid spec.
        """
        if isinstance(text, bytes):
            text = _decode_spec(text, source)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SeeClearError(f"{source} is not valid TOML: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_url(cls, url: str) -> RunConfig:
        """Read and build the spec file at ``url`` (local path or fsspec URL); errors as :meth:`from_toml`."""
        from seeclear_bench import io

        return cls.from_toml(io.read_bytes(url), source=url)

    @classmethod
    def demo(cls) -> RunConfig:
        """The embedded demo spec that ships inside the package."""
        text = resources.files("seeclear_bench").joinpath("specs/demo.toml").read_text("utf-8")
        return cls.from_toml(text, source="demo.toml")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; the ``train``/``infer`` tables are left out at their defaults, so specs written before
        those stages existed keep their hash (and their prepared shards stay valid)."""
        data = _jsonable(dataclasses.asdict(self))
        for name, default in (("train", TrainStageConfig()), ("infer", InferStageConfig())):
            if getattr(self, name) == default:
                del data[name]
        if not self.methods.seeclear.distiller:  # added later: at its default it stays out of the hash too
            del data["methods"]["seeclear"]["distiller"]
        data["methods"].update(data["methods"].pop("plugins"))  # [methods.NAME] tables, as a spec writes them
        for table, added in (("infer", {"mp4": False, "fps": 0}),):
            for name, at_default in added.items():  # added later: at their defaults they stay out of the hash too
                if table in data and data[table][name] == at_default:
                    del data[table][name]
        return data

    def predicted_datasets(self) -> tuple[str, ...]:
        """The datasets the predict stage (``upscale``) predicts and ``evaluate`` scores: ``infer.datasets``, else
        every ``data.sources`` name except those the spec's ``train`` stage trains on."""
        if self.infer.datasets:
            return self.infer.datasets
        held = set(self.train.datasets) if "train" in self.stages else set()
        return tuple(s.name for s in self.data.sources if s.name not in held)

    def seeclear_distiller(self) -> str:
        """Where the ``seeclear`` method's frozen pretrained distiller (Mask2Former, CLIPSeg) comes from: ``methods.seeclear.distiller``, else, for the
        checkpoint this spec's ``train`` stage makes, ``train.distiller``."""
        s = self.methods.seeclear
        return s.distiller or (self.train.distiller if s.checkpoint == TRAINED_CHECKPOINT else "")


def _resolve_aliases(stages: list[Any], methods: Any) -> list[Any]:
    """``stages`` with each alias replaced by its stage and every stage kept once (in its first place).

    ``infer`` used to mean "SeeClear on whole videos": a spec that lists it but not ``seeclear`` in ``methods.names``
    would now silently predict without SeeClear, so it is refused with the fix.
    """
    names = methods.get("names", list(MethodsConfig().names)) if isinstance(methods, dict) else \
        list(MethodsConfig().names)
    for alias, stage in STAGE_ALIASES.items():
        if alias in stages and isinstance(names, list) and "seeclear" not in names:
            raise SeeClearError(f"stages lists {alias!r}, which is the {stage!r} stage: it predicts every method of "
                                f"methods.names, and those lack 'seeclear'; add 'seeclear' to methods.names (or "
                                f"write {stage!r} if you meant the other methods only)")
    out: list[Any] = []
    for name in stages:
        name = STAGE_ALIASES.get(name, name) if isinstance(name, str) else name
        if name not in out:
            out.append(name)
    return out


def _decode_spec(data: bytes, source: str) -> str:
    """The text of a spec file; a byte that is not UTF-8 is one line naming the file, its offset and its line."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0  # editors on Windows may write one
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data.count(b"\n", 0, offset) + 1
        where = "spec" if source == "spec" else f"spec {source}"
        raise SeeClearError(
            f"{where} is not UTF-8 text: invalid byte 0x{data[offset]:02x} at byte offset {offset} (line {line}); "
            "save it as UTF-8"
        ) from exc


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
    if tp is MethodsConfig:  # [methods.NAME] tables of your own methods beside the fixed keys
        return MethodsConfig.from_table(value, path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
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
    if origin in (typing.Union, types.UnionType):  # e.g. str | tuple[str, ...]: the alternative the value's type fits
        options = get_args(tp)
        for option in options:
            if isinstance(value, list if get_origin(option) is tuple else get_origin(option) or option):
                return _convert(option, value, path)
        names = " or ".join("a list" if get_origin(o) is tuple else getattr(o, "__name__", str(o)) for o in options)
        raise SeeClearError(f"{path} must be {names}, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SeeClearError(f"{path} must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise SeeClearError(f"{path} must be {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value
