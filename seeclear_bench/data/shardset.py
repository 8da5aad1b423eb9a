"""The one reader of a prepared shard set: its manifest checked once, its shards verified while they stream.

:class:`ShardSet` opens a folder holding ``manifest.json`` and WebDataset tars (written by
:mod:`seeclear_bench.data.shards`, which stays the only writer). It checks the manifest once (format, every shard
name a plain ``.tar`` name inside the set, sizes and SHA-256 digests well formed, the clip index naming listed shards
and plain clip names), builds the clip -> shards index once (from the manifest, or by one verified scan for sets
without one), and serves ``clip -> frames`` (``lr``, ``hr`` or both) to evaluate, infer, train, the report and the
benchmarks through :class:`ShardClip`. Every shard read through it is checked against the SHA-256 its manifest
records while it streams (no second pass): a mismatch is one line naming the shard and both digests.

A :class:`ShardClip` is small and picklable (and JSON-able, for Ray Data rows): the clip's name and its shards' URLs
with their recorded digests, so a Ray task reads and verifies exactly what the driver checked. Never imports ray.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from seeclear_bench import io
from seeclear_bench.data import schema
from seeclear_bench.data.shards import Sample, ShardDigest, iter_shard, read_manifest
from seeclear_bench.errors import SeeClearError
from seeclear_bench.names import check_name, name_problem

Field = Literal["lr", "hr"]
DIGEST_DIGITS: Final = 12
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest lists it."""

    name: str
    n_samples: int
    n_bytes: int
    sha256: str

    @property
    def digest(self) -> ShardDigest:
        return ShardDigest(n_bytes=self.n_bytes, sha256=self.sha256)


