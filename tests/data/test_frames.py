"""Single-frame I/O: conversions at read time, deterministic lossless PNG, and one-line errors naming the file."""
from __future__ import annotations

import io as _io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from seeclear_bench.data.frames import decode_frame, encode_png, read_frame, write_frame
from seeclear_bench.errors import SeeClearError


def _rgb(h: int = 6, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = _io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def _png16_rgb(h: int, w: int, value: int) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" + np.full((w, 3), value, dtype=">u2").tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * h)) + chunk(b"IEND", b"")


def test_png_round_trip_is_lossless(tmp_path):
    frame = _rgb(7, 9)
    write_frame(str(tmp_path / "a.png"), frame)
    out = read_frame(str(tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, frame)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temporary file left behind


def test_encode_png_is_deterministic_and_has_no_timestamp():
    frame = _rgb(16, 16, seed=3)
    first, second = encode_png(frame), encode_png(frame.copy())
    assert first == second
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and b"tIME" not in first and b"tEXt" not in first
    np.testing.assert_array_equal(decode_frame(first), frame)


def test_grayscale_is_repeated_into_three_channels(tmp_path):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    (tmp_path / "g.png").write_bytes(_save(Image.fromarray(gray, "L"), "PNG"))
    out = read_frame(str(tmp_path / "g.png"))
    assert out.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_bilevel_image_reads_as_0_and_255():
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8), "L").convert("1")
    out = decode_frame(_save(bits, "PNG"))
    np.testing.assert_array_equal(out[..., 0], [[0, 255], [255, 0]])


def test_rgba_drops_alpha_without_compositing():
    rgba = np.dstack([_rgb(5, 5), np.full((5, 5), 7, np.uint8)])
    out = decode_frame(_save(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_palette_image_with_transparency_reads_as_its_colours():
    image = Image.new("P", (3, 2))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1, 0, 1, 1, 0])
    out = decode_frame(_save(image, "PNG", transparency=0))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(out[0, 1], [200, 100, 50])


def test_bmp_is_exact_and_jpeg_is_close(tmp_path):
    frame = (np.indices((32, 48)).sum(0) * 3 % 256).astype(np.uint8)
    frame = np.dstack([frame, frame[::-1], 255 - frame])
    (tmp_path / "f.bmp").write_bytes(_save(Image.fromarray(frame), "BMP"))
    np.testing.assert_array_equal(read_frame(str(tmp_path / "f.bmp")), frame)
    (tmp_path / "f.jpg").write_bytes(_save(Image.fromarray(frame), "JPEG", quality=95))
    jpeg = read_frame(str(tmp_path / "f.jpg"))
    assert jpeg.shape == frame.shape
    assert np.abs(jpeg.astype(int) - frame).mean() < 6


def test_16bit_grayscale_is_refused(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(_save(Image.fromarray(np.full((4, 4), 40000, np.uint16)), "PNG"))
    with pytest.raises(SeeClearError, match=r"deep\.png.*16-bit"):
        read_frame(str(path))


def test_16bit_rgb_png_is_refused_not_truncated(tmp_path):
    path = tmp_path / "deep_rgb.png"
    path.write_bytes(_png16_rgb(2, 3, 0x1234))
    with pytest.raises(SeeClearError, match=r"deep_rgb\.png.*16-bit"):
        read_frame(str(path))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_image_raises_one_line_naming_the_file(tmp_path, damage):
    good = encode_png(_rgb(32, 32))
    data = {"truncated": good[: len(good) // 2], "garbage": b"not an image at all", "empty": b""}[damage]
    path = tmp_path / f"{damage}.png"
    path.write_bytes(data)
    with pytest.raises(SeeClearError) as info:
        read_frame(str(path))
    message = str(info.value)
    assert str(path) in message and "not a readable" in message and "\n" not in message


def test_missing_file_raises(tmp_path):
    with pytest.raises(SeeClearError, match="nope.png"):
        read_frame(str(tmp_path / "nope.png"))


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_encode_png_rejects_non_rgb_uint8(bad):
    with pytest.raises(SeeClearError, match=r"\(h, w, 3\) uint8"):
        encode_png(bad)


def test_write_frame_wants_png_and_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(SeeClearError, match=r"\.png"):
        write_frame(str(tmp_path / "x.jpg"), _rgb())
    with pytest.raises(SeeClearError):
        write_frame(str(tmp_path / "y.png"), np.zeros((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_memory_url_round_trip():
    import fsspec

    url = "memory://test_frames_round_trip/clip/00000000.png"
    frame = _rgb(5, 8, seed=9)
    try:
        write_frame(url, frame)
        np.testing.assert_array_equal(read_frame(url), frame)
    finally:
        fsspec.filesystem("memory").rm("/test_frames_round_trip", recursive=True)
