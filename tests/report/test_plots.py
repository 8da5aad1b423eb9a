"""Pictures: which metrics the perception-distortion plane uses (and says so), that each PNG shows what it should
(method colours, sizes), the exact pixels of temporal profiles and crops, and frames found in a real run folder."""
from __future__ import annotations

import io as _bytes_io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.intervals import dataset_intervals
from seeclear_bench.metrics.tables import clip_table, dataset_table
from seeclear_bench.report import plots
from seeclear_bench.report.frames import (
    GROUND_TRUTH,
    ClipSource,
    collect_pictures,
    find_sources,
    texture_box,
)
from seeclear_bench.report.merge import load_results
from seeclear_bench.report.ranking import score_table


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(_bytes_io.BytesIO(png)).convert("RGB"))


def has_colour(image: np.ndarray, hex_colour: str, tol: int = 6) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(image.astype(int) - rgb).max(axis=2) <= tol).sum() >= 10)


def scores_for(frames: pd.DataFrame) -> pd.DataFrame:
    clips = clip_table(frames)
    return score_table(dataset_table(clips, frames), dataset_intervals(clips, n_boot=200, seed=0))


def results(make_table, metrics=("psnr", "lpips", "tof")) -> pd.DataFrame:
    base = {"psnr": [26.0, 26.5], "lpips": [0.30, 0.32], "tof": [0.4, 0.5], "ssim": [0.7, 0.71]}
    parts = []
    for i, method in enumerate(("bicubic", "SeeClear")):
        per_clip = {clip: {m: [v + (2.0 if m == "psnr" else -0.05) * i + 0.1 * c for v in base[m]] for m in metrics}
                    for c, clip in enumerate(("000", "011", "015"))}
        parts.append(make_table(method, "REDS4", per_clip))
    return pd.concat(parts, ignore_index=True)


def test_perception_distortion_uses_lpips_and_draws_every_method(make_table):
    picture = plots.perception_distortion(scores_for(results(make_table)), "REDS4")
    assert picture is not None and picture.name == "pd-plane_REDS4"
    assert "PSNR against LPIPS" in picture.caption and "not computed" not in picture.caption
    image = decode(picture.png)
    assert image.shape == (round(4.2 * plots.DPI), round(5.6 * plots.DPI), 3)
    colours = plots.method_colours(["bicubic", "SeeClear"])
    assert colours["SeeClear"] != colours["bicubic"]
    assert has_colour(image, colours["bicubic"]) and has_colour(image, colours["SeeClear"])


def test_perception_distortion_without_lpips_says_what_it_plots_instead(make_table):
    picture = plots.perception_distortion(scores_for(results(make_table, ("psnr", "tof"))), "REDS4")
    assert picture is not None
    assert "PSNR against tOF" in picture.caption
    assert "LPIPS was not computed for this dataset, so the x axis is tOF (lower is better) instead." in picture.caption
    assert plots.perception_distortion(scores_for(results(make_table, ("psnr", "ssim"))), "REDS4") is None  # nothing lower-is-better
    assert plots.perception_distortion(scores_for(results(make_table, ("lpips", "tof"))), "REDS4") is None  # no PSNR


def test_frame_curves_one_row_per_clip_and_cap(make_table):
    frames = results(make_table, ("psnr", "tof"))
    full = plots.frame_curves(frames, "REDS4")
    capped = plots.frame_curves(frames, "REDS4", max_clips=1)
    assert decode(full.png).shape[0] > decode(capped.png).shape[0]
    assert "first 1 of 3 clips" in capped.caption and "first" not in full.caption
    assert has_colour(decode(full.png), plots.method_colours(["bicubic", "SeeClear"])["SeeClear"])
    assert plots.frame_curves(frames, "nothing") is None


def test_texture_box_finds_the_textured_patch():
    frame = np.full((60, 90, 3), 128, np.uint8)
    frame[30:50, 60:80] = np.random.default_rng(0).integers(0, 256, (20, 20, 3))
    top, left, h, w = texture_box(frame, 20)
    assert (h, w) == (20, 20)
    assert 20 <= top <= 40 and 50 <= left <= 70  # a window overlapping most of the patch
    assert texture_box(frame[:10, :12], 20) == (0, 0, 10, 12)  # clipped to a small frame


def memory_source(clip: np.ndarray, name: str) -> ClipSource:
    return ClipSource(frame=lambda i: clip[i], frames=lambda idx: ((i, clip[i]) for i in sorted(idx)), where=name)


def test_collect_pictures_reads_exact_rows_and_crops():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (5, 40, 50, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + 3, 0, 255).astype(np.uint8)
    wrong = np.zeros((5, 20, 25, 3), np.uint8)
    pics = collect_pictures({GROUND_TRUTH: memory_source(gt, "gt"), "m": memory_source(pred, "m"),
                             "small": memory_source(wrong, "small")}, dataset="D", clip="c", indices=[4, 0, 1, 2, 3])
    assert pics.indices == (0, 1, 2, 3, 4) and pics.crop_frame == 2
    top, left, h, w = pics.box
    x0, x1 = pics.columns
    assert (x0, x1) == (0, 50) and top <= pics.row < top + h
    np.testing.assert_array_equal(pics.profiles["m"], pred[:, pics.row, x0:x1])
    np.testing.assert_array_equal(pics.profiles[GROUND_TRUTH], gt[:, pics.row, x0:x1])
    np.testing.assert_array_equal(pics.crops["m"], pred[2, top : top + h, left : left + w])
    assert list(pics.profiles) == [GROUND_TRUTH, "m"] and "small" in pics.skipped and "(20, 25, 3)" in pics.skipped["small"]
    profile = plots.temporal_profiles(pics)
    crops = plots.frame_crops(pics, labels={"m": "frame PSNR 30.00 dB"})
    assert "Left out" in profile.caption and "small" in crops.caption
    assert profile.name == "temporal-profile_D_c" and crops.name == "crops_D_c"
    assert plots.temporal_profiles(pics).png == profile.png  # deterministic bytes
    with pytest.raises(SeeClearError, match="need the ground truth"):
        collect_pictures({"m": memory_source(pred, "m")}, dataset="D", clip="c", indices=[0])


def test_frames_of_a_real_run_folder(tiny_run):
    merged = load_results([tiny_run])
    sources = find_sources(merged.results(), merged.groups, merged.runs, "tiny", "a")
    assert set(sources) == {GROUND_TRUTH, "bicubic", "sharp"}
    from seeclear_bench.data.frames import read_frame

    gt_frame = sources[GROUND_TRUTH].frame(4)  # from the second window of the shard
    pred_frame = read_frame(f"{tiny_run}/predictions/sharp/tiny/a/00000004.png")
    np.testing.assert_array_equal(sources["sharp"].frame(4), pred_frame)
    assert gt_frame.shape == pred_frame.shape == (48, 64, 3)
    assert [i for i, _ in sources[GROUND_TRUTH].frames(range(6))] == list(range(6))
    pics = collect_pictures(sources, dataset="tiny", clip="a", indices=range(6))
    top, _, h, _ = pics.box
    assert top < 24 and top + h > 8  # the crop overlaps the textured square of the fixture
    assert pics.profiles["sharp"].shape == (6, 64, 3) and not pics.skipped
