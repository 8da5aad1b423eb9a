"""InCAM, the Instance-Centric Alignment Module of SeeClear (Sec. 3.2, Fig. 2, Eq. 10-15), and its parts.

Owns:
- `SpatialModulation` (G of Eq. 10-11): SFT from the segmentation features P_i, zero-initialised output;
- `InstanceEncoderDecoder` (Eq. 14): frame tokens O_i of a clip -> clip tokens O_c via a temporal instance encoder
  and a decoder with learned queries;
- `MultiFrameSelfAttention` (MFSA, after PSRT): shifted 3-D (frames x window x window) window self-attention;
- `InstanceCentricAlignment`: SFT -> cross-attention to O_i -> class-activation product with O_c -> MFSA.

Imports torch and einops only, never ``seeclear_bench`` or ray. Axes: b = clips, f = frames of a clip, k = frame
tokens, q = clip tokens (N_c), d = token width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from model.networks.blocks import CrossAttention, WindowAttentionBlock

__all__ = ["InstanceCentricAlignment", "InstanceEncoderDecoder", "MultiFrameSelfAttention", "SpatialModulation"]


class SpatialModulation(nn.Module):
    """G of Eq. 10-11: (gamma, beta) = conv3x3 -> ReLU -> conv3x3 (P); F = (f * gamma + beta) + f.

    The last conv starts at zero, so the module starts as the identity.

    Args:
        seg_channels: channels of P.
        dim: channels of f.
    """

    def __init__(self, seg_channels: int, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(seg_channels, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, 2 * dim, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        """x (n c h w), seg (n s h w) at the same size -> (n c h w)."""
        gamma, beta = self.conv2(F.relu(self.conv1(seg))).chunk(2, dim=1)
        return x * gamma + beta + x


class InstanceEncoderDecoder(nn.Module):
    """Eq. 14, O_c = Dec(Enc(O_i), O_hat), VITA-style.

    The encoder runs self-attention over all f * k frame tokens of a clip (plus a learned frame embedding), so
    tokens communicate along time; the decoder's N_c learned queries O_hat cross-attend to the encoded tokens and
    gather each semantic object of the clip.

    Args:
        token_dim: width d of the distiller's tokens O_i.
        dim: width of the clip tokens O_c.
        heads: attention heads.
        ffn_dim: FFN hidden width.
        enc_layers: encoder layers.
        dec_layers: decoder layers.
        n_queries: N_c.
        max_frames: largest clip length (size of the frame embedding).
    """

    def __init__(
        self,
        *,
        token_dim: int,
        dim: int,
        heads: int,
        ffn_dim: int,
        enc_layers: int,
        dec_layers: int,
        n_queries: int,
        max_frames: int,
    ) -> None:
        super().__init__()
        self.max_frames = max_frames
        self.input_norm = nn.LayerNorm(token_dim)
        self.input_proj = nn.Linear(token_dim, dim)
        self.frame_embed = nn.Parameter(torch.randn(max_frames, dim) * 0.02)
        self.queries = nn.Parameter(torch.randn(n_queries, dim))
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(enc_layers)
        )
        self.decoder = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, heads, ffn_dim, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(dec_layers)
        )
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens O_i (b f k d) -> clip tokens O_c (b q dim)."""
        b, f = tokens.shape[:2]
        if f > self.max_frames:
            raise ValueError(f"clips may hold at most {self.max_frames} frames (config.frames), got {f}")
        x = self.input_proj(self.input_norm(tokens)) + self.frame_embed[:f, None]
        x = rearrange(x, "b f k c -> b (f k) c")
        for layer in self.encoder:
            x = layer(x)
        q = repeat(self.queries, "q c -> b q c", b=b)
        for layer in self.decoder:
            q = layer(q, x)
        return self.out_norm(q)


