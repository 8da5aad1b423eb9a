"""Haar DWT/IDWT of the Pixel Condenser: orthonormality, exact inversion, the direct formula, WD/WU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.networks.wavelet import dwt2, idwt2, wavelet_down, wavelet_up


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_dwt_is_exactly_invertible(levels: int) -> None:
    x = _rand(2, 3, 16, 24)
    bands = dwt2(x, levels)
    assert bands.shape == (2, 3 * 4**levels, 16 // 2**levels, 24 // 2**levels)
    assert torch.allclose(idwt2(bands, levels), x, rtol=0, atol=1e-12)


def test_dwt_is_orthonormal() -> None:
    # The transform of every basis image gives the columns of its matrix; M M^T must be the identity.
    h, w = 4, 8
    basis = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    for levels in (1, 2):
        m = dwt2(basis, levels).reshape(h * w, h * w)
        assert torch.allclose(m @ m.T, torch.eye(h * w, dtype=torch.float64), rtol=0, atol=1e-12)
    x, y = _rand(1, 3, 8, 8, seed=1), _rand(1, 3, 8, 8, seed=2)
    assert torch.allclose((dwt2(x, 2) * dwt2(y, 2)).sum(), (x * y).sum(), rtol=0, atol=1e-12)


def test_dwt_matches_direct_haar_formula() -> None:
    x = _rand(1, 2, 6, 4, seed=3)
    bands = dwt2(x, 1)
    ll, lh, hl, hh = bands.chunk(4, dim=1)
    for i in range(3):
        for j in range(2):
            a, b = x[0, :, 2 * i, 2 * j], x[0, :, 2 * i, 2 * j + 1]
            c, d = x[0, :, 2 * i + 1, 2 * j], x[0, :, 2 * i + 1, 2 * j + 1]
            assert torch.allclose(ll[0, :, i, j], (a + b + c + d) / 2, rtol=0, atol=1e-12)
            assert torch.allclose(lh[0, :, i, j], (a + b - c - d) / 2, rtol=0, atol=1e-12)
            assert torch.allclose(hl[0, :, i, j], (a - b + c - d) / 2, rtol=0, atol=1e-12)
            assert torch.allclose(hh[0, :, i, j], (a - b - c + d) / 2, rtol=0, atol=1e-12)


def test_two_levels_give_48_channels_with_ll_the_scaled_block_mean() -> None:
    x = _rand(2, 3, 16, 16, seed=4)
    bands = dwt2(x, 2)
    assert bands.shape == (2, 48, 4, 4)
    # orthonormal Haar multiplies a constant by 2 per level: LL of 2 levels = 4 x mean of each 4x4 block
    assert torch.allclose(bands[:, :3], 4 * F.avg_pool2d(x, 4), rtol=0, atol=1e-12)
    # a constant image has no detail: all other bands are zero
    const = torch.full((1, 3, 8, 8), 0.7, dtype=torch.float64)
    assert torch.allclose(dwt2(const, 2)[:, 3:], torch.zeros(1, 45, 2, 2, dtype=torch.float64), atol=1e-15)


def test_wavelet_down_is_average_pooling_and_wavelet_up_inverts_it() -> None:
    x = _rand(2, 5, 8, 12, seed=5)
    ll, highs = wavelet_down(x)
    assert ll.shape == (2, 5, 4, 6) and highs.shape == (2, 15, 4, 6)
    assert torch.allclose(ll, F.avg_pool2d(x, 2), rtol=0, atol=1e-12)
    assert torch.allclose(wavelet_up(ll, highs), x, rtol=0, atol=1e-12)


def test_wrong_sizes_raise() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        dwt2(torch.zeros(1, 3, 6, 8), 2)
    with pytest.raises(ValueError, match=r"\(n c h w\)"):
        dwt2(torch.zeros(3, 8, 8), 1)
    with pytest.raises(ValueError, match="idwt2"):
        idwt2(torch.zeros(1, 6, 4, 4), 2)
    with pytest.raises(ValueError, match="wavelet_up"):
        wavelet_up(torch.zeros(1, 2, 4, 4), torch.zeros(1, 5, 4, 4))
