"""The frozen configuration of SeeClear's networks (Pixel Condenser, InCAM, CaTeGory, Semantic Distiller).

Owns `NetworkConfig`, its validation and its presets (`tiny`, `small`, `paper`). Imports the standard library only;
never ``seeclear_bench`` or ray. Defaults follow SEECLEAR.md Sec. 7; departures are listed in model/README.md,
"Networks: choices and departures".
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

__all__ = ["NetworkConfig"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Sizes of the SeeClear networks.

    Attributes:
        in_channels: image channels (3, RGB).
        dwt_levels: Haar levels applied to x_t and y at the input (2 -> 48 channels at H/4 for RGB).
        base_channels: width C of encoder level 1.
        channel_mult: width multipliers of the 4 encoder levels (levels 2..4 follow a wavelet downsample).
        num_blocks: units (ResBlock -> window SA -> ResBlock -> channel SA) per encoder and decoder level.
        middle_blocks: middle blocks (each InCAM + one unit).
        dropout: dropout inside ResBlocks.
        window_size: side of the spatial (Swin) windows.
        head_dim: channels per head of window attention, cross-attention and MFSA.
        channel_heads: heads of the Restormer channel attention.
        mlp_ratio: MLP / FFN expansion of the attention blocks.
        mfsa_window: spatial window side of MFSA.
        frames: frames per clip m (also the MFSA temporal window and the size of the frame embedding).
        n_tokens: semantic tokens k per frame (O_i).
        token_dim: width d of O_i (the distiller's output: 256 for Mask2Former Swin-T, its decoder's hidden_dim;
            512 for CLIPSeg ViT-B/16, its projection_dim).
        seg_channels: channels of P_i (Mask2Former: its mask_feature_size, 256; CLIPSeg: the vocabulary size, 133 for
            COCO-panoptic).
        clip_dim: width of the clip tokens O_c (instance encoder-decoder).
        clip_heads: heads of the instance encoder-decoder.
        clip_ffn: FFN width of the instance encoder-decoder.
        clip_enc_layers: instance-encoder layers.
        clip_dec_layers: instance-decoder layers.
        n_clip_queries: N_c, learned queries O_hat of the instance decoder.
        memory_groups: G, CaTeGory groups.
        memory_dim: D, CaTeGory texture width.
        memory_pool: decoder features are pooled to at most this side per frame for the memory update.
        distiller: "learned" (trained from scratch, offline), "mask2former" (frozen Mask2Former panoptic, the
            paper preset's) or "clipseg" (frozen CLIPSeg); the frozen ones' weights are loaded outside ``model/``.
            Their sizes (token_dim, seg_channels, n_tokens <= queries) are checked against the loaded model when the
            model is built (`model.networks.check_distiller`), as this config cannot know the checkpoint.
        distiller_channels: width of the learned distiller's 1/4-size features.
        distiller_layers: transformer layers of the learned distiller.
        distiller_heads: attention heads of the learned distiller.
        distiller_scale: the fixed factor by which a frozen distiller resizes the frames it is given (the upsampled
            LR y, at HR size), keeping their aspect ratio; the same for training crops and whole frames.
        clipseg_input_size: not read any more (CLIPSeg used to squash frames to this square side; frames now keep
            their aspect at ``distiller_scale``); kept only so configs saved with it still load.

    Raises:
        ValueError: naming the field, on an invalid value.
    """

    in_channels: int = 3
    dwt_levels: int = 2
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    num_blocks: int = 1
    middle_blocks: int = 3
    dropout: float = 0.0
    window_size: int = 8
    head_dim: int = 32
    channel_heads: int = 4
    mlp_ratio: float = 2.0
    mfsa_window: int = 8
    frames: int = 5
    n_tokens: int = 100
    token_dim: int = 256
    seg_channels: int = 64
    clip_dim: int = 256
    clip_heads: int = 8
    clip_ffn: int = 1024
    clip_enc_layers: int = 3
    clip_dec_layers: int = 3
    n_clip_queries: int = 100
    memory_groups: int = 64
    memory_dim: int = 256
    memory_pool: int = 16
    distiller: Literal["learned", "clipseg", "mask2former"] = "learned"
    distiller_channels: int = 64
    distiller_layers: int = 2
    distiller_heads: int = 4
    distiller_scale: float = 1.0
    clipseg_input_size: int = 352

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not _is_int(value) or value < 1):
                raise ValueError(f"network.{f.name} must be an int >= 1, got {value!r}")
        if not isinstance(self.channel_mult, tuple) or len(self.channel_mult) != 4:
            raise ValueError(f"network.channel_mult must be a tuple of 4 ints (4 levels), got {self.channel_mult!r}")
        if not all(_is_int(m) and m >= 1 for m in self.channel_mult):
            raise ValueError(f"network.channel_mult must hold ints >= 1, got {self.channel_mult!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"network.dropout must lie in [0, 1), got {self.dropout!r}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"network.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        for name in ("token_dim", "clip_dim"):
            heads = self.distiller_heads if name == "token_dim" else self.clip_heads
            if name == "token_dim" and self.distiller != "learned":
                continue
            if getattr(self, name) % heads:
                raise ValueError(f"network.{name} ({getattr(self, name)}) must be divisible by its heads ({heads})")
        for width in (*self.level_channels, self.memory_dim):
            heads = max(width // self.head_dim, 1)
            if width % heads:
                raise ValueError(
                    f"network.head_dim ({self.head_dim}) gives {heads} heads for width {width}, which they do not "
                    "divide; pick base_channels/channel_mult/memory_dim as multiples of head_dim"
                )
        if self.distiller not in ("learned", "clipseg", "mask2former"):
            raise ValueError(
                f"network.distiller must be 'learned', 'clipseg' or 'mask2former', got {self.distiller!r}"
            )
        scale = self.distiller_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise ValueError(f"network.distiller_scale must be a number > 0 (a resize factor), got {scale!r}")

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of the 4 encoder levels."""
        return tuple(self.base_channels * m for m in self.channel_mult)

    @property
    def size_multiple(self) -> int:
        """HR sizes are padded inside the condenser to a multiple of this (2^dwt_levels * 2^3)."""
        return 2**self.dwt_levels * 2 ** (len(self.channel_mult) - 1)

    def with_overrides(self, **overrides: Any) -> NetworkConfig:
        """A copy with fields replaced (validated again)."""
        return replace(self, **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> NetworkConfig:
        """For tests and CPU smoke runs: a 1-clip 5-frame 64x64 forward+backward well under a second."""
        base = cls(
            base_channels=16,
            channel_mult=(1, 2, 2, 2),
            window_size=4,
            head_dim=8,
            channel_heads=2,
            mlp_ratio=1.0,
            mfsa_window=4,
            n_tokens=8,
            token_dim=32,
            seg_channels=8,
            clip_dim=32,
            clip_heads=2,
            clip_ffn=64,
            clip_enc_layers=1,
            clip_dec_layers=1,
            n_clip_queries=8,
            memory_groups=4,
            memory_dim=32,
            memory_pool=4,
            distiller_channels=16,
            distiller_layers=1,
            distiller_heads=2,
        )
        return replace(base, **overrides)

    @classmethod
    def small(cls, **overrides: Any) -> NetworkConfig:
        """For single-GPU training at 256x256 HR crops, 4 clips x 5 frames (fits a 24 GB GPU)."""
        base = cls(
            base_channels=64,
            channel_mult=(1, 2, 2, 4),
            n_tokens=64,
            token_dim=256,
            seg_channels=64,
            clip_dim=256,
            clip_ffn=512,
            clip_enc_layers=2,
            clip_dec_layers=2,
            n_clip_queries=64,
            memory_groups=32,
            memory_dim=128,
            memory_pool=8,
        )
        return replace(base, **overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> NetworkConfig:
        """Sized near the paper's 229.23 M parameters (Table 5), with the frozen Mask2Former distiller (Swin-T,
        COCO panoptic: 256-d decoder queries as O_i, 256-channel stride-4 mask features as P_i, k = 100 of its 100
        queries, frames at their own scale). See model/README.md for the count. The frozen CLIPSeg is the other
        option: ``paper(distiller="clipseg", token_dim=512, seg_channels=133)``."""
        base = cls(
            base_channels=128,
            channel_mult=(1, 2, 3, 4),
            num_blocks=2,
            distiller="mask2former",
            token_dim=256,
            seg_channels=256,
        )
        return replace(base, **overrides)
