"""WebDataset shards of clip windows: write, verify, read (plain iterator or a torch-ready WebDataset pipeline).

Owns the tar byte layout (deterministic: same samples, same bytes), the per-frame SHA-256 checks, the shard-set
``manifest.json`` (written last, so a set without one is incomplete) and the resume test :func:`shard_is_complete`.
The member names come from :mod:`seeclear_bench.data.schema`. Never imports ray; torch and webdataset are imported
only inside :func:`make_webdataset` and the functions it hands to the pipeline.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io as _pyio
import itertools
import json
import posixpath
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from seeclear_bench import io
from seeclear_bench._pause import pause_point
from seeclear_bench.data import schema
from seeclear_bench.data.frames import decode_frame, encode_png, rgb8_png_size
from seeclear_bench.errors import SeeClearError
from seeclear_bench.names import check_name

if TYPE_CHECKING:
    import webdataset

TAR_MTIME: Final = 0  # fixed member metadata: identical samples give identical tar bytes
TAR_MODE: Final = 0o644
TAR_FORMAT: Final = tarfile.PAX_FORMAT
DEFAULT_SHUFFLE_BUFFER: Final = 64
# zlib level of every frame the writer encodes (LR frames, and HR frames with no source bytes to keep), chosen by
# measurement (issue 13; Pillow 13, zlib 1.2.13, one core of a loaded 2-core machine, medians of 3 over 12 frames of
# bigbuckbunny.mp4, BI x4). Encode time and size per frame by level:
#   HR 1280x720: 1: 60 ms 1167 KiB | 2: 62 ms 1154 KiB | 3: 85 ms 1114 KiB | 4: 104 ms 1110 KiB | 6: 238 ms 1058 KiB
#   LR 320x180:  1: 4.7 ms 112 KiB | 2: 5.1 ms 112 KiB | 3: 6.0 ms 111 KiB | 6: 12.4 ms 107 KiB | 9: 20.6 ms 106 KiB
# Level 1 is 2.6-4x faster than 6 for 5-10% more bytes (7-19% on scikit-image photographs); decoding costs the same.
PNG_COMPRESS_LEVEL: Final = 1
_ZERO_BLOCK: Final = b"\0" * tarfile.BLOCKSIZE
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, eq=False)
class Sample:
    """One clip window: aligned LR and HR frames plus the caller's metadata.

    ``eq`` is off because the fields hold arrays; compare fields explicitly. ``meta`` is normalised to plain JSON types
    at construction (tuples become lists, numpy scalars become Python numbers), so it survives a shard round trip
    unchanged.

    Attributes:
        key: Sample key from :func:`schema.sample_key` (``[A-Za-z0-9_-]+``).
        dataset: Dataset name.
        clip_id: Clip identifier within the dataset.
        frame_indices: Index in the source clip of each of the ``t`` frames.
        lr: Low-resolution frames, ``(t h w 3)`` uint8 RGB.
        hr: High-resolution frames, ``(t H W 3)`` uint8 RGB.
        meta: JSON-serialisable metadata (scale, degradation name and params, seed, spec hash, ...). It may not use
            the names in :data:`schema.RESERVED_META_KEYS`; the writer adds those.
        hr_png: Per HR frame, PNG bytes to store as they are instead of encoding that frame (None: encode it);
            empty: encode every frame. Each must decode (:func:`~seeclear_bench.data.frames.decode_frame`) to exactly
            its ``hr`` frame: the caller guarantees it (:func:`~seeclear_bench.data.frames.is_plain_rgb_png` on the
            bytes the frame was decoded from); the writer checks only that each is an 8-bit RGB PNG of the frame's
            size.
    """

    key: str
    dataset: str
    clip_id: str
    frame_indices: tuple[int, ...]
    lr: np.ndarray
    hr: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    hr_png: tuple[bytes | None, ...] = ()

    def __post_init__(self) -> None:
        schema.check_key(self.key)
        check_name(self.dataset, f"dataset name of sample {self.key}")
        check_name(self.clip_id, f"clip name of sample {self.key}")
        for name, clip in ((schema.LR_FIELD, self.lr), (schema.HR_FIELD, self.hr)):
            if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
                found = f"{clip.dtype} {clip.shape}" if isinstance(clip, np.ndarray) else type(clip).__name__
                raise ValueError(f"sample {self.key}: {name} must be a (t h w 3) uint8 array, got {found}")
        t = self.hr.shape[0]
        if not 1 <= t <= 10**schema.FRAME_DIGITS or self.lr.shape[0] != t:
            raise ValueError(f"sample {self.key}: lr and hr need the same frame count in [1, 10^4], got "
                             f"{self.lr.shape[0]} and {t}")
        indices = tuple(int(i) for i in self.frame_indices)
        if len(indices) != t or any(i < 0 for i in indices):
            raise ValueError(f"sample {self.key}: frame_indices must be {t} non-negative ints, got {self.frame_indices}")
        reserved = sorted(schema.RESERVED_META_KEYS.intersection(self.meta))
        if reserved:
            raise ValueError(f"sample {self.key}: meta may not set {reserved}; the shard writer fills them in")
        hr_png = tuple(self.hr_png)
        if hr_png and len(hr_png) != t:
            raise ValueError(f"sample {self.key}: hr_png must hold {t} entries (bytes or None), got {len(hr_png)}")
        for index, data in enumerate(hr_png):
            if data is not None and (not isinstance(data, bytes)
                                     or rgb8_png_size(data) != (self.hr.shape[1], self.hr.shape[2])):
                raise ValueError(f"sample {self.key}: hr_png[{index}] is not an 8-bit RGB PNG of the frame's size "
                                 f"{self.hr.shape[1]}x{self.hr.shape[2]}")
        object.__setattr__(self, "hr_png", hr_png)
        object.__setattr__(self, "frame_indices", indices)
        object.__setattr__(self, "meta", json.loads(_dump_json(self.meta, where=f"sample {self.key} meta")))

    @classmethod
    def create(
        cls, *, dataset: str, clip_id: str, frame_indices: Sequence[int], lr: np.ndarray, hr: np.ndarray,
        meta: Mapping[str, Any] | None = None, hr_png: Sequence[bytes | None] = (),
    ) -> Sample:
        """Build a sample whose key is ``schema.sample_key(dataset, clip_id, frame_indices[0])``."""
        key = schema.sample_key(dataset, clip_id, int(frame_indices[0]))
        return cls(key=key, dataset=dataset, clip_id=clip_id, frame_indices=tuple(frame_indices), lr=lr, hr=hr,
                   meta=dict(meta or {}), hr_png=tuple(hr_png))


@dataclass(frozen=True)
class ShardInfo:
    """What :func:`write_shard` wrote: enough to list the shard in a manifest and to check it later.

    Attributes:
        url: Where the shard is.
        name: Its file name (the manifest stores names relative to the shard folder).
        n_samples: Number of samples.
        n_bytes: Size of the tar in bytes.
        sha256: SHA-256 hex digest of the tar.
        keys: Sample keys in tar order (sorted).
    """

    url: str
    name: str
    n_samples: int
    n_bytes: int
    sha256: str
    keys: tuple[str, ...]


def shard_info_dict(info: ShardInfo) -> dict[str, Any]:
    """The JSON form of ``info`` as listed in ``manifest.json`` (no URL: the name is relative to the folder)."""
    return {"name": info.name, "n_samples": info.n_samples, "n_bytes": info.n_bytes, "sha256": info.sha256,
            "keys": list(info.keys)}


# -- encoding ---------------------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dump_json(obj: Any, *, where: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be JSON-serialisable (finite numbers, str keys): {exc}") from exc


def encode_sample(sample: Sample) -> dict[str, bytes]:
    """Encode one sample as its tar members (without the key prefix), in tar order.

    Frames become lossless PNG (``hr.0000.png``, ..., ``lr.0000.png``, ...): an HR frame with bytes in
    ``sample.hr_png`` is those bytes unchanged, every other frame is encoded at zlib level :data:`PNG_COMPRESS_LEVEL`.
    ``meta.json`` holds the caller's meta plus ``dataset``, ``clip``, ``frame_indices``, ``n_frames``, ``lr_size``
    ``[h, w]``, ``hr_size`` ``[H, W]`` and ``sha256`` ``{member: hex digest of its PNG bytes}``.

    Args:
        sample: The clip window.

    Returns:
        ``{member name: bytes}``, sorted by member name (``meta.json`` last).
    """
    members: dict[str, bytes] = {}
    for name, clip in ((schema.HR_FIELD, sample.hr), (schema.LR_FIELD, sample.lr)):
        stored = sample.hr_png if name == schema.HR_FIELD else ()
        for index, frame in enumerate(clip):
            data = stored[index] if stored else None
            members[schema.frame_member(name, index)] = (
                data if data is not None else encode_png(frame, compress_level=PNG_COMPRESS_LEVEL))
    meta = dict(sample.meta)
    meta.update({
        schema.META_DATASET: sample.dataset,
        schema.META_CLIP: sample.clip_id,
        schema.META_FRAME_INDICES: list(sample.frame_indices),
        schema.META_N_FRAMES: int(sample.hr.shape[0]),
        schema.META_LR_SIZE: [int(sample.lr.shape[1]), int(sample.lr.shape[2])],
        schema.META_HR_SIZE: [int(sample.hr.shape[1]), int(sample.hr.shape[2])],
        schema.META_SHA256: {name: io.sha256_bytes(data) for name, data in members.items()},
    })
    members[schema.META_MEMBER] = _dump_json(meta, where=f"sample {sample.key} meta").encode("utf-8")
    return dict(sorted(members.items()))


class _HashingWriter:
    """File-like wrapper counting and hashing everything written through it."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.n_bytes, self.digest = raw, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.digest.update(data)
        self.n_bytes += len(data)
        return len(data)

    def tell(self) -> int:
        return self.n_bytes

    def flush(self) -> None:
        self.raw.flush()


