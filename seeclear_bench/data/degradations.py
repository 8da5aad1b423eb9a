"""Seeded LR-from-HR degradations: BI (MATLAB bicubic), BD (DUF Gaussian blur-down) and a realistic video recipe.

This module owns the degradation recipes and their randomness. Every random choice comes from
:func:`clip_rng` (seed, clip id), so a clip's LR frames are byte-identical on any machine and with any number of
workers, and every choice is recorded in :attr:`Degraded.params` (JSON-serialisable) next to the frames.
It must not import ray, torch or webdataset; PyAV is imported lazily through :mod:`seeclear_bench.data.video`.

Conventions (see CONVENTIONS.md, "BI" and "BD"):
    * BI: modcrop to a multiple of ``scale``, MATLAB ``imresize(im2double(hr), 1/scale, 'bicubic')`` (antialiased),
      rounded half up to uint8. This is what BasicSR's MATLAB scripts produce (up to .5 ties at the 1e-5 level).
    * BD: BasicSR ``duf_downsample``: a 13x13 Gaussian, sigma = 0.4 * scale, built as scipy's ``gaussian_filter``
      of a centred delta (so truncated at radius ``int(4 sigma + 0.5)``), reflect padding of ``6 + 2 scale``, a
      stride-``scale`` convolution, then a 2-px trim on each side. The padded length ``H + 12 + 4s`` gives
      ``H/s + 4`` outputs, and the trim leaves exactly ``H/s``: LR pixel ``j`` is the blurred HR value at ``j * s``
      (top-left aligned, not centred). We compute that directly: blur taps at ``j*s - 6 .. j*s + 6`` with mirror
      (reflect-101, torch ``'reflect'``) boundaries, in float64 on 0..255 values, rounded half up to uint8.
    * realistic: blur -> resize -> noise -> JPEG -> video codec, RealBasicVSR-style (:class:`RealisticParams`).
"""
from __future__ import annotations

import dataclasses
import io as _stdio
import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from seeclear_bench.data.imresize import imresize, resize_along_axis
from seeclear_bench.errors import SeeClearError, did_you_mean

DegradationKind = Literal["bicubic", "blur-downsample", "realistic"]
KINDS: Final = ("bicubic", "blur-downsample", "realistic")
RESIZE_MODES: Final = ("area", "bilinear", "bicubic")
CODECS: Final = ("libx264", "libx265", "mpeg4")
BD_KERNEL_SIZE: Final = 13


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """The random generator of one clip: PCG64 seeded from ``(seed, first 8 bytes of sha256(clip_id))``.

    Independent of the machine, the process and the number of workers; different clip ids give independent streams.
    """
    from seeclear_bench.seeds import named_rng

    if not isinstance(clip_id, str) or not clip_id:
        raise SeeClearError(f"clip_id must be a non-empty string, got {clip_id!r}")
    return named_rng(seed, clip_id)


