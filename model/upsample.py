"""MATLAB-compatible bicubic upscaling in torch: the residual base y = Up(LR) of SeeClear (Alg. 1 line 40, App. C).

Owns `bicubic_matrix` (one axis of MATLAB ``imresize(x, s, 'bicubic')`` as a dense weight matrix) and
`upsample_bicubic` (both axes as two matmuls). Per axis, for an integer upscale s (MATLAB semantics):

- output length s * in_len; output sample u (1-based) maps to the input coordinate x = u / s + 0.5 (1 - 1/s);
- Keys' cubic kernel with a = -0.5 on the taps floor(x - 2) .. floor(x - 2) + 5; when upscaling MATLAB does not
  widen the kernel (its antialiasing only acts when shrinking), so the kernel is used as is;
- weights normalised to sum to one; out-of-range taps mirrored (symmetric boundary ``b a | a b c ... z | z y``).

The matrices are built once per (length, scale) in float64 and cast to the input's dtype and device when used, so
the result equals ``seeclear_bench.data.imresize.imresize`` on float input up to float round-off. Linear with rows
summing to one: Up(2 x - 1) = 2 Up(x) - 1, so frames may be upsampled in [0, 1] or [-1, 1]. Imports torch only;
never ``seeclear_bench`` or ray, no I/O, no device moves beyond following the input.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["bicubic_matrix", "upsample_bicubic"]


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel, a = -0.5 (MATLAB's 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@functools.lru_cache(maxsize=32)
def bicubic_matrix(in_len: int, scale: int) -> Tensor:
    """The (out_len, in_len) float64 matrix of MATLAB's bicubic ``imresize`` along one axis, for an integer upscale.

    Args:
        in_len: input length (>= 1).
        scale: integer upscale factor (>= 1); out_len = scale * in_len.

    Returns:
        (out_len in_len) float64 CPU tensor whose rows sum to one (cached; do not modify in place).

    Raises:
        ValueError: if in_len or scale is not a positive int.
    """
    for name, value in (("in_len", in_len), ("scale", scale)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"bicubic_matrix needs a positive int {name}, got {value!r}")
    out_len = in_len * scale
    u = torch.arange(1, out_len + 1, dtype=torch.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - 2.0)  # kernel width 4
    taps = 4 + 2  # MATLAB's ceil(width) + 2 candidate taps; the outer two get zero weight or mirror-sum
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based input positions
    weights = _cubic(u[:, None] - idx)
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = 2 * in_len
    m = torch.remainder(idx.long() - 1, period)
    src = torch.where(m < in_len, m, period - 1 - m)  # symmetric boundary, 0-based
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, src, weights)  # mirrored taps landing on one sample are summed, as in MATLAB
    return mat


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` on the last two axes of a float tensor (no clipping, no rounding).

    Args:
        x: (... h w) floating tensor (e.g. (b n c h w) LR frames in [0, 1] or [-1, 1]).
        scale: integer upscale factor >= 1.

    Returns:
        (... scale*h scale*w), same dtype and device as x (also under autocast: the residual base of SeeClear stays
        in the input's precision). Computed as Wh @ x @ Ww^T with the matrices of `bicubic_matrix`; values may
        leave the input's range slightly (bicubic overshoot).

    Raises:
        ValueError: if x is not floating point, has fewer than 2 axes, or scale is not a positive int.
    """
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"upsample_bicubic expects a floating tensor (... h w), got {x.dtype} {tuple(x.shape)}")
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"upsample_bicubic needs a positive int scale, got {scale!r}")
    if scale == 1:
        return x.clone()
    h, w = x.shape[-2:]
    wh = bicubic_matrix(h, scale).to(device=x.device, dtype=x.dtype)
    ww = bicubic_matrix(w, scale).to(device=x.device, dtype=x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        return wh @ x @ ww.T

