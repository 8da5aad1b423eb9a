"""Single-frame image I/O: decode PNG/JPEG/BMP into (h w 3) uint8 RGB and write frames as lossless PNG.

Owns the conversion rules every frame goes through at read time:

* grayscale (``L``, ``1``, ``LA``) is repeated into 3 channels; ``RGBA``/``LA`` drop alpha (no compositing);
  palette (``P``) and ``CMYK`` images are converted to RGB by Pillow;
* 16-bit and float images (``I;16``, ``I``, ``F``, 16-bit-per-channel PNG) are refused with a SeeClearError rather
  than silently truncated, as Pillow would otherwise do for 16-bit RGB PNGs: benchmark data must be 8-bit.

Written PNGs are deterministic for a given Pillow/zlib build: fixed compression level, no ``tIME``/text chunks.
All file access goes through :mod:`seeclear_bench.io`. Imports numpy and Pillow only.
"""
from __future__ import annotations

import io as _io
from typing import Final

import numpy as np
from PIL import Image

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError

IMAGE_EXTENSIONS: Final = (".png", ".jpg", ".jpeg", ".bmp")
PNG_COMPRESS_LEVEL: Final = 6
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_HIGH_DEPTH_MODES: Final = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S"})


def is_image_name(name: str) -> bool:
    """Whether ``name`` (a URL or file name) has one of :data:`IMAGE_EXTENSIONS`, case-insensitively."""
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def decode_frame(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into one RGB frame.

    Args:
        data: The bytes of a PNG, JPEG or BMP file.
        name: What to call the image in error messages (usually its URL).

    Returns:
        frame: (h w 3) uint8 RGB.

    Raises:
        SeeClearError: The bytes are not a decodable image, or the image is 16-bit/float.
    """
    if data[:8] == _PNG_SIGNATURE and len(data) > 24 and data[24] == 16:
        # Pillow would drop the low byte of 16-bit RGB PNGs without a word; the IHDR bit depth is byte 24.
        raise SeeClearError(f"frame {name!r} is a 16-bit PNG; expected 8 bits per channel, convert it to 8-bit first")
    try:
        with Image.open(_io.BytesIO(data)) as image:
            image.load()
            return _to_rgb(image, name)
    except SeeClearError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SeeClearError(
            f"frame {name!r} is not a readable PNG/JPEG/BMP image ({reason}); replace or re-export the file"
        ) from exc


def _to_rgb(image: Image.Image, name: str) -> np.ndarray:
    mode = image.mode
    if mode in _HIGH_DEPTH_MODES:
        raise SeeClearError(
            f"frame {name!r} has mode {mode} (16-bit or float); expected an 8-bit image, convert it to 8-bit first"
        )
    if mode in ("L", "1", "LA"):
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "RGBA":
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, :3])
    if mode == "P" and "transparency" in image.info:
        return np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8)[:, :, :3])
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def read_frame(url: str) -> np.ndarray:
    """Read one image file into an RGB frame.

    Args:
        url: Local path or fsspec URL of a PNG, JPEG or BMP file.

    Returns:
        frame: (h w 3) uint8 RGB (grayscale repeated into 3 channels, alpha dropped).

    Raises:
        SeeClearError: The file is missing, unreadable, corrupt, or 16-bit/float.
    """
    return decode_frame(io.read_bytes(url), url)


def _check_frame(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise SeeClearError(
            f"a frame must be a non-empty (h, w, 3) uint8 RGB array, got shape {array.shape} dtype {array.dtype}"
        )
    return np.ascontiguousarray(array)


def encode_png(frame: np.ndarray, *, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode one frame as a lossless 8-bit RGB PNG with deterministic bytes.

    The same array always gives the same bytes with the same Pillow/zlib build: the compression level is fixed and
    no time stamp or text chunk is written.

    Args:
        frame: (h w 3) uint8 RGB.
        compress_level: zlib level 0-9; only size and speed change, never pixels.

    Returns:
        The PNG file's bytes.

    Raises:
        SeeClearError: ``frame`` is not (h w 3) uint8.
    """
    array = _check_frame(frame)
    buffer = _io.BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG", compress_level=compress_level, optimize=False)
    return buffer.getvalue()


def write_frame(url: str, frame: np.ndarray) -> None:
    """Atomically write one frame as a PNG file.

    Args:
        url: Destination ending in ``.png`` (local path or fsspec URL); parent folders are created.
        frame: (h w 3) uint8 RGB.

    Raises:
        SeeClearError: ``url`` does not end in ``.png``, the frame is not (h w 3) uint8, or the destination is not
            writable. Nothing is left at ``url`` on failure.
    """
    if not str(url).lower().endswith(".png"):
        raise SeeClearError(f"write_frame writes lossless PNG only; expected a URL ending in .png, got {url!r}")
    io.write_bytes(url, encode_png(frame))