@dataclass(frozen=True)
class ShardClip:
    """One clip of a shard set: its name and the shards (URL, recorded size and SHA-256) that hold its windows."""

    dataset: str
    clip_id: str
    shards: tuple[tuple[str, ShardDigest], ...]

    @property
    def shard_urls(self) -> tuple[str, ...]:
        return tuple(url for url, _ in self.shards)

    def samples(self) -> Iterator[Sample]:
        """The clip's windows, in shard order; each shard verified against its manifest digest as it streams."""
        for url, digest in self.shards:
            yield from iter_shard(url, verify=True, expect=digest, clip=self.clip_id)

    def frames(self, field: Field = "hr") -> tuple[list[int], np.ndarray]:
        """(frame indices in order, ``(t h w 3)`` uint8 frames) of ``field``; windows are merged by frame index.

        Every shard of the clip is read to its end (and so verified) before anything is returned.
        """
        by_index = self.both()
        indices = sorted(by_index)
        pick = 0 if field == schema.LR_FIELD else 1
        return indices, np.stack([by_index[i][pick] for i in indices])

    def both(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{frame index: (lr frame, hr frame)}`` of the whole clip, verified."""
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for sample in self.samples():
            for index, lr, hr in zip(sample.frame_indices, sample.lr, sample.hr):
                found[index] = (lr, hr)
        if not found:
            raise SeeClearError(f"dataset {self.dataset}: no samples of clip {self.clip_id!r} in its shards "
                                f"{', '.join(self.shard_urls[:3])}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "clip_id": self.clip_id,
                "shards": [[url, d.n_bytes, d.sha256] for url, d in self.shards]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardClip:
        return cls(dataset=str(data["dataset"]), clip_id=str(data["clip_id"]),
                   shards=tuple((str(u), ShardDigest(int(n), str(h))) for u, n, h in data["shards"]))


class ShardSet:
    """A prepared shard set, opened once; see the module docstring.

    Attributes:
        url: The set's folder.
        dataset: Its dataset name (given by the caller, else the manifest's, else the folder's name).
        entries: The shards, in manifest (name) order.
        manifest: The manifest as read.
        digest: Content hash of the manifest's shards (names, sample counts, SHA-256), 12 hex digits: the identity of
            the set that predictions and reports record.
    """

    def __init__(self, url: str, dataset: str, entries: Sequence[ShardEntry], index: Mapping[str, Sequence[str]],
                 manifest: Mapping[str, Any]) -> None:
        self.url = url
        self.dataset = dataset
        self.entries = tuple(entries)
        self.manifest = dict(manifest)
        self._by_name = {e.name: e for e in self.entries}
        self._index = {clip: tuple(dict.fromkeys(names)) for clip, names in sorted(index.items())}
        self.digest = content_digest(self.entries)

    @classmethod
    def open(cls, url: str, *, dataset: str = "") -> ShardSet:
        """Read and check the manifest of the shard set at ``url``.

        Raises:
            SeeClearError: No or unreadable manifest, a shard name that is not a plain ``.tar`` name in the set, a
                malformed size or digest, or a clip index naming unknown shards or clip names that are not plain.
        """
        manifest = read_manifest(url)
        where = io.join(url, schema.MANIFEST_NAME)
        raw = manifest.get("shards")
        if not isinstance(raw, list):
            raise SeeClearError(f"{where}: 'shards' must be a list of shard entries, found {type(raw).__name__}")
        entries = [_entry(item, where) for item in raw]
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise SeeClearError(f"{where} lists a shard twice: {sorted(n for n in set(names) if names.count(n) > 1)[:3]}")
        extra: dict[str, Any] = manifest["extra"] if isinstance(manifest.get("extra"), dict) else {}
        name = dataset or str(extra.get("dataset") or "") or io.basename(url)
        check_name(name, f"dataset name of the shard set {url}")
        index = extra.get("clip_shards")
        if index is None:
            return cls(url, name, entries, _scan(url, entries), manifest)
        if not isinstance(index, dict):
            raise SeeClearError(f"{where}: extra.clip_shards must map clip names to shard names")
        checked: dict[str, list[str]] = {}
        for clip, shard_names in index.items():
            check_name(clip, f"clip name in {where}")
            if not isinstance(shard_names, list) or not shard_names:
                raise SeeClearError(f"{where}: clip {clip!r} must list its shards, found {shard_names!r}")
            unknown = [n for n in shard_names if n not in set(names)]
            if unknown:
                raise SeeClearError(f"{where}: clip {clip!r} names shard {unknown[0]!r}, which the manifest does not list")
            checked[clip] = list(shard_names)
        return cls(url, name, entries, checked, manifest)

    # -- what it serves -------------------------------------------------------------------------------------------
    @property
    def clips(self) -> tuple[str, ...]:
        return tuple(self._index)

    def shard_url(self, name: str) -> str:
        if name not in self._by_name:
            raise SeeClearError(f"shard {name!r} is not listed in {io.join(self.url, schema.MANIFEST_NAME)}")
        return io.join(self.url, name)

    def shard_urls(self) -> list[str]:
        """Every shard's URL, in manifest order."""
        return [io.join(self.url, e.name) for e in self.entries]

    def expected(self) -> dict[str, ShardDigest]:
        """Recorded size and SHA-256 per shard URL (for :func:`seeclear_bench.data.shards.make_webdataset`)."""
        return {io.join(self.url, e.name): e.digest for e in self.entries}

    def shards(self) -> list[tuple[str, ShardDigest]]:
        """(URL, recorded digest) of every shard, in manifest order."""
        return [(io.join(self.url, e.name), e.digest) for e in self.entries]

    def clip(self, clip_id: str) -> ShardClip:
        if clip_id not in self._index:
            raise SeeClearError(f"dataset {self.dataset}: no clip {clip_id!r} in the shard set {self.url}")
        return ShardClip(self.dataset, clip_id, tuple((io.join(self.url, n), self._by_name[n].digest)
                                                      for n in self._index[clip_id]))

    def clip_refs(self) -> dict[str, ShardClip]:
        """Every clip by name, in name order."""
        return {clip: self.clip(clip) for clip in self._index}

    def samples(self) -> Iterator[Sample]:
        """Every sample of the set, shard by shard, each shard verified as it streams."""
        for url, digest in self.shards():
            yield from iter_shard(url, verify=True, expect=digest)

def content_digest(entries: Sequence[ShardEntry] | Sequence[Mapping[str, Any]]) -> str:
    """12 hex digits of the SHA-256 of the shards' names, sample counts and SHA-256, in name order."""
    rows = sorted((str(e.name), int(e.n_samples), str(e.sha256)) if isinstance(e, ShardEntry)
                  else (str(e["name"]), int(e["n_samples"]), str(e["sha256"])) for e in entries)
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()[:DIGEST_DIGITS]


def _scan(url: str, entries: Sequence[ShardEntry]) -> dict[str, list[str]]:
    """The clip index of a set whose manifest has none: one verified pass over its shards."""
    index: dict[str, list[str]] = {}
    for entry in entries:
        for sample in iter_shard(io.join(url, entry.name), verify=True, expect=entry.digest):
            index.setdefault(sample.clip_id, [])
            if entry.name not in index[sample.clip_id]:
                index[sample.clip_id].append(entry.name)
    return index


def _entry(item: Any, where: str) -> ShardEntry:
    if not isinstance(item, dict):
        raise SeeClearError(f"{where}: a shard entry must be an object, found {item!r}"[:300])
    name = item.get("name")
    problem = name_problem(name)
    if problem is not None or not str(name).endswith(schema.SHARD_EXT):
        why = problem or f"does not end in {schema.SHARD_EXT}"
        raise SeeClearError(f"{where}: shard name {name!r} is not a plain shard name inside the set ({why})"[:400])
    try:
        n_samples, n_bytes = int(item["n_samples"]), int(item["n_bytes"])
        sha256 = str(item["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SeeClearError(f"{where}: shard {name} lacks a valid n_samples, n_bytes or sha256 ({exc!r})") from exc
    if not _SHA256.match(sha256) or n_bytes < 0 or n_samples < 0:
        raise SeeClearError(f"{where}: shard {name} records an invalid size or SHA-256 ({n_bytes}, {sha256!r})"[:400])
    return ShardEntry(name=str(name), n_samples=n_samples, n_bytes=n_bytes, sha256=sha256)
