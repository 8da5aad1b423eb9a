"""MATLAB-compatible ``imresize`` in numpy (float64), written from MATLAB's documented algorithm.

This module owns the resampling used to make BI (bicubic) low-resolution frames: MATLAB's
``imresize(img, 1/4, 'bicubic')`` is the field's reference, and OpenCV, PIL and ``torch.nn.functional.interpolate``
differ from it (no antialiasing, other kernel constants or boundary rules).

Algorithm, per axis (MATLAB ``imresize`` semantics):
    * output length ``ceil(in_len * scale)``;
    * output sample ``u`` (1-based) maps to input coordinate ``x = u / scale + 0.5 * (1 - 1 / scale)``;
    * kernel ``k`` (cubic with ``a = -0.5``, Lanczos-3, triangle or box); when shrinking with antialiasing the kernel
      is widened by ``1 / scale`` (``scale * k(scale * d)``) so it acts as a low-pass filter;
    * weights are normalised to sum to one; out-of-range taps are mirrored (symmetric boundary,
      ``... b a | a b c ... y z | z y ...``);
    * the dimension with the smaller scale is resized first, as MATLAB does.

Each axis is one sparse ``(out_len, in_len)`` weight matrix (scipy CSR; a few taps per row), cached per
``(in_len, out_len, scale, kernel, antialiasing)`` and applied with a single sparse-dense product over all frames,
rows and channels of the array. Sparse beats a dense BLAS GEMM here by ~6x at 720p (it skips the zero weights).
Imports numpy and (lazily) scipy.sparse only.
"""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, Final, Literal

import numpy as np

from seeclear_bench.errors import SeeClearError, did_you_mean

Kernel = Literal["bicubic", "lanczos3", "bilinear", "box"]

# Guards ceil() against scales such as 1/3 that are not exact in binary: 720 * (1/3) must give 240, not 241.
_SIZE_EPS: Final = 1e-9
_CHUNK_BYTES: Final = 1 << 25  # float64 working set per chunk of uint8 frames (cache-friendly)


def _cubic(x: np.ndarray) -> np.ndarray:
    # Keys' cubic convolution kernel with a = -0.5, the one MATLAB uses for 'bicubic'.
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _lanczos3(x: np.ndarray) -> np.ndarray:
    # MATLAB adds eps to numerator and denominator so that x = 0 gives exactly 1.
    eps = np.finfo(np.float64).eps
    num = np.sin(np.pi * x) * np.sin(np.pi * x / 3.0) + eps
    den = (np.pi**2 * x * x / 3.0) + eps
    return (num / den) * (np.abs(x) < 3)


def _triangle(x: np.ndarray) -> np.ndarray:
    return (x + 1.0) * ((-1.0 <= x) & (x < 0.0)) + (1.0 - x) * ((0.0 <= x) & (x <= 1.0))


def _box(x: np.ndarray) -> np.ndarray:
    return ((-0.5 <= x) & (x < 0.5)).astype(np.float64)


_KERNELS: Final[dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]]] = {
    "bicubic": (_cubic, 4.0),
    "lanczos3": (_lanczos3, 6.0),
    "bilinear": (_triangle, 2.0),
    "box": (_box, 1.0),
}


