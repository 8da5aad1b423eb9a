"""Building blocks of the Pixel Condenser (SeeClear Sec. 3.1, App. C): timestep embedding, residual blocks with
scale-shift conditioning, Swin-style (shifted) window self-attention in 2-D and 3-D, Restormer-style channel
self-attention, and a plain multi-head cross-attention.

Owns these nn.Modules only; imports torch and einops, never ``seeclear_bench`` or ray. Axis names in docstrings:
n = batch (clips x frames where the clip's frames run as a batch), t = frames inside one attention call, c = channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = [
    "ChannelAttentionBlock",
    "CrossAttention",
    "ResBlock",
    "SpatialWindowBlock",
    "TimestepEmbedding",
    "WindowAttentionBlock",
    "WindowSelfAttention",
    "group_norm",
    "timestep_embedding",
]


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``channels``."""
    return nn.GroupNorm(math.gcd(channels, max_groups), channels)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of integer steps (ADM / ResShift convention).

    Args:
        t: (n,) steps, any numeric dtype.
        dim: embedding width (even or odd; odd widths get a trailing zero).

    Returns:
        (n dim) float32 embedding ``[cos(t w_i) | sin(t w_i)]``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """Sinusoid(t) -> Linear -> SiLU -> Linear: the "intensity of degradation" fed to every ResBlock.

    Args:
        base_dim: width of the sinusoidal embedding.
        emb_dim: output width (4 x base channels by default in the condenser).
    """

    def __init__(self, base_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.base_dim = base_dim
        self.mlp = nn.Sequential(nn.Linear(base_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, t: Tensor) -> Tensor:
        """(n,) steps -> (n emb_dim)."""
        return self.mlp(timestep_embedding(t, self.base_dim).to(self.mlp[0].weight.dtype))


class ResBlock(nn.Module):
    """Residual block with timestep scale-shift (ADM): GN-SiLU-conv, GN * (1 + scale) + shift, SiLU-dropout-conv.

    Args:
        in_channels: input channels.
        out_channels: output channels (a 1x1 conv maps the skip when they differ).
        emb_dim: width of the timestep embedding.
        dropout: dropout probability before the second conv.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x (n c_in h w), emb (n e) -> (n c_out h w)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Mlp(nn.Module):
    """Linear -> GELU -> Linear on the last axis."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _region_ids(size: int, valid: int, window: int, shift: int, device: torch.device) -> Tensor:
    """Per-position label along one axis: which shifted-window region it belongs to, and padding apart.

    In original coordinates, a cyclic shift by ``shift`` makes the last window hold positions
    [size - window + shift, size) together with [0, shift); labelling these ranges differently (Swin's mask) keeps
    them from attending each other. Padded positions (>= valid) get their own label.
    """
    ids = torch.ones(size, dtype=torch.long, device=device)
    if shift:
        ids[:shift] = 0
        ids[size - window + shift :] = 2
    ids[valid:] = 3
    return ids


class WindowSelfAttention(nn.Module):
    """Multi-head self-attention inside (frames x window x window) windows, optionally cyclically shifted (Swin).

    A window larger than the input is clamped to the input (and then not shifted); sizes not divisible by the
    window are zero-padded and the padded keys masked out, so any size works. A learned relative position bias
    (Swin) covers the configured window; clamped windows use its central part.

    Args:
        dim: channels c.
        heads: attention heads (c must be divisible).
        window: (wt, wh, ww) window; wt = 1 gives 2-D window attention.
    """

    def __init__(self, dim: int, heads: int, window: Sequence[int]) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"window attention needs dim divisible by heads, got dim {dim} and {heads} heads")
        self.heads = heads
        self.window = tuple(int(w) for w in window)
        wt, wh, ww = self.window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * wt - 1) * (2 * wh - 1) * (2 * ww - 1), heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)

    def _bias(self, win: tuple[int, int, int]) -> Tensor:
        wt, wh, ww = self.window
        coords = torch.stack(
            torch.meshgrid(*(torch.arange(w, device=self.rel_bias.device) for w in win), indexing="ij")
        ).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :]
        index = ((rel[0] + wt - 1) * (2 * wh - 1) + rel[1] + wh - 1) * (2 * ww - 1) + rel[2] + ww - 1
        return rearrange(self.rel_bias[index], "i j heads -> heads i j")

    def forward(self, x: Tensor, shift: bool = False) -> Tensor:
        """x (n t h w c) -> (n t h w c); ``shift`` moves the windows by half a window in h and w."""
        t, h, w = x.shape[1:4]
        win = (min(self.window[0], t), min(self.window[1], h), min(self.window[2], w))
        sh = win[1] // 2 if shift and win[1] < h else 0
        sw = win[2] // 2 if shift and win[2] < w else 0
        pads = [(-s) % ws for s, ws in zip((t, h, w), win)]
        size = (t + pads[0], h + pads[1], w + pads[2])
        if any(pads):
            x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        mask = None
        if sh or sw or any(pads):
            ids_t = _region_ids(size[0], t, win[0], 0, x.device)
            ids_h = _region_ids(size[1], h, win[1], sh, x.device)
            ids_w = _region_ids(size[2], w, win[2], sw, x.device)
            ids = (ids_t[:, None, None] * 4 + ids_h[None, :, None]) * 4 + ids_w[None, None, :]
            ids = torch.roll(ids, shifts=(-sh, -sw), dims=(1, 2))
            ids = rearrange(ids, "(t wt) (h wh) (w ww) -> (t h w) (wt wh ww)", wt=win[0], wh=win[1], ww=win[2])
            mask = torch.zeros(ids.shape[0], 1, ids.shape[1], ids.shape[1], device=x.device)
            mask.masked_fill_((ids[:, :, None] != ids[:, None, :])[:, None], float("-inf"))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(2, 3))
        tokens = rearrange(x, "n (t wt) (h wh) (w ww) c -> n (t h w) (wt wh ww) c", wt=win[0], wh=win[1], ww=win[2])
        q, k, v = rearrange(self.qkv(tokens), "n m l (three k d) -> three n m k l d", three=3, k=self.heads)
        bias = self._bias(win)
        attn_mask = (bias if mask is None else bias + mask).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = self.proj(rearrange(out, "n m k l d -> n m l (k d)"))
        out = rearrange(
            out,
            "n (t h w) (wt wh ww) c -> n (t wt) (h wh) (w ww) c",
            t=size[0] // win[0],
            h=size[1] // win[1],
            w=size[2] // win[2],
            wt=win[0],
            wh=win[1],
        )
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(2, 3))
        return out[:, :t, :h, :w]