def write_shard(url: str, samples: Sequence[Sample]) -> ShardInfo:
    """Write ``samples`` as one WebDataset tar at ``url``, atomically and deterministically.

    Samples go in sorted key order, each sample's members contiguous and sorted by name, every member with fixed
    mtime/uid/gid/owner, so the same samples always give the same bytes.

    Args:
        url: Destination of the tar (any fsspec URL or local path).
        samples: At least one sample; keys must be unique.

    Returns:
        The shard's :class:`ShardInfo`.

    Raises:
        ValueError: On an empty sample list or duplicate keys.
        SeeClearError: If ``url`` cannot be written.
    """
    ordered = sorted(samples, key=lambda s: s.key)
    if not ordered:
        raise ValueError(f"write_shard({url!r}) needs at least one sample")
    keys = [s.key for s in ordered]
    duplicates = sorted({b for a, b in itertools.pairwise(keys) if a == b})
    if duplicates:
        raise ValueError(f"shard {url} would hold duplicate sample keys {duplicates[:3]}")
    with io.atomic_open(url) as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w", format=TAR_FORMAT) as tar:  # type: ignore[call-overload]
            for sample in ordered:
                for member, data in encode_sample(sample).items():
                    info = tarfile.TarInfo(schema.tar_name(sample.key, member))
                    info.size, info.mtime, info.mode = len(data), TAR_MTIME, TAR_MODE
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, _pyio.BytesIO(data))
    pause_point("shard-written")  # test-only: an interrupt test signals the run here (seeclear_bench._pause)
    return ShardInfo(url=url, name=io.basename(url), n_samples=len(ordered), n_bytes=writer.n_bytes,
                     sha256=writer.digest.hexdigest(), keys=tuple(keys))


