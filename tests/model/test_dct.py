"""Golden tests of the orthonormal block DCT-II (model/diffusion/dct.py) against a direct evaluation of the formula."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.diffusion.dct import block_dct, block_idct, dct_matrix, laplacian_eigenvalues


def _direct_block_dct(x: np.ndarray, p: int) -> np.ndarray:
    """DCT-II of each p x p block of a 2-D array by the defining double sum (no matrices, no library)."""
    h, w = x.shape
    out = np.zeros_like(x)
    scale = [math.sqrt(1 / p)] + [math.sqrt(2 / p)] * (p - 1)
    for bi in range(h // p):
        for bj in range(w // p):
            block = x[bi * p : (bi + 1) * p, bj * p : (bj + 1) * p]
            for ky in range(p):
                for kx in range(p):
                    total = 0.0
                    for n in range(p):
                        for m in range(p):
                            total += (
                                block[n, m]
                                * math.cos(math.pi * (2 * n + 1) * ky / (2 * p))
                                * math.cos(math.pi * (2 * m + 1) * kx / (2 * p))
                            )
                    out[bi * p + ky, bj * p + kx] = scale[ky] * scale[kx] * total
    return out


@pytest.mark.parametrize(("p", "h", "w"), [(4, 8, 12), (3, 6, 9), (1, 2, 3)])
def test_block_dct_equals_the_direct_dct_ii_sum(p: int, h: int, w: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((h, w))
    got = block_dct(torch.from_numpy(x)[None, None], p)[0, 0].numpy()
    np.testing.assert_allclose(got, _direct_block_dct(x, p), rtol=0, atol=1e-12)


def test_block_dct_matches_scipy_orthonormal_dctn_per_block() -> None:
    from scipy import fft  # scikit-image's dependency, and our own (seeclear_bench.data.imresize)

    x = np.random.default_rng(1).standard_normal((8, 8))
    got = block_dct(torch.from_numpy(x)[None, None], 4)[0, 0].numpy()
    for bi in range(2):
        for bj in range(2):
            ref = fft.dctn(x[4 * bi : 4 * bi + 4, 4 * bj : 4 * bj + 4], type=2, norm="ortho")
            np.testing.assert_allclose(got[4 * bi : 4 * bi + 4, 4 * bj : 4 * bj + 4], ref, atol=1e-12)


def test_round_trip_and_energy_are_exact_in_float64() -> None:
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    u = block_dct(x, 4)
    assert u.shape == x.shape and u.dtype == torch.float64
    assert (block_idct(u, 4) - x).abs().max().item() < 1e-12
    assert abs(u.square().sum().item() - x.square().sum().item()) < 1e-10 * x.square().sum().item()
    assert (block_dct(block_idct(x, 4), 4) - x).abs().max().item() < 1e-12


def test_dct_matrix_is_orthonormal() -> None:
    for p in (1, 2, 4, 7):
        c = dct_matrix(p)
        assert torch.allclose(c @ c.T, torch.eye(p, dtype=torch.float64), atol=1e-14, rtol=0)


def test_layout_puts_dc_of_each_patch_at_its_corner() -> None:
    x = torch.arange(64, dtype=torch.float64).reshape(1, 8, 8)
    u = block_dct(x, 4)
    for bi in range(2):
        for bj in range(2):
            block = x[0, 4 * bi : 4 * bi + 4, 4 * bj : 4 * bj + 4]
            assert u[0, 4 * bi, 4 * bj].item() == pytest.approx(4 * block.mean().item(), abs=1e-12)  # DC = p * mean
    constant = block_dct(torch.full((1, 8, 8), 0.7, dtype=torch.float64), 4)
    dc = torch.zeros(8, 8, dtype=torch.bool)
    dc[::4, ::4] = True
    assert constant[0][~dc].abs().max().item() < 1e-14  # a constant image has no AC energy


def test_laplacian_eigenvalues_golden_and_full_dissipation_leaves_patch_means() -> None:
    lam = laplacian_eigenvalues(4)
    assert lam[0, 0].item() == 0.0
    assert lam[1, 2].item() == pytest.approx(-(math.pi**2) * 5 / 16, rel=1e-15)
    assert lam[3, 3].item() == pytest.approx(-(math.pi**2) * 18 / 16, rel=1e-15)
    assert torch.equal(lam, lam.T)
    # exp(Lambda tau) with tau -> infinity keeps only the DC term: every pixel becomes its patch mean (Eq. 21-23).
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    blurred = block_idct(block_dct(x, 4) * torch.exp(lam * 1e4).repeat(2, 2), 4)
    means = torch.nn.functional.avg_pool2d(x, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert (blurred - means).abs().max().item() < 1e-12


def test_leading_axes_are_batch_and_float32_is_kept() -> None:
    x = torch.randn(2, 5, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    u = block_dct(x, 4)
    assert u.dtype == torch.float32 and u.shape == x.shape
    assert torch.allclose(u[1, 3], block_dct(x[1, 3], 4), atol=1e-6)
    assert torch.allclose(block_idct(u, 4), x, atol=1e-5)


@pytest.mark.parametrize(
    ("x", "p", "match"),
    [
        (torch.zeros(1, 6, 8), 4, "divisible"),
        (torch.zeros(1, 8, 8), 0, "patch size"),
        (torch.zeros(1, 8, 8, dtype=torch.long), 4, "floating"),
        (torch.zeros(8), 4, r"\(\.\.\. h w\)"),
    ],
)
def test_bad_inputs_raise_value_error(x: torch.Tensor, p: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        block_dct(x, p)
