"""Degradation recipes: BI against the MATLAB goldens, BD against a direct convolution, seeding, records, realism."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeclear_bench.data.degradations import RealisticParams, bd_kernel_1d, clip_rng, degrade_clip, modcrop
from seeclear_bench.data.imresize import imresize
from seeclear_bench.data.video import codec_roundtrip
from seeclear_bench.errors import SeeClearError

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "goldens" / "imresize"  # Octave outputs, see its README
OFF = {"blur_prob": 0.0, "noise_prob": 0.0, "jpeg_prob": 0.0, "codec_prob": 0.0,
       "resize_factor_range": (1.0, 1.0), "resize_modes": ("area",)}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data as skdata

    return skdata.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="module")
def clip(photo: np.ndarray) -> np.ndarray:
    """(4, 64, 96, 3) uint8: a crop panning over a real photograph (camera motion)."""
    return np.stack([photo[100 + 2 * i : 164 + 2 * i, 150 + 3 * i : 246 + 3 * i] for i in range(4)])


def _block_mean(hr: np.ndarray, s: int) -> np.ndarray:
    t, h, w, c = hr.shape
    mean = hr.astype(np.float64).reshape(t, h // s, s, w // s, s, c).mean(axis=(2, 4))
    return np.floor(mean + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ seeding


def test_clip_rng_is_seed_plus_sha256_of_clip_id() -> None:
    clip_hash = int.from_bytes(hashlib.sha256(b"REDS/000").digest()[:8], "big")
    reference = np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, clip_hash])))
    assert clip_rng(0, "REDS/000").integers(0, 2**32, size=3).tolist() == reference.integers(0, 2**32, size=3).tolist()
    # Pinned values: a change here breaks every published degraded set.
    assert clip_rng(0, "REDS/000").integers(0, 2**32, size=3).tolist() == [2406476538, 1186785605, 2690230998]


def test_clip_rng_streams_are_distinct() -> None:
    draws = {(s, c): clip_rng(s, c).random() for s in (0, 1) for c in ("000", "011", "015")}
    assert len(set(draws.values())) == len(draws)
    with pytest.raises(SeeClearError, match="seed"):
        clip_rng(-1, "x")


def test_modcrop() -> None:
    clip = np.arange(2 * 7 * 9 * 3).reshape(2, 7, 9, 3)
    out = modcrop(clip, 4)
    assert out.shape == (2, 4, 8, 3)
    np.testing.assert_array_equal(out, clip[:, :4, :8])
    assert modcrop(clip[0], 3).shape == (6, 9, 3)


# ------------------------------------------------------------------------------------------------ BI


@pytest.mark.parametrize(("scale", "tag"), [(4, "x0.25"), (2, "x0.5")])
def test_bicubic_matches_matlab_golden(scale: int, tag: str) -> None:
    hr = np.asarray(Image.open(GOLDEN_DIR / "coffee.png"))[None]  # 96x128: divisible by 2 and 4
    golden = np.asarray(Image.open(GOLDEN_DIR / f"coffee_{tag}_uint8.png"))
    out = degrade_clip(hr, kind="bicubic", scale=scale, seed=0, clip_id="coffee")
    assert out.lr.shape == (1, 96 // scale, 128 // scale, 3)
    diff = np.abs(out.lr[0].astype(int) - golden)
    assert diff.max() <= 1
    assert np.count_nonzero(diff.max(axis=-1)) <= math.ceil(1e-4 * golden.shape[0] * golden.shape[1])
    assert out.params["cropped_from"] is None


def test_bicubic_crops_indivisible_frames() -> None:
    hr = np.asarray(Image.open(GOLDEN_DIR / "astronaut.png"))[None]  # 97x131
    out = degrade_clip(hr, kind="bicubic", scale=4, seed=0, clip_id="astro")
    assert out.params["cropped_from"] == [97, 131]
    assert out.hr.shape == (1, 96, 128, 3) and out.lr.shape == (1, 24, 32, 3)
    np.testing.assert_array_equal(out.hr[0], hr[0, :96, :128])
    expected = np.floor(imresize(hr[0, :96, :128] / 255.0, 0.25) * 255 + 0.5).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out.lr[0], expected)
    with pytest.raises(SeeClearError, match=r"97x131 .* scale 4"):
        degrade_clip(hr, kind="bicubic", scale=4, seed=0, clip_id="astro", on_indivisible="error")


# ------------------------------------------------------------------------------------------------ BD


def _duf_downsample_reference(frame: np.ndarray, scale: int) -> np.ndarray:
    """BasicSR duf_downsample, step by step: kernel from a filtered delta, pad 6 + 2s, strided conv, 2-px trim."""
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((13, 13))
    delta[6, 6] = 1.0
    kernel = gaussian_filter(delta, 0.4 * scale)
    pad = 13 // 2 + 2 * scale
    x = np.pad(frame / 255.0, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")  # torch 'reflect'
    oh, ow = (x.shape[0] - 13) // scale + 1, (x.shape[1] - 13) // scale + 1
    out = np.zeros((oh, ow, 3))
    for dy in range(13):
        for dx in range(13):
            out += kernel[dy, dx] * x[dy : dy + scale * (oh - 1) + 1 : scale, dx : dx + scale * (ow - 1) + 1 : scale]
    return out[2:-2, 2:-2] * 255.0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_blur_downsample_matches_direct_convolution(photo: np.ndarray, scale: int) -> None:
    hr = np.stack([photo[200:260, 180:264], photo[10:70, 400:484]])  # 60x84: divisible by 2, 3 and 4
    out = degrade_clip(hr, kind="blur-downsample", scale=scale, seed=0, clip_id="a")
    assert out.lr.shape == (2, 60 // scale, 84 // scale, 3)
    for i in range(2):
        exact = _duf_downsample_reference(hr[i], scale)
        assert exact.shape == out.lr.shape[1:]
        expected = np.floor(exact + 0.5).clip(0, 255)
        mismatch = out.lr[i] != expected
        assert np.all(np.abs(exact[mismatch] - np.floor(exact[mismatch]) - 0.5) < 1e-9)  # only exact ties
        assert np.count_nonzero(mismatch) <= 2
    assert out.params["sigma"] == pytest.approx(0.4 * scale)


def test_bd_kernel_is_basicsr_sigma_1_6() -> None:
    k = bd_kernel_1d(4)
    assert k.shape == (13,) and k.sum() == pytest.approx(1.0)
    g = np.exp(-0.5 * (np.arange(-6, 7) / 1.6) ** 2)
    np.testing.assert_allclose(k, g / g.sum(), rtol=1e-12)  # radius int(4*1.6+.5) = 6: nothing truncated
    with pytest.raises(SeeClearError, match="scale 2, 3 or 4"):
        degrade_clip(np.zeros((1, 10, 10, 3), np.uint8), kind="blur-downsample", scale=5, seed=0, clip_id="a")


# ------------------------------------------------------------------------------------------------ realistic


def test_realistic_is_deterministic_per_clip(clip: np.ndarray) -> None:
    a = degrade_clip(clip, kind="realistic", scale=4, seed=3, clip_id="REDS/000")
    b = degrade_clip(clip, kind="realistic", scale=4, seed=3, clip_id="REDS/000")
    c = degrade_clip(clip, kind="realistic", scale=4, seed=3, clip_id="REDS/011")
    assert a.lr.shape == (4, 16, 24, 3) and a.lr.dtype == np.uint8
    assert a.lr.tobytes() == b.lr.tobytes() and a.params == b.params
    assert a.lr.tobytes() != c.lr.tobytes() and a.params != c.params


@pytest.mark.parametrize("kind", ["bicubic", "blur-downsample", "realistic"])
def test_params_roundtrip_json(clip: np.ndarray, kind: str) -> None:
    out = degrade_clip(clip[:, :62, :95], kind=kind, scale=2, seed=1, clip_id="vid4/walk")
    assert json.loads(json.dumps(out.params)) == out.params
    assert {"kind": kind, "scale": 2, "seed": 1, "clip_id": "vid4/walk", "cropped_from": [62, 95]}.items() \
        <= out.params.items()
    assert out.params["lr_shape"] == [4, 31, 47] and list(out.lr.shape[:3]) == out.params["lr_shape"]


def test_realistic_records_smooth_per_frame_drift(photo: np.ndarray) -> None:
    hr = np.stack([photo[:64, :64]] * 12)
    cfg = RealisticParams(blur_prob=1.0, blur_isotropic_prob=0.0, noise_prob=1.0, gaussian_noise_prob=1.0,
                          jpeg_prob=1.0, codec_prob=0.0, drift=0.1)
    p = degrade_clip(hr, kind="realistic", scale=4, seed=0, clip_id="drift", realistic=cfg).params
    for series, (lo, hi) in ((p["blur"]["sigma_x"], cfg.blur_sigma_range), (p["blur"]["sigma_y"], cfg.blur_sigma_range),
                             (p["noise"]["sigma"], cfg.gaussian_sigma_range)):
        values = np.asarray(series)
        assert values.shape == (12,) and np.all((lo <= values) & (values <= hi))
        assert np.all(np.abs(np.diff(values)) <= 0.1 * (hi - lo) + 1e-12)
        assert np.ptp(values) > 0  # it does drift
    quality = np.asarray(p["jpeg"]["quality"])
    assert quality.dtype.kind == "i" and np.all(np.abs(np.diff(quality)) <= math.ceil(0.1 * 65) + 1)
    assert p["codec"] is None and p["ranges"]["drift"] == 0.1


def test_realistic_without_stages_is_area_downsampling(clip: np.ndarray) -> None:
    out = degrade_clip(clip, kind="realistic", scale=4, seed=0, clip_id="x", realistic=RealisticParams(**OFF))
    # Block means of 16 pixels hit .5 exactly when the sum is 8 mod 16; those ties may round either way in [0, 1].
    sums = clip.astype(np.int64).reshape(4, 16, 4, 24, 4, 3).sum(axis=(2, 4))
    differ = out.lr != _block_mean(clip, 4)
    assert np.all(sums[differ] % 16 == 8)
    assert np.all(np.abs(out.lr.astype(int) - _block_mean(clip, 4)) <= 1)
    assert out.params["resize"] == {"factor": 1.0, "intermediate_size": [16, 24], "mode": "area", "final_mode": None}
    assert out.params["blur"] is None and out.params["noise"] is None and out.params["jpeg"] is None


def test_realistic_gaussian_noise_level() -> None:
    hr = np.full((3, 128, 128, 3), 128, np.uint8)
    cfg = RealisticParams(**{**OFF, "noise_prob": 1.0, "gaussian_noise_prob": 1.0, "gray_noise_prob": 0.0,
                             "gaussian_sigma_range": (10.0, 10.0)})
    out = degrade_clip(hr, kind="realistic", scale=2, seed=0, clip_id="flat", realistic=cfg)
    noise = out.lr.astype(np.float64) - 128
    assert abs(noise.mean()) < 0.3 and noise.std() == pytest.approx(10.0, rel=0.05)
    assert out.params["noise"]["sigma"] == [10.0, 10.0, 10.0] and out.params["noise"]["gray"] is False


def test_realistic_gray_poisson_noise_is_shared_by_channels() -> None:
    hr = np.full((2, 64, 64, 3), 100, np.uint8)
    cfg = RealisticParams(**{**OFF, "noise_prob": 1.0, "gaussian_noise_prob": 0.0, "gray_noise_prob": 1.0,
                             "poisson_scale_range": (1.0, 1.0)})
    out = degrade_clip(hr, kind="realistic", scale=2, seed=0, clip_id="flat", realistic=cfg)
    assert np.array_equal(out.lr[..., 0], out.lr[..., 1]) and np.array_equal(out.lr[..., 1], out.lr[..., 2])
    # Shot noise at 255 levels: variance = intensity / 255 in [0, 1] units -> std = sqrt(100) = 10 levels.
    assert out.lr.astype(np.float64).std() == pytest.approx(10.0, rel=0.1)


def test_realistic_jpeg_then_codec_match_their_tools(clip: np.ndarray) -> None:
    cfg = RealisticParams(**{**OFF, "jpeg_prob": 1.0, "jpeg_quality_range": (40, 40), "codec_prob": 1.0,
                             "codecs": ("mpeg4",), "codec_bpp_range": (0.5, 0.5)})
    out = degrade_clip(clip, kind="realistic", scale=4, seed=0, clip_id="x", realistic=cfg)
    clean = degrade_clip(clip, kind="realistic", scale=4, seed=0, clip_id="x", realistic=RealisticParams(**OFF)).lr
    jpeg = []
    for frame in clean:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=40)
        jpeg.append(np.asarray(Image.open(buf).convert("RGB")))
    assert out.params["codec"] == {"codec": "mpeg4", "bpp": 0.5, "fps": 25, "bitrate": int(0.5 * 16 * 24 * 25)}
    expected = codec_roundtrip(np.stack(jpeg), codec="mpeg4", bitrate=out.params["codec"]["bitrate"])
    np.testing.assert_array_equal(out.lr, expected)
    assert out.params["jpeg"]["quality"] == [40, 40, 40, 40]


def test_realistic_odd_lr_sizes(photo: np.ndarray) -> None:
    hr = np.stack([photo[:68, :92]] * 3)  # LR 17x23: odd, padded inside the codec round-trip
    out = degrade_clip(hr, kind="realistic", scale=4, seed=5, clip_id="odd")
    assert out.lr.shape == (3, 17, 23, 3) and out.hr.shape == hr.shape


@pytest.mark.parametrize(
    ("field", "value"),
    [("blur_prob", 1.5), ("blur_kernel_size_range", (8, 21)), ("blur_sigma_range", (3.0, 0.2)),
     ("jpeg_quality_range", (30, 120)), ("codecs", ("libx246",)), ("resize_modes", ()), ("fps", 0), ("drift", -0.1)],
)
def test_realistic_params_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(SeeClearError, match=f"realistic.{field}"):
        RealisticParams(**{field: value})


def test_realistic_params_are_frozen_and_serialisable() -> None:
    cfg = RealisticParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.drift = 0.5  # type: ignore[misc]
    assert json.loads(json.dumps(cfg.to_dict()))["codecs"] == ["libx264", "mpeg4"]


def test_bad_calls() -> None:
    hr = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(SeeClearError, match="did you mean 'bicubic'"):
        degrade_clip(hr, kind="bicubc", scale=2, seed=0, clip_id="a")  # type: ignore[arg-type]
    with pytest.raises(SeeClearError, match="only apply to kind='realistic'"):
        degrade_clip(hr, kind="bicubic", scale=2, seed=0, clip_id="a", realistic=RealisticParams())
    with pytest.raises(SeeClearError, match=r"\(t h w 3\) uint8"):
        degrade_clip(hr[0], kind="bicubic", scale=2, seed=0, clip_id="a")
    with pytest.raises(SeeClearError, match="scale"):
        degrade_clip(hr, kind="bicubic", scale=0, seed=0, clip_id="a")
