"""Degradation edge cases: a clip whose frames are smaller than the scale is one line naming the dataset and clip."""
from __future__ import annotations

import numpy as np
import pytest

from seeclear_bench.config import DegradeConfig, SourceConfig
from seeclear_bench.data.degradations import degrade_clip
from seeclear_bench.data.frames import encode_png
from seeclear_bench.degrade import degrade_folder
from seeclear_bench.errors import SeeClearError

TINY = np.full((2, 3, 3, 3), 128, dtype=np.uint8)


@pytest.mark.parametrize("on_indivisible", ["crop", "error"])
@pytest.mark.parametrize("kind", ["bicubic", "blur-downsample", "realistic"])
def test_frames_smaller_than_the_scale_name_dataset_and_clip(kind, on_indivisible) -> None:
    with pytest.raises(SeeClearError) as info:
        degrade_clip(TINY, kind=kind, scale=4, seed=0, clip_id="tiny", on_indivisible=on_indivisible, dataset="demo")
    message = str(info.value)
    assert message.startswith("dataset demo, clip tiny: frames are 3x3 (h x w), smaller than the scale 4"), message
    assert "\n" not in message and "0x0" not in message  # no advice to crop to nothing


def test_one_side_smaller_and_no_dataset_given() -> None:
    wide = np.zeros((1, 2, 40, 3), dtype=np.uint8)
    with pytest.raises(SeeClearError, match=r"^clip c7: frames are 2x40 \(h x w\), smaller than the scale 4"):
        degrade_clip(wide, kind="bicubic", scale=4, seed=0, clip_id="c7")


def test_indivisible_error_names_dataset_and_clip() -> None:
    hr = np.zeros((1, 10, 8, 3), dtype=np.uint8)
    with pytest.raises(SeeClearError, match=r"^dataset demo, clip c: HR frames 10x8 are not divisible by scale 4"):
        degrade_clip(hr, kind="bicubic", scale=4, seed=0, clip_id="c", on_indivisible="error", dataset="demo")


def test_dataset_changes_neither_pixels_nor_params() -> None:
    hr = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    a = degrade_clip(hr, kind="realistic", scale=4, seed=3, clip_id="c")
    b = degrade_clip(hr, kind="realistic", scale=4, seed=3, clip_id="c", dataset="demo")
    assert np.array_equal(a.lr, b.lr) and a.params == b.params


def test_degrade_folder_names_dataset_and_clip(tmp_path) -> None:
    root = tmp_path / "hr"
    for clip, size in (("big", 8), ("tiny", 3)):
        (root / clip).mkdir(parents=True)
        for i in range(2):
            (root / clip / f"{i:08d}.png").write_bytes(encode_png(np.full((size, size, 3), 9, dtype=np.uint8)))
    source = SourceConfig(name="demo", url=str(root), layout="clips")
    with pytest.raises(SeeClearError, match=r"^dataset demo, clip tiny: frames are 3x3 \(h x w\), smaller than the scale 4"):
        degrade_folder(source, DegradeConfig(scale=4), str(tmp_path / "lr"), seed=0, progress=False)