class MultiFrameSelfAttention(nn.Module):
    """MFSA (PSRT): one transformer block of 3-D window self-attention over (frames x window x window) windows.

    Args:
        dim: channels.
        head_dim: channels per head.
        window: spatial window side.
        frames: temporal window (clamped to the clip length).
        shift: shift the spatial windows by half a window.
        mlp_ratio: MLP hidden width / dim.
    """

    def __init__(self, dim: int, head_dim: int, window: int, frames: int, shift: bool, mlp_ratio: float) -> None:
        super().__init__()
        self.block = WindowAttentionBlock(dim, head_dim, (frames, window, window), shift, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        """x (b f c h w) -> (b f c h w), attention across the clip's frames."""
        y = self.block(rearrange(x, "b f c h w -> b f h w c"))
        return rearrange(y, "b f h w c -> b f c h w")


class InstanceCentricAlignment(nn.Module):
    """InCAM (Sec. 3.2): align a clip's frames in instance-centric semantic space.

    1. `modulate`: SFT from P_i (Eq. 10-11), per frame.
    2. `embed_semantics`: F_hat = F + CA(LN(F), O_i) with the frame's own tokens (Eq. 12-13), per frame.
    3. `activate`: class-activation product with the clip tokens, S = softmax_q(F W_q (O_c W_k)^T / sqrt(c)) and
       F' = F + S O_c W_v W_o (a single-head cross-attention, SEECLEAR.md Sec. 7); O_c is shared by the clip.
    4. MFSA across the clip's frames (Eq. 15).

    Steps 1-2 are frame-local; 3-4 mix information across frames.

    Args:
        dim: feature channels c.
        seg_channels: channels of P_i.
        token_dim: width of O_i.
        clip_dim: width of O_c.
        head_dim: channels per attention head.
        window: MFSA spatial window.
        frames: MFSA temporal window.
        shift: MFSA shifted windows.
        mlp_ratio: MFSA MLP ratio.
    """

    def __init__(
        self,
        *,
        dim: int,
        seg_channels: int,
        token_dim: int,
        clip_dim: int,
        head_dim: int,
        window: int,
        frames: int,
        shift: bool,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.modulation = SpatialModulation(seg_channels, dim)
        self.semantic_norm = nn.LayerNorm(dim)
        self.token_norm = nn.LayerNorm(token_dim)
        self.semantic_attn = CrossAttention(dim, token_dim, max(dim // head_dim, 1))
        self.activation_norm = nn.LayerNorm(dim)
        self.clip_norm = nn.LayerNorm(clip_dim)
        self.activation_attn = CrossAttention(dim, clip_dim, 1)
        self.mfsa = MultiFrameSelfAttention(dim, head_dim, window, frames, shift, mlp_ratio)

    def modulate(self, x: Tensor, seg: Tensor) -> Tensor:
        """SFT: x (b f c h w), seg (b f s h w) -> (b f c h w)."""
        b = x.shape[0]
        out = self.modulation(rearrange(x, "b f c h w -> (b f) c h w"), rearrange(seg, "b f s h w -> (b f) s h w"))
        return rearrange(out, "(b f) c h w -> b f c h w", b=b)

    def embed_semantics(self, x: Tensor, tokens: Tensor) -> Tensor:
        """Cross-attention of each frame's pixels to its own tokens: x (b f c h w), tokens (b f k d)."""
        b, h = x.shape[0], x.shape[3]
        q = rearrange(x, "b f c h w -> (b f) (h w) c")
        ctx = rearrange(self.token_norm(tokens), "b f k d -> (b f) k d")
        q = q + self.semantic_attn(self.semantic_norm(q), ctx)
        return rearrange(q, "(b f) (h w) c -> b f c h w", b=b, h=h)

    def activate(self, x: Tensor, clip_tokens: Tensor) -> Tensor:
        """Class-activation product with the clip tokens: x (b f c h w), clip_tokens (b q e)."""
        f, h = x.shape[1], x.shape[3]
        q = rearrange(x, "b f c h w -> b (f h w) c")
        q = q + self.activation_attn(self.activation_norm(q), self.clip_norm(clip_tokens))
        return rearrange(q, "b (f h w) c -> b f c h w", f=f, h=h)

    def forward(self, x: Tensor, seg: Tensor, tokens: Tensor, clip_tokens: Tensor) -> Tensor:
        """Eq. 10-15.

        Args:
            x: (b f c h w) features f_i.
            seg: (b f s h w) segmentation features P_i at the features' size.
            tokens: (b f k d) frame tokens O_i.
            clip_tokens: (b q e) clip tokens O_c.

        Returns:
            (b f c h w) aligned features.
        """
        x = self.modulate(x, seg)
        x = self.embed_semantics(x, tokens)
        x = self.activate(x, clip_tokens)
        return self.mfsa(x)