@functools.lru_cache(maxsize=64)
def resize_matrix(
    in_len: int, out_len: int, scale: float, kernel: Kernel = "bicubic", antialiasing: bool = True
) -> Any:
    """MATLAB's ``contributions`` table for one axis, as a sparse matrix.

    Args:
        in_len: input length along the axis.
        out_len: output length along the axis.
        scale: the scale factor MATLAB uses for this axis (not necessarily ``out_len / in_len``).
        kernel: interpolation kernel name.
        antialiasing: widen the kernel by ``1 / scale`` when ``scale < 1``.

    Returns:
        ``(out_len, in_len)`` float64 ``scipy.sparse.csr_array`` whose rows sum to one; ``out = M @ in`` along the
        axis. Mirrored taps that land on the same input sample are summed.
    """
    from scipy import sparse

    fn, width = _KERNELS[kernel]
    if scale < 1 and antialiasing:
        def h(d: np.ndarray) -> np.ndarray:
            return scale * fn(scale * d)
        width = width / scale
    else:
        def h(d: np.ndarray) -> np.ndarray:
            return fn(d)
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based input positions
    weights = h(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric boundary: position p (1-based) folds onto [1, in_len] as in MATLAB's aux = [1:n, n:-1:1].
    period = 2 * in_len
    m = np.mod(idx.astype(np.int64) - 1, period)
    src = np.where(m < in_len, m, period - 1 - m)
    rows = np.repeat(np.arange(out_len), taps)
    keep = weights.ravel() != 0
    mat = sparse.coo_array((weights.ravel()[keep], (rows[keep], src.ravel()[keep])), shape=(out_len, in_len))
    return mat.tocsr()


def output_size(in_len: int, scale: float) -> int:
    """MATLAB output length ``ceil(in_len * scale)``, robust to scales like 1/3 that binary cannot represent."""
    return max(1, int(math.ceil(in_len * scale - _SIZE_EPS)))


def resize_along_axis(x: np.ndarray, axis: int, mat: Any) -> np.ndarray:
    """Apply an ``(out_len, in_len)`` matrix (sparse or dense) along ``axis`` of float ``x`` in one product.

    Args:
        x: float64 array with ``x.shape[axis] == in_len``.
        axis: the axis to transform.
        mat: ``(out_len, in_len)`` matrix, e.g. from :func:`resize_matrix`.

    Returns:
        float64 array, C-contiguous, with ``shape[axis] == out_len`` and the other axes unchanged.
    """
    moved = np.moveaxis(x, axis, 0)
    rest = moved.shape[1:]
    out = mat @ moved.reshape(moved.shape[0], -1)
    return np.ascontiguousarray(np.moveaxis(np.asarray(out).reshape(mat.shape[0], *rest), 0, axis))


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    kernel: Kernel = "bicubic",
    antialiasing: bool = True,
) -> np.ndarray:
    """Resize like MATLAB's ``imresize(img, scale, kernel)``.

    Args:
        img: ``(h w)``, ``(h w c)`` or ``(t h w c)``; uint8 or floating point (any range).
        scale: one factor for both spatial axes; output size is ``ceil(h * scale) x ceil(w * scale)``.
        output_shape: ``(out_h, out_w)`` instead of ``scale``; each axis then uses ``out / in`` as its scale.
        kernel: ``"bicubic"`` (MATLAB default, a = -0.5), ``"lanczos3"``, ``"bilinear"`` or ``"box"``.
        antialiasing: widen the kernel when shrinking (MATLAB default ``true``).

    Returns:
        The resized array with the same leading/trailing axes: ``(h' w')``, ``(h' w' c)`` or ``(t h' w' c)``.
        uint8 input is computed in float64, rounded half away from zero and clipped to uint8 (MATLAB);
        float input gives float64 output without clipping. uint8 clips are processed a few frames at a time to
        bound the float64 working set; the result is identical.

    Raises:
        SeeClearError: bad shape, dtype, scale, output_shape or kernel name.
    """
    if kernel not in _KERNELS:
        raise SeeClearError(f"kernel must be one of {sorted(_KERNELS)}, got {kernel!r}"
                            f"{did_you_mean(str(kernel), _KERNELS)}")
    arr = np.asarray(img)
    if arr.ndim not in (2, 3, 4):
        raise SeeClearError(f"imresize expects (h w), (h w c) or (t h w c), got shape {arr.shape}")
    is_uint8 = arr.dtype == np.uint8
    if not is_uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise SeeClearError(f"imresize expects uint8 or floating-point input, got dtype {arr.dtype}; "
                            "convert with astype")
    h_axis = 0 if arr.ndim in (2, 3) else 1
    in_h, in_w = arr.shape[h_axis], arr.shape[h_axis + 1]
    if min(in_h, in_w) < 1:
        raise SeeClearError(f"imresize needs a non-empty image, got shape {arr.shape}")

    if (scale is None) == (output_shape is None):
        raise SeeClearError("imresize needs exactly one of scale or output_shape, got "
                            f"scale={scale!r}, output_shape={output_shape!r}")
    if scale is not None:
        if isinstance(scale, bool) or not (isinstance(scale, numbers.Real) and math.isfinite(scale) and scale > 0):
            raise SeeClearError(f"scale must be a positive finite number, got {scale!r}")
        scales = (float(scale), float(scale))
        out_h, out_w = output_size(in_h, scale), output_size(in_w, scale)
    else:
        assert output_shape is not None  # exactly one of scale / output_shape was checked above
        if len(output_shape) != 2 or not all(isinstance(n, numbers.Integral) and int(n) >= 1 for n in output_shape):
            raise SeeClearError(f"output_shape must be two positive integers (out_h, out_w), got {output_shape!r}")
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        scales = (out_h / in_h, out_w / in_w)

    # MATLAB resizes the dimension with the smaller scale first (a stable sort: height first on ties).
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    mats = {dim: resize_matrix(*((in_h, out_h), (in_w, out_w))[dim], scales[dim], kernel, antialiasing)
            for dim in order}

    def run(frames: np.ndarray) -> np.ndarray:
        x = frames.astype(np.float64, copy=False)
        for dim in order:
            x = resize_along_axis(x, h_axis + dim, mats[dim])
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8) if is_uint8 else x

    if not (is_uint8 and arr.ndim == 4):
        return run(arr)
    # uint8 clips go through float64 a chunk of frames at a time, so a 100-frame 720p clip never needs gigabytes.
    frame_bytes = 8 * arr.shape[-1] * max(in_h, out_h) * max(in_w, out_w)
    chunk = max(1, _CHUNK_BYTES // frame_bytes)
    return np.concatenate([run(arr[i : i + chunk]) for i in range(0, arr.shape[0], chunk)], axis=0)
