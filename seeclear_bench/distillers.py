"""Loading the pretrained Semantic Distillers (Mask2Former, CLIPSeg) from a local folder or the Hugging Face cache.

``model/`` wraps a constructed model (``Mask2FormerDistiller.from_model``, ``ClipSegDistiller.from_model``) and does
no I/O; this module finds the weights (and CLIPSeg's tokenizer, Mask2Former's normalisation) on disk. It never
downloads and never trains them; they are never written into checkpoints. With no network at run time, a missing
model is one line naming it and where to put it. `distiller_for` is the one entry point: it dispatches on
``network.distiller``.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Final, cast

from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    import torch

DEFAULT_CLIPSEG: Final = "CIDAS/clipseg-rd64-refined"
DEFAULT_MASK2FORMER: Final = "facebook/mask2former-swin-tiny-coco-panoptic"
#: ``network.distiller`` -> (name in messages, default source, what a save_pretrained folder must hold).
_KINDS: Final[dict[str, tuple[str, str, str]]] = {
    "clipseg": ("CLIPSeg", DEFAULT_CLIPSEG, "model and tokenizer"),
    "mask2former": ("Mask2Former", DEFAULT_MASK2FORMER, "model, and its image processor for the normalisation"),
}


def hf_cache_dir() -> str:
    """Where the Hugging Face hub cache lives on this machine (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or the default)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _is_local(source: str) -> bool:
    return os.path.isdir(source) or source.startswith((os.sep, ".", "~"))  # a hub id is "org/name"


def _not_found(kind: str, source: str, exc: BaseException) -> SeeClearError:
    name, default, holds = _KINDS[kind]
    local = _is_local(source)
    where = f"the folder {source}" if local else f"the Hugging Face cache {hf_cache_dir()}"
    return SeeClearError(
        f"{name} distiller {source!r} not found in {where} ({exc.__class__.__name__}); where a network exists run "
        f"`huggingface-cli download {default if local else source}`, or point the spec at a folder made with "
        f"save_pretrained ({holds})"
    )


def load_clipseg_distiller(source: str = DEFAULT_CLIPSEG, *, device: str = "cpu", **kwargs: Any) -> Any:
    """Build the frozen CLIPSeg distiller from a local ``save_pretrained`` folder or a cached hub model id.

    Args:
        source: A folder holding ``config.json``, the weights and the tokenizer files, or a hub id already in the
            Hugging Face cache (e.g. ``CIDAS/clipseg-rd64-refined``).
        device: Where the distiller goes.
        **kwargs: Passed to ``ClipSegDistiller.from_model`` (``vocabulary``, ``n_tokens``, ``scale``, ...).

    Raises:
        SeeClearError: The model or its tokenizer is not on disk (names both and where to put them).
    """
    from transformers import AutoTokenizer, CLIPSegForImageSegmentation

    from model.networks import ClipSegDistiller

    try:
        clipseg = CLIPSegForImageSegmentation.from_pretrained(source, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _not_found("clipseg", source, exc) from None
    # transformers types its @wraps(nn.Module.to) override as unbound (self becomes the first argument).
    return ClipSegDistiller.from_model(cast("torch.nn.Module", clipseg).to(device).eval(), tokenizer=tokenizer,
                                       **kwargs)


def _normalisation(source: str) -> dict[str, list[float]]:
    """``image_mean``/``image_std`` from the checkpoint's ``preprocessor_config.json`` when it is on disk (read as
    JSON: no image processor is built), else {} (the distiller's defaults, Mask2Former's processor defaults)."""
    if _is_local(source):
        path: str | None = os.path.join(os.path.expanduser(source), "preprocessor_config.json")
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "preprocessor_config.json")
        path = found if isinstance(found, str) else None
    if path is None or not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {key: [float(v) for v in data[name]] for key, name in (("mean", "image_mean"), ("std", "image_std"))
            if isinstance(data.get(name), list) and len(data[name]) == 3}