def modcrop(clip: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so that height and width are multiples of ``scale``.

    Args:
        clip: ``(t h w c)`` or ``(h w c)``.
        scale: positive integer.

    Returns:
        A view ``(t h' w' c)`` / ``(h' w' c)`` with ``h' = h - h % scale``, ``w' = w - w % scale``.
    """
    if clip.ndim not in (3, 4):
        raise SeeClearError(f"modcrop expects (t h w c) or (h w c), got shape {clip.shape}")
    h, w = clip.shape[-3], clip.shape[-2]
    if h < scale or w < scale:
        raise SeeClearError(f"frames {h}x{w} are smaller than scale {scale}; nothing is left after cropping")
    return clip[..., : h - h % scale, : w - w % scale, :]


@dataclass(frozen=True, kw_only=True)
class RealisticParams:
    """Ranges of the realistic recipe (RealBasicVSR-style, one order of degradation plus a video codec).

    Ranges are ``(low, high)`` and sampled uniformly. Values marked "drifts" are drawn once per clip and then follow
    a clipped random walk with steps of at most ``drift * (high - low)`` per frame (smooth over time, as in
    RealBasicVSR's per-frame steps); everything else is one choice per clip.
    """

    blur_prob: float = 1.0
    blur_kernel_size_range: tuple[int, int] = (7, 21)  # odd sizes only
    blur_isotropic_prob: float = 0.5
    blur_sigma_range: tuple[float, float] = (0.2, 3.0)  # HR pixels; drifts (both axes and the rotation)
    # The HR frame is first resized to resize_factor x the LR size with one mode, then to the LR size with another.
    resize_factor_range: tuple[float, float] = (0.5, 1.5)
    resize_modes: tuple[str, ...] = RESIZE_MODES
    noise_prob: float = 1.0
    gaussian_noise_prob: float = 0.5  # otherwise Poisson
    gaussian_sigma_range: tuple[float, float] = (1.0, 30.0)  # in 0..255 levels; drifts
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)  # drifts
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_quality_range: tuple[int, int] = (30, 95)  # drifts
    codec_prob: float = 1.0
    codecs: tuple[str, ...] = ("libx264", "mpeg4")
    # Bit rate = bpp * h_lr * w_lr * fps. RealBasicVSR's 1e4..1e5 bit/s on 64x64 patches at 25 fps is 0.1..1 bpp.
    codec_bpp_range: tuple[float, float] = (0.1, 1.0)
    fps: int = 25
    drift: float = 0.05

    def __post_init__(self) -> None:
        for name in ("blur_prob", "blur_isotropic_prob", "noise_prob", "gaussian_noise_prob", "gray_noise_prob",
                     "jpeg_prob", "codec_prob", "drift"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SeeClearError(f"realistic.{name} must lie in [0, 1], got {value!r}")
        for name, floor in (("blur_kernel_size_range", 3), ("blur_sigma_range", 1e-6), ("resize_factor_range", 1e-3),
                            ("gaussian_sigma_range", 0.0), ("poisson_scale_range", 0.0), ("jpeg_quality_range", 1),
                            ("codec_bpp_range", 1e-4)):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not floor <= lo_hi[0] <= lo_hi[1]:
                raise SeeClearError(f"realistic.{name} must be (low, high) with {floor} <= low <= high, got {lo_hi!r}")
        if self.blur_kernel_size_range[0] % 2 == 0 or self.blur_kernel_size_range[1] % 2 == 0:
            raise SeeClearError("realistic.blur_kernel_size_range must hold odd sizes, "
                                f"got {self.blur_kernel_size_range}")
        if self.jpeg_quality_range[1] > 100:
            raise SeeClearError(f"realistic.jpeg_quality_range must lie in [1, 100], got {self.jpeg_quality_range}")
        for name, allowed in (("resize_modes", RESIZE_MODES), ("codecs", CODECS)):
            chosen = getattr(self, name)
            if not chosen:
                raise SeeClearError(f"realistic.{name} must name at least one of {list(allowed)}, got none")
            for item in chosen:
                if item not in allowed:
                    raise SeeClearError(f"realistic.{name} entries must be in {list(allowed)}, got {item!r}"
                                        f"{did_you_mean(str(item), allowed)}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or self.fps < 1:
            raise SeeClearError(f"realistic.fps must be a positive integer, got {self.fps!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, eq=False)
class Degraded:
    """One degraded clip.

    Attributes:
        lr: ``(t h/s w/s 3)`` uint8 RGB.
        hr: ``(t h w 3)`` uint8 RGB, modcropped to a multiple of the scale when needed.
        params: JSON-serialisable record of the recipe and of every random choice made.
    """

    lr: np.ndarray
    hr: np.ndarray
    params: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _to_uint8(x: np.ndarray, peak: float) -> np.ndarray:
    return np.clip(np.floor(x * (255.0 / peak) + 0.5), 0, 255).astype(np.uint8)


def _bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    # One frame at a time keeps float64 memory at one frame (a 100-frame 720p clip would need 2 GB at once).
    return np.stack([_to_uint8(imresize(frame / 255.0, 1.0 / scale), 1.0) for frame in hr])


def bd_kernel_1d(scale: int) -> np.ndarray:
    """The 1-D factor of BasicSR's 13x13 BD kernel (``gaussian_filter`` of a delta, sigma = 0.4 * scale)."""
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((BD_KERNEL_SIZE, BD_KERNEL_SIZE))
    delta[BD_KERNEL_SIZE // 2, BD_KERNEL_SIZE // 2] = 1.0
    kernel = gaussian_filter(delta, 0.4 * scale)
    return kernel.sum(axis=1)  # separable and summing to one, so the marginal is the 1-D factor


def _bd_matrix(in_len: int, scale: int) -> Any:
    # Row j holds the 13 taps centred on HR pixel j * scale, mirrored (reflect-101) at the borders.
    from scipy import sparse

    out_len = in_len // scale
    taps = bd_kernel_1d(scale)
    half = BD_KERNEL_SIZE // 2
    pos = np.arange(out_len)[:, None] * scale + np.arange(-half, half + 1)[None, :]
    period = max(2 * (in_len - 1), 1)
    pos = np.mod(pos, period)
    pos = np.where(pos < in_len, pos, period - pos)
    rows = np.repeat(np.arange(out_len), BD_KERNEL_SIZE)
    return sparse.coo_array((np.tile(taps, out_len), (rows, pos.ravel())), shape=(out_len, in_len)).tocsr()


def _blur_downsample(hr: np.ndarray, scale: int) -> np.ndarray:
    if scale not in (2, 3, 4):
        raise SeeClearError(f"blur-downsample (BD) is defined for scale 2, 3 or 4 (sigma = 0.4 * scale on a 13x13 "
                            f"kernel), got {scale}; use kind='bicubic' or 'realistic' for other scales")
    _, h, w, _ = hr.shape
    mat_h, mat_w = _bd_matrix(h, scale), _bd_matrix(w, scale)
    return np.stack([_to_uint8(resize_along_axis(resize_along_axis(f.astype(np.float64), 0, mat_h), 1, mat_w), 255.0)
                     for f in hr])


# ---------------------------------------------------------------------------------------------- realistic recipe


def _drift_series(rng: np.random.Generator, lo_hi: tuple[float, float], n: int, drift: float) -> np.ndarray:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    values = np.empty(n)
    values[0] = rng.uniform(lo, hi)
    steps = rng.uniform(-1.0, 1.0, size=n - 1) * drift * (hi - lo)
    for i in range(1, n):
        values[i] = min(max(values[i - 1] + steps[i - 1], lo), hi)
    return values


def _gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    r = size // 2
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy  # coordinates along the rotated principal axes
    kernel = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return kernel / kernel.sum()


def _blur(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    r = kernel.shape[0] // 2
    padded = np.pad(frame, ((r, r), (r, r), (0, 0)), mode="reflect")
    return fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1))


def _resize_mode(frame: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    # area = box average over each output pixel's footprint; bilinear/bicubic without antialiasing, like
    # cv2 / torch interpolate, so shrinking aliases as real pipelines do.
    match mode:
        case "area":
            return imresize(frame, output_shape=size, kernel="box", antialiasing=True)
        case "bilinear":
            return imresize(frame, output_shape=size, kernel="bilinear", antialiasing=False)
        case "bicubic":
            return imresize(frame, output_shape=size, kernel="bicubic", antialiasing=False)
    raise AssertionError(mode)


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = _stdio.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=int(quality), optimize=False)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def _draw_realistic(rng: np.random.Generator, cfg: RealisticParams, t: int, lr_hw: tuple[int, int]) -> dict[str, Any]:
    """Draw every per-clip and per-frame choice, in a fixed order, before any pixel work."""
    rec: dict[str, Any] = {}
    if rng.random() < cfg.blur_prob:
        lo, hi = cfg.blur_kernel_size_range
        size = int(rng.choice(np.arange(lo, hi + 1, 2)))
        isotropic = bool(rng.random() < cfg.blur_isotropic_prob)
        sigma_x = _drift_series(rng, cfg.blur_sigma_range, t, cfg.drift)
        sigma_y = sigma_x if isotropic else _drift_series(rng, cfg.blur_sigma_range, t, cfg.drift)
        theta = np.zeros(t) if isotropic else _drift_series(rng, (-math.pi, math.pi), t, cfg.drift)
        rec["blur"] = {"kernel_size": size, "isotropic": isotropic, "sigma_x": sigma_x, "sigma_y": sigma_y,
                       "theta": theta}
    else:
        rec["blur"] = None
    factor = float(rng.uniform(*cfg.resize_factor_range))
    mid = (max(1, round(lr_hw[0] * factor)), max(1, round(lr_hw[1] * factor)))
    rec["resize"] = {"factor": factor, "intermediate_size": list(mid),
                     "mode": str(rng.choice(cfg.resize_modes)), "final_mode": str(rng.choice(cfg.resize_modes))}
    if rng.random() < cfg.noise_prob:
        gaussian = bool(rng.random() < cfg.gaussian_noise_prob)
        gray = bool(rng.random() < cfg.gray_noise_prob)
        if gaussian:
            rec["noise"] = {"type": "gaussian", "gray": gray,
                            "sigma": _drift_series(rng, cfg.gaussian_sigma_range, t, cfg.drift)}
        else:
            rec["noise"] = {"type": "poisson", "gray": gray,
                            "scale": _drift_series(rng, cfg.poisson_scale_range, t, cfg.drift)}
    else:
        rec["noise"] = None
    if rng.random() < cfg.jpeg_prob:
        quality = np.rint(_drift_series(rng, cfg.jpeg_quality_range, t, cfg.drift)).astype(int)
        rec["jpeg"] = {"quality": quality}
    else:
        rec["jpeg"] = None
    if rng.random() < cfg.codec_prob:
        bpp = float(rng.uniform(*cfg.codec_bpp_range))
        rec["codec"] = {"codec": str(rng.choice(cfg.codecs)), "bpp": bpp, "fps": cfg.fps,
                        "bitrate": max(1000, int(round(bpp * lr_hw[0] * lr_hw[1] * cfg.fps)))}
    else:
        rec["codec"] = None
    return rec


def _add_noise(frame: np.ndarray, noise: dict[str, Any], i: int, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = frame.shape
    if noise["type"] == "gaussian":
        shape = (h, w, 1) if noise["gray"] else (h, w, 3)
        return frame + rng.standard_normal(shape) * (noise["sigma"][i] / 255.0)
    # Poisson (shot) noise at 255 photon levels per unit intensity, scaled, as Real-ESRGAN does.
    base = np.clip(frame, 0.0, 1.0)
    if noise["gray"]:
        base = (base @ np.array([0.299, 0.587, 0.114]))[:, :, None]
    shot = rng.poisson(base * 255.0) / 255.0 - base
    return frame + shot * noise["scale"][i]


def _realistic(hr: np.ndarray, scale: int, rng: np.random.Generator, cfg: RealisticParams) -> tuple[np.ndarray, dict]:
    from seeclear_bench.data.video import codec_roundtrip

    t, h, w, _ = hr.shape
    lr_hw = (h // scale, w // scale)
    rec = _draw_realistic(rng, cfg, t, lr_hw)
    blur, resize, noise, jpeg, codec = rec["blur"], rec["resize"], rec["noise"], rec["jpeg"], rec["codec"]
    lr = np.empty((t, *lr_hw, 3), dtype=np.uint8)
    for i in range(t):
        x = hr[i] / 255.0
        if blur is not None:
            kernel = _gaussian_kernel(blur["kernel_size"], blur["sigma_x"][i], blur["sigma_y"][i], blur["theta"][i])
            x = _blur(x, kernel)
        x = _resize_mode(x, tuple(resize["intermediate_size"]), resize["mode"])
        if tuple(resize["intermediate_size"]) != lr_hw:
            x = _resize_mode(x, lr_hw, resize["final_mode"])
        if noise is not None:
            x = _add_noise(x, noise, i, rng)
        frame = _to_uint8(x, 1.0)
        if jpeg is not None:
            frame = _jpeg(frame, jpeg["quality"][i])
        lr[i] = frame
    if codec is not None:
        lr = codec_roundtrip(lr, codec=codec["codec"], bitrate=codec["bitrate"], fps=codec["fps"])
    if tuple(resize["intermediate_size"]) == lr_hw:
        resize["final_mode"] = None  # drawn but not applied: no second resize was needed
    return lr, rec


def degrade_clip(
    hr: np.ndarray,
    *,
    kind: DegradationKind,
    scale: int,
    seed: int,
    clip_id: str,
    on_indivisible: Literal["crop", "error"] = "crop",
    realistic: RealisticParams | None = None,
    dataset: str = "",
) -> Degraded:
    """Make the LR clip of an HR clip with a named, seeded recipe.

    Args:
        hr: ``(t h w 3)`` uint8 RGB.
        kind: ``"bicubic"`` (BI), ``"blur-downsample"`` (BD, scale 2-4) or ``"realistic"``.
        scale: integer downscaling factor.
        seed: non-negative dataset seed; with ``clip_id`` it fixes every random choice.
        clip_id: stable clip identifier (e.g. ``"REDS/000"``).
        on_indivisible: ``"crop"`` modcrops HR (recorded as ``cropped_from``); ``"error"`` raises.
        realistic: ranges for ``kind="realistic"`` (default :class:`RealisticParams`).
        dataset: name of the clip's dataset, used only to say which clip an error is about (it changes neither the
            random choices nor ``params``).

    Returns:
        :class:`Degraded` with ``lr`` ``(t h/s w/s 3)`` uint8, the (possibly cropped) ``hr`` and ``params``.

    Raises:
        SeeClearError: bad input, kind or scale; frames smaller than the scale (naming the dataset and clip); or an
            indivisible size with ``on_indivisible="error"``.
    """
    if kind not in KINDS:
        raise SeeClearError(f"kind must be one of {list(KINDS)}, got {kind!r}{did_you_mean(str(kind), KINDS)}")
    if on_indivisible not in ("crop", "error"):
        raise SeeClearError(f"on_indivisible must be 'crop' or 'error', got {on_indivisible!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise SeeClearError(f"scale must be a positive integer, got {scale!r}")
    if realistic is not None and kind != "realistic":
        raise SeeClearError(f"realistic parameters only apply to kind='realistic', got kind={kind!r}; drop them")
    arr = np.asarray(hr)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or arr.shape[0] < 1:
        raise SeeClearError(f"hr must be (t h w 3) uint8 with t >= 1, got shape {arr.shape} dtype {arr.dtype}")
    scale = int(scale)
    rng = clip_rng(seed, clip_id)
    t, h0, w0, _ = arr.shape
    where = f"dataset {dataset}, clip {clip_id}" if dataset else f"clip {clip_id}"
    if h0 < scale or w0 < scale:  # checked first: cropping to a multiple of the scale would leave nothing
        raise SeeClearError(
            f"{where}: frames are {h0}x{w0} (h x w), smaller than the scale {scale}, so no LR pixel can be made; "
            "leave the clip out (data.sources clips) or lower degrade.scale"
        )
    cropped_from = None
    if h0 % scale or w0 % scale:
        if on_indivisible == "error":
            raise SeeClearError(f"{where}: HR frames {h0}x{w0} are not divisible by scale {scale}; crop them to "
                                f"{h0 - h0 % scale}x{w0 - w0 % scale} or pass on_indivisible='crop'")
        arr = np.ascontiguousarray(modcrop(arr, scale))
        cropped_from = [h0, w0]
    params: dict[str, Any] = {"kind": kind, "scale": scale, "seed": int(seed), "clip_id": clip_id,
                              "cropped_from": cropped_from, "hr_shape": list(arr.shape[:3])}
    match kind:
        case "bicubic":
            lr = _bicubic(arr, scale)
            params["method"] = "matlab-imresize-bicubic-antialias"
        case "blur-downsample":
            lr = _blur_downsample(arr, scale)
            params.update(method="basicsr-duf-downsample", kernel_size=BD_KERNEL_SIZE, sigma=0.4 * scale)
        case "realistic":
            cfg = realistic or RealisticParams()
            lr, rec = _realistic(arr, scale, rng, cfg)
            params.update(ranges=cfg.to_dict(), **rec)
    params["lr_shape"] = list(lr.shape[:3])
    return Degraded(lr=lr, hr=arr, params=_jsonable(params))
