"""Orthonormal block DCT-II inside p x p patches, and the heat-equation eigenvalues of its basis.

Owns the transform V^T of SeeClear Eq. 2 restricted to non-overlapping p x p patches (as Relay Diffusion's patch
blur does) and Lambda of Eq. 21-23. Depends on torch and einops only; never imports ``seeclear_bench`` or ray.

Layout: the coefficients of a patch stay where the patch was, so ``block_dct`` maps ``(... h w)`` to ``(... h w)``
and the coefficient of horizontal frequency kx, vertical frequency ky of the patch at block row i, block column j
sits at ``[..., i * p + ky, j * p + kx]``. Frequency tables of shape ``(p, p)`` therefore act on the whole image by
tiling (``table.repeat(h // p, w // p)``).
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor


def dct_matrix(p: int, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The orthonormal DCT-II matrix C, so that the 1-D transform of a length-p vector v is C @ v.

    C[k, n] = s_k cos(pi (2 n + 1) k / (2 p)), with s_0 = sqrt(1 / p) and s_k = sqrt(2 / p) for k > 0; C C^T = I.

    Args:
        p: transform length (the patch side), >= 1.
        dtype: dtype of the result; it is computed in float64 and then cast.
        device: device of the result.

    Returns:
        (k n) = (p p) matrix.

    Raises:
        ValueError: if p < 1.
    """
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"DCT patch size p must be an int >= 1, got {p!r}")
    k = torch.arange(p, dtype=torch.float64)[:, None]
    n = torch.arange(p, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * n + 1) * k / (2 * p)) * math.sqrt(2.0 / p)
    c[0] = math.sqrt(1.0 / p)
    return c.to(dtype=dtype, device=device)


def laplacian_eigenvalues(p: int) -> Tensor:
    """Lambda of SeeClear Eq. 23: the eigenvalue of the Neumann heat equation for each DCT basis function.

    Lambda[ky, kx] = -pi^2 (ky^2 + kx^2) / p^2, so that exp(Lambda tau) applied to the block-DCT coefficients
    dissipates heat inside each patch for a time tau (a Gaussian blur of variance 2 tau, Eq. 22).

    Args:
        p: patch side, >= 1.

    Returns:
        (ky kx) = (p p) float64 table, 0 at the DC term and negative elsewhere.
    """
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise ValueError(f"DCT patch size p must be an int >= 1, got {p!r}")
    k = torch.arange(p, dtype=torch.float64)
    return -(math.pi**2) * (k[:, None] ** 2 + k[None, :] ** 2) / p**2


def _check(x: Tensor, p: int) -> None:
    if x.dim() < 2:
        raise ValueError(f"block DCT input must be (... h w), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % p or w % p:
        raise ValueError(
            f"block DCT needs h and w divisible by the patch size {p}, got h={h}, w={w}; pad or crop the frames"
        )
    if not x.is_floating_point():
        raise ValueError(f"block DCT input must be a floating-point tensor, got {x.dtype}")


def _blockwise(x: Tensor, p: int, *, inverse: bool) -> Tensor:
    c = dct_matrix(p, dtype=x.dtype if x.is_floating_point() else torch.float64, device=x.device)  # validates p
    _check(x, p)
    blocks = rearrange(x, "... (hb p1) (wb p2) -> ... hb wb p1 p2", p1=p, p2=p)
    with torch.autocast(x.device.type, enabled=False):  # in the input's precision, also under autocast
        if inverse:  # X = C^T U C
            out = torch.einsum("ki,...kl,lj->...ij", c, blocks, c)
        else:  # U = C X C^T
            out = torch.einsum("ki,...ij,lj->...kl", c, blocks, c)
    return rearrange(out, "... hb wb p1 p2 -> ... (hb p1) (wb p2)")


def block_dct(x: Tensor, p: int) -> Tensor:
    """Orthonormal 2-D DCT-II of every non-overlapping p x p patch (V^T of SeeClear Eq. 2).

    Args:
        x: (... h w) floating tensor, h and w divisible by p; any leading axes (n c, b f c) are batch.
        p: patch side.

    Returns:
        (... h w) coefficients in the in-place patch layout of the module docstring; same dtype and device.

    Raises:
        ValueError: on a bad p, h or w not divisible by p, or a non-floating tensor.
    """
    return _blockwise(x, p, inverse=False)


def block_idct(x: Tensor, p: int) -> Tensor:
    """Inverse of ``block_dct`` (V of SeeClear Eq. 2): the transpose, since the transform is orthonormal.

    Args:
        x: (... h w) block-DCT coefficients, h and w divisible by p.
        p: patch side.

    Returns:
        (... h w) pixels; same dtype and device.

    Raises:
        ValueError: on a bad p, h or w not divisible by p, or a non-floating tensor.
    """
    return _blockwise(x, p, inverse=True)
