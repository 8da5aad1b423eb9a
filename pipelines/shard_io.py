"""Reading WebDataset shard sets as Ray Data datasets, one row per clip window.

Ray Data takes pyarrow filesystems, so fsspec URLs (``s3://``, ``gs://``, ...) are bridged with
``pyarrow.fs.PyFileSystem(FSSpecHandler(fs))``; local paths use pyarrow's own local filesystem. Ray's WebDataset
reader groups contiguous members by key (it raises on non-contiguous keys, ray #44068; our tars are sorted anyway).
Its default decoder would turn every ``*.png`` into an array on its own, so we hand it our decoder instead: it gets
the raw member bytes, checks each frame's SHA-256 and stacks the frames.

Row schema: ``key`` (str), ``lr`` ``(t h w 3)`` uint8, ``hr`` ``(t H W 3)`` uint8, ``meta`` (str: the sample's
whole ``meta.json``; JSON text keeps the Arrow schema the same for every row whatever the caller's meta holds).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import fsspec

from seeclear_bench import io
from seeclear_bench.data import schema
from seeclear_bench.data.shards import Sample, decode_members
from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    import pyarrow.fs
    import ray.data

_PROCESS_LOCAL_PROTOCOLS = ("memory",)


def _arrow_filesystem(urls: Sequence[str]) -> tuple[pyarrow.fs.FileSystem, list[str]]:
    """One pyarrow filesystem for all ``urls`` and the paths inside it."""
    import pyarrow.fs

    splits = [io.split(url) for url in urls]
    fs = splits[0][0]
    for url, (other, _) in zip(urls, splits):
        if other != fs:
            raise SeeClearError(f"read_shards_ray reads from one filesystem at a time; {url} is not on the same one as "
                                f"{urls[0]}; read each storage location separately")
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if any(p in _PROCESS_LOCAL_PROTOCOLS for p in protocols):
        raise SeeClearError(f"shards at {urls[0]} live in this process's memory, which Ray workers cannot see; "
                            "write them to a local path or an object store")
    paths = [path for _, path in splits]
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
        return pyarrow.fs.LocalFileSystem(), paths
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), paths


def _decode_row(raw: dict[str, Any], *, verify: bool) -> dict[str, Any]:
    """Ray WebDataset decoder: one sample's raw members -> a row (see the module docstring)."""
    members = {k: v for k, v in raw.items() if not k.startswith("__")}
    url = raw.get(schema.WDS_URL, "<unknown shard>")
    sample = decode_members(url, raw[schema.WDS_KEY], members, verify=verify)
    return {
        schema.ROW_KEY: sample.key,
        schema.LR_FIELD: sample.lr,
        schema.HR_FIELD: sample.hr,
        schema.ROW_META: members[schema.META_MEMBER].decode("utf-8"),
    }


def read_shards_ray(urls: Sequence[str], *, verify: bool = True, **read_kwargs: Any) -> ray.data.Dataset:
    """Read shards into a Ray Dataset with one decoded row per sample.

    Args:
        urls: Shard URLs on one filesystem (local paths, ``file://``, ``s3://``, ``gs://``, ...; not ``memory://``).
        verify: Check every frame's SHA-256 against its ``meta.json`` while decoding.
        **read_kwargs: Passed to ``ray.data.read_webdataset`` (e.g. ``override_num_blocks``, ``concurrency``).

    Returns:
        A lazy ``ray.data.Dataset`` with columns ``key``, ``lr`` ``(t h w 3)`` uint8, ``hr`` ``(t H W 3)`` uint8 and
        ``meta`` (JSON text). Errors surface when it is consumed: a corrupt frame raises a SeeClearError naming the
        shard path, the sample key and the member (wrapped in Ray's task error).

    Raises:
        SeeClearError: With no URLs, a URL not ending in ``.tar``, or URLs on different or process-local filesystems.
    """
    import ray.data

    urls = [str(url) for url in urls]
    if not urls:
        raise SeeClearError("read_shards_ray needs at least one shard URL, got none; check the manifest")
    not_tar = [url for url in urls if not url.endswith(schema.SHARD_EXT)]
    if not_tar:
        raise SeeClearError(f"shard URLs must end in {schema.SHARD_EXT}, got {not_tar[0]!r}")
    filesystem, paths = _arrow_filesystem(urls)
    return ray.data.read_webdataset(
        paths,
        filesystem=filesystem,
        decoder=functools.partial(_decode_row, verify=verify),
        file_extensions=[schema.SHARD_EXT.lstrip(".")],
        **read_kwargs,
    )


def samples_from_row(row: Mapping[str, Any]) -> Sample:
    """Rebuild the :class:`Sample` of a row from :func:`read_shards_ray` (``meta`` back to the caller's fields)."""
    meta = json.loads(row[schema.ROW_META])
    user_meta = {k: v for k, v in meta.items() if k not in schema.RESERVED_META_KEYS}
    return Sample(
        key=str(row[schema.ROW_KEY]),
        dataset=meta[schema.META_DATASET],
        clip_id=meta[schema.META_CLIP],
        frame_indices=tuple(meta[schema.META_FRAME_INDICES]),
        lr=row[schema.LR_FIELD],
        hr=row[schema.HR_FIELD],
        meta=user_meta,
    )
