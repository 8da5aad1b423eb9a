"""Building blocks: timestep embedding, ResBlock, (shifted) window attention, channel attention, cross-attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.networks.blocks import (
    ChannelAttentionBlock,
    CrossAttention,
    ResBlock,
    SpatialWindowBlock,
    TimestepEmbedding,
    WindowAttentionBlock,
    WindowSelfAttention,
    timestep_embedding,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assert_all_grads(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_timestep_embedding_values() -> None:
    emb = timestep_embedding(torch.tensor([0, 3]), 8)
    assert emb.shape == (2, 8)
    assert torch.equal(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    freqs = torch.exp(-math.log(10000.0) * torch.arange(4) / 4)
    assert torch.allclose(emb[1], torch.cat([torch.cos(3 * freqs), torch.sin(3 * freqs)]), atol=1e-6)
    assert timestep_embedding(torch.tensor([1]), 7).shape == (1, 7)
    assert TimestepEmbedding(8, 32)(torch.tensor([1, 2, 3])).shape == (3, 32)


def test_resblock_shape_backward_and_timestep_conditioning() -> None:
    torch.manual_seed(0)
    block = ResBlock(8, 16, emb_dim=12)
    x = torch.randn(3, 8, 10, 6, generator=_gen())
    emb = torch.randn(3, 12, generator=_gen(1))
    out = block(x, emb)
    assert out.shape == (3, 16, 10, 6)
    out.square().mean().backward()
    _assert_all_grads(block)
    with torch.no_grad():
        other = block(x, emb + 1.0)
    assert (other - out).abs().max() > 1e-3  # the step embedding changes the features (scale-shift)


def _window_attention(shift: bool, size: int = 8) -> tuple[WindowSelfAttention, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    attn = WindowSelfAttention(8, 2, (1, 4, 4))
    x = torch.randn(1, 1, size, size, 8, generator=_gen())
    base = attn(x, shift)
    return attn, x, base


def _influence(attn: WindowSelfAttention, x: torch.Tensor, base: torch.Tensor, shift: bool, at: tuple[int, int]):
    x2 = x.clone()
    x2[0, 0, at[0], at[1]] += 1.0
    diff = (attn(x2, shift) - base).abs().amax(dim=-1)[0, 0]
    return diff > 0


@torch.no_grad()
def test_window_attention_stays_inside_windows() -> None:
    attn, x, base = _window_attention(shift=False)
    assert base.shape == x.shape
    reach = _influence(attn, x, base, False, (1, 2))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:4, :4] = True
    assert torch.equal(reach, expected)


@torch.no_grad()
def test_shifted_windows_cross_the_plain_boundaries_and_mask_the_wraparound() -> None:
    attn, x, base = _window_attention(shift=True)
    # the shifted window around the centre spans rows/cols 2..5, across the plain windows' boundary at 4
    reach = _influence(attn, x, base, True, (3, 4))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 2:6] = True
    assert torch.equal(reach, expected)
    # the corner shares its rolled window with rows/cols 6..7 but the mask keeps the wrapped-around parts apart
    reach = _influence(attn, x, base, True, (0, 0))
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(reach, expected)


@torch.no_grad()
def test_window_attention_pads_and_masks_sizes_not_divisible_by_the_window() -> None:
    torch.manual_seed(0)
    attn = WindowSelfAttention(8, 2, (1, 4, 4))
    x = torch.randn(1, 1, 6, 5, 8, generator=_gen())
    out = attn(x)
    assert out.shape == x.shape
    # reference: plain softmax attention among the valid tokens of the bottom-right window (rows 4-5, cols 4)
    tokens = x[0, 0, 4:6, 4:5].reshape(2, 8)
    q, k, v = rearrange(attn.qkv(tokens), "l (three k d) -> three k l d", three=3, k=2)
    bias = attn._bias((1, 4, 4))[:, [0, 4]][:, :, [0, 4]]  # window positions (0, 0) and (1, 0)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    ref = attn.proj(rearrange(ref, "k l d -> l (k d)"))
    assert torch.allclose(out[0, 0, 4:6, 4].reshape(2, 8), ref, atol=1e-6)


def test_window_blocks_shapes_and_backward() -> None:
    torch.manual_seed(0)
    block = SpatialWindowBlock(16, 8, window=4, shift=True, mlp_ratio=2.0)
    x = torch.randn(2, 16, 8, 12, generator=_gen())
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    _assert_all_grads(block)
    video = WindowAttentionBlock(16, 8, (3, 4, 4), shift=False, mlp_ratio=1.0)
    clip = torch.randn(2, 5, 8, 8, 16, generator=_gen(1))  # 5 frames, temporal window 3 -> padded to 6
    assert video(clip).shape == clip.shape


def test_channel_attention_is_global_and_trains() -> None:
    torch.manual_seed(0)
    block = ChannelAttentionBlock(16, heads=4, ffn_expansion=2.0)
    x = torch.randn(1, 16, 12, 12, generator=_gen())
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    _assert_all_grads(block)
    with torch.no_grad():
        x2 = x.clone()
        x2[0, :, 0, 0] += torch.randn(16, generator=_gen(2))  # not a constant: LayerNorm would remove it
        diff = (block(x2) - block(x)).abs().amax(dim=1)[0]
    assert diff[11, 11] > 0  # C x C attention pools over all pixels: a far pixel feels the change


def test_cross_attention_shapes_and_exact_zero_for_zero_context_without_biases() -> None:
    torch.manual_seed(0)
    attn = CrossAttention(16, 6, heads=2, value_bias=False, out_bias=False)
    x = torch.randn(3, 10, 16, generator=_gen())
    ctx = torch.randn(3, 4, 6, generator=_gen(1))
    out = attn(x, ctx)
    assert out.shape == (3, 10, 16)
    out.square().mean().backward()
    _assert_all_grads(attn)
    assert torch.equal(attn(x, torch.zeros_like(ctx)), torch.zeros(3, 10, 16))
    with pytest.raises(ValueError, match="divisible by heads"):
        CrossAttention(10, 4, heads=3)