def load_mask2former_distiller(source: str = DEFAULT_MASK2FORMER, *, device: str = "cpu", **kwargs: Any) -> Any:
    """Build the frozen Mask2Former distiller from a local ``save_pretrained`` folder or a cached hub model id.

    The normalisation comes from the checkpoint's ``preprocessor_config.json`` when present (ImageNet mean/std, the
    processor's defaults, otherwise).

    Args:
        source: A folder holding ``config.json`` and the weights (a ``Mask2FormerForUniversalSegmentation``), or a
            hub id already in the Hugging Face cache (e.g. ``facebook/mask2former-swin-tiny-coco-panoptic``).
        device: Where the distiller goes.
        **kwargs: Passed to ``Mask2FormerDistiller.from_model`` (``n_tokens``, ``scale``, ``mean``, ``std``).

    Raises:
        SeeClearError: The model is not on disk (names it and where to put it).
    """
    from transformers import Mask2FormerForUniversalSegmentation

    from model.networks import Mask2FormerDistiller

    try:
        mask2former = Mask2FormerForUniversalSegmentation.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _not_found("mask2former", source, exc) from None
    kwargs = {**_normalisation(source), **kwargs}
    return Mask2FormerDistiller.from_model(cast("torch.nn.Module", mask2former).to(device).eval(), **kwargs)


def distiller_missing(source: str = "", *, kind: str = "clipseg") -> str | None:
    """Why the ``kind`` distiller ("clipseg" or "mask2former") at ``source`` cannot be loaded from disk, or None when
    its files are there.

    A cheap check for before any work starts (the model is not built): a local folder must hold ``config.json``; a hub
    id must have its ``config.json`` in the Hugging Face cache. ``source`` "" means the kind's default hub id.
    """
    name, default, holds = _KINDS[kind]
    source = source or default
    if _is_local(source):
        if os.path.isfile(os.path.join(os.path.expanduser(source), "config.json")):
            return None
        return (f"{name} distiller folder {source!r} holds no config.json; point the spec at a folder made with "
                f"save_pretrained ({holds})")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return None
    return (f"{name} distiller {source!r} is not in the Hugging Face cache {hf_cache_dir()}; where a network exists "
            f"run `huggingface-cli download {source}`, or point the spec at a save_pretrained folder")


def distiller_for(network: Any, source: str = "", *, device: str = "cpu") -> Any:
    """The distiller a model built from ``network`` (a ``NetworkConfig``) must be handed: None for the learned one
    (built inside the model), else the frozen Mask2Former or CLIPSeg (``network.distiller``) from ``source``, sized
    by the config (``n_tokens``, ``distiller_scale``).

    Args:
        network: the model's ``NetworkConfig``.
        source: a ``save_pretrained`` folder or a cached hub id ("" = the kind's default, ``DEFAULT_MASK2FORMER`` or
            ``DEFAULT_CLIPSEG``).
        device: where the distiller goes.

    Raises:
        SeeClearError: the model is not on disk, or it does not fit ``network`` (its token width or its segmentation
            channels differ from ``token_dim`` / ``seg_channels``, or it has fewer queries than ``n_tokens``).
    """
    match network.distiller:
        case "learned":
            return None
        case "clipseg":
            load = load_clipseg_distiller
        case "mask2former":
            load = load_mask2former_distiller
        case other:
            raise SeeClearError(f"network.distiller {other!r} has no loader; expected 'learned', 'clipseg' or "
                                "'mask2former'")
    from model.networks import check_distiller

    name, default, _ = _KINDS[network.distiller]
    source = source or default
    try:
        built = load(source, device=device, n_tokens=network.n_tokens, scale=network.distiller_scale)
        check_distiller(network, built)
    except SeeClearError:
        raise
    except ValueError as exc:  # n_tokens beyond the queries, or sizes that do not fit the network
        raise SeeClearError(f"{name} distiller {source!r}: {exc}") from None
    return built
