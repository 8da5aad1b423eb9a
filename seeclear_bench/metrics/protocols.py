"""Scoring protocols: every choice that changes a fidelity number, frozen, named and hashed.

A :class:`Protocol` pins the colour channel (RGB or BT.601 limited-range Y), the border crop, the rounding of
predictions, the data range, which frames of a clip are scored, how per-frame values are aggregated and what happens
to the infinite PSNR of identical frames. Every results row carries the protocol's name and :attr:`Protocol.hash`,
so two numbers computed under different conventions can never be averaged or ranked together silently.

This module imports only the standard library and ``seeclear_bench.errors``; it must stay importable without torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from seeclear_bench.errors import SeeClearError, did_you_mean

Channel = Literal["rgb", "y"]
Rounding = Literal["uint8"]
FrameSelection = Literal["all", "center"]
Aggregation = Literal["clip-mean", "frame-mean"]
CropMode = Literal["border", "teco-32"]
InfPolicy = Literal["cap", "exclude"]

HASH_CHARS: Final = 12
# Fields added after the first presets were published, with their defaults: at the default they stay out of the hash.
_LATER_FIELDS: Final[dict[str, Any]] = {"crop": "border"}


def teco_crop_box(h: int, w: int) -> tuple[int, int, int, int]:
    """TecoGAN's ``crop_8x8`` box ``(top, left, height, width)``: the largest multiple of 32 that is ``<= size - 16``
    on each axis, centred (the odd pixel on the far side)."""
    ch, cw = 32 * ((h - 16) // 32), 32 * ((w - 16) // 32)
    if ch <= 0 or cw <= 0:
        raise SeeClearError(f"TecoGAN's crop needs frames of at least 48x48, got {h}x{w}")
    return (h - ch) // 2, (w - cw) // 2, ch, cw


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """Everything that changes a PSNR/SSIM number, fixed in one frozen record.

    Attributes:
        name: Short identifier stored in every results row, e.g. ``"basicsr-reds4-rgb"``.
        channel: ``"rgb"`` scores the three channels (SSIM averages them). ``"y"`` scores the BT.601 *limited-range*
            luma of MATLAB ``rgb2ycbcr``: ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1], so Y lies
            in [16, 235]. Y is computed in float64 and NOT rounded, which is what BasicSR's
            ``bgr2ycbcr(img, y_only=True)`` does on float input (BasicSR works in float32 there; the float64 values
            differ from it by float32 rounding only, well below 1e-4 dB). This is *not* pyiqa's default full-range Y
            (``0.299 R + 0.587 G + 0.114 B``), whose PSNR is 20*log10(255/219) ~= 1.32 dB lower on the same images.
        crop_border: Pixels removed from each of the four borders before scoring (0 for VSR, ``scale`` for image SR).
        rounding: ``"uint8"``: predictions are rounded (half to even, as numpy/torch ``round``) to the uint8 grid before
            scoring, as BasicSR's ``tensor2img`` does; ground truth frames are already uint8.
        data_range: Peak value of the pixel scale; only 255 (uint8) is supported.
        frame_selection: ``"all"`` scores every frame; ``"center"`` scores only frame ``t // 2`` of each clip
            (the Vimeo-90K-T convention: the 4th of 7 frames).
        aggregation: ``"clip-mean"``: mean over frames within each clip, then mean over clips (BasicSR, mmagic).
            ``"frame-mean"``: mean over all frames of the dataset pooled together (TecoGAN's FrameAvg).
        inf_policy: What a mean does with the infinite PSNR of a frame identical to its ground truth. ``"cap"``
            replaces it by ``psnr_cap`` before averaging; ``"exclude"`` leaves it out. Either way the per-frame table
            keeps ``inf`` and the count of infinite frames is reported next to each mean, so a mean is never
            silently ``inf`` or ``NaN``.
        psnr_cap: The value (dB) an infinite PSNR counts as under ``inf_policy="cap"``.
        crop: ``"border"`` removes ``crop_border`` pixels from each side; ``"teco-32"`` keeps TecoGAN's centre box
            (:func:`teco_crop_box`: the largest multiple of 32 leaving at least 8 px per side), as TecoGAN's
            ``metrics.py`` crops before PSNR, SSIM, LPIPS and tOF. Added after the first presets: it enters the
            hash only when it differs from ``"border"``, so earlier protocol hashes stay valid.
    """

    name: str
    channel: Channel
    crop_border: int = 0
    rounding: Rounding = "uint8"
    data_range: int = 255
    frame_selection: FrameSelection = "all"
    aggregation: Aggregation = "clip-mean"
    inf_policy: InfPolicy = "cap"
    psnr_cap: float = 100.0
    crop: CropMode = "border"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SeeClearError(f"protocol.name must be a non-empty string, got {self.name!r}")
        for field, literal in (
            ("channel", Channel),
            ("rounding", Rounding),
            ("frame_selection", FrameSelection),
            ("aggregation", Aggregation),
            ("inf_policy", InfPolicy),
            ("crop", CropMode),
        ):
            value = getattr(self, field)
            allowed = get_args(literal)
            if value not in allowed:
                raise SeeClearError(
                    f"protocol {self.name!r}: {field} must be one of {list(allowed)}, got {value!r}"
                    f"{did_you_mean(str(value), allowed)}"
                )
        if isinstance(self.crop_border, bool) or not isinstance(self.crop_border, int) or self.crop_border < 0:
            raise SeeClearError(f"protocol {self.name!r}: crop_border must be an int >= 0, got {self.crop_border!r}")
        if isinstance(self.data_range, bool) or self.data_range != 255:
            raise SeeClearError(
                f"protocol {self.name!r}: data_range must be 255 (frames are uint8), got {self.data_range!r}"
            )
        if isinstance(self.psnr_cap, bool) or not isinstance(self.psnr_cap, (int, float)) or not (
            math.isfinite(self.psnr_cap) and self.psnr_cap > 0
        ):
            raise SeeClearError(f"protocol {self.name!r}: psnr_cap must be a finite number > 0, got {self.psnr_cap!r}")
        # Normalise so that psnr_cap=100 and psnr_cap=100.0 hash identically.
        object.__setattr__(self, "data_range", int(self.data_range))
        object.__setattr__(self, "psnr_cap", float(self.psnr_cap))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain JSON-serialisable dict (field order as declared)."""
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """First 12 hex digits of the sha256 of the canonical JSON of all fields (sorted keys, no spaces)."""
        fields = {k: v for k, v in self.to_dict().items() if not (k in _LATER_FIELDS and v == _LATER_FIELDS[k])}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_CHARS]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Rebuild a protocol from :meth:`to_dict` output; unknown keys raise with a close-match hint."""
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in fields:
                raise SeeClearError(f"unknown protocol field {key!r}; expected some of {fields}{did_you_mean(str(key), fields)}")
        return cls(**dict(data))

    def frame_indices(self, n_frames: int) -> list[int]:
        """Indices of the frames of an ``n_frames``-long clip that this protocol scores.

        Args:
            n_frames: Number of frames ``t`` in the clip (>= 1).

        Returns:
            ``[0, ..., t-1]`` for ``"all"``; ``[t // 2]`` for ``"center"``.
        """
        if n_frames < 1:
            raise SeeClearError(f"a clip needs at least one frame to score, got {n_frames}")
        match self.frame_selection:
            case "all":
                return list(range(n_frames))
            case "center":
                return [n_frames // 2]
        raise AssertionError(self.frame_selection)  # unreachable: validated in __post_init__


PROTOCOLS: Final[dict[str, Protocol]] = {
    p.name: p
    for p in (
        # REDS4 is scored on RGB with no border crop (BasicSR test_BasicVSR_REDS.yml, mmagic BasicVSR README).
        Protocol(name="basicsr-reds4-rgb", channel="rgb", crop_border=0),
        # Vid4 / UDM10 are scored on BT.601 limited Y, no crop (BasicSR *_Vimeo90K_BDx4.yml family).
        Protocol(name="basicsr-vid4-y", channel="y", crop_border=0),
        # Vimeo-90K-T scores only the centre (4th) frame of each septuplet, on Y.
        Protocol(name="vimeo90k-t-center-y", channel="y", crop_border=0, frame_selection="center"),
        # Image-SR practice: Y channel with a 4-pixel border shaved (crop = scale at x4; NTIRE'25).
        Protocol(name="image-sr-y-crop4", channel="y", crop_border=4),
        # TecoGAN metrics.py on Vid4: BT.601 Y, centre box of multiples of 32 (>= 8 px border), and both the folder
        # (clip) mean and FrameAvg reported; this preset ranks by the clip mean, teco-vid4-framemean by FrameAvg.
        Protocol(name="teco-vid4", channel="y", crop="teco-32"),
        Protocol(name="teco-vid4-framemean", channel="y", crop="teco-32", aggregation="frame-mean"),
    )
}


def get_protocol(name: str) -> Protocol:
    """Return the preset protocol called ``name``.

    Raises:
        SeeClearError: ``name`` is not a preset; the message lists the presets and the closest match.
    """
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise SeeClearError(
            f"unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}{did_you_mean(str(name).lower(), PROTOCOLS)}"
        ) from None


def resolve_protocol(name: str, protocol_hash: str, extra: Iterable[Protocol] = ()) -> Protocol:
    """Find the protocol a results row names, checking that its hash matches.

    Args:
        name: The row's ``protocol`` value.
        protocol_hash: The row's ``protocol_hash`` value.
        extra: Custom (non-preset) protocols to search besides :data:`PROTOCOLS`.

    Raises:
        SeeClearError: No known protocol has this hash (for instance a preset was changed after the rows were written,
            or a custom protocol was not passed in ``extra``).
    """
    for candidate in (*extra, *PROTOCOLS.values()):
        if candidate.hash == protocol_hash:
            if candidate.name != name:
                raise SeeClearError(
                    f"rows name protocol {name!r} but hash {protocol_hash} belongs to protocol {candidate.name!r}; "
                    "the results file was edited or mislabelled"
                )
            return candidate
    preset = PROTOCOLS.get(name)
    found = f"preset {name!r} now hashes to {preset.hash}" if preset else f"{name!r} is not a preset"
    raise SeeClearError(
        f"rows use protocol {name!r} with hash {protocol_hash}, which no known protocol has ({found}); "
        "pass the custom Protocol explicitly (protocols=[...]) or recompute the rows"
    )
