"""SeeClear checkpoints: a folder of safetensors + JSON that never needs unpickling, on any fsspec URL.

Owns `save_checkpoint`, `load_checkpoint`, `checkpoint_hash` and `latest_checkpoint`. A checkpoint folder holds:

- ``model.safetensors``: `SeeClear.trainable_state_dict()` (the condenser, and the learned distiller when there is
  one; a frozen pretrained CLIPSeg is never saved: it is loaded from its own weights);
- ``ema.safetensors`` (optional): the EMA shadow weights, same keys;
- ``memory.safetensors`` (optional): a CaTeGory `MemoryState` (``semantics``, ``textures``);
- ``optimizer.safetensors`` (optional): the optimizer's per-parameter tensors, keyed ``<param index>.<name>``;
- ``trainer_state.json`` (with the optimizer): the optimizer's param groups and non-tensor state, the scheduler's
  state;
- ``config.json``: the format tag, `SeeClearConfig`, `TrainConfig`, step, the caller's ``extra``, EMA settings,
  the SHA-256 of every file above and the provenance record;
- ``COMPLETE``: written last. Every file is written atomically (temporary name, then rename), and an existing
  ``COMPLETE`` is removed before anything is overwritten, so a folder without it is never trusted.

Loading reads only safetensors and JSON (no ``torch.load``, no pickle) and checks every file's SHA-256. Imports
torch and safetensors inside functions, so ``import seeclear_bench`` stays cheap; never imports ray.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

from seeclear_bench import io, provenance
from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    import torch

    from model.networks import MemoryState, SemanticDistiller
    from model.seeclear import SeeClear, SeeClearConfig
    from model.training import EMA, TrainConfig

FORMAT: Final = "seeclear-checkpoint/1"
COMPLETE: Final = "COMPLETE"
CONFIG: Final = "config.json"
MODEL: Final = "model.safetensors"
EMA_FILE: Final = "ema.safetensors"
MEMORY: Final = "memory.safetensors"
OPTIMIZER: Final = "optimizer.safetensors"
TRAINER_STATE: Final = "trainer_state.json"
WEIGHT_FILES: Final = (MODEL, EMA_FILE, MEMORY)
STEP_DIR: Final = "step-{step:08d}"
_STEP_RE: Final = re.compile(r"step-(\d{8})$")


def _safetensors_bytes(tensors: Mapping[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})


def _read_safetensors(folder: str, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    url = io.join(folder, name)
    try:
        return load(io.read_bytes(url))
    except SeeClearError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError on any malformed file
        raise SeeClearError(f"checkpoint {folder}: {name} is not a valid safetensors file ({exc}); re-save it") from exc


def _split_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import torch

    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            key = f"{int(index)}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: Mapping[str, torch.Tensor], rest: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    url: str,
    model: SeeClear,
    *,
    config: Any = None,
    train_config: TrainConfig | None = None,
    ema: EMA | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    memory: MemoryState | None = None,
    step: int,
    extra: Mapping[str, Any] | None = None,
    stages: Sequence[str] = (),
    sampling_steps: int | None = None,
) -> str:
    """Write a checkpoint folder at ``url`` (layout in the module docstring); COMPLETE is written last.

    Args:
        url: the folder (local path or fsspec URL); an existing checkpoint there is replaced.
        model: the SeeClear model.
        config: its `SeeClearConfig` (None: ``model.config``).
        train_config: the `TrainConfig` it was trained with, if any.
        ema: an `EMA` to save.
        optimizer: an optimizer to save (tensor state in safetensors, the rest in JSON).
        scheduler: an LR scheduler whose ``state_dict()`` is JSON-able (e.g. `make_scheduler`'s).
        memory: a CaTeGory `MemoryState` to save.
        step: the optimizer step the weights are at.
        extra: JSON-able extras (data position, metrics, ...).
        stages: the training stages these weights have completed, in order (``condenser``, ``memory``, ``joint``).
        sampling_steps: the reverse steps the weights were validated at and should be sampled with.

    Returns:
        ``url``.

    Raises:
        SeeClearError: an unwritable destination or state that is not JSON-able.
    """
    config = model.config if config is None else config
    files: dict[str, bytes] = {MODEL: _safetensors_bytes(model.trainable_state_dict())}
    meta: dict[str, Any] = {}
    if ema is not None:
        files[EMA_FILE] = _safetensors_bytes(ema.shadow)
        meta["ema"] = {"decay": ema.decay, "warmup": ema.warmup, "num_updates": ema.num_updates}
    if memory is not None:
        files[MEMORY] = _safetensors_bytes({"semantics": memory.semantics, "textures": memory.textures})
    if optimizer is not None or scheduler is not None:
        trainer: dict[str, Any] = {"optimizer": None, "scheduler": None}
        if optimizer is not None:
            tensors, rest = _split_optimizer(optimizer.state_dict())
            files[OPTIMIZER] = _safetensors_bytes(tensors)
            trainer["optimizer"] = rest
        if scheduler is not None:
            trainer["scheduler"] = scheduler.state_dict()
        try:
            files[TRAINER_STATE] = (json.dumps(trainer, indent=1, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise SeeClearError(
                f"optimizer/scheduler state is not JSON-able ({exc}); use Adam and make_scheduler"
            ) from exc
    meta["stages"] = list(stages)
    meta["sampling_steps"] = sampling_steps
    return _write_folder(url, files, model=config.to_dict(),
                         train=None if train_config is None else train_config.to_dict(), step=step, extra=extra,
                         meta=meta)


def _write_folder(url: str, files: Mapping[str, bytes], *, model: Mapping[str, Any], train: Mapping[str, Any] | None,
                  step: int, extra: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> str:
    """Write ``files`` and their config.json into the folder ``url``, COMPLETE last (see `save_checkpoint`)."""
    document = {
        "format": FORMAT,
        "model": dict(model),
        "train": None if train is None else dict(train),
        "step": int(step),
        "extra": dict(extra or {}),
        **meta,
        "files": {name: io.sha256_bytes(data) for name, data in sorted(files.items())},
        "provenance": provenance.record(),
    }
    try:
        config_bytes = (json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise SeeClearError(f"checkpoint extra must be JSON-able, got an error: {exc}") from exc

    io.makedirs(url)
    io.remove(io.join(url, COMPLETE))  # an overwritten folder must not look complete while it is being written
    for name, data in files.items():
        io.write_bytes(io.join(url, name), data)
    for stale in {*WEIGHT_FILES, OPTIMIZER, TRAINER_STATE} - set(files):
        io.remove(io.join(url, stale))
    io.write_bytes(io.join(url, CONFIG), config_bytes)
    io.write_bytes(io.join(url, COMPLETE), f"{FORMAT} step {int(step)}\n".encode())
    return url


def _read_document(url: str) -> dict[str, Any]:
    """config.json of a complete checkpoint, with its files present and their SHA-256 verified."""
    if not io.exists(url):
        raise SeeClearError(f"no checkpoint at {url}: the folder does not exist; check the URL")
    if not io.exists(io.join(url, COMPLETE)):
        raise SeeClearError(
            f"checkpoint {url} is incomplete: {COMPLETE} is missing (an interrupted save?); use an earlier checkpoint"
        )
    if not io.exists(io.join(url, CONFIG)):
        raise SeeClearError(f"checkpoint {url} is incomplete: {CONFIG} is missing; re-save it")
    try:
        document = json.loads(io.read_bytes(io.join(url, CONFIG)))
    except json.JSONDecodeError as exc:
        raise SeeClearError(f"checkpoint {url}: {CONFIG} is not valid JSON ({exc}); re-save it") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise SeeClearError(f"checkpoint {url}: expected format {FORMAT!r} in {CONFIG}, found {found!r}")
    for name, digest in document["files"].items():
        file_url = io.join(url, name)
        if not io.exists(file_url):
            raise SeeClearError(f"checkpoint {url} is incomplete: {name} is missing; use an earlier checkpoint")
        if io.sha256_url(file_url) != digest:
            raise SeeClearError(
                f"checkpoint {url}: {name} does not match its SHA-256 in {CONFIG} (corrupted or edited)"
            )
    return document


def load_checkpoint(
    url: str,
    *,
    device: str | torch.device = "cpu",
    distiller: SemanticDistiller | None = None,
    weights: Literal["model", "ema"] = "model",
) -> tuple[SeeClear, dict[str, Any]]:
    """Rebuild the model from a checkpoint folder (safetensors and JSON only; every file's SHA-256 checked).

    Args:
        url: the checkpoint folder.
        device: where the model and the returned tensors go.
        distiller: the built pretrained distiller, required when the checkpoint's network uses CLIPSeg.
        weights: "model" loads model.safetensors, "ema" the EMA weights (for evaluation).

    Returns:
        (model, extras) with extras: ``config`` (SeeClearConfig), ``train_config`` (TrainConfig | None), ``step``,
        ``extra``, ``provenance``, ``ema_state`` (for `EMA.load_state_dict`, or None), ``memory`` (MemoryState |
        None), ``optimizer_state`` (for ``optimizer.load_state_dict``, or None), ``scheduler_state`` (or None).

    Raises:
        SeeClearError: a missing or incomplete folder (naming the missing file), a hash mismatch, a malformed file,
            weights that do not fit the config, or a CLIPSeg checkpoint without ``distiller``.
    """
    from model.networks import MemoryState
    from model.seeclear import SeeClear, SeeClearConfig
    from model.training import TrainConfig

    document = _read_document(url)
    files = document["files"]
    try:
        config = SeeClearConfig.from_dict(document["model"])
        train_config = None if document.get("train") is None else TrainConfig.from_dict(document["train"])
        model = SeeClear(config, distiller=distiller)
    except ValueError as exc:
        raise SeeClearError(f"checkpoint {url}: {exc}") from exc
    if weights not in ("model", "ema"):
        raise SeeClearError(f"weights must be 'model' or 'ema', got {weights!r}")
    if weights == "ema" and EMA_FILE not in files:
        raise SeeClearError(f"checkpoint {url} has no {EMA_FILE}; load weights='model'")
    state = _read_safetensors(url, MODEL)
    ema_state = None
    if EMA_FILE in files:
        shadow = _read_safetensors(url, EMA_FILE)
        ema_state = {**document["ema"], "shadow": {k: v.to(device) for k, v in shadow.items()}}
        if weights == "ema":
            state = {**state, **shadow}
    try:
        model.load_trainable_state_dict(state)
    except (ValueError, RuntimeError) as exc:
        raise SeeClearError(f"checkpoint {url}: {exc}") from exc
    model.to(device)

    memory = None
    if MEMORY in files:
        tensors = _read_safetensors(url, MEMORY)
        memory = MemoryState(tensors["semantics"].to(device), tensors["textures"].to(device))
    optimizer_state = scheduler_state = None
    if TRAINER_STATE in files:
        trainer = json.loads(io.read_bytes(io.join(url, TRAINER_STATE)))
        scheduler_state = trainer.get("scheduler")
        if trainer.get("optimizer") is not None:
            tensors = _read_safetensors(url, OPTIMIZER) if OPTIMIZER in files else {}
            optimizer_state = _join_optimizer({k: v.to(device) for k, v in tensors.items()}, trainer["optimizer"])
    extras = {
        "config": config,
        "train_config": train_config,
        "step": int(document["step"]),
        "extra": document.get("extra", {}),
        "provenance": document.get("provenance", {}),
        "ema_state": ema_state,
        "memory": memory,
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "stages": list(document.get("stages") or []),
        "sampling_steps": document.get("sampling_steps"),
    }
    return model, extras


def checkpoint_config(url: str) -> SeeClearConfig:
    """The model config of a complete checkpoint, without building the model (files verified as in `load_checkpoint`).

    Raises:
        SeeClearError: a missing, incomplete or malformed checkpoint.
    """
    from model.seeclear import SeeClearConfig

    document = _read_document(url)
    try:
        return SeeClearConfig.from_dict(document["model"])
    except ValueError as exc:
        raise SeeClearError(f"checkpoint {url}: {exc}") from exc


def memory_trained(stages: Sequence[str]) -> bool:
    """Whether weights that completed ``stages`` have a trained CaTeGory memory (stage ``memory`` or ``joint``)."""
    return any(stage in ("memory", "joint") for stage in stages)


def checkpoint_meta(url: str) -> dict[str, Any]:
    """What a sampler needs to know of a complete checkpoint, without building the model (files verified).

    Returns:
        {"stages": completed training stages, "sampling_steps": the validated reverse steps or None,
        "memory": whether its CaTeGory memory was trained (else sample with the memory read off), "step",
        "ema": whether it holds EMA weights}.
    """
    document = _read_document(url)
    stages = list(document.get("stages") or [])
    return {"stages": stages, "sampling_steps": document.get("sampling_steps"), "memory": memory_trained(stages),
            "step": int(document["step"]), "ema": EMA_FILE in document["files"]}


def checkpoint_hash(url: str) -> str:
    """SHA-256 identifying a checkpoint's model: its config (model section) and the bytes of its weight files.

    Two saves of the same weights and config give the same hash (timestamps and training state do not enter).

    Raises:
        SeeClearError: a missing or incomplete checkpoint.
    """
    document = _read_document(url)  # verifies every file against config.json's digests, so those are reused here
    weights = {name: document["files"][name] for name in WEIGHT_FILES if name in document["files"]}
    payload = json.dumps({"model": document["model"], "weights": weights}, sort_keys=True).encode()
    return io.sha256_bytes(payload)


def list_checkpoints(root: str) -> list[tuple[int, str]]:
    """Complete checkpoints (``step-NNNNNNNN`` folders with COMPLETE) directly under ``root``, as (step, url),
    ascending."""
    if not io.isdir(root):
        return []
    found = []
    for child in io.listdir(root):
        match = _STEP_RE.search(child.rstrip("/"))
        if match and io.exists(io.join(child, COMPLETE)):
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: str) -> str | None:
    """The complete checkpoint with the highest step directly under ``root``, or None."""
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def newest_valid(root: str) -> tuple[int, str] | None:
    """(step, url) of the newest checkpoint under ``root`` that is complete and verifies (every file's SHA-256)."""
    import logging

    for step, url in reversed(list_checkpoints(root)):
        try:
            _read_document(url)
        except SeeClearError as exc:
            logging.getLogger(__name__).warning("skipping checkpoint %s: %s", url, exc)
            continue
        return step, url
    return None


def latest_valid(root: str) -> str | None:
    """The URL of `newest_valid`, or None."""
    found = newest_valid(root)
    return None if found is None else found[1]


def export_checkpoint(src_url: str, dst_url: str, *, weights: Literal["model", "ema"] = "ema",
                      extra: Mapping[str, Any] | None = None) -> str:
    """Write a slim, inference-only checkpoint: one set of weights (the EMA by default), config and provenance.

    No optimizer, scheduler or second weight copy: this is what gets committed or shipped (a few MB for ``tiny``).
    Works on the files (the model is not built), so a checkpoint whose network uses the frozen CLIPSeg exports
    without loading CLIPSeg.

    Raises:
        SeeClearError: an incomplete or corrupt source, ``weights="ema"`` without EMA weights, an unwritable
            destination.
    """
    if weights not in ("model", "ema"):
        raise SeeClearError(f"weights must be 'model' or 'ema', got {weights!r}")
    document = _read_document(src_url)
    if weights == "ema" and EMA_FILE not in document["files"]:
        raise SeeClearError(f"checkpoint {src_url} has no {EMA_FILE}; export weights='model'")
    state = _read_safetensors(src_url, MODEL)
    if weights == "ema":
        state = {**state, **_read_safetensors(src_url, EMA_FILE)}
    meta = {"stages": document.get("stages", []), "sampling_steps": document.get("sampling_steps")}
    return _write_folder(dst_url, {MODEL: _safetensors_bytes(state)}, model=document["model"],
                         train=document.get("train"), step=document["step"], meta=meta,
                         extra={**(document.get("extra") or {}), **(extra or {}), "exported_from": src_url,
                                "weights": weights})