# -- manifest ---------------------------------------------------------------------------------------------------
def _info_entry(info: ShardInfo | Mapping[str, Any]) -> dict[str, Any]:
    entry = shard_info_dict(info) if isinstance(info, ShardInfo) else dict(info)
    missing = {"name", "n_samples", "n_bytes", "sha256", "keys"} - set(entry)
    if missing:
        raise ValueError(f"shard info {entry.get('name', entry)!r} lacks {sorted(missing)}")
    return {k: entry[k] for k in ("name", "n_samples", "n_bytes", "sha256")} | {"keys": list(entry["keys"])}


def write_manifest(
    dir_url: str, infos: Sequence[ShardInfo | Mapping[str, Any]], *, spec_hash: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write ``manifest.json`` into the shard folder, atomically; call it last, once every shard is written.

    Args:
        dir_url: The folder holding the shards.
        infos: One :class:`ShardInfo` (or its :func:`shard_info_dict`) per shard, all inside ``dir_url``.
        spec_hash: Hash of the spec that produced the shards.
        extra: Further JSON-serialisable provenance, stored under ``"extra"``.

    Returns:
        The manifest's URL.

    Raises:
        ValueError: On duplicate shard names or sample keys across shards, or a shard outside ``dir_url``.
    """
    _, dir_path = io.split(dir_url)
    entries = []
    for info in infos:
        if isinstance(info, ShardInfo):
            _, shard_path = io.split(info.url)
            if posixpath.dirname(shard_path) != dir_path.rstrip("/"):
                raise ValueError(f"shard {info.url} is not inside the manifest folder {dir_url}")
        entries.append(_info_entry(info))
    entries.sort(key=lambda e: e["name"])
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"manifest for {dir_url} lists a shard twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    seen: dict[str, str] = {}
    for entry in entries:
        for key in entry["keys"]:
            if key in seen:
                raise ValueError(f"sample key {key} is in both {seen[key]} and {entry['name']} under {dir_url}")
            seen[key] = entry["name"]
    from seeclear_bench import __version__

    manifest = {
        "format": schema.MANIFEST_FORMAT,
        "seeclear_bench_version": __version__,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "spec_hash": spec_hash,
        "n_shards": len(entries),
        "total_samples": sum(int(e["n_samples"]) for e in entries),
        "total_bytes": sum(int(e["n_bytes"]) for e in entries),
        "shards": entries,
        "extra": json.loads(_dump_json(dict(extra or {}), where="manifest extra")),
    }
    url = io.join(dir_url, schema.MANIFEST_NAME)
    io.write_bytes(url, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return url


def read_manifest(dir_url: str) -> dict[str, Any]:
    """Read the ``manifest.json`` of a shard folder.

    Raises:
        SeeClearError: When it is absent (the shard set is incomplete), unreadable, or of another format.
    """
    url = io.join(dir_url, schema.MANIFEST_NAME)
    if not io.exists(url):
        raise SeeClearError(f"no {schema.MANIFEST_NAME} in {dir_url}: the shard set is incomplete; run prepare again")
    try:
        manifest = json.loads(io.read_bytes(url).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeeClearError(f"{url} is not valid JSON ({exc}); delete it and run prepare again") from exc
    found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
    if found != schema.MANIFEST_FORMAT:
        raise SeeClearError(f"{url} should have format {schema.MANIFEST_FORMAT!r}, found {found!r}; run prepare again")
    return manifest


def shard_is_complete(url: str, info: ShardInfo | Mapping[str, Any]) -> bool:
    """True when the shard at ``url`` exists with the size and SHA-256 recorded in ``info`` (for resuming).

    Args:
        url: Where the shard should be.
        info: Its :class:`ShardInfo`, or the dict form (a manifest entry or :func:`shard_info_dict`).
    """
    n_bytes, digest = (info.n_bytes, info.sha256) if isinstance(info, ShardInfo) else (info["n_bytes"], info["sha256"])
    fs, path = io.split(url)
    if not fs.exists(path) or fs.size(path) != int(n_bytes):
        return False
    return io.sha256_url(url) == digest


# -- reading ----------------------------------------------------------------------------------------------------
class _HashingReader:
    """Read-only file wrapper hashing every byte of the file exactly once, in order, whatever tarfile seeks.

    A forward seek past the bytes hashed so far reads (and hashes) the gap; a backward seek re-reads bytes that are
    not hashed again. After the file is read to its end, :attr:`digest` is the SHA-256 of the whole file.
    """

    def __init__(self, raw: Any) -> None:
        self.raw, self.pos, self.hashed, self.digest = raw, 0, 0, hashlib.sha256()

    def _absorb(self, start: int, data: bytes) -> None:
        if start + len(data) > self.hashed:
            self.digest.update(data[max(0, self.hashed - start):])
            self.hashed = start + len(data)

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self._absorb(self.pos, data)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.pos + offset if whence == 1 else self.raw.seek(offset, whence)
        if target > self.hashed:
            self.raw.seek(self.hashed)
            self.pos = self.hashed
            while self.pos < target and (block := self.raw.read(min(_CHUNK, target - self.pos))):
                self._absorb(self.pos, block)
                self.pos += len(block)
        self.raw.seek(target)
        self.pos = target
        return target

    def tell(self) -> int:
        return self.pos


@dataclass(frozen=True)
class ShardDigest:
    """What a manifest records of one shard, checked while the shard is read: its size and SHA-256."""

    n_bytes: int
    sha256: str


def _iter_members(url: str, expect: ShardDigest | None = None) -> Iterator[tuple[str, str, bytes]]:
    """Yield ``(key, member, data)`` for every regular file of the tar at ``url``, checking the archive's integrity.

    Python's tarfile stops silently at a damaged or missing header; so after the last member the rest of the file must
    be the end-of-archive zero blocks, otherwise the shard is truncated or corrupt. With ``expect``, the whole file's
    SHA-256 is computed as it is read (no second pass) and compared once the file is read to its end: a shard whose
    bytes differ from its manifest raises before the caller's iteration finishes.
    """
    fs, path = io.split(url)
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError as exc:
        raise SeeClearError(f"expected a shard at {url}, found nothing; check the URL or run prepare again") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise SeeClearError(f"cannot read the shard {url}: {exc.__class__.__name__}") from exc
    with handle:
        reader = _HashingReader(handle)
        done: set[str] = set()
        current: str | None = None
        members: set[str] = set()
        try:
            with tarfile.open(fileobj=reader, mode="r:") as tar:  # type: ignore[call-overload]
                while (info := tar.next()) is not None:
                    # tarfile keeps every header otherwise; typeshed omits the (documented-by-use) attribute
                    tar.members.clear()
                    if not info.isfile():
                        continue
                    key, member = schema.split_tar_name(info.name)
                    if key != current:
                        if key in done:
                            raise SeeClearError(f"shard {url}: members of sample {key} are not contiguous; "
                                                "rebuild the tar with members sorted by name")
                        if current is not None:
                            done.add(current)
                        current, members = key, set()
                    if member in members:
                        raise SeeClearError(f"shard {url}: sample {key} has member {member} twice; rebuild the shard")
                    members.add(member)
                    extracted = tar.extractfile(info)
                    assert extracted is not None  # regular file
                    data = extracted.read()
                    if expect is not None and reader.hashed > expect.n_bytes:
                        break  # longer than recorded: reported by the digest check below
                    yield key, member, data
                end = tar.offset
        except (tarfile.TarError, EOFError, ValueError) as exc:
            if isinstance(exc, SeeClearError):
                raise
            if expect is None:
                raise SeeClearError(f"shard {url} is truncated or corrupt ({exc}); delete it and run prepare again") \
                    from exc
            end = -1
        if end >= 0:
            reader.seek(end)
            intact = reader.read(tarfile.BLOCKSIZE) == _ZERO_BLOCK
            while intact and (chunk := reader.read(_CHUNK)):
                intact = chunk.count(0) == len(chunk)
        else:
            intact = False
        if expect is not None:
            while reader.read(_CHUNK):
                pass
            found = reader.digest.hexdigest()
            if found != expect.sha256 or reader.hashed != expect.n_bytes:
                raise SeeClearError(f"shard {url} fails its SHA-256 check: expected {expect.sha256}, found {found} "
                                    f"({reader.hashed} bytes, manifest says {expect.n_bytes}); the shard differs from "
                                    "its manifest: run prepare again")
        if not intact:
            raise SeeClearError(f"shard {url} is truncated or corrupt after byte {end} (no end-of-archive marker); "
                                "delete it and run prepare again")


def _decode_members(url: str, key: str, members: Mapping[str, bytes], *, verify: bool) -> tuple[Sample, dict[str, Any]]:
    """Check and decode one sample's members; returns the sample and the full ``meta.json``."""
    where = f"sample {key} in shard {url}"
    if schema.META_MEMBER not in members:
        raise SeeClearError(f"{where} has no {schema.META_MEMBER}; the shard is incomplete, run prepare again")
    try:
        meta = json.loads(members[schema.META_MEMBER].decode("utf-8"))
        digests: dict[str, str] = meta[schema.META_SHA256]
        n_frames = int(meta[schema.META_N_FRAMES])
        sizes = {schema.LR_FIELD: tuple(meta[schema.META_LR_SIZE]), schema.HR_FIELD: tuple(meta[schema.META_HR_SIZE])}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SeeClearError(f"{where}: {schema.META_MEMBER} is unreadable or lacks a field ({exc!r}); rebuild it") from exc
    expected = {schema.frame_member(name, i) for name in schema.FRAME_FIELDS for i in range(n_frames)}
    found = set(members) - {schema.META_MEMBER}
    if found != expected or set(digests) != expected:
        problem = sorted(expected - found) or sorted(found - expected) or sorted(set(digests) ^ expected)
        raise SeeClearError(f"{where}: expected {n_frames} hr and lr PNG frames, members differ at {problem[:3]}; "
                            "rebuild the shard")
    clips: dict[str, np.ndarray] = {}
    for name in schema.FRAME_FIELDS:
        frames = []
        for index in range(n_frames):
            member = schema.frame_member(name, index)
            data = members[member]
            if verify and (digest := io.sha256_bytes(data)) != digests[member]:
                raise SeeClearError(f"{where}: member {member} fails its sha256 check (expected {digests[member][:12]}…,"
                                    f" found {digest[:12]}…); the shard is corrupt, delete it and run prepare again")
            frame = decode_frame(data, f"{url}#{key}.{member}")
            if frame.shape[:2] != sizes[name]:
                raise SeeClearError(f"{where}: member {member} is {frame.shape[:2]}, meta says {sizes[name]}")
            frames.append(frame)
        clips[name] = np.stack(frames)
    user_meta = {k: v for k, v in meta.items() if k not in schema.RESERVED_META_KEYS}
    sample = Sample(key=key, dataset=meta[schema.META_DATASET], clip_id=meta[schema.META_CLIP],
                    frame_indices=tuple(meta[schema.META_FRAME_INDICES]), lr=clips[schema.LR_FIELD],
                    hr=clips[schema.HR_FIELD], meta=user_meta)
    return sample, meta


def decode_members(url: str, key: str, members: Mapping[str, bytes], *, verify: bool = True) -> Sample:
    """Rebuild a :class:`Sample` from its raw tar members (``{"hr.0000.png": bytes, ..., "meta.json": bytes}``).

    Used by readers that group tar members themselves (WebDataset, Ray Data); ``url`` only names the shard in errors.

    Raises:
        SeeClearError: On a missing member, a failed SHA-256 check (when ``verify``) or an undecodable frame.
    """
    return _decode_members(url, key, members, verify=verify)[0]


def iter_shard(url: str, *, verify: bool = True, expect: ShardDigest | None = None,
               clip: str | None = None) -> Iterator[Sample]:
    """Read the samples of one shard in tar order.

    Args:
        url: The shard (any fsspec URL or local path).
        verify: Check every frame against the SHA-256 recorded in its sample's ``meta.json``.
        expect: The shard's size and SHA-256 from its manifest, checked while the tar streams (the last sample is
            yielded only after the whole file verified). Readers of a shard set go through
            :class:`seeclear_bench.data.shardset.ShardSet`, which passes it.
        clip: Only the samples of this clip are decoded and yielded (the others are still read, and verified).

    Yields:
        Each :class:`Sample`, with ``meta`` as the writer's caller gave it.

    Raises:
        SeeClearError: Naming the shard (and the sample key and member where known) when the tar is missing,
            truncated or corrupt, a sample's members are not contiguous, or a frame fails its check.
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    stream = _iter_members(url, expect)
    for member_key, member, data in stream:
        if member_key != key:
            if key is not None and _wanted(members, clip):
                yield _decode_or_explain(url, key, members, verify, stream)
            key, members = member_key, {}
        members[member] = data
    if key is not None and _wanted(members, clip):
        # the stream is exhausted here, so the whole-file check (``expect``) has passed before the last sample
        yield _decode_or_explain(url, key, members, verify, stream)


def _wanted(members: Mapping[str, bytes], clip: str | None) -> bool:
    """Whether a sample belongs to ``clip`` (None: every sample), read from its meta without decoding frames."""
    if clip is None:
        return True
    try:
        return bool(json.loads(members[schema.META_MEMBER].decode("utf-8")).get(schema.META_CLIP) == clip)
    except (KeyError, UnicodeDecodeError, ValueError, AttributeError):
        return True  # let the decoder report what is wrong with the sample


def _decode_or_explain(url: str, key: str, members: Mapping[str, bytes], verify: bool,
                       stream: Iterator[tuple[str, str, bytes]]) -> Sample:
    try:
        return decode_members(url, key, members, verify=verify)
    except SeeClearError:
        # A sample split across the tar first shows up as missing members; reading on lets the member reader
        # report the real cause (non-contiguous members, truncation) when there is one.
        for _ in stream:
            pass
        raise


# -- WebDataset / torch -------------------------------------------------------------------------------------------
def _fsspec_tar_members(sources: Iterator[dict[str, Any]], *,
                        expect: Mapping[str, ShardDigest] | None = None) -> Iterator[dict[str, Any]]:
    """WebDataset stage: ``{url}`` -> ``{fname, data, __url__}`` per member, then ``{}`` at the end of each shard.

    Stands in for WebDataset's ``url_opener`` + ``tar_file_expander`` (whose ``gopen`` knows no fsspec schemes and
    whose streaming tar reader stops silently at a damaged header) with the checked fsspec reader above; with
    ``expect`` each shard's SHA-256 is checked as it streams.
    """
    for source in sources:
        url = source["url"]
        for key, member, data in _iter_members(url, (expect or {}).get(url)):
            yield {"fname": schema.tar_name(key, member), "data": data, schema.WDS_URL: url}
        yield {}


def _group_members(members: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """WebDataset stage: ``group_by_keys`` with our key rule (first dot of the basename), suffixes kept as written."""
    from webdataset.tariterators import group_by_keys

    yield from group_by_keys(members, keys=schema.split_tar_name, lcase=False)


def _to_torch(raw: dict[str, Any], *, verify: bool) -> dict[str, Any]:
    """WebDataset stage: grouped raw members -> ``{"key", "lr", "hr", "meta"}`` with ``(t c h w)`` float32 in [0, 1]."""
    import torch

    members = {k: v for k, v in raw.items() if not k.startswith("__")}
    sample, meta = _decode_members(raw[schema.WDS_URL], raw[schema.WDS_KEY], members, verify=verify)

    def tensor(clip: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2))).float().div_(255.0)

    return {schema.ROW_KEY: sample.key, schema.LR_FIELD: tensor(sample.lr), schema.HR_FIELD: tensor(sample.hr),
            schema.ROW_META: meta}


def make_webdataset(
    urls: Sequence[str], *, shuffle: bool = False, seed: int = 0, shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    verify: bool = True, split_by_node: bool = True, expect: Mapping[str, ShardDigest] | None = None,
) -> webdataset.DataPipeline:
    """A WebDataset pipeline over shards at fsspec URLs, yielding torch-ready samples.

    Built from WebDataset stages (shard list, node/worker splitting, grouping, shuffling) around an fsspec tar
    reader, so ``s3://``, ``gs://``, ``memory://`` and local paths all work without ``pipe:`` commands. Use it as a
    ``torch.utils.data.DataLoader`` dataset: each DataLoader worker reads its own subset of shards, so give at
    least as many shards as workers. With ``batch_size > 1`` the default collate needs samples of one shape and
    metas of one structure.

    Args:
        urls: Shard URLs.
        shuffle: Shuffle shard order (same permutation in every worker) and samples (through a buffer).
        seed: Seed of both shuffles; the order is the same on every pass, so pass ``seed + epoch`` to vary it.
        shuffle_buffer: Samples held by the sample shuffle (raw PNG bytes, decoded after shuffling).
        verify: Check every frame's SHA-256 against its ``meta.json``.
        split_by_node: Split shards across torch.distributed ranks (a no-op in a single process).
        expect: Size and SHA-256 per shard URL (:meth:`ShardSet.expected <seeclear_bench.data.shardset.ShardSet>`),
            checked while each shard streams; a shard whose bytes differ fails at its end.

    Returns:
        A ``webdataset.DataPipeline`` (an ``IterableDataset``) of dicts ``{"key": str, "lr": (t c h w) float32,
        "hr": (t c H W) float32, "meta": dict}``, ``meta`` being the whole ``meta.json`` of the sample.
    """
    import webdataset as wds

    urls = [str(u) for u in urls]
    if not urls:
        raise SeeClearError("make_webdataset needs at least one shard URL, got none; check the manifest")
    stages: list[Any] = [wds.SimpleShardList(urls, seed=seed if shuffle else None)]
    if split_by_node:
        stages.append(wds.split_by_node)
    stages += [wds.split_by_worker, functools.partial(_fsspec_tar_members, expect=dict(expect or {})), _group_members]
    if shuffle:
        stages.append(wds.shuffle(shuffle_buffer, initial=shuffle_buffer, seed=seed))
    stages.append(wds.map(functools.partial(_to_torch, verify=verify)))
    return wds.DataPipeline(*stages)
