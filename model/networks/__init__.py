"""nn.Modules of SeeClear: the Pixel Condenser U-Net, the Semantic Distillers, InCAM, CaTeGory and Haar wavelets.

Imports torch and einops only (transformers lazily, inside the pretrained distillers' ``from_config``); never
``seeclear_bench`` or ray, no file I/O, no device moves, no downloads.
"""

from __future__ import annotations

from model.config import NetworkConfig
from model.networks.category import ChannelTextureMemory, MemoryState
from model.networks.distiller import (
    COCO_PANOPTIC_CLASSES,
    ClipSegDistiller,
    LearnedDistiller,
    Mask2FormerDistiller,
    SemanticDistiller,
    Semantics,
    vocabulary_prompts,
)
from model.networks.incam import InstanceCentricAlignment, InstanceEncoderDecoder, MultiFrameSelfAttention
from model.networks.unet import PixelCondenser

__all__ = [
    "COCO_PANOPTIC_CLASSES",
    "ChannelTextureMemory",
    "ClipSegDistiller",
    "InstanceCentricAlignment",
    "InstanceEncoderDecoder",
    "LearnedDistiller",
    "Mask2FormerDistiller",
    "MemoryState",
    "MultiFrameSelfAttention",
    "PixelCondenser",
    "SemanticDistiller",
    "Semantics",
    "check_distiller",
    "make_learned_distiller",
    "vocabulary_prompts",
]


def make_learned_distiller(config: NetworkConfig) -> LearnedDistiller:
    """The offline `LearnedDistiller` sized by ``config`` (k, d, s, widths)."""
    return LearnedDistiller(
        n_tokens=config.n_tokens,
        token_dim=config.token_dim,
        seg_channels=config.seg_channels,
        channels=config.distiller_channels,
        layers=config.distiller_layers,
        heads=config.distiller_heads,
    )


def check_distiller(config: NetworkConfig, distiller: SemanticDistiller) -> None:
    """Raise ValueError when ``distiller``'s output sizes do not match what the condenser built from ``config`` reads.

    Raises:
        ValueError: naming the mismatched field (token_dim, seg_channels) and how to fix it.
    """
    for name in ("token_dim", "seg_channels"):
        want, got = getattr(config, name), getattr(distiller, name)
        if want != got:
            raise ValueError(
                f"network.{name} is {want} but the {type(distiller).__name__} gives {got}; "
                f"set network.{name}={got} (NetworkConfig.with_overrides)"
            )
