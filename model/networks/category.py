"""CaTeGory, the Channel-wise Texture Aggregation Memory of SeeClear (Sec. 3.3, Fig. 3, Eq. 16-20).

Owns `MemoryState` (the memory's state: a frozen dataclass of two tensors, passed in and returned, never stored in a
module) and `ChannelTextureMemory` (its zero-initialised parameters C_bar and T_bar, the per-level read and the
update). Imports torch and einops only, never ``seeclear_bench`` or ray.

Shapes (SEECLEAR.md Sec. 7): G groups; the clip tokens O_c (b q e) give e channel tokens Z = O_c^T of length q = N_c.
State C (b G q) holds one channel-semantic key per group, T (b G D) its texture.

- read (Eq. 19-20), at every decoder level: A = softmax_G(LN(Z) (C + E)^T / sqrt(q)) (b e G); R = A T (b e D);
  F~ = F + CA(LN(F), N(R)), with bias-free value/output projections, so an all-zero T reads exactly zero. N is a
  soft RMS norm, N(R) = g R / sqrt(mean(R^2) + 1): about g R while the memory is small (the read's change grows in
  proportion to the memory, so the first steps cannot jump) and g R / rms(R) once it is large. A plain RMSNorm
  (eps 1e-6) would scale a near-zero memory by up to ~1000x: one Adam step on T_bar moved the read from nothing to
  10% of the features' RMS and its gradient dominated the global norm.
- update (Eq. 16-18), once per clip after its last step: T^ = T + (C + E) W_c; T_new = FFN(SA(CA(T^, feats)))
  (pre-LN, residual) with feats the decoder features of all levels, average-pooled to a small grid, projected to D
  and concatenated; C_new = Linear(group means of LN(Z) under A); each of C and T then moves toward its new value
  through a learned sigmoid gate.

E (G q) is a learned group embedding (random init): with C_bar = T_bar = 0 all groups would otherwise be identical
and stay identical under gradient descent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from model.networks.blocks import CrossAttention, Mlp

__all__ = ["ChannelTextureMemory", "MemoryState"]


@dataclass(frozen=True)
class MemoryState:
    """State (C_m, T_m) of CaTeGory for a batch of videos.

    Attributes:
        semantics: C (b G q), the channel-semantic key of each group.
        textures: T (b G D), the texture of each group.
    """

    semantics: Tensor
    textures: Tensor

    def detach(self) -> MemoryState:
        """The same state cut from the autograd graph (e.g. between clips at inference)."""
        return MemoryState(self.semantics.detach(), self.textures.detach())


class SoftRMSNorm(nn.Module):
    """g x / sqrt(mean(x^2) + floor) over the last dim: linear in x while rms(x) << sqrt(floor), RMSNorm beyond."""

    def __init__(self, dim: int, floor: float = 1.0) -> None:
        super().__init__()
        self.floor = floor
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.floor) * self.weight


class _MemoryRead(nn.Module):
    def __init__(self, dim: int, memory_dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, memory_dim, heads, value_bias=False, out_bias=False)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        f, h = x.shape[1], x.shape[3]
        q = rearrange(x, "b f c h w -> b (f h w) c")
        q = q + self.attn(self.norm(q), context)
        return rearrange(q, "b (f h w) c -> b f c h w", f=f, h=h)


class ChannelTextureMemory(nn.Module):
    """CaTeGory: zero-initialised memory of (channel semantic, texture) pairs, read at every decoder level.

    Args:
        level_dims: channels of the decoder levels, in the order the decoder visits them (deepest first).
        clip_dim: width e of the clip tokens O_c.
        n_queries: number q = N_c of clip tokens.
        groups: number of memory groups G.
        memory_dim: texture width D.
        head_dim: channels per attention head.
        pool: decoder features are average-pooled to at most pool x pool per frame for the update.
    """

    def __init__(
        self,
        *,
        level_dims: Sequence[int],
        clip_dim: int,
        n_queries: int,
        groups: int,
        memory_dim: int,
        head_dim: int,
        pool: int,
    ) -> None:
        super().__init__()
        self.level_dims = tuple(level_dims)
        self.pool = pool
        self.semantics = nn.Parameter(torch.zeros(groups, n_queries))
        self.textures = nn.Parameter(torch.zeros(groups, memory_dim))
        self.group_embed = nn.Parameter(torch.randn(groups, n_queries) * 0.02)
        self.channel_norm = nn.LayerNorm(n_queries)
        self.read_norm = SoftRMSNorm(memory_dim)
        self.reads = nn.ModuleList(_MemoryRead(c, memory_dim, max(c // head_dim, 1)) for c in self.level_dims)
        heads = max(memory_dim // head_dim, 1)
        self.semantic_link = nn.Linear(n_queries, memory_dim)
        self.feature_proj = nn.ModuleList(nn.Linear(c, memory_dim) for c in self.level_dims)
        self.level_embed = nn.Parameter(torch.randn(len(self.level_dims), memory_dim) * 0.02)
        self.cross_norm = nn.LayerNorm(memory_dim)
        self.context_norm = nn.LayerNorm(memory_dim)
        self.cross_attn = CrossAttention(memory_dim, memory_dim, heads)
        self.self_norm = nn.LayerNorm(memory_dim)
        self.self_attn = CrossAttention(memory_dim, memory_dim, heads)
        self.ffn_norm = nn.LayerNorm(memory_dim)
        self.ffn = Mlp(memory_dim, 4 * memory_dim)
        self.texture_gate = nn.Linear(2 * memory_dim, memory_dim)
        self.semantic_update = nn.Linear(n_queries, n_queries)
        self.semantic_gate = nn.Linear(2 * n_queries, n_queries)

    def initial_state(self, batch_size: int) -> MemoryState:
        """The learned state (C_bar, T_bar) for ``batch_size`` videos (still attached to the parameters)."""
        return MemoryState(self.semantics.expand(batch_size, -1, -1), self.textures.expand(batch_size, -1, -1))

    def _channel_tokens(self, clip_tokens: Tensor) -> Tensor:
        return self.channel_norm(rearrange(clip_tokens, "b q e -> b e q"))

    def assignment(self, state: MemoryState, clip_tokens: Tensor) -> Tensor:
        """A of Eq. 19: softmax over groups of the channel similarity, (b e G)."""
        z = self._channel_tokens(clip_tokens)
        keys = state.semantics + self.group_embed
        return torch.softmax(z @ keys.transpose(-2, -1) / math.sqrt(z.shape[-1]), dim=-1)

    def recall(self, state: MemoryState, clip_tokens: Tensor) -> Tensor:
        """R = A T: the texture recalled for each channel token, (b e D)."""
        return self.read_norm(self.assignment(state, clip_tokens) @ state.textures)

    def read(self, level: int, x: Tensor, clip_tokens: Tensor, state: MemoryState) -> Tensor:
        """Eq. 20 at decoder level ``level``: F~ = F + CA(F, A T).

        Args:
            level: index into ``level_dims``.
            x: (b f c h w) decoder features (queries).
            clip_tokens: (b q e) clip tokens O_c.
            state: memory state of the b videos.

        Returns:
            (b f c h w) enhanced features; exactly ``x`` while T is all zero.
        """
        self._check_state(state, x.shape[0])
        return self.reads[level](x, self.recall(state, clip_tokens))

    def update(self, state: MemoryState, features: Sequence[Tensor], clip_tokens: Tensor) -> MemoryState:
        """Eq. 16-18: the state after a clip, from its multi-scale decoder features and its clip tokens.

        Args:
            state: (C_m, T_m).
            features: per decoder level (same order as ``level_dims``), (b f c_k h_k w_k).
            clip_tokens: (b q e) clip tokens O_c of the clip.

        Returns:
            (C_{m+1}, T_{m+1}), differentiable w.r.t. the inputs and the module's parameters.
        """
        b = clip_tokens.shape[0]
        self._check_state(state, b)
        if len(features) != len(self.level_dims):
            raise ValueError(f"memory update expects {len(self.level_dims)} decoder levels, got {len(features)}")
        context = []
        for k, feat in enumerate(features):
            h, w = feat.shape[-2:]
            size = (min(self.pool, h), min(self.pool, w))
            pooled = F.adaptive_avg_pool2d(rearrange(feat, "b f c h w -> (b f) c h w"), size)
            tokens = rearrange(pooled, "(b f) c h w -> b (f h w) c", b=b)
            context.append(self.feature_proj[k](tokens) + self.level_embed[k])
        context = self.context_norm(torch.cat(context, dim=1))
        keys = state.semantics + self.group_embed
        t_hat = state.textures + self.semantic_link(keys)
        t_new = t_hat + self.cross_attn(self.cross_norm(t_hat), context)
        normed = self.self_norm(t_new)
        t_new = t_new + self.self_attn(normed, normed)
        t_new = t_new + self.ffn(self.ffn_norm(t_new))
        gate = torch.sigmoid(self.texture_gate(torch.cat([state.textures, t_new], dim=-1)))
        textures = state.textures + gate * (t_new - state.textures)

        a = self.assignment(state, clip_tokens)
        weights = a / a.sum(dim=1, keepdim=True).clamp_min(1e-6)
        c_new = self.semantic_update(weights.transpose(-2, -1) @ self._channel_tokens(clip_tokens))
        gate = torch.sigmoid(self.semantic_gate(torch.cat([state.semantics, c_new], dim=-1)))
        semantics = state.semantics + gate * (c_new - state.semantics)
        return MemoryState(semantics, textures)

    def _check_state(self, state: MemoryState, batch: int) -> None:
        if state.semantics.shape[1:] != self.semantics.shape or state.textures.shape[1:] != self.textures.shape:
            raise ValueError(
                f"memory state must be C (b {tuple(self.semantics.shape)}) and T (b {tuple(self.textures.shape)}), "
                f"got {tuple(state.semantics.shape)} and {tuple(state.textures.shape)}; build it with initial_state"
            )
        if state.semantics.shape[0] != batch or state.textures.shape[0] != batch:
            raise ValueError(
                f"memory state holds {state.semantics.shape[0]} videos but the features hold {batch} clips"
            )
