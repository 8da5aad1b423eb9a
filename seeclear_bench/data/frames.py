"""Single-frame image I/O: decode PNG/JPEG/BMP into (h w 3) uint8 RGB and write frames as lossless PNG.

Owns the conversion rules every frame goes through at read time:

* grayscale (``L``, ``1``, ``LA``) is repeated into 3 channels; ``RGBA``/``LA`` drop alpha (no compositing);
  palette (``P``) and ``CMYK`` images are converted to RGB by Pillow;
* 16-bit and float images (``I;16``, ``I``, ``F``, 16-bit-per-channel PNG) are refused with a SeeClearError rather
  than silently truncated, as Pillow would otherwise do for 16-bit RGB PNGs: benchmark data must be 8-bit.

Written PNGs are deterministic for a given Pillow/zlib build: fixed compression level, no ``tIME``/text chunks.
:func:`is_plain_rgb_png` tells when a PNG file's own bytes can be stored instead of encoding its pixels again.
All file access goes through :mod:`seeclear_bench.io`. Imports numpy and Pillow only.
"""
from __future__ import annotations

import io as _io
import struct
import zlib
from typing import Final

import numpy as np
from PIL import Image

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError

IMAGE_EXTENSIONS: Final = (".png", ".jpg", ".jpeg", ".bmp")
PNG_COMPRESS_LEVEL: Final = 6
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_HIGH_DEPTH_MODES: Final = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S"})
_PNG_CRITICAL: Final = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_PNG_RGB: Final = 2  # IHDR colour type of truecolour without alpha


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


def rgb8_png_size(data: bytes) -> tuple[int, int] | None:
    """``(h, w)`` from the header of an 8-bit RGB PNG (colour type 2, no alpha, no palette), else None.

    Reads the signature and the ``IHDR`` chunk only (no CRC, no pixel data): a cheap check that stored bytes are the
    kind of PNG they are said to be; :func:`is_plain_rgb_png` is the whole check.
    """
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[8:16] != b"\0\0\0\x0dIHDR":
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth != 8 or colour != _PNG_RGB or compression or filtering or interlace > 1 or not width or not height:
        return None
    return height, width


def is_plain_rgb_png(data: bytes, height: int, width: int) -> bool:
    """Whether ``data`` is a whole, intact 8-bit RGB PNG of ``height`` x ``width``, whose decoded pixels are therefore
    exactly the (h w 3) frame :func:`decode_frame` gives: such bytes may be stored as they are instead of encoding
    the frame again.

    Checked: the ``IHDR`` (8 bits, colour type 2, so no alpha, palette, gray or 16-bit conversion applies), every
    chunk's CRC, contiguous ``IDAT`` chunks, no critical chunk other than ``IHDR``/``PLTE``/``IDAT``/``IEND``, no
    animation (``acTL``), and ``IEND`` ending the file. Ancillary chunks (``gAMA``, ``iCCP``, text ...) are allowed:
    :func:`decode_frame` applies none of them. Interlacing is allowed. Costs a CRC pass over the bytes, no decode.
    """
    if rgb8_png_size(data) != (height, width):
        return False
    view, pos, idat = memoryview(data), 8, "before"
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(view[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return False
        if kind == b"IDAT":
            if idat == "after":
                return False
            idat = "in"
        elif idat == "in":
            idat = "after"
        if kind == b"acTL" or (kind[:1].isupper() and kind not in _PNG_CRITICAL) or (kind == b"IHDR" and pos != 8):
            return False
        if kind == b"IEND":
            return end == len(data) and idat == "after"
        pos = end
    return False
