"""Loading the pretrained Semantic Distiller (CLIPSeg) from a local folder or the Hugging Face cache; never downloads.

``model/`` builds the distiller around a constructed CLIPSeg (``ClipSegDistiller.from_model``) and does no I/O; this
module finds the weights and the tokenizer on disk. With no network at run time, a missing model is one line naming
it and where to put it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final, cast

from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    import torch

DEFAULT_CLIPSEG: Final = "CIDAS/clipseg-rd64-refined"


def hf_cache_dir() -> str:
    """Where the Hugging Face hub cache lives on this machine (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or the default)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def load_clipseg_distiller(source: str = DEFAULT_CLIPSEG, *, device: str = "cpu", **kwargs: Any) -> Any:
    """Build the frozen CLIPSeg distiller from a local ``save_pretrained`` folder or a cached hub model id.

    Args:
        source: A folder holding ``config.json``, the weights and the tokenizer files, or a hub id already in the
            Hugging Face cache (e.g. ``CIDAS/clipseg-rd64-refined``).
        device: Where the distiller goes.
        **kwargs: Passed to ``ClipSegDistiller.from_model`` (``vocabulary``, ``n_tokens``, ``template``, ...).

    Raises:
        SeeClearError: The model or its tokenizer is not on disk (names both and where to put them).
    """
    from transformers import AutoTokenizer, CLIPSegForImageSegmentation

    from model.networks import ClipSegDistiller

    local = os.path.isdir(source) or source.startswith((os.sep, ".", "~"))  # a hub id is "org/name"
    where = f"the folder {source}" if local else f"the Hugging Face cache {hf_cache_dir()}"
    try:
        clipseg = CLIPSegForImageSegmentation.from_pretrained(source, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise SeeClearError(
            f"CLIPSeg distiller {source!r} not found in {where} ({exc.__class__.__name__}); where a network exists run "
            f"`huggingface-cli download {DEFAULT_CLIPSEG if local else source}`, or point the spec at a folder made "
            "with save_pretrained (model and tokenizer)"
        ) from None
    # transformers types its @wraps(nn.Module.to) override as unbound (self becomes the first argument).
    return ClipSegDistiller.from_model(cast("torch.nn.Module", clipseg).to(device).eval(), tokenizer=tokenizer,
                                       **kwargs)


def distiller_missing(source: str = "") -> str | None:
    """Why the CLIPSeg distiller ``source`` cannot be loaded from disk, or None when its files are there.

    A cheap check for before any work starts (the model is not built): a local folder must hold ``config.json``; a hub
    id must have its ``config.json`` in the Hugging Face cache.
    """
    source = source or DEFAULT_CLIPSEG
    local = os.path.isdir(source) or source.startswith((os.sep, ".", "~"))
    if local:
        if os.path.isfile(os.path.join(os.path.expanduser(source), "config.json")):
            return None
        return (f"CLIPSeg distiller folder {source!r} holds no config.json; point the spec at a folder made with "
                "save_pretrained (model and tokenizer)")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return None
    return (f"CLIPSeg distiller {source!r} is not in the Hugging Face cache {hf_cache_dir()}; where a network exists "
            f"run `huggingface-cli download {source}`, or point the spec at a save_pretrained folder")


def distiller_for(network: Any, source: str = "", *, device: str = "cpu") -> Any:
    """The distiller a model built from ``network`` (a ``NetworkConfig``) must be handed: None for the learned one
    (built inside the model), else the frozen CLIPSeg from ``source`` sized by the config (``n_tokens``,
    ``clipseg_input_size``).

    Args:
        network: the model's ``NetworkConfig``.
        source: a ``save_pretrained`` folder or a cached hub id ("" = ``DEFAULT_CLIPSEG``).
        device: where the distiller goes.

    Raises:
        SeeClearError: the CLIPSeg model is not on disk, or it does not fit ``network`` (its projection width or the
            vocabulary size differ from ``token_dim`` / ``seg_channels``).
    """
    if network.distiller != "clipseg":
        return None
    from model.networks import check_distiller

    built = load_clipseg_distiller(source or DEFAULT_CLIPSEG, device=device, n_tokens=network.n_tokens,
                                   input_size=network.clipseg_input_size)
    try:
        check_distiller(network, built)
    except ValueError as exc:
        raise SeeClearError(f"CLIPSeg distiller {source or DEFAULT_CLIPSEG!r}: {exc}") from None
    return built
