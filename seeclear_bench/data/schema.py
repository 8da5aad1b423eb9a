"""The on-disk layout of one WebDataset sample: keys, member names and meta.json fields.

One sample is one clip window. Inside a shard tar every member is named ``{key}.{member}``; the key is everything
before the first dot, so keys never contain dots. Members of one sample are contiguous and sorted by name; samples
are in sorted key order::

    reds__000__000000.hr.0000.png  ...  reds__000__000000.hr.0014.png
    reds__000__000000.lr.0000.png  ...  reds__000__000000.lr.0014.png
    reds__000__000000.meta.json

Every other module takes these names from here (no string literals elsewhere). Pure Python: imports nothing heavy.
"""
from __future__ import annotations

import hashlib
import re
from typing import Final

# ---- sample keys -------------------------------------------------------------------------------------------------
KEY_SEPARATOR: Final = "__"
START_DIGITS: Final = 6
KEY_HASH_DIGITS: Final = 8
KEY_ALLOWED: Final = re.compile(r"[A-Za-z0-9_-]+")
_FORBIDDEN: Final = re.compile(r"[^A-Za-z0-9_-]")

# ---- members -----------------------------------------------------------------------------------------------------
HR_FIELD: Final = "hr"
LR_FIELD: Final = "lr"
FRAME_FIELDS: Final = (HR_FIELD, LR_FIELD)
FRAME_EXT: Final = "png"
FRAME_DIGITS: Final = 4
META_MEMBER: Final = "meta.json"
_FRAME_MEMBER: Final = re.compile(rf"^({HR_FIELD}|{LR_FIELD})\.(\d{{{FRAME_DIGITS}}})\.{FRAME_EXT}$")

# ---- meta.json fields written by the shard writer (the caller's meta may not use these names) ---------------------
META_DATASET: Final = "dataset"
META_CLIP: Final = "clip"
META_FRAME_INDICES: Final = "frame_indices"
META_N_FRAMES: Final = "n_frames"
META_LR_SIZE: Final = "lr_size"  # [h, w]
META_HR_SIZE: Final = "hr_size"  # [H, W]
META_SHA256: Final = "sha256"  # {member name: sha256 hex of its PNG bytes}
RESERVED_META_KEYS: Final = frozenset(
    {META_DATASET, META_CLIP, META_FRAME_INDICES, META_N_FRAMES, META_LR_SIZE, META_HR_SIZE, META_SHA256}
)

# ---- WebDataset conventions ----------------------------------------------------------------------------------------
WDS_KEY: Final = "__key__"
WDS_URL: Final = "__url__"

# ---- fields of a decoded sample as the torch and Ray readers yield it (plus LR_FIELD and HR_FIELD) -----------------
ROW_KEY: Final = "key"
ROW_META: Final = "meta"

# ---- shard sets --------------------------------------------------------------------------------------------------
SHARD_EXT: Final = ".tar"
SHARD_PATTERN: Final = "shard-{index:06d}" + SHARD_EXT
MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = "seeclear-shards/1"


def _sanitise(name: str) -> tuple[str, bool]:
    """Replace forbidden characters with ``-``; report whether the result may collide with another name."""
    clean = _FORBIDDEN.sub("-", name)
    # "__" is the field separator and a leading/trailing "_" can merge with it ("a_"+"b" vs "a"+"_b"), so such
    # names are hashed too even though their characters are allowed.
    ambiguous = clean != name or KEY_SEPARATOR in name or name.startswith("_") or name.endswith("_")
    return clean, ambiguous


def sample_key(dataset: str, clip_id: str, start: int) -> str:
    """Return the WebDataset key ``{dataset}__{clip}__{start:06d}`` for one clip window.

    Characters outside ``[A-Za-z0-9_-]`` (dots, slashes, spaces, ...) become ``-``. When anything was replaced, or a
    name could blur the ``__`` separator, a short hash of the original names is appended to the clip part, so
    different (dataset, clip) pairs give different keys.

    Args:
        dataset: Dataset name, e.g. ``"reds"``. Non-empty.
        clip_id: Clip identifier inside the dataset, e.g. ``"000"`` or ``"calendar"``. Non-empty.
        start: Index of the window's first frame in the clip, >= 0.

    Returns:
        A key matching ``[A-Za-z0-9_-]+`` (no dots).

    Raises:
        ValueError: On an empty name or a negative start.
    """
    if not dataset or not clip_id:
        raise ValueError(f"sample_key needs a non-empty dataset and clip id, got {dataset!r}, {clip_id!r}")
    if isinstance(start, bool) or int(start) != start or start < 0:
        raise ValueError(f"sample_key needs a start frame index >= 0, got {start!r}")
    ds, ds_ambiguous = _sanitise(str(dataset))
    clip, clip_ambiguous = _sanitise(str(clip_id))
    if ds_ambiguous or clip_ambiguous:
        digest = hashlib.sha256(f"{dataset}\x00{clip_id}".encode()).hexdigest()[:KEY_HASH_DIGITS]
        clip = f"{clip}-{digest}"
    return f"{ds}{KEY_SEPARATOR}{clip}{KEY_SEPARATOR}{int(start):0{START_DIGITS}d}"


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid sample key (``[A-Za-z0-9_-]+``), else raise ValueError."""
    if not isinstance(key, str) or not KEY_ALLOWED.fullmatch(key):
        raise ValueError(f"sample key must match [A-Za-z0-9_-]+ (no dots), got {key!r}; build it with sample_key()")
    return key


def frame_member(field: str, index: int) -> str:
    """Member name of one frame, e.g. ``frame_member("hr", 3) == "hr.0003.png"``."""
    if field not in FRAME_FIELDS:
        raise ValueError(f"frame field must be one of {FRAME_FIELDS}, got {field!r}")
    if not 0 <= index < 10**FRAME_DIGITS:
        raise ValueError(f"frame index must be in [0, {10**FRAME_DIGITS}), got {index}")
    return f"{field}.{index:0{FRAME_DIGITS}d}.{FRAME_EXT}"


def parse_frame_member(member: str) -> tuple[str, int] | None:
    """Return ``(field, index)`` for a frame member such as ``"lr.0002.png"``, or None for any other name."""
    match = _FRAME_MEMBER.match(member)
    return (match.group(1), int(match.group(2))) if match else None


def tar_name(key: str, member: str) -> str:
    """Name of a member inside the tar: ``{key}.{member}``."""
    return f"{key}.{member}"


def split_tar_name(name: str) -> tuple[str, str]:
    """Split a tar member name into ``(key, member)`` at the first dot of its basename (WebDataset's rule)."""
    directory, _, base = name.rpartition("/")
    key, dot, member = base.partition(".")
    if not dot or not key:
        raise ValueError(f"tar member name must look like '<key>.<member>', got {name!r}")
    return (f"{directory}/{key}" if directory else key), member


def shard_name(index: int) -> str:
    """File name of shard number ``index`` in a shard set, e.g. ``shard-000003.tar``."""
    return SHARD_PATTERN.format(index=index)
