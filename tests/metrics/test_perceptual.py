"""Learned metrics against their backends, on weight files the tests create (nothing is downloaded).

The torchvision backbones are saved into a temporary ``$TORCH_HOME/hub/checkpoints`` under torchvision's own file
names: the feature layers freshly initialised (kaiming-normal, fixed seed), the classifier (which no metric reads)
stored as broadcast zeros so the files stay small. The LPIPS linear heads are the lpips package's own files; DISTS's
alpha/beta are drawn as DISTS initialises them and saved under pyiqa's file name. The backends are then called
directly (``lpips.LPIPS``, ``pyiqa.create_metric``) on the same files and compared with our adapter.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.hub
from skimage import data as skdata

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import iqa, perceptual, weights
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.registry import METRICS, ClipValues, compute_frame_metrics

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision's 'pretrained' deprecation in lpips

SIZE = 64


def _save_imagenet_trunk(builder, path: Path, seed: int) -> None:
    """torchvision's state dict for ``builder``: fresh feature layers, zero (broadcast) classifier."""
    with torch.device("meta"):
        model = builder(weights=None)
    features = model.features.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in features:
            if isinstance(layer, torch.nn.Conv2d):
                fan_out = layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1]
                layer.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                layer.bias.normal_(0.0, 0.01, generator=generator)
    state = {
        key: value if key.startswith("features.") else torch.zeros(()).expand(value.shape)
        for key, value in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    _save_imagenet_trunk(torchvision.models.alexnet, checkpoints / "alexnet-owt-7be5be79.pth", seed=1)
    _save_imagenet_trunk(torchvision.models.vgg16, checkpoints / "vgg16-397923af.pth", seed=2)
    generator = torch.Generator().manual_seed(3)
    n_channels = 3 + 64 + 128 + 256 + 512 + 512
    dists_state = {
        "alpha": torch.randn(1, n_channels, 1, 1, generator=generator) * 0.01 + 0.1,
        "beta": torch.randn(1, n_channels, 1, 1, generator=generator) * 0.01 + 0.1,
    }
    (home / "hub" / "pyiqa").mkdir(parents=True)
    torch.save(dists_state, home / "hub" / "pyiqa" / "DISTS_weights-f5e65c96.pth")
    return home


@pytest.fixture
def cache(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(weights.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return torch_home


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub"


def _photos(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real 64x64 photos as gt and a noisy, shifted prediction, uint8 ``(n 64 64 3)``."""
    rng = np.random.default_rng(0)
    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()]
    corners = [(40 + 8 * i, 60 + 4 * i) for i in range(n)]
    gt = np.stack([sources[i % 3][y : y + 2 * SIZE : 2, x : x + 2 * SIZE : 2] for i, (y, x) in enumerate(corners)])
    noise = rng.normal(0.0, 12.0, gt.shape)
    pred = np.clip(np.roll(gt, 1, axis=2) + noise, 0, 255).round().astype(np.uint8)
    return pred, gt


def _clip(n_frames: int = 7, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A panning crop of the astronaut as gt, and a noisy prediction whose noise flickers between frames."""
    rng = np.random.default_rng(1)
    photo = skdata.astronaut()[::3, ::3]
    gt = np.stack([photo[20 + 2 * t : 20 + 2 * t + size, 30 + 3 * t : 30 + 3 * t + size] for t in range(n_frames)])
    pred = np.clip(gt + rng.normal(0.0, 10.0, gt.shape), 0, 255).round().astype(np.uint8)
    return pred, gt


def _to_unit(frame: np.ndarray) -> torch.Tensor:
    """``(h w 3)`` uint8 -> ``(1 3 h w)`` float32 in [0, 1], as torchvision's ToTensor and pyiqa's readers."""
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255


def _lpips_backend(net: str, torch_home: Path):
    import lpips

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        patch.setattr(torch.hub, "_hub_dir", None)
        return lpips.LPIPS(net=net, version="0.1", verbose=False)  # trunk from $TORCH_HOME, heads from the package


@pytest.fixture(scope="module")
def alex_backend(torch_home: Path):
    return _lpips_backend("alex", torch_home)


def test_lpips_alex_equals_the_lpips_package(cache: Path, alex_backend) -> None:
    import lpips

    pred, gt = _photos()
    ours = perceptual.lpips(pred, gt, net="alex", device="cpu")
    backend = alex_backend
    with torch.no_grad():
        expected = [float(backend(lpips.im2tensor(p), lpips.im2tensor(g))) for p, g in zip(pred, gt, strict=True)]
    assert ours.dtype == torch.float64 and ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-6)
    assert min(expected) > 1e-3 and len(set(np.round(expected, 6))) == 3  # real, distinct distances


@pytest.mark.slow
def test_lpips_vgg_equals_the_lpips_package(cache: Path) -> None:
    import lpips

    pred, gt = _photos()
    ours = perceptual.lpips(pred, gt, net="vgg", device="cpu")
    backend = _lpips_backend("vgg", cache)
    with torch.no_grad():
        expected = [float(backend(lpips.im2tensor(p), lpips.im2tensor(g))) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-6)
    assert min(expected) > 1e-3


@pytest.mark.slow
def test_dists_equals_pyiqa(cache: Path) -> None:
    import pyiqa

    pred, gt = _photos()
    ours = perceptual.dists(pred, gt, device="cpu")
    backend = pyiqa.create_metric(
        "dists", device="cpu", pretrained_model_path=str(cache / "hub" / "pyiqa" / "DISTS_weights-f5e65c96.pth")
    )
    expected = [float(backend(_to_unit(p), _to_unit(g))) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-6)
    assert min(expected) > 1e-3
    assert float(perceptual.dists(gt, gt, device="cpu").abs().max()) < 1e-6


def _teco_crop(frame: np.ndarray) -> np.ndarray:
    """TecoGAN crop_8x8, written from its definition: multiple of 32, >= 16 px removed in total, centred."""
    h, w = frame.shape[:2]
    ch, cw = h - h % 32, w - w % 32
    while ch > h - 16:
        ch -= 32
    while cw > w - 16:
        cw -= 32
    y, x = (h - ch) // 2, (w - cw) // 2
    return frame[y : y + ch, x : x + cw]


def test_tlp_tecogan_equals_a_direct_loop_over_frame_pairs(cache: Path, alex_backend) -> None:
    import lpips

    pred, gt = _clip(n_frames=7, size=80)
    result = perceptual.tlp(pred, gt, variant="tecogan", device="cpu")
    backend = alex_backend
    read = range(2, 7 - 2)  # TecoGAN: cutfr = 2 frames skipped at each end
    g = {i: lpips.im2tensor(_teco_crop(gt[i])) for i in read}
    b = {i: lpips.im2tensor(_teco_crop(pred[i])) for i in read}
    with torch.no_grad():
        steps = [abs(float(backend(g[i - 1], g[i])) - float(backend(b[i - 1], b[i]))) * 100.0 for i in read if i > 2]
    assert isinstance(result, ClipValues) and result.frames == (3, 4)
    np.testing.assert_allclose(result.values.numpy(), steps, rtol=0, atol=1e-5)  # x100 of LPIPS values agreeing to 1e-7
    assert min(steps) > 0


def test_tlp_stablevsr_equals_a_direct_loop_over_frame_pairs(cache: Path, alex_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perceptual, "_CHUNK_PIXELS", {"cpu": 2 * SIZE * SIZE, "cuda": 2 * SIZE * SIZE})  # 2-frame chunks
    pred, gt = _clip(n_frames=5)
    result = perceptual.tlp(pred, gt, variant="stablevsr", device="cpu")
    backend = alex_backend
    with torch.no_grad():
        steps = [
            abs(
                float(backend(_to_unit(gt[i]), _to_unit(gt[i - 1]), normalize=True))
                - float(backend(_to_unit(pred[i]), _to_unit(pred[i - 1]), normalize=True))
            )
            * 1e3
            for i in range(1, 5)
        ]
    assert result.frames == (1, 2, 3, 4)
    np.testing.assert_allclose(result.values.numpy(), steps, rtol=0, atol=1e-4)  # x1000 of LPIPS values agreeing to 1e-7


def test_niqe_equals_pyiqa(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyiqa
    import scipy.io

    rng = np.random.default_rng(4)
    basis = rng.normal(size=(36, 36))
    params = {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": basis @ basis.T / 36 + np.eye(36)}
    own = tmp_path / "own"
    (own / "pyiqa").mkdir(parents=True)
    scipy.io.savemat(own / "pyiqa" / "niqe_modelparameters.mat", params)  # NIQE's two published arrays, test-made
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(own))
    frames = np.stack([skdata.astronaut()[::4, ::4][:96, :112], skdata.chelsea()[:96, :112]])
    ours = perceptual.no_reference(frames, metric="niqe", device="cpu")
    backend = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(own / "pyiqa" / "niqe_modelparameters.mat"))
    expected = [float(backend(_to_unit(frames[i]))) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-6)
    with pytest.raises(SeeClearError, match="at least 96x96"):
        perceptual.no_reference(frames[:, :64], metric="niqe", device="cpu")


@pytest.mark.slow
def test_musiq_equals_pyiqa(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyiqa
    from pyiqa.archs.musiq_arch import MUSIQ

    with torch.random.fork_rng():
        torch.manual_seed(5)
        state = MUSIQ(pretrained=False).state_dict()  # the KonIQ-10k head layout, freshly initialised
    own = tmp_path / "own"
    (own / "pyiqa").mkdir(parents=True)
    torch.save(state, own / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(own))
    frames = _photos()[1]
    ours = perceptual.no_reference(frames, metric="musiq", device="cpu")
    backend = pyiqa.create_metric("musiq", device="cpu", pretrained_model_path=str(own / "pyiqa" / "musiq_koniq_ckpt-e95806b9.pth"))
    expected = [float(backend(_to_unit(frames[i]))) for i in range(3)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-5)


def test_identical_frames_give_zero_lpips(cache: Path) -> None:
    _, gt = _photos()
    assert perceptual.lpips(gt, gt, net="alex", device="cpu").tolist() == [0.0, 0.0, 0.0]
    clip = _clip(n_frames=6)[1]
    assert perceptual.tlp(clip, clip, device="cpu").values.tolist() == [0.0]


def test_registry_runs_learned_metrics_under_a_protocol(cache: Path) -> None:
    pred, gt = _photos()
    protocol = get_protocol("basicsr-reds4-rgb")
    values = compute_frame_metrics(pred, gt, metrics=["psnr", "lpips"], protocol=protocol)
    np.testing.assert_array_equal(values["lpips"], perceptual.lpips(pred, gt, net="alex", device="cpu").numpy())
    cropped = compute_frame_metrics(pred, gt, metrics=["lpips"], protocol=get_protocol("image-sr-y-crop4"))["lpips"]
    np.testing.assert_allclose(cropped, perceptual.lpips(pred[:, 4:-4, 4:-4], gt[:, 4:-4, 4:-4], device="cpu").numpy(), atol=1e-6)
    clip_pred, clip_gt = _clip(n_frames=6)
    clip_values = METRICS["tlp"].clip_fn(clip_pred, clip_gt, protocol)
    assert clip_values.frames == (3,) and clip_values.values.shape == (1,)
    with pytest.raises(SeeClearError, match="consecutive frames"):
        METRICS["tlp"].clip_fn(clip_pred, clip_gt, get_protocol("vimeo90k-t-center-y"))
    assert iqa.network_weights("lpips-alex")["alexnet"] == weights.file_sha256(weights.locate("alexnet"))


def test_metric_specs_rank_learned_metrics_correctly() -> None:
    lower = {"lpips", "lpips-vgg", "dists", "tlp", "tlp-stablevsr", "niqe"}
    for name in lower:
        assert not METRICS[name].higher_better, name
    assert METRICS["musiq"].higher_better and METRICS["clipiqa"].higher_better
    assert {METRICS[n].kind for n in ("tlp", "tlp-stablevsr")} == {"clip"}
    assert all(METRICS[n].reference == "none" for n in ("niqe", "musiq", "clipiqa"))
    for spec in METRICS.values():
        assert all(w in weights.WEIGHTS and spec.name in weights.WEIGHTS[w].used_by for w in spec.weights), spec.name


@pytest.mark.parametrize(
    ("metric", "filename", "subdir"),
    [
        ("lpips", "alexnet-owt-7be5be79.pth", "checkpoints"),
        ("lpips-vgg", "vgg16-397923af.pth", "checkpoints"),
        ("tlp", "alexnet-owt-7be5be79.pth", "checkpoints"),
        ("niqe", "niqe_modelparameters.mat", "pyiqa"),
        ("musiq", "musiq_koniq_ckpt-e95806b9.pth", "pyiqa"),
        ("clipiqa", "RN50.pt", "clip"),
    ],
)
def test_missing_weights_raise_naming_metric_file_and_directory(empty_cache: Path, metric: str, filename: str, subdir: str) -> None:
    pred, gt = _clip(n_frames=6, size=96)
    spec = METRICS[metric]
    with pytest.raises(SeeClearError) as info:
        if spec.kind == "clip":
            spec.clip_fn(pred, gt, get_protocol("basicsr-reds4-rgb"))
        else:
            compute_frame_metrics(pred, gt, metrics=["psnr", metric], protocol=get_protocol("basicsr-reds4-rgb"))
    message = str(info.value)
    assert metric in message and filename in message and str(empty_cache / subdir) in message
    assert "seeclear-bench weights fetch" in message


def test_dists_needs_its_own_file_too(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The VGG trunk is present but the DISTS alpha/beta are not: no metric with random alpha/beta.
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(tmp_path / "own"))
    monkeypatch.setattr(weights, "hub_dir", lambda: tmp_path / "empty-hub")
    (tmp_path / "own" / "checkpoints").mkdir(parents=True)
    os.symlink(cache / "hub" / "checkpoints" / "vgg16-397923af.pth", tmp_path / "own" / "checkpoints" / "vgg16-397923af.pth")
    pred, gt = _photos(1)
    with pytest.raises(SeeClearError, match=r"dists.*DISTS_weights-f5e65c96\.pth") as info:
        perceptual.dists(pred, gt, device="cpu")
    assert str(tmp_path / "own" / "pyiqa") in str(info.value)


def test_wrong_weight_file_is_refused_not_loaded(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "own"
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(own))
    (own / "checkpoints").mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(3)}, own / "checkpoints" / "alexnet-owt-7be5be79.pth")
    with pytest.raises(SeeClearError, match="weights 'alexnet' do not fit Conv2d"):
        perceptual.lpips(*_photos(1), device="cpu")


def test_bad_inputs_are_reported(cache: Path) -> None:
    pred, gt = _photos(2)
    with pytest.raises(SeeClearError, match="same"):
        perceptual.lpips(pred[:, :48], gt, device="cpu")
    with pytest.raises(SeeClearError, match="at least 32x32"):
        perceptual.lpips(pred[:, :20, :20], gt[:, :20, :20], device="cpu")
    bad = pred.astype(np.float32)
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(SeeClearError, match="pred frame 1 contains NaN"):
        perceptual.lpips(bad, gt, device="cpu")
    with pytest.raises(SeeClearError, match="at least 6 frames"):
        perceptual.tlp(*_clip(n_frames=5), device="cpu")
