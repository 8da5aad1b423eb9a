"""Baseline upscalers: LR clip -> HR-sized prediction, the kernels the field's baseline rows use.

``bicubic`` is MATLAB's ``imresize(lr, scale, 'bicubic')`` (the kernel behind the field's bicubic rows, e.g.
26.14 dB on REDS4 and 23.78 dB on Vid4); ``lanczos`` is MATLAB's ``lanczos3``. The learned SeeClear method is added
by the model issue. This module must not import ray or the model.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seeclear_bench.errors import SeeClearError, did_you_mean

Upscaler = Callable[[np.ndarray, int], np.ndarray]


def _imresize_upscaler(kernel: str) -> Upscaler:
    def upscale(lr: np.ndarray, scale: int) -> np.ndarray:
        """Upscale ``lr`` (t h w 3) uint8 by ``scale``; returns (t, h*scale, w*scale, 3) uint8."""
        from seeclear_bench.data.imresize import imresize

        if lr.ndim != 4 or lr.shape[-1] != 3 or lr.dtype != np.uint8:
            raise SeeClearError(f"expected an LR clip (t, h, w, 3) uint8, got shape {lr.shape} dtype {lr.dtype}")
        out = imresize(lr, output_shape=(lr.shape[1] * scale, lr.shape[2] * scale), kernel=kernel)
        return np.ascontiguousarray(out)

    return upscale


UPSCALERS: dict[str, Upscaler] = {
    "bicubic": _imresize_upscaler("bicubic"),
    "lanczos": _imresize_upscaler("lanczos3"),
}


def get_upscaler(name: str) -> Upscaler:
    """Return the upscaler called ``name``; unknown names get a close-match hint."""
    try:
        return UPSCALERS[name]
    except KeyError:
        raise SeeClearError(f"unknown method {name!r}{did_you_mean(name, UPSCALERS)}; valid: {', '.join(UPSCALERS)}") from None
