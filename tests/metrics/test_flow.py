"""Flow estimation, backward warping and occlusion masks against synthetic scenes whose true motion is known.

Textures are band-limited periodic noise; a translation by a sub-pixel (dx, dy) is rendered exactly with a Fourier
phase ramp, so the true flow is known everywhere. RAFT is exercised on test-made state dicts only (its accuracy is not
judged): the adapter must agree with torchvision's network called directly on the same file.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import flow
from seeclear_bench.metrics.flow import (
    RaftFlow,
    backward_warp,
    farneback_flow,
    occlusion_valid_mask,
    pad_to_multiple,
    replicate_padding,
    rgb_to_gray,
)


def smooth_texture(rng: np.random.Generator, h: int, w: int, cutoff: float = 0.12):
    """A renderer ``(dx, dy) -> (h, w) float64 image`` of one periodic band-limited texture shifted by (dx, dy)."""
    spectrum = np.fft.fft2(rng.standard_normal((h, w)))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    spectrum = spectrum * np.exp(-(fx**2 + fy**2) / (2 * cutoff**2))

    def render(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        # image(x - d): the content moves by +d, so the flow from the unshifted image to this one is d.
        return np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * dx + fy * dy))))

    return render


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.round((image - lo) / (hi - lo) * 200 + 28), 0, 255).astype(np.uint8)


# -- Farneback --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [(1.3, -0.6), (0.4, 0.25), (-2.5, 1.7)])
def test_farneback_recovers_subpixel_translation(shift: tuple[float, float]) -> None:
    render = smooth_texture(np.random.default_rng(3), 64, 96)
    a = render()
    lo, hi = a.min(), a.max()
    src, dst = to_uint8(a, lo, hi), to_uint8(render(*shift), lo, hi)
    flow_xy = farneback_flow(src[None], dst[None])[0]
    assert flow_xy.shape == (64, 96, 2) and flow_xy.dtype == np.float32
    centre = flow_xy[16:-16, 16:-16]
    for axis, true in enumerate(shift):
        assert abs(float(centre[..., axis].mean()) - true) < 0.03
        assert float(np.abs(centre[..., axis] - true).max()) < 0.1


def test_farneback_uses_tecogan_parameters_and_opencv_gray() -> None:
    import cv2

    assert flow.FARNEBACK_PARAMS == {
        "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0,
    }
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (2, 48, 56, 3), dtype=np.uint8)
    gray = rgb_to_gray(rgb)
    assert gray.dtype == np.uint8 and np.array_equal(gray[1], cv2.cvtColor(rgb[1], cv2.COLOR_RGB2GRAY))
    # 0.299 R + 0.587 G + 0.114 B, rounded (OpenCV's fixed point is exact to +-1 on uint8).
    expected = np.round(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    assert np.abs(gray.astype(np.float64) - expected).max() <= 1
    direct = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    assert np.array_equal(farneback_flow(gray[:1], gray[1:])[0], direct)


def test_farneback_rejects_mismatched_frames() -> None:
    with pytest.raises(SeeClearError, match="uint8 grayscale"):
        farneback_flow(np.zeros((1, 8, 8), np.uint8), np.zeros((1, 8, 9), np.uint8))
    with pytest.raises(SeeClearError, match="uint8"):
        rgb_to_gray(np.zeros((8, 8, 3), np.float32))


# -- warping -----------------------------------------------------------------------------------------------------------
def test_warping_with_true_flow_reconstructs_the_frame() -> None:
    render = smooth_texture(np.random.default_rng(5), 64, 96, cutoff=0.06)
    a = render()
    inner = (slice(6, -6), slice(6, -6))  # away from the borders, where x + flow leaves the frame
    span = float(np.ptp(a))

    def warp(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
        true_flow = torch.tensor(shift, dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 64, 96)
        return backward_warp(torch.from_numpy(image)[None, None], true_flow)[0, 0].numpy()

    # Integer motion: bilinear sampling lands on pixels, the frame comes back exactly.
    assert np.abs(warp(render(3.0, -2.0), (3.0, -2.0))[inner] - a[inner]).max() < 1e-9
    # Sub-pixel motion: only bilinear interpolation error is left, a small fraction of the unwarped difference.
    b = render(1.4, -0.7)
    error = warp(b, (1.4, -0.7))[inner] - a[inner]
    rms = float(np.sqrt(np.mean(error**2)))
    assert rms < 0.01 * span and float(np.abs(error).max()) < 0.02 * span
    assert float(np.sqrt(np.mean((b[inner] - a[inner]) ** 2))) > 10 * rms


def test_backward_warp_matches_resample2d_definition() -> None:
    """Bilinear sampling at x + flow with coordinates clamped to the frame (FlowNet2 Resample2d), checked by loops."""
    rng = np.random.default_rng(6)
    image = rng.random((1, 2, 7, 9))
    flow_px = rng.uniform(-3, 3, (1, 2, 7, 9))
    got = backward_warp(torch.from_numpy(image), torch.from_numpy(flow_px)).numpy()
    h, w = 7, 9
    for c in range(2):
        for y in range(h):
            for x in range(w):
                xf, yf = x + flow_px[0, 0, y, x], y + flow_px[0, 1, y, x]
                ax, ay = xf - np.floor(xf), yf - np.floor(yf)
                x0 = int(min(max(np.floor(xf), 0), w - 1))
                x1 = int(min(max(np.floor(xf) + 1, 0), w - 1))
                y0 = int(min(max(np.floor(yf), 0), h - 1))
                y1 = int(min(max(np.floor(yf) + 1, 0), h - 1))
                plane = image[0, c]
                want = ((1 - ax) * (1 - ay) * plane[y0, x0] + ax * (1 - ay) * plane[y0, x1]
                        + (1 - ax) * ay * plane[y1, x0] + ax * ay * plane[y1, x1])
                assert abs(got[0, c, y, x] - want) < 1e-12


def test_backward_warp_keeps_dtype_and_is_exact_for_zero_flow() -> None:
    image = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    warped = backward_warp(image, torch.zeros(2, 2, 16, 24))
    assert warped.dtype == torch.float32 and float((warped - image).abs().max()) < 1e-12
    with pytest.raises(SeeClearError, match="backward_warp expects"):
        backward_warp(image, torch.zeros(2, 2, 16, 23))


# -- occlusion ---------------------------------------------------------------------------------------------------------
def moving_square_flows() -> tuple[torch.Tensor, torch.Tensor]:
    """A 10x8 square at rows 10..19, cols 8..15 of frame a moves 4 px right in frame b; the background is still."""
    fw = torch.zeros(1, 2, 32, 32, dtype=torch.float64)
    bw = torch.zeros(1, 2, 32, 32, dtype=torch.float64)
    fw[0, 0, 10:20, 8:16] = 4.0   # a -> b on the square's pixels in a
    bw[0, 0, 10:20, 12:20] = -4.0  # b -> a on the square's pixels in b
    return fw, bw


def reference_valid_mask(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """fast_blind_video_consistency's test written as loops, for integer flows (exact sampling)."""
    _, h, w = fw.shape
    valid = np.ones((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            fx, fy = fw[0, y, x], fw[1, y, x]
            sx, sy = int(min(max(x + fx, 0), w - 1)), int(min(max(y + fy, 0), h - 1))
            bx, by = bw[0, sy, sx], bw[1, sy, sx]
            mismatch = (fx + bx) ** 2 + (fy + by) ** 2
            if mismatch > 0.01 * (fx**2 + fy**2 + bx**2 + by**2) + 0.5:
                valid[y, x] = False
            grad = 0.0
            for comp in (0, 1):
                du = fw[comp, y, x] - fw[comp, y, x + 1] if x + 1 < w else 0.0
                dv = fw[comp, y, x] - fw[comp, y + 1, x] if y + 1 < h else 0.0
                grad += du**2 + dv**2
            if grad > 0.01 * (fx**2 + fy**2) + 0.002:
                valid[y, x] = False
    return valid


def test_occlusion_mask_marks_covered_and_disoccluded_regions() -> None:
    fw, bw = moving_square_flows()
    valid_a = occlusion_valid_mask(fw, bw)[0].numpy()
    # Background of frame a that the square covers in frame b (cols 16..19) cannot be warped from b.
    assert not valid_a[10:20, 16:20].any()
    # The square's interior and the far background are visible in both frames.
    assert valid_a[11:19, 9:15].all() and valid_a[:, :6].all() and valid_a[:, 22:].all()
    assert np.array_equal(valid_a, reference_valid_mask(fw[0].numpy(), bw[0].numpy()))
    # Warping a onto b: the strip the square uncovers in b (cols 8..11) was hidden in a, i.e. disoccluded.
    valid_b = occlusion_valid_mask(bw, fw)[0].numpy()
    assert not valid_b[10:20, 8:12].any()
    assert valid_b[11:19, 13:19].all() and valid_b[:, :6].all() and valid_b[:, 22:].all()
    assert np.array_equal(valid_b, reference_valid_mask(bw[0].numpy(), fw[0].numpy()))


def test_occlusion_mask_is_all_valid_for_consistent_smooth_motion() -> None:
    fw = torch.full((1, 2, 16, 16), 1.5, dtype=torch.float64)
    assert bool(occlusion_valid_mask(fw, -fw).all())
    with pytest.raises(SeeClearError, match="two \\(n, 2, h, w\\) flows"):
        occlusion_valid_mask(fw, fw[:, :1])


# -- RAFT --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raft_state() -> dict[str, torch.Tensor]:
    """A freshly initialised raft_large state dict (seeded, so the module's tests see one set of weights)."""
    from torchvision.models.optical_flow import raft_large

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return raft_large(weights=None).state_dict()


def test_replicate_padding_splits_like_raft_input_padder() -> None:
    assert replicate_padding(128, 136) == (0, 0, 0, 0)
    assert replicate_padding(130, 137) == (3, 4, 3, 3)
    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6)
    padded = pad_to_multiple(images)
    assert padded.shape == (2, 3, 8, 8)
    assert torch.equal(padded[..., 1:6, 1:7], images) and torch.equal(padded[..., 0, 1:7], images[..., 0, :])


@pytest.mark.slow
def test_raft_adapter_matches_torchvision_on_a_test_made_weights_file(tmp_path, raft_state) -> None:
    from torchvision.models.optical_flow import raft_large

    path = tmp_path / "raft_large_test.pth"
    torch.save(raft_state, path)
    rng = np.random.default_rng(7)
    a = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 130, 136)).astype(np.float32))
    b = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 130, 136)).astype(np.float32))
    adapter = RaftFlow(path, iterations=2)
    got = adapter(a, b)
    assert got.shape == (1, 2, 130, 136) and got.dtype == torch.float32 and bool(torch.isfinite(got).all())
    # A separately built network run on the same file gives the same bits: the path is deterministic.
    backend = raft_large(weights=None)
    backend.load_state_dict(torch.load(path, weights_only=True))
    backend.eval()
    with torch.inference_mode():
        pads = (0, 0, 3, 3)  # 130 rows -> 136, split evenly; 136 columns need none
        direct = backend(F.pad(a, pads, mode="replicate"), F.pad(b, pads, mode="replicate"), num_flow_updates=2)[-1]
    assert torch.equal(got, direct[:, :, 3:133])


