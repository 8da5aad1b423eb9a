"""The orthonormal 2-D Haar wavelet transform (DWT/IDWT) used by the Pixel Condenser (SeeClear Eq. 7, App. C).

Owns `dwt2`/`idwt2` (one or more levels, sub-bands concatenated along channels) and the U-Net's wavelet downsampling
and upsampling (`wavelet_down`/`wavelet_up`, WaveDiff's 1/2 and x2 scaling around the transform). Pure functions of
tensors; imports torch only, never ``seeclear_bench`` or ray.

Band convention for one level, with a, b, c, d the pixels (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1)::

    LL = (a + b + c + d) / 2     low-pass along height and width
    LH = (a + b - c - d) / 2     low-pass along width, high-pass along height (horizontal edges)
    HL = (a - b + c - d) / 2     high-pass along width, low-pass along height (vertical edges)
    HH = (a - b - c + d) / 2     high-pass along both

The 4x4 matrix is a scaled Hadamard matrix: orthogonal and symmetric, so the inverse uses the same coefficients and
white noise stays white with the same variance. Output channels are band-major: ``[LL | LH | HL | HH]``, each block
holding the input's c channels, so ``out[:, :c]`` is LL. Several levels decompose every band again, giving
``c * 4**levels`` channels (48 for RGB and 2 levels).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

__all__ = ["dwt2", "idwt2", "wavelet_down", "wavelet_up"]


def _check_divisible(x: Tensor, levels: int, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} expects (n c h w), got shape {tuple(x.shape)}")
    if levels < 1:
        raise ValueError(f"{name} needs levels >= 1, got {levels}")
    step = 2**levels
    if x.shape[-2] % step or x.shape[-1] % step:
        raise ValueError(
            f"{name} with {levels} level(s) needs height and width divisible by {step}, got {tuple(x.shape[-2:])}; "
            "pad the input first"
        )


def _dwt2_once(x: Tensor) -> Tensor:
    quad = rearrange(x, "n c (h p) (w q) -> p q n c h w", p=2, q=2)
    a, b, c, d = quad[0, 0], quad[0, 1], quad[1, 0], quad[1, 1]
    ll = (a + b + c + d) * 0.5
    lh = (a + b - c - d) * 0.5
    hl = (a - b + c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    return torch.cat([ll, lh, hl, hh], dim=1)


def _idwt2_once(x: Tensor) -> Tensor:
    ll, lh, hl, hh = x.chunk(4, dim=1)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll + lh - hl - hh) * 0.5
    c = (ll - lh + hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    quad = torch.stack([torch.stack([a, b]), torch.stack([c, d])])
    return rearrange(quad, "p q n c h w -> n c (h p) (w q)")


def dwt2(x: Tensor, levels: int = 1) -> Tensor:
    """Orthonormal Haar DWT, applied recursively to every sub-band (SeeClear Eq. 7).

    Args:
        x: (n c h w), h and w divisible by ``2**levels``.
        levels: number of decompositions k.

    Returns:
        (n c*4**levels h/2**levels w/2**levels), band-major channel blocks ``[LL | LH | HL | HH]`` per level.

    Raises:
        ValueError: on a wrong rank or sizes not divisible by ``2**levels``.
    """
    _check_divisible(x, levels, "dwt2")
    for _ in range(levels):
        x = _dwt2_once(x)
    return x


def idwt2(x: Tensor, levels: int = 1) -> Tensor:
    """Exact inverse of `dwt2` with the same ``levels``.

    Args:
        x: (n c*4**levels h w).
        levels: number of reconstructions.

    Returns:
        (n c h*2**levels w*2**levels).

    Raises:
        ValueError: when the channel count is not divisible by ``4**levels``.
    """
    if x.ndim != 4 or x.shape[1] % (4**levels):
        raise ValueError(f"idwt2 with {levels} level(s) expects (n c*4^{levels} h w), got shape {tuple(x.shape)}")
    for _ in range(levels):
        x = _idwt2_once(x)
    return x


def wavelet_down(x: Tensor) -> tuple[Tensor, Tensor]:
    """Wavelet downsampling (WD): one Haar level scaled by 1/2, so LL equals 2x2 average pooling.

    Args:
        x: (n c h w), h and w even.

    Returns:
        ``(ll, highs)``: ll (n c h/2 w/2) goes on to the next encoder level; highs (n 3c h/2 w/2) = [LH | HL | HH]
        goes by skip connection to the matching `wavelet_up`.
    """
    bands = dwt2(x, 1) * 0.5
    c = x.shape[1]
    return bands[:, :c], bands[:, c:]


def wavelet_up(ll: Tensor, highs: Tensor) -> Tensor:
    """Wavelet upsampling (WU): inverse of `wavelet_down`, with decoder features standing in for LL.

    Args:
        ll: (n c h w) decoder features used as the low-frequency band.
        highs: (n 3c h w) high-frequency bands from the encoder skip.

    Returns:
        (n c 2h 2w); ``wavelet_up(*wavelet_down(x)) == x``.
    """
    if highs.shape[1] != 3 * ll.shape[1] or highs.shape[-2:] != ll.shape[-2:]:
        raise ValueError(
            f"wavelet_up expects highs (n 3c h w) matching ll (n c h w), got {tuple(highs.shape)} and {tuple(ll.shape)}"
        )
    return idwt2(torch.cat([ll, highs], dim=1) * 2.0, 1)
