"""Temporal clip metrics (tOF, warping error) against independent references written here from the published code.

tOF is checked against a per-pixel loop over TecoGAN's frame range and ``crop_8x8`` box. The warping error is checked
through the full pipeline with RAFT built from a test-made all-zero state dict, which predicts exactly zero flow for
any input, so the expected error has a closed form (no occlusion, no motion): the mean over pixels of the squared RGB
difference of consecutive frames.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import temporal
from seeclear_bench.metrics.flow import RaftFlow
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.registry import (
    METRICS,
    compute_clip_metrics,
    metric_hash,
    metric_params,
)
from seeclear_bench.metrics.temporal import (
    VARIANTS,
    clip_value,
    gt_reference_value,
    pair_values,
    teco_crop_box,
    warping_error,
)

PROTOCOL = get_protocol("basicsr-reds4-rgb")
TEMPORAL = ("tof", "tof-stablevsr", "ewarp", "ewarp-evalcrafter", "ewarp-stablevsr")


def moving_clip(rng: np.random.Generator, t: int, h: int, w: int, step: tuple[float, float] = (1.5, 0.5)) -> np.ndarray:
    """``(t h w 3)`` uint8: a smooth periodic colour texture translating by ``step`` px per frame (exact, Fourier)."""
    fy, fx = np.fft.fftfreq(h)[:, None, None], np.fft.fftfreq(w)[None, :, None]
    spectrum = np.fft.fft2(rng.standard_normal((h, w, 3)), axes=(0, 1)) * np.exp(-(fx**2 + fy**2) / (2 * 0.1**2))
    frames = [
        np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * step[0] * i + fy * step[1] * i)), axes=(0, 1)))
        for i in range(t)
    ]
    stack = np.stack(frames)
    stack = (stack - stack.min()) / np.ptp(stack)
    return np.round(stack * 220 + 18).astype(np.uint8)


def farneback_ewarp(reduction: str = "sq-sum-rgb/valid") -> temporal.TemporalVariant:
    """The warping error with Farneback flow (a custom variant: cheap, for checks that do not depend on the flow)."""
    return dataclasses.replace(
        VARIANTS["ewarp"], name="ewarp-farneback", flow="farneback", weights=None, iterations=None,
        flow_input="gray-uint8", padding="none", reduction=reduction,
    )


@pytest.fixture(scope="module")
def zero_raft_state() -> dict[str, torch.Tensor]:
    """raft_large with every tensor zero: it predicts exactly zero flow for any pair of frames."""
    from torchvision.models.optical_flow import raft_large

    return {k: torch.zeros_like(v) for k, v in raft_large(weights=None).state_dict().items()}


# -- tOF (TecoGAN) -----------------------------------------------------------------------------------------------------
def reference_tof(pred: np.ndarray, gt: np.ndarray, cutfr: int = 2) -> tuple[list[int], list[float]]:
    """TecoGAN metrics.py's tOF written out: frames cutfr..T-cutfr-1, pairs (i-1, i), crop_8x8, per-pixel L2 loop."""
    import cv2

    def crop_8x8(h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = (h // 32) * 32, (w // 32) * 32
        while ch > h - 16:
            ch -= 32
        while cw > w - 16:
            cw -= 32
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    frames, values = [], []
    for i in range(cutfr + 1, len(gt) - cutfr):
        pair = (gt[i - 1], gt[i], pred[i - 1], pred[i])
        grey = [cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) for img in pair]
        target = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        output = cv2.calcOpticalFlowFarneback(grey[2], grey[3], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        y, x, ch, cw = crop_8x8(*target.shape[:2])
        total = 0.0
        for r in range(y, y + ch):
            for c in range(x, x + cw):
                dx = float(target[r, c, 0]) - float(output[r, c, 0])
                dy = float(target[r, c, 1]) - float(output[r, c, 1])
                total += math.sqrt(dx * dx + dy * dy)
        frames.append(i)
        values.append(total / (ch * cw))
    return frames, values


def test_teco_crop_box_matches_crop_8x8() -> None:
    assert teco_crop_box(64, 96) == (16, 16, 32, 64)
    assert teco_crop_box(720, 1280) == (8, 16, 704, 1248)  # REDS
    assert teco_crop_box(576, 720) == (16, 8, 544, 704)  # Vid4 calendar
    assert teco_crop_box(48, 80) == (8, 8, 32, 64)


def test_tof_of_identical_clips_is_zero() -> None:
    clip = moving_clip(np.random.default_rng(1), 7, 64, 96)
    result = pair_values("tof", clip, clip.copy())
    assert result.frames == (3, 4) and result.values.dtype == torch.float64
    assert result.values.tolist() == [0.0, 0.0]


def test_tof_with_a_replaced_frame_matches_a_per_pixel_loop() -> None:
    rng = np.random.default_rng(2)
    gt = moving_clip(rng, 7, 64, 64)
    pred = gt.copy()
    pred[3] = moving_clip(rng, 1, 64, 64)[0]
    result = pair_values("tof", pred, gt)
    frames, values = reference_tof(pred, gt)
    assert list(result.frames) == frames == [3, 4]
    assert all(v > 0.05 for v in values)  # frame 3 enters both scored pairs
    np.testing.assert_allclose(result.values.numpy(), values, rtol=1e-9, atol=0)
    assert clip_value("tof", pred, gt) == pytest.approx(np.mean(values), rel=1e-12)


def test_tof_needs_six_frames_and_48_pixels() -> None:
    clip = moving_clip(np.random.default_rng(3), 6, 48, 56)
    assert pair_values("tof", clip, clip).frames == (3,)
    with pytest.raises(SeeClearError, match=r"'tof' needs clips of at least 6 frames .* got a clip of 5 frames"):
        pair_values("tof", clip[:5], clip[:5])
    with pytest.raises(SeeClearError, match="at least 48x48, got 40x56"):
        pair_values("tof", clip[:, :40], clip[:, :40])
    with pytest.raises(SeeClearError, match="pass gt"):
        pair_values("tof", clip)
    with pytest.raises(SeeClearError, match="same"):
        pair_values("tof", clip, clip[:, :, :48])


def test_raft_metrics_check_length_and_size_before_loading_weights() -> None:
    small = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(SeeClearError, match="'tof-stablevsr' needs clips of at least 2 frames .* 1 frames"):
        pair_values("tof-stablevsr", small[:1], small[:1])
    with pytest.raises(SeeClearError, match="'ewarp' runs RAFT, which needs frames of at least 121x121, got 64x64"):
        pair_values("ewarp", small)
    with pytest.raises(SeeClearError, match="RAFT at 0.5x, which needs frames of at least 242x242, got 200x200"):
        pair_values("ewarp-evalcrafter", np.zeros((2, 200, 200, 3), np.uint8))


# -- warping error -----------------------------------------------------------------------------------------------------
def test_warping_error_formula_static_flicker_and_division_by_three() -> None:
    rng = np.random.default_rng(4)
    frame = torch.from_numpy(rng.random((1, 3, 24, 32)))
    zero = torch.zeros(1, 2, 24, 32, dtype=torch.float64)
    assert warping_error(frame, frame.clone(), zero, zero).item() < 1e-20  # static: zero (to float64 rounding)
    flicker = (frame + 0.05).clamp(0, 1)
    expected = float(((frame - flicker) ** 2).sum(dim=1).mean())
    got = warping_error(frame, flicker, zero, zero)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    third = warping_error(frame, flicker, zero, zero, reduction="sq-sum-rgb/3valid")
    assert (got / third).item() == pytest.approx(3.0, rel=1e-15)


def test_warping_error_masks_occluded_pixels() -> None:
    """A square moving 4 px right over a still background; its true flows warp frame b onto a exactly where valid."""
    rng = np.random.default_rng(5)
    background = rng.random((3, 32, 32))
    square = rng.random((3, 10, 8))
    a, b = background.copy(), background.copy()
    a[:, 10:20, 8:16] = square
    b[:, 10:20, 12:20] = square
    fw = torch.zeros(1, 2, 32, 32, dtype=torch.float64)
    bw = torch.zeros(1, 2, 32, 32, dtype=torch.float64)
    fw[0, 0, 10:20, 8:16] = 4.0
    bw[0, 0, 10:20, 12:20] = -4.0
    a_t, b_t = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    assert warping_error(a_t, b_t, fw, bw).item() < 1e-20  # every mismatch falls in the occlusion mask
    assert warping_error(a_t, b_t, torch.zeros_like(fw), torch.zeros_like(bw)).item() > 1e-3


@pytest.mark.slow
def test_ewarp_through_registry_with_cached_zero_raft_weights(tmp_path, monkeypatch, zero_raft_state) -> None:
    """The real loading path (weights cache -> file -> torchvision RAFT) on a test-made file, with an exact value."""
    monkeypatch.setenv("SEECLEAR_WEIGHTS", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(zero_raft_state, tmp_path / "checkpoints" / "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    rng = np.random.default_rng(6)
    still = rng.integers(0, 240, (128, 128, 3), dtype=np.uint8)
    clip = np.stack([still, still + rng.integers(1, 16, (1, 1, 3), dtype=np.uint8)])  # a flicker, no motion
    gt = moving_clip(rng, 2, 128, 128)
    values = compute_clip_metrics(clip, gt, metrics=["ewarp"], protocol=PROTOCOL)["ewarp"]
    x = clip.astype(np.float32) / np.float32(255.0)
    flicker = 1e3 * float(np.mean(np.sum((x[0].astype(np.float64) - x[1]) ** 2, axis=-1)))
    assert values.frames == (1,) and flicker > 0.01
    assert values.values.item() == pytest.approx(flicker, rel=1e-9)


def test_ewarp_needs_weights_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEECLEAR_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    clip = np.zeros((2, 128, 128, 3), np.uint8)
    with pytest.raises(SeeClearError, match="raft_large_C_T_SKHT_V2-ff5fadd5.pth"):
        compute_clip_metrics(clip, clip, metrics=["ewarp"], protocol=PROTOCOL)


@pytest.mark.slow
def test_ewarp_evalcrafter_pipeline_downsamples_pads_and_divides_by_valid_pixels(zero_raft_state) -> None:
    """0.5x bilinear (align_corners=False) of 2x2 blocks = their mean; replicate padding 130 -> 136 kept in the error."""
    rng = np.random.default_rng(7)
    clip = rng.integers(0, 256, (2, 260, 260, 3), dtype=np.uint8)
    zero_raft = RaftFlow(zero_raft_state, iterations=1)
    got = pair_values("ewarp-evalcrafter", clip, raft=zero_raft)
    half = (clip.astype(np.float64) / 255.0).reshape(2, 130, 2, 130, 2, 3).mean(axis=(2, 4))
    padded = np.pad(half, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="edge")
    expected = 1e3 * np.sum((padded[0] - padded[1]) ** 2) / (136 * 136)  # valid pixels, not 3x
    assert got.frames == (1,)
    assert got.values.item() == pytest.approx(expected, rel=1e-5)


def test_ewarp_variants_over_three_differ_by_exactly_three() -> None:
    rng = np.random.default_rng(8)
    clip = moving_clip(rng, 4, 64, 96)
    clip[2] = np.clip(clip[2].astype(int) + 12, 0, 255).astype(np.uint8)
    full = pair_values(farneback_ewarp("sq-sum-rgb/valid"), clip)
    third = pair_values(farneback_ewarp("sq-sum-rgb/3valid"), clip)
    np.testing.assert_allclose((full.values / third.values).numpy(), 3.0, rtol=1e-14)
    preset, stable = VARIANTS["ewarp"].params(), VARIANTS["ewarp-stablevsr"].params()
    assert {k for k in preset if preset[k] != stable[k]} == {"reduction"}


def test_ewarp_of_static_clip_is_near_zero_and_flicker_larger_with_farneback() -> None:
    rng = np.random.default_rng(9)
    still = moving_clip(rng, 1, 64, 96)[0]
    static = np.stack([still] * 4)
    offsets = rng.integers(-25, 26, (4, 1, 1, 1))
    flicker = np.clip(static.astype(int) + offsets, 0, 255).astype(np.uint8)
    variant = farneback_ewarp()
    # Farneback's flow between identical frames is not exactly zero (~1e-2 px), hence not exactly 0 here; the zero-flow
    # RAFT tests above show the exact zero.
    static_value, flicker_value = clip_value(variant, static), clip_value(variant, flicker)
    assert static_value < 1e-3 and flicker_value > 1.0 and flicker_value > 1e3 * static_value


def test_gt_reference_value() -> None:
    rng = np.random.default_rng(10)
    gt = moving_clip(rng, 3, 64, 96)
    variant = farneback_ewarp()
    assert gt_reference_value(variant, gt) == clip_value(variant, gt)
    with pytest.raises(SeeClearError, match="'tof' has no ground-truth reference value"):
        gt_reference_value("tof", gt)


# -- registry, names, hashes ---------------------------------------------------------------------------------------------
def test_registry_specs_and_hashes() -> None:
    for name in TEMPORAL:
        spec = METRICS[name]
        assert spec.kind == "clip" and spec.clip_fn is not None and spec.fn is None and not spec.higher_better
        assert metric_hash(name) == VARIANTS[name].hash
    assert METRICS["ewarp"].reference == "none" and METRICS["tof"].reference == "full"
    assert METRICS["ewarp-evalcrafter"].weights == ("raft-large-c-t-v1",) and METRICS["tof"].weights == ()
    assert len({metric_hash(name) for name in TEMPORAL}) == len(TEMPORAL)
    params = metric_params("ewarp-evalcrafter")
    assert params["resize"] == 0.5 and params["iterations"] == 20
    assert params["weights_file"] == "raft_large_C_T_V1-22a6c225.pth" and params["weights"] == "raft-large-c-t-v1"
    assert params["occlusion"] == [0.01, 0.5, 0.01, 0.002] and params["scale"] == 1000.0
    assert params["reduction"] == "sq-sum-rgb/valid" and params["mp4_roundtrip"] is False
    assert metric_params("tof")["farneback"]["winsize"] == 15 and metric_params("tof")["frame_skip"] == 2
    # Any change of a numerics-changing field changes the hash.
    base = VARIANTS["tof-stablevsr"]
    for change in ({"iterations": 20}, {"scale": 1.0}, {"flow_input": "rgb-signed"}, {"weights": "raft-large-c-t-v1"}):
        assert dataclasses.replace(base, **change).hash != base.hash


def test_compute_clip_metrics_scores_and_refuses_bad_requests() -> None:
    rng = np.random.default_rng(11)
    gt = moving_clip(rng, 6, 48, 64)
    pred = gt.copy()
    pred[3] = 255 - pred[3]
    result = compute_clip_metrics(pred, gt, metrics=["tof"], protocol=PROTOCOL)
    assert result["tof"].frames == (3,)
    assert torch.equal(result["tof"].values, pair_values("tof", pred, gt).values)
    with pytest.raises(SeeClearError, match="did you mean 'tof'"):
        compute_clip_metrics(pred, gt, metrics=["tfo"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match="'psnr' is a frame metric"):
        compute_clip_metrics(pred, gt, metrics=["psnr"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match="listed twice"):
        compute_clip_metrics(pred, gt, metrics=["tof", "tof"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match="pred has 5 frames but gt has 6"):
        compute_clip_metrics(pred[:5], gt, metrics=["tof"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match="frame_selection='all'"):
        compute_clip_metrics(pred, gt, metrics=["tof"], protocol=get_protocol("vimeo90k-t-center-y"))
    with pytest.raises(SeeClearError, match="unknown temporal metric 'tof-teco'"):
        pair_values("tof-teco", pred, gt)


def test_variant_validation_names_the_field() -> None:
    with pytest.raises(SeeClearError, match="reduction must be one of"):
        dataclasses.replace(VARIANTS["tof"], reduction="l1")
    with pytest.raises(SeeClearError, match="Farneback takes no weights"):
        dataclasses.replace(VARIANTS["tof"], weights="raft-large-c-t-v1")
    with pytest.raises(SeeClearError, match="RAFT needs a weights name"):
        dataclasses.replace(VARIANTS["ewarp"], iterations=0)