def test_raft_refuses_frames_below_its_minimum_size(raft_state) -> None:
    raft = RaftFlow(raft_state, iterations=1)
    with pytest.raises(SeeClearError, match="at least 128x128"):
        raft(torch.zeros(1, 3, 64, 136), torch.zeros(1, 3, 64, 136))


def test_raft_weight_files_are_checked(tmp_path, raft_state) -> None:
    with pytest.raises(SeeClearError, match="does not exist"):
        RaftFlow(tmp_path / "absent.pth", iterations=2)
    foreign = tmp_path / "raft-things.pth"
    torch.save({"module.fnet.conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    with pytest.raises(SeeClearError, match="not a torchvision raft_large state dict"):
        RaftFlow(foreign, iterations=2)
    state = dict(raft_state)
    key = next(iter(state))
    state[key] = torch.zeros(1)
    with pytest.raises(SeeClearError, match="raft_large expects"):
        RaftFlow(state, iterations=2)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SeeClearError, match="cannot read RAFT weights"):
        RaftFlow(garbage, iterations=2)
    with pytest.raises(SeeClearError, match="iterations"):
        RaftFlow(state, iterations=0)


def test_raft_reads_safetensors(tmp_path, raft_state) -> None:
    from safetensors.torch import save_file

    state = raft_state
    path = tmp_path / "raft.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = flow.read_state_dict(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
