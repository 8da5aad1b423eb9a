"""score_clip: frame and clip metrics together, frame labels, metric hashes, the ground-truth reference, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.registry import metric_hash
from seeclear_bench.metrics.scoring import GT_METHOD, row_metric_hash, score_clip

PROTOCOL = get_protocol("basicsr-vid4-y")


def _moving(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    canvas = rng.integers(0, 256, (h, w + t), dtype=np.uint8)
    return np.stack([np.repeat(canvas[:, i:i + w, None], 3, axis=2) for i in range(t)])


def test_frame_and_clip_metrics_share_one_table():
    rng = np.random.default_rng(0)
    gt = _moving(rng, 8, 64, 80)
    noisy = np.clip(gt.astype(int) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)
    rows = score_clip({"noisy": noisy, "perfect": gt}, gt, dataset="d", clip="c", metrics=["psnr", "tof"],
                      protocol=PROTOCOL, frames=range(100, 108))
    psnr = rows[(rows["metric"] == "psnr") & (rows["method"] == "noisy")]
    assert list(psnr["frame"]) == list(range(100, 108))  # labelled with the clip's own frame numbers
    tof = rows[(rows["metric"] == "tof")]
    assert set(tof["frame"]) == {103, 104, 105}  # TecoGAN skips 2 frames at each end: steps t = 3 .. T-3
    assert (tof.loc[tof["method"] == "perfect", "value"] == 0).all()
    assert np.isinf(rows.loc[(rows["method"] == "perfect") & (rows["metric"] == "psnr"), "value"]).all()
    assert set(rows["metric_hash"]) == {metric_hash("psnr"), metric_hash("tof")}
    assert GT_METHOD not in set(rows["method"])  # psnr and tof both compare with the ground truth


def test_errors_name_dataset_clip_and_method():
    rng = np.random.default_rng(1)
    gt = _moving(rng, 3, 32, 32)
    with pytest.raises(SeeClearError, match=r"d/c: prediction of m is \(2, 32, 32, 3\)"):
        score_clip({"m": gt[:2]}, gt, dataset="d", clip="c", metrics=["psnr"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match=r"d/c \(m\): .*at least 6 frames"):
        score_clip({"m": gt}, gt, dataset="d", clip="c", metrics=["tof"], protocol=PROTOCOL)
    with pytest.raises(SeeClearError, match="unknown metric 'psnrr'"):
        score_clip({"m": gt}, gt, dataset="d", clip="c", metrics=["psnrr"], protocol=PROTOCOL)


def test_missing_weights_stop_the_score(tmp_path, monkeypatch):
    monkeypatch.setenv("SEECLEAR_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    row_metric_hash.cache_clear()
    gt = _moving(np.random.default_rng(2), 2, 64, 64)
    with pytest.raises(SeeClearError, match=r"alexnet-owt-7be5be79\.pth.*"):
        score_clip({"m": gt}, gt, dataset="d", clip="c", metrics=["lpips"], protocol=PROTOCOL)


@pytest.mark.slow
def test_prediction_only_metrics_also_score_the_ground_truth(tmp_path, monkeypatch):
    from torchvision.models.optical_flow import raft_large

    monkeypatch.setenv("SEECLEAR_WEIGHTS", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    zero = {k: torch.zeros_like(v) for k, v in raft_large(weights=None).state_dict().items()}  # predicts zero flow
    torch.save(zero, tmp_path / "checkpoints" / "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    row_metric_hash.cache_clear()
    rng = np.random.default_rng(3)
    still = rng.integers(0, 240, (128, 128, 3), dtype=np.uint8)
    gt = np.stack([still, still])
    flicker = np.stack([still, still + 9])
    rows = score_clip({"flicker": flicker}, gt, dataset="d", clip="c", metrics=["ewarp"], protocol=PROTOCOL)
    by_method = rows.set_index("method")["value"]
    assert by_method[GT_METHOD] == pytest.approx(0.0, abs=1e-12)  # a static ground truth warps onto itself
    assert by_method["flicker"] > 0.1
    assert rows["metric_hash"].nunique() == 1 and rows["metric_hash"].iloc[0] != metric_hash("ewarp")  # weights in it