class WindowAttentionBlock(nn.Module):
    """Pre-LN transformer block with (shifted) window self-attention and an MLP, on (n t h w c) tensors.

    Args:
        dim: channels.
        head_dim: channels per head (heads = dim // head_dim, at least 1).
        window: (wt, wh, ww).
        shift: whether this block uses shifted windows.
        mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, dim: int, head_dim: int, window: Sequence[int], shift: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowSelfAttention(dim, max(dim // head_dim, 1), window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """x (n t h w c) -> (n t h w c)."""
        x = x + self.attn(self.norm1(x), self.shift)
        return x + self.mlp(self.norm2(x))


class SpatialWindowBlock(WindowAttentionBlock):
    """`WindowAttentionBlock` over single frames (Swin window SA) on channels-first (n c h w) feature maps.

    Args:
        dim: channels.
        head_dim: channels per head.
        window: window side.
        shift: shifted windows.
        mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, dim: int, head_dim: int, window: int, shift: bool, mlp_ratio: float) -> None:
        super().__init__(dim, head_dim, (1, window, window), shift, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        """x (n c h w) -> (n c h w)."""
        y = super().forward(rearrange(x, "n c h w -> n 1 h w c"))
        return rearrange(y, "n 1 h w c -> n c h w")


class ChannelAttentionBlock(nn.Module):
    """Restormer block: multi-Dconv-head transposed attention (C x C attention per head, learnable temperature)
    followed by the gated-Dconv feed-forward network, both pre-LN and residual.

    Args:
        dim: channels c.
        heads: attention heads (reduced to gcd(dim, heads) so that they divide c).
        ffn_expansion: hidden width / dim of the gated FFN.
    """

    def __init__(self, dim: int, heads: int, ffn_expansion: float) -> None:
        super().__init__()
        heads = math.gcd(dim, heads)
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj = nn.Conv2d(dim, dim, 1)
        hidden = int(dim * ffn_expansion)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn_in = nn.Conv2d(dim, 2 * hidden, 1)
        self.ffn_dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.ffn_out = nn.Conv2d(hidden, dim, 1)

    @staticmethod
    def _norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
        return rearrange(norm(rearrange(x, "n c h w -> n h w c")), "n h w c -> n c h w")

    def forward(self, x: Tensor) -> Tensor:
        """x (n c h w) -> (n c h w)."""
        hgt = x.shape[-2]
        q, k, v = self.qkv_dw(self.qkv(self._norm(self.norm1, x))).chunk(3, dim=1)
        q, k, v = (rearrange(z, "n (k d) h w -> n k d (h w)", k=self.heads) for z in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        out = rearrange(attn @ v, "n k d (h w) -> n (k d) h w", h=hgt)
        x = x + self.proj(out)
        g, z = self.ffn_dw(self.ffn_in(self._norm(self.norm2, x))).chunk(2, dim=1)
        return x + self.ffn_out(F.gelu(g) * z)


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from ``x``, keys and values from ``context`` (SeeClear Eq. 12-13).

    Args:
        query_dim: channels of x (also the output width).
        context_dim: channels of the context tokens.
        heads: attention heads.
        inner_dim: total q/k/v width (defaults to ``query_dim``; divisible by ``heads``).
        value_bias: bias on the value projection.
        out_bias: bias on the output projection. With both False, an all-zero context gives an exactly zero output.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int,
        heads: int,
        inner_dim: int | None = None,
        *,
        value_bias: bool = True,
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        inner = inner_dim or query_dim
        if inner % heads:
            raise ValueError(f"cross-attention needs inner_dim divisible by heads, got {inner} and {heads}")
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner)
        self.to_k = nn.Linear(context_dim, inner)
        self.to_v = nn.Linear(context_dim, inner, bias=value_bias)
        self.to_out = nn.Linear(inner, query_dim, bias=out_bias)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """x (n l c), context (n m d) -> (n l c)."""
        q = rearrange(self.to_q(x), "n l (k d) -> n k l d", k=self.heads)
        k = rearrange(self.to_k(context), "n m (k d) -> n k m d", k=self.heads)
        v = rearrange(self.to_v(context), "n m (k d) -> n k m d", k=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "n k l d -> n l (k d)"))
