"""Video files <-> frame arrays with PyAV: decoding, atomic encoding and in-memory codec round-trips.

This module owns every use of PyAV (``av``) in the library; it reads and writes through :mod:`seeclear_bench.io`
(fsspec), so URLs such as ``s3://`` work as local paths do. It must not import ray, torch or webdataset.

Frames are numpy uint8 arrays shaped ``(t h w 3)``, RGB. Colour conversion to and from YUV is done by FFmpeg's
swscale: the decoder honours the matrix and range the stream signals; encoded streams carry none, which FFmpeg reads
back as BT.601 limited range, the same matrix used to write them, so a round-trip has no colour shift.
"""
from __future__ import annotations

import io as _stdio
import logging
from fractions import Fraction
from typing import TYPE_CHECKING, Final, cast

import numpy as np

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

CONTAINER_FORMATS: Final = {".mp4": "mp4", ".mkv": "matroska"}
# Codecs that take a constant-rate-factor quality target; others are driven by bit rate or are lossless.
CRF_CODECS: Final = frozenset({"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"})
# Pixel formats whose chroma is subsampled 2x in both directions (need even frame sizes).
_SUBSAMPLED_420: Final = frozenset({"yuv420p", "yuvj420p", "nv12", "yuv420p10le"})


def _check_frames(frames: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 1:
        raise SeeClearError(f"{what} expects frames (t h w 3) uint8 with t >= 1, "
                            f"got shape {arr.shape} dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def decode_video(url: str, max_frames: int | None = None) -> np.ndarray:
    """Decode the first video stream of ``url`` to RGB frames.

    Args:
        url: fsspec URL or local path of a video file (mp4, mkv, ...).
        max_frames: stop after this many frames (``None``: all).

    Returns:
        ``(t h w 3)`` uint8 RGB frames.

    Raises:
        SeeClearError: the file is missing, has no video stream, cannot be decoded, yields zero frames, or yields
            fewer frames than its container declares (a truncated file).
    """
    import av

    if max_frames is not None and max_frames < 1:
        raise SeeClearError(f"max_frames must be >= 1 or None, got {max_frames}")
    fs, path = io.split(url)
    try:
        fobj = fs.open(path, "rb")
    except FileNotFoundError as exc:
        raise SeeClearError(f"expected a video file at {url!r}, found nothing") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise SeeClearError(f"cannot read video {url!r}: {exc.__class__.__name__}") from exc

    frames: list[np.ndarray] = []
    pts: list[int] = []
    declared, expected_end, last_end, frame_dur, tick = 0, None, 0.0, 0.0, 0.0
    try:
        with fobj, av.open(fobj, mode="r") as container:
            if not container.streams.video:
                raise SeeClearError(f"expected a video stream in {url!r}, found none; the file is truncated, corrupt "
                                    "or holds no video")
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            expected_end = _declared_end_seconds(container, stream)
            for frame in container.decode(stream):
                # one swscale thread: with several, the YUV->RGB result depends on how slices fall (seen under load)
                frames.append(frame.to_ndarray(format="rgb24", src_color_range=int(frame.color_range), threads=1))
                if frame.pts is not None and frame.time_base is not None:
                    tick = float(frame.time_base)
                    pts.append(int(frame.pts))
                    frame_dur = frame.duration * tick if frame.duration else _nominal_dur(stream)
                    last_end = max(last_end, frame.pts * tick + frame_dur)
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except SeeClearError:
        raise
    except (av.FFmpegError, OSError, EOFError, ValueError) as exc:
        raise SeeClearError(f"cannot decode video {url!r} ({exc.__class__.__name__}: {exc}); "
                            "the file is corrupt, truncated or not a video") from exc
    if not frames:
        raise SeeClearError(f"expected decodable frames in {url!r}, found none; the file is empty or corrupt")
    if max_frames is not None and len(frames) >= max_frames:
        return np.stack(frames)
    if declared and len(frames) < declared:
        raise SeeClearError(f"video {url!r} declares {declared} frames but only {len(frames)} decode; "
                            "the file is truncated or corrupt, re-download or re-encode it")
    if not declared and expected_end and frame_dur:
        # Containers without a frame count (Matroska) still record the stream duration: frames must fill it.
        expected = _expected_cfr_count(pts, tick, expected_end)
        if last_end < expected_end - 0.5 * frame_dur or (expected and len(frames) < expected):
            raise SeeClearError(f"video {url!r} lasts {expected_end:.3f} s but its {len(frames)} decoded frames end at "
                                f"{last_end:.3f} s or leave gaps; the file is truncated or corrupt, re-download or "
                                "re-encode it")
    return np.stack(frames)


def video_rate(url: str) -> float | None:
    """The frame rate a video file declares (average, else guessed), or None when it declares none.

    Raises:
        SeeClearError: the file is missing, unreadable or holds no video stream.
    """
    import av

    fs, path = io.split(url)
    try:
        with fs.open(path, "rb") as fobj, av.open(fobj, mode="r") as container:
            if not container.streams.video:
                raise SeeClearError(f"expected a video stream in {url!r}, found none")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except FileNotFoundError as exc:
        raise SeeClearError(f"expected a video file at {url!r}, found nothing") from exc
    except (av.FFmpegError, OSError, EOFError, ValueError) as exc:
        raise SeeClearError(f"cannot read video {url!r} ({exc.__class__.__name__}: {exc})") from exc
    return float(rate) if rate else None


def _nominal_dur(stream: VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


def _expected_cfr_count(pts: list[int], tick: float, end_seconds: float) -> int | None:
    """Frame count a constant-rate stream of this duration must have, or None when the timestamps are not CFR."""
    if len(pts) < 2:
        return None
    ordered = np.unique(np.asarray(pts, dtype=np.int64))
    step = int(np.diff(ordered).min()) if ordered.size > 1 else 0
    if step <= 0 or np.any(np.diff(ordered) % step):
        return None  # variable frame rate: only the end time can be checked
    return int(round((end_seconds - ordered[0] * tick) / (step * tick)))


def _declared_end_seconds(container: InputContainer, stream: VideoStream) -> float | None:
    """End time of the video stream as the container records it, or None when it does not say."""
    time_base = stream.time_base
    assert time_base is not None, "FFmpeg sets a time base on every demuxed stream"
    start = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
    if stream.duration:
        return start + float(stream.duration * time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:  # Matroska: "HH:MM:SS.nnnnnnnnn"
        try:
            hh, mm, ss = tag.split(":")
            return start + int(hh) * 3600 + int(mm) * 60 + float(ss)
        except ValueError:
            return None
    if len(container.streams) == 1 and container.duration:
        # Only trusted with a single stream: an audio track may outlast the video.
        return ((container.start_time or 0) + container.duration) / 1_000_000
    return None


def _encode_to(
    sink: object,
    frames: np.ndarray,
    *,
    container_format: str,
    codec: str,
    fps: int,
    crf: int | None,
    bitrate: int | None,
    pix_fmt: str,
    reproducible: bool = False,
) -> None:
    import av

    t, h, w, _ = frames.shape
    options = {"threads": "1"}  # one thread: x264's output then depends on the input only
    if codec == "libx264":
        params = ["threads=1", "lookahead-threads=1", "sliced-threads=0"]  # every x264 thread pinned
        if reproducible:
            # x264's macroblock-tree rate control made the same input encode two ways in one process, depending on
            # what was encoded before (seen with 80x64 frames in ABR mode); without it the bytes depend on the input
            params.append("mbtree=0")
        options["x264-params"] = ":".join(params)
    if bitrate is None and crf is not None and codec in CRF_CODECS:
        options["crf"] = str(int(crf))
    try:
        with av.open(sink, mode="w", format=container_format, options={"fflags": "+bitexact"}) as container:
            # The stubs type a codec given as a plain str as any stream kind; encode_video passes a video encoder.
            stream = cast("VideoStream", container.add_stream(codec, rate=Fraction(int(fps), 1), options=options))
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            stream.codec_context.thread_count = 1
            stream.codec_context.flags |= av.codec.context.Flags.bitexact
            if bitrate is not None:
                stream.bit_rate = int(bitrate)
            stream.codec_context.time_base = Fraction(1, int(fps))
            for i in range(t):
                # converted here with one swscale thread (the encoder's own conversion uses several, and then the
                # YUV planes, so the bytes, depend on scheduling under CPU load)
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24").reformat(format=pix_fmt, threads=1)
                frame.pts = i
                frame.time_base = Fraction(1, int(fps))
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise SeeClearError(f"cannot encode {t} frames of {h}x{w} with codec {codec!r} / pix_fmt {pix_fmt!r} into "
                            f"{container_format} ({exc}); check the codec name, pix_fmt and bitrate") from exc


def _validate_codec(codec: str, pix_fmt: str, fps: int, bitrate: int | None) -> None:
    import av

    if codec not in av.codecs_available:
        raise SeeClearError(f"codec {codec!r} is not available in this FFmpeg build; try 'libx264', 'mpeg4' or 'ffv1'")
    if int(fps) != fps or fps < 1:
        raise SeeClearError(f"fps must be a positive integer, got {fps!r}")
    if bitrate is not None and bitrate <= 0:
        raise SeeClearError(f"bitrate must be a positive number of bits per second, got {bitrate!r}")
    try:
        av.VideoFormat(pix_fmt)
    except (ValueError, av.FFmpegError) as exc:
        raise SeeClearError(f"unknown pix_fmt {pix_fmt!r}; use e.g. 'yuv420p' or 'yuv444p'") from exc
    try:
        supported = [f.name for f in (av.codec.Codec(codec, "w").video_formats or ())]
    except (ValueError, av.FFmpegError) as exc:
        raise SeeClearError(f"codec {codec!r} has no encoder in this FFmpeg build; try 'libx264' or 'mpeg4'") from exc
    if supported and pix_fmt not in supported:
        raise SeeClearError(f"codec {codec!r} cannot store pix_fmt {pix_fmt!r}; it supports {supported[:8]}")


def encode_video(
    frames: np.ndarray,
    url: str,
    *,
    codec: str = "libx264",
    fps: int = 25,
    crf: int | None = 18,
    bitrate: int | None = None,
    pix_fmt: str = "yuv420p",
) -> None:
    """Encode frames to an mp4 or mkv file, written atomically (the file appears only when complete).

    Args:
        frames: ``(t h w 3)`` uint8 RGB.
        url: destination; the extension picks the container (``.mp4`` or ``.mkv``).
        codec: FFmpeg encoder name (``libx264``, ``libx265``, ``mpeg4``, ``ffv1`` ...).
        fps: frame rate (integer frames per second).
        crf: constant rate factor, used by CRF codecs (x264/x265/VP9/AV1) when ``bitrate`` is None.
        bitrate: target bits per second; takes precedence over ``crf`` when given.
        pix_fmt: stored pixel format; 4:2:0 formats need even height and width.

    Raises:
        SeeClearError: bad frames, extension, codec, pix_fmt, odd size for 4:2:0, or an encoder failure.
    """
    arr = _check_frames(frames, "encode_video")
    ext = "." + io.basename(url).rsplit(".", 1)[-1].lower() if "." in io.basename(url) else ""
    if ext not in CONTAINER_FORMATS:
        raise SeeClearError(f"encode_video writes {sorted(CONTAINER_FORMATS)} files, got {url!r}; rename it")
    _validate_codec(codec, pix_fmt, fps, bitrate)
    _, h, w, _ = arr.shape
    if pix_fmt in _SUBSAMPLED_420 and (h % 2 or w % 2):
        raise SeeClearError(f"pix_fmt {pix_fmt!r} needs even frame sizes, got {h}x{w}; "
                            "crop the frames or use 'yuv444p'")
    buf = _stdio.BytesIO()
    _encode_to(buf, arr, container_format=CONTAINER_FORMATS[ext], codec=codec, fps=fps, crf=crf,
               bitrate=bitrate, pix_fmt=pix_fmt)
    with io.atomic_open(url) as f:
        f.write(buf.getvalue())


def encode_bytes(
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    bitrate: int | None = None,
    crf: int | None = None,
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    container_format: str = "mp4",
    reproducible: bool = False,
) -> bytes:
    """Encode ``(t h w 3)`` uint8 frames (even sizes for 4:2:0) into an in-memory container.

    With ``reproducible`` the bytes depend on the input alone, whatever this process encoded before (x264 runs
    without macroblock-tree rate control); degradations use it, so a test set can be rebuilt byte for byte.
    """
    arr = _check_frames(frames, "encode_bytes")
    _validate_codec(codec, pix_fmt, fps, bitrate)
    buf = _stdio.BytesIO()
    _encode_to(buf, arr, container_format=container_format, codec=codec, fps=fps, crf=crf, bitrate=bitrate,
               pix_fmt=pix_fmt, reproducible=reproducible)
    return buf.getvalue()


def _decode_bytes(data: bytes) -> np.ndarray:
    import av

    with av.open(_stdio.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        return np.stack([f.to_ndarray(format="rgb24", threads=1) for f in container.decode(stream)])


def codec_roundtrip(
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    bitrate: int,
    fps: int = 25,
    pix_fmt: str = "yuv420p",
) -> np.ndarray:
    """Compress frames with a lossy video codec in memory and decode them back (the codec artefacts).

    Odd frame sizes are padded by edge replication to even for 4:2:0 formats and cropped back afterwards.
    Encoding is single-threaded with bit-exact flags and (x264) no macroblock-tree rate control, and colour conversion
    uses one thread, so the same input gives the same bytes and frames whatever ran before in the process.

    Args:
        frames: ``(t h w 3)`` uint8 RGB.
        codec: FFmpeg encoder (``libx264``, ``mpeg4`` ...).
        bitrate: target bits per second.
        fps: frame rate the rate control assumes.
        pix_fmt: pixel format inside the codec.

    Returns:
        ``(t h w 3)`` uint8 RGB, same shape as ``frames``.

    Raises:
        SeeClearError: bad frames or codec settings, or the decoder returned a different frame count.
    """
    arr = _check_frames(frames, "codec_roundtrip")
    t, h, w, _ = arr.shape
    pad_h, pad_w = (h % 2, w % 2) if pix_fmt in _SUBSAMPLED_420 else (0, 0)
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    data = encode_bytes(arr, codec=codec, bitrate=bitrate, fps=fps, pix_fmt=pix_fmt, reproducible=True)
    out = _decode_bytes(data)
    if out.shape != arr.shape:
        raise SeeClearError(f"codec {codec!r} round-trip returned {out.shape} for input {arr.shape}; "
                            "try another codec or a higher bitrate")
    return np.ascontiguousarray(out[:, :h, :w])
