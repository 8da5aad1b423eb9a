"""model.upsample: MATLAB bicubic upscaling in torch equals seeclear_bench's numpy imresize (the BI reference)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.upsample import bicubic_matrix, upsample_bicubic
from seeclear_bench.data.imresize import imresize


@pytest.mark.parametrize(("h", "w", "scale"), [(16, 24, 4), (7, 5, 4), (1, 3, 4), (2, 9, 4), (5, 6, 3), (4, 4, 2)])
def test_upsample_equals_matlab_imresize_on_float_input(h: int, w: int, scale: int) -> None:
    rng = np.random.default_rng(h * 100 + w)
    frames = rng.random((3, h, w, 3))  # (t h w c) float64, imresize's layout
    want = imresize(frames, scale)
    got = upsample_bicubic(torch.from_numpy(frames).permute(0, 3, 1, 2), scale).permute(0, 2, 3, 1).numpy()
    assert got.shape == want.shape == (3, h * scale, w * scale, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # float32, the dtype the model runs in, stays within float32 round-off of the float64 reference
    got32 = upsample_bicubic(torch.from_numpy(frames).float().permute(0, 3, 1, 2), scale)
    np.testing.assert_allclose(got32.permute(0, 2, 3, 1).numpy(), want, rtol=0, atol=1e-5)


def test_upsample_is_affine_safe_and_keeps_leading_axes() -> None:
    x = torch.rand(2, 5, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    up = upsample_bicubic(x, 4)
    assert up.shape == (2, 5, 3, 24, 28) and up.dtype == torch.float64
    # rows sum to one, so mapping [0, 1] -> [-1, 1] commutes with the upsampling (the model upsamples in [-1, 1])
    torch.testing.assert_close(upsample_bicubic(2 * x - 1, 4), 2 * up - 1, rtol=0, atol=1e-12)
    torch.testing.assert_close(bicubic_matrix(6, 4).sum(1), torch.ones(24, dtype=torch.float64))
    # a constant frame stays constant (including at the mirrored borders)
    assert torch.allclose(upsample_bicubic(torch.full((1, 3, 5), 0.3), 4), torch.tensor(0.3))


def test_upsample_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="floating"):
        upsample_bicubic(torch.zeros(4, 4, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="scale"):
        upsample_bicubic(torch.zeros(4, 4), 0)
