"""MATLAB imresize: golden outputs from Octave (tests/goldens/imresize), hand-computed values and properties."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import seeclear_bench.data.imresize as imresize_module
from seeclear_bench.data.imresize import imresize, output_size
from seeclear_bench.errors import SeeClearError

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "goldens" / "imresize"  # Octave outputs, see its README

SCALES = {"x0.25": 0.25, "x0.5": 0.5, "x0.333": 1 / 3, "x4": 4.0}
NAMES = ("coffee", "astronaut", "camera_gray")
UINT8_CASES = [(n, t) for n in NAMES for t in SCALES]
# The README: no float64 file for the two colour x4 outputs.
FLOAT_CASES = [(n, t) for n, t in UINT8_CASES if not (t == "x4" and n != "camera_gray")]
TIE_BAND = 2e-5  # README: exact values within ~1e-5 of a .5 tie may round either way


def _load(name: str) -> np.ndarray:
    return np.asarray(Image.open(GOLDEN_DIR / f"{name}.png"))


def _golden_uint8(name: str, tag: str) -> np.ndarray:
    return np.asarray(Image.open(GOLDEN_DIR / f"{name}_{tag}_uint8.png"))


@pytest.mark.parametrize(("name", "tag"), FLOAT_CASES)
def test_float_matches_golden(name: str, tag: str) -> None:
    img = _load(name)
    ours = imresize(img / 255.0, SCALES[tag])
    expected_shape = (math.ceil(img.shape[0] * SCALES[tag] - 1e-9), math.ceil(img.shape[1] * SCALES[tag] - 1e-9))
    golden = np.fromfile(GOLDEN_DIR / f"{name}_{tag}_float64.bin", dtype="<f8").reshape(expected_shape + img.shape[2:])
    assert ours.dtype == np.float64
    assert ours.shape == golden.shape
    assert np.max(np.abs(ours - golden)) <= 1e-6


@pytest.mark.parametrize(("name", "tag"), UINT8_CASES)
def test_uint8_matches_golden(name: str, tag: str) -> None:
    img = _load(name)
    ours = imresize(img, SCALES[tag])
    golden = _golden_uint8(name, tag)
    assert ours.dtype == np.uint8 and ours.shape == golden.shape
    diff = np.abs(ours.astype(np.int16) - golden.astype(np.int16))
    assert diff.max() <= 1
    # README tolerance: at most 0.01% of pixels off, read per file as a whole number of pixels (the smallest
    # goldens have ~3000 pixels, where 0.01% is less than one).
    bad_pixels = np.count_nonzero(diff.reshape(golden.shape[0], golden.shape[1], -1).max(axis=-1))
    assert bad_pixels <= math.ceil(1e-4 * golden.shape[0] * golden.shape[1])
    # And every disagreement is a rounding tie: the exact value is within TIE_BAND of k + 0.5.
    exact = imresize(img.astype(np.float64), SCALES[tag])[diff > 0]
    assert np.all(np.abs(exact - np.floor(exact) - 0.5) < TIE_BAND)


def test_uint8_goldens_overall_rate() -> None:
    bad = total = 0
    for name, tag in UINT8_CASES:
        golden = _golden_uint8(name, tag)
        bad += np.count_nonzero(imresize(_load(name), SCALES[tag]) != golden)
        total += golden.size
    assert bad / total <= 1e-4


def test_bilinear_and_bicubic_by_hand() -> None:
    # MATLAB: imresize([0 1], 2, 'bilinear') = [0 0.25 0.75 1]. Output coords u = x/2 + 1/4 = .75, 1.25, 1.75, 2.25.
    row = np.array([[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(imresize(row, 2.0, kernel="bilinear")[0], [0, 0.25, 0.75, 1], atol=1e-15)
    # Cubic a = -0.5 at u = 1.25 on a mirrored [0 0 | 0 1 | 1 1] signal: weights at distances 1.25, .25, .75, 1.75.
    k = lambda d: (1.5 * d**3 - 2.5 * d**2 + 1) if d <= 1 else (-0.5 * d**3 + 2.5 * d**2 - 4 * d + 2)  # noqa: E731
    expected = k(0.75) + k(1.75)  # the two taps that land on the sample equal to 1
    assert imresize(row, 2.0)[0, 1] == pytest.approx(expected, abs=1e-15)


def test_downscale_box_average_for_box_kernel() -> None:
    img = np.arange(64, dtype=np.float64).reshape(8, 8)
    out = imresize(img, 0.5, kernel="box")
    np.testing.assert_allclose(out, img.reshape(4, 2, 4, 2).mean(axis=(1, 3)), atol=1e-12)


def test_output_size_is_matlab_ceil() -> None:
    assert imresize(np.zeros((97, 131, 3)), 0.25).shape == (25, 33, 3)
    assert imresize(np.zeros((720, 1280, 3), np.uint8), 1 / 3).shape == (240, 427, 3)
    assert output_size(720, 1 / 3) == 240 and output_size(721, 1 / 3) == 241 and output_size(5, 4.0) == 20


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 25])  # one frame per chunk, or the whole clip at once
def test_frames_are_resized_independently_and_gray_keeps_2d(monkeypatch: pytest.MonkeyPatch, chunk_bytes: int) -> None:
    monkeypatch.setattr(imresize_module, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, size=(3, 20, 28, 3), dtype=np.uint8)
    out = imresize(clip, 0.5)
    assert out.shape == (3, 10, 14, 3) and out.dtype == np.uint8
    for i in range(3):
        np.testing.assert_array_equal(out[i], imresize(clip[i], 0.5))
    gray = imresize(clip[0, :, :, 0], 0.5)
    np.testing.assert_array_equal(gray, out[0, :, :, 0])


def test_float_is_not_clipped_and_uint8_is() -> None:
    step = np.zeros((8, 8))
    step[:, 4:] = 1.0
    up = imresize(step, 4.0)
    assert up.min() < 0 and up.max() > 1  # cubic overshoot survives in float
    up8 = imresize((step * 255).astype(np.uint8), 4.0)
    assert up8.min() == 0 and up8.max() == 255


def test_output_shape_and_scale_paths() -> None:
    rng = np.random.default_rng(1)
    img = rng.random((24, 32, 3))
    np.testing.assert_array_equal(imresize(img, output_shape=(12, 16)), imresize(img, 0.5))
    assert imresize(img, output_shape=(10, 40)).shape == (10, 40, 3)
    assert not np.allclose(imresize(img, 0.5, antialiasing=False), imresize(img, 0.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.5, "kernel": "bicubc"}, "did you mean 'bicubic'"),
        ({}, "exactly one of scale or output_shape"),
        ({"scale": 0.5, "output_shape": (2, 2)}, "exactly one"),
        ({"scale": -1.0}, "positive finite"),
        ({"output_shape": (0, 3)}, "two positive integers"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(SeeClearError, match=match):
        imresize(np.zeros((4, 4)), **kwargs)


def test_bad_dtype_and_shape() -> None:
    with pytest.raises(SeeClearError, match="uint8 or floating"):
        imresize(np.zeros((4, 4), np.int32), 0.5)
    with pytest.raises(SeeClearError, match=r"\(h w\)"):
        imresize(np.zeros(4), 0.5)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), scale=st.sampled_from([0.25, 1 / 3, 0.5, 0.7, 1.0, 1.5, 4.0]),
       kernel=st.sampled_from(["bicubic", "lanczos3", "bilinear"]), value=st.integers(0, 255))
def test_constant_images_stay_constant(h: int, w: int, scale: float, kernel: str, value: int) -> None:
    img = np.full((h, w, 3), value, np.uint8)
    out = imresize(img, scale, kernel=kernel)
    assert out.shape == (output_size(h, scale), output_size(w, scale), 3)
    assert np.all(out == value)
