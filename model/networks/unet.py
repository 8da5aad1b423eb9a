"""The Pixel Condenser of SeeClear (Sec. 3.1, App. C, Alg. 1 lines 12-40): an attention U-Net on Haar sub-bands.

Owns `PixelCondenser` and its private level modules. Data flow for a clip batch x_t, y (b f 3 H W):

- input: DWT (orthonormal Haar, ``dwt_levels`` levels) of y and of x_t, concatenated, one 3x3 conv;
- encoder, 4 levels, each ``num_blocks`` units ResBlock(t) -> window SA -> ResBlock(t) -> channel SA; after
  levels 1-3 a wavelet downsample passes LL on and keeps LH/HL/HH for the decoder; from level 2 on, the LR wavelet
  branch WD(LR) is concatenated back ("refill") and fused by a 1x1 conv;
- middle: ``middle_blocks`` x [ResBlock(t) -> InCAM -> window SA -> ResBlock(t) -> channel SA];
- decoder, 4 levels (deepest first): wavelet upsample (IDWT of [features as LL, skip highs]) between levels, the
  encoder feature skip concatenated, then ResBlock(t) -> InCAM -> window SA -> ResBlock(t) -> channel SA, then the
  CaTeGory read; the features before the read are returned for the memory update;
- head: GN-SiLU-conv (zero-initialised) -> IDWT -> + y: an x0 prediction in pixel space (Alg. 1 line 40).

The f frames of a clip run through 2-D layers as a batch (b f); InCAM and MFSA mix across frames. Imports torch
and einops only; never ``seeclear_bench`` or ray, no I/O, no device moves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from model.config import NetworkConfig
from model.networks.blocks import ChannelAttentionBlock, ResBlock, SpatialWindowBlock, TimestepEmbedding, group_norm
from model.networks.category import ChannelTextureMemory, MemoryState
from model.networks.distiller import Semantics
from model.networks.incam import InstanceCentricAlignment, InstanceEncoderDecoder
from model.networks.wavelet import dwt2, idwt2, wavelet_down, wavelet_up

__all__ = ["PixelCondenser"]


class _Unit(nn.Module):
    """ResBlock(t) -> [align] -> window SA -> ResBlock(t) -> channel SA (App. C's basic unit)."""

    def __init__(self, in_ch: int, dim: int, emb_dim: int, cfg: NetworkConfig, shift: bool) -> None:
        super().__init__()
        self.res1 = ResBlock(in_ch, dim, emb_dim, cfg.dropout)
        self.spatial = SpatialWindowBlock(dim, cfg.head_dim, cfg.window_size, shift, cfg.mlp_ratio)
        self.res2 = ResBlock(dim, dim, emb_dim, cfg.dropout)
        self.channel = ChannelAttentionBlock(dim, cfg.channel_heads, cfg.mlp_ratio)

    def forward(self, x: Tensor, emb: Tensor, align: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        h = self.res1(x, emb)
        if align is not None:
            h = align(h)
        h = self.spatial(h)
        return self.channel(self.res2(h, emb))


class _AlignedUnit(nn.Module):
    """A unit whose window SA takes InCAM's aligned features (middle blocks and decoder levels)."""

    def __init__(self, in_ch: int, dim: int, emb_dim: int, cfg: NetworkConfig, shift: bool) -> None:
        super().__init__()
        self.unit = _Unit(in_ch, dim, emb_dim, cfg, shift)
        self.incam = InstanceCentricAlignment(
            dim=dim,
            seg_channels=cfg.seg_channels,
            token_dim=cfg.token_dim,
            clip_dim=cfg.clip_dim,
            head_dim=cfg.head_dim,
            window=cfg.mfsa_window,
            frames=cfg.frames,
            shift=not shift,
            mlp_ratio=cfg.mlp_ratio,
        )

    def forward(self, x: Tensor, emb: Tensor, frames: int, seg: Tensor, tokens: Tensor, clip: Tensor) -> Tensor:
        def align(h: Tensor) -> Tensor:
            h5 = rearrange(h, "(b f) c h w -> b f c h w", f=frames)
            return rearrange(self.incam(h5, seg, tokens, clip), "b f c h w -> (b f) c h w")

        return self.unit(x, emb, align)


class _WaveletUp(nn.Module):
    """WU: 1x1 conv to the lower level's width as LL, a per-band 3x3 conv on the skip highs, then IDWT."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.to_ll = nn.Conv2d(in_ch, out_ch, 1)
        self.highs = nn.Conv2d(3 * out_ch, 3 * out_ch, 3, padding=1, groups=3)

    def forward(self, x: Tensor, highs: Tensor) -> Tensor:
        return wavelet_up(self.to_ll(x), self.highs(highs))


class PixelCondenser(nn.Module):
    """The denoiser U-Net: predicts the HR clip x0 from x_t, the upsampled LR y, the step t and the semantics.

    Args:
        config: network sizes.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = cfg = config
        dims = cfg.level_channels
        band_ch = cfg.in_channels * 4**cfg.dwt_levels
        emb_dim = 4 * cfg.base_channels
        self.time_embed = TimestepEmbedding(cfg.base_channels, emb_dim)
        self.instance = InstanceEncoderDecoder(
            token_dim=cfg.token_dim,
            dim=cfg.clip_dim,
            heads=cfg.clip_heads,
            ffn_dim=cfg.clip_ffn,
            enc_layers=cfg.clip_enc_layers,
            dec_layers=cfg.clip_dec_layers,
            n_queries=cfg.n_clip_queries,
            max_frames=cfg.frames,
        )
        counter = itertools.count()

        def shift() -> bool:  # alternate plain and shifted windows across all units
            return next(counter) % 2 == 1

        self.stem = nn.Conv2d(2 * band_ch, dims[0], 3, padding=1)
        self.lr_stem = nn.Conv2d(band_ch, dims[0], 3, padding=1)
        self.lr_down = nn.ModuleList(nn.Conv2d(4 * dims[i - 1], dims[i], 1) for i in range(1, 4))
        self.enc_fuse = nn.ModuleList(nn.Conv2d(dims[i - 1] + dims[i], dims[i], 1) for i in range(1, 4))
        self.encoder = nn.ModuleList(
            nn.ModuleList(_Unit(dims[i], dims[i], emb_dim, cfg, shift()) for _ in range(cfg.num_blocks))
            for i in range(4)
        )
        self.middle = nn.ModuleList(
            _AlignedUnit(dims[3], dims[3], emb_dim, cfg, shift()) for _ in range(cfg.middle_blocks)
        )
        self.wavelet_ups = nn.ModuleList(_WaveletUp(dims[i], dims[i - 1]) for i in (3, 2, 1))
        self.decoder = nn.ModuleList()
        self.decoder_extra = nn.ModuleList()
        for i in (3, 2, 1, 0):
            self.decoder.append(_AlignedUnit(2 * dims[i], dims[i], emb_dim, cfg, shift()))
            self.decoder_extra.append(
                nn.ModuleList(_Unit(dims[i], dims[i], emb_dim, cfg, shift()) for _ in range(cfg.num_blocks - 1))
            )
        self.memory = ChannelTextureMemory(
            level_dims=[dims[i] for i in (3, 2, 1, 0)],
            clip_dim=cfg.clip_dim,
            n_queries=cfg.n_clip_queries,
            groups=cfg.memory_groups,
            memory_dim=cfg.memory_dim,
            head_dim=cfg.head_dim,
            pool=cfg.memory_pool,
        )
        self.head_norm = group_norm(dims[0])
        self.head = nn.Conv2d(dims[0], band_ch, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def initial_memory(self, batch_size: int) -> MemoryState:
        """CaTeGory's learned initial state (C_bar, T_bar) for ``batch_size`` videos."""
        return self.memory.initial_state(batch_size)

    def clip_tokens(self, semantics: Semantics) -> Tensor:
        """O_c (b q e) of Eq. 14 from the frame tokens O_i (b f k d)."""
        return self.instance(semantics.tokens)

    def update_memory(
        self, memory: MemoryState, decoder_features: Sequence[Tensor], semantics: Semantics
    ) -> MemoryState:
        """CaTeGory update after a clip's last step (Alg. 1 lines 43-44), from that step's decoder features."""
        return self.memory.update(memory, decoder_features, self.clip_tokens(semantics))

    def _check(self, x_t: Tensor, t: Tensor, y: Tensor, semantics: Semantics) -> None:
        cfg = self.config
        if x_t.ndim != 5 or x_t.shape[2] != cfg.in_channels or x_t.shape != y.shape:
            raise ValueError(
                f"x_t and y must both be (b f {cfg.in_channels} H W), got {tuple(x_t.shape)} and {tuple(y.shape)}"
            )
        b, f = x_t.shape[:2]
        if t.shape != (b,):
            raise ValueError(f"t must be (b,) = ({b},), got {tuple(t.shape)}")
        tokens, seg = semantics
        if tokens.shape[:2] != (b, f) or tokens.ndim != 4 or tokens.shape[-1] != cfg.token_dim:
            raise ValueError(
                f"semantic tokens must be (b f k d) = ({b} {f} k {cfg.token_dim}), got {tuple(tokens.shape)}"
            )
        if seg.shape[:3] != (b, f, cfg.seg_channels) or seg.ndim != 5:
            raise ValueError(
                f"segmentation features must be (b f s h w) with s = {cfg.seg_channels}, got {tuple(seg.shape)}"
            )

    def _seg_pyramid(self, seg: Tensor, size: tuple[int, int], padded: tuple[int, int]) -> list[Tensor]:
        """P_i at the size of each level: resized to the unpadded H/4 x W/4, replicate-padded, then 2x2-averaged."""
        s = self.config.dwt_levels
        target = (-(-size[0] // 2**s), -(-size[1] // 2**s))
        x = rearrange(seg, "b f s h w -> (b f) s h w")
        if tuple(x.shape[-2:]) != target:
            x = F.interpolate(x, size=target, mode="bilinear", antialias=True)
        level1 = (padded[0] // 2**s, padded[1] // 2**s)
        x = F.pad(x, (0, level1[1] - target[1], 0, level1[0] - target[0]), mode="replicate")
        out = [x]
        for _ in range(3):
            out.append(F.avg_pool2d(out[-1], 2))
        return [rearrange(p, "(b f) s h w -> b f s h w", b=seg.shape[0]) for p in out]

    def forward(
        self, x_t: Tensor, t: Tensor, y: Tensor, *, semantics: Semantics, memory: MemoryState | None = None,
        read_memory: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """Predict x0 for one reverse step (Alg. 1 lines 12-40).

        Args:
            x_t: (b f c H W) input-scaled diffusion state.
            t: (b,) steps in 1..T.
            y: (b f c H W) upsampled LR in [-1, 1].
            semantics: the clip's distiller output, tokens O_i (b f k d) and P_i (b f s h w).
            memory: CaTeGory state for the b videos; None uses the learned initial state.
            read_memory: False skips the CaTeGory reads (identity), e.g. for weights whose memory never trained.

        Returns:
            ``(x0_pred, decoder_features)``: x0_pred (b f c H W) = IDWT(head) + y, the inverse wavelet and the
            residual add in float32 even under autocast; decoder_features, deepest first,
            (b f c_k h_k w_k) at the padded size (H and W padded up to ``config.size_multiple``).
        """
        self._check(x_t, t, y, semantics)
        cfg = self.config
        b, f, _, hgt, wid = x_t.shape
        mult = cfg.size_multiple
        padded = (-(-hgt // mult) * mult, -(-wid // mult) * mult)
        pad = (0, padded[1] - wid, 0, padded[0] - hgt)
        xt2 = F.pad(rearrange(x_t, "b f c h w -> (b f) c h w"), pad, mode="replicate")
        y2 = F.pad(rearrange(y, "b f c h w -> (b f) c h w"), pad, mode="replicate")
        memory = self.memory.initial_state(b) if memory is None else memory

        emb = repeat(self.time_embed(t), "b e -> (b f) e", f=f)
        tokens = semantics.tokens
        clip = self.instance(tokens)
        segs = self._seg_pyramid(semantics.seg, (hgt, wid), padded)

        lr_bands = dwt2(y2, cfg.dwt_levels)
        h = self.stem(torch.cat([lr_bands, dwt2(xt2, cfg.dwt_levels)], dim=1))
        lr = self.lr_stem(lr_bands)
        skips, highs = [], []
        for i, units in enumerate(self.encoder):
            if i > 0:
                ll, hi = wavelet_down(h)
                highs.append(hi)
                lr = self.lr_down[i - 1](dwt2(lr, 1) * 0.5)
                h = self.enc_fuse[i - 1](torch.cat([ll, lr], dim=1))
            for unit in units:
                h = unit(h, emb)
            skips.append(h)

        for block in self.middle:
            h = block(h, emb, f, segs[3], tokens, clip)

        features = []
        for k, (level, block, extra) in enumerate(zip((3, 2, 1, 0), self.decoder, self.decoder_extra)):
            if k > 0:
                h = self.wavelet_ups[k - 1](h, highs[level])
            h = block(torch.cat([h, skips[level]], dim=1), emb, f, segs[level], tokens, clip)
            for unit in extra:
                h = unit(h, emb)
            h5 = rearrange(h, "(b f) c h w -> b f c h w", f=f)
            features.append(h5)
            if read_memory:
                h = rearrange(self.memory.read(k, h5, clip, memory), "b f c h w -> (b f) c h w")

        head = self.head(F.silu(self.head_norm(h)))
        with torch.autocast(head.device.type, enabled=False):
            out = idwt2(head.float(), cfg.dwt_levels) + y2.float()
        x0 = rearrange(out[:, :, :hgt, :wid], "(b f) c h w -> b f c h w", b=b)
        return x0, features
