"""Storage helpers over fsspec: every input and output is a URL or a local path.

Naming: ``*_url`` is an fsspec URL (``/tmp/x``, ``file:///tmp/x``, ``s3://b/k``, ``gs://b/k``, ``https://h/p``);
``*_path`` is a local :class:`pathlib.Path`.

Writes are atomic: data goes to a temporary sibling name first and is renamed into place only when complete, so a
crash never leaves a file that looks finished. On object stores (where a rename is a copy) the final key still only
appears once its content is complete.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import Any, Final

import fsspec
from fsspec.core import url_to_fs

from seeclear_bench.errors import SeeClearError, exception_chain

READ_ONLY_PROTOCOLS = ("http", "https")


def split(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem and the path inside it for ``url``."""
    try:
        return url_to_fs(str(url))
    except ImportError as exc:  # e.g. s3fs not installed
        raise SeeClearError(f"cannot open {url!r}: {exc}; install the backend, e.g. pip install 'seeclear-bench[cloud]'") from exc


def protocol(url: str) -> str:
    fs, _ = split(url)
    proto = fs.protocol
    return proto[0] if isinstance(proto, (tuple, list)) else proto


def join(url: str, *parts: str) -> str:
    """Join path components onto a URL with ``/`` (never the OS separator)."""
    url = str(url)
    for part in parts:
        url = url.rstrip("/") + "/" + str(part).lstrip("/")
    return url


def basename(url: str) -> str:
    return posixpath.basename(str(url).rstrip("/"))


def exists(url: str) -> bool:
    fs, path = split(url)
    return fs.exists(path)


def isdir(url: str) -> bool:
    fs, path = split(url)
    return fs.isdir(path)


def makedirs(url: str) -> None:
    fs, path = split(url)
    if _is_read_only(fs):
        raise SeeClearError(f"output {url!r} is on a read-only protocol ({protocol(url)}); write to a local path, s3:// or gs://")
    fs.makedirs(path, exist_ok=True)


def _is_read_only(fs: fsspec.AbstractFileSystem) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in READ_ONLY_PROTOCOLS for p in proto)


def _unstrip(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs.unstrip_protocol(path) if not isinstance(fs, fsspec.implementations.local.LocalFileSystem) else path


def listdir(url: str) -> list[str]:
    """Sorted child URLs of a directory (files and folders)."""
    fs, path = split(url)
    return sorted(_unstrip(fs, p) for p in fs.ls(path, detail=False))


def glob(url_pattern: str) -> list[str]:
    fs, path = split(url_pattern)
    return sorted(_unstrip(fs, p) for p in fs.glob(path))


def read_bytes(url: str) -> bytes:
    """The whole file at ``url``; any failure to read it is one line naming it (a symbolic link loop says so)."""
    fs, path = split(url)
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise SeeClearError(f"expected a file at {url!r}, found nothing") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise SeeClearError(f"cannot read {url!r}: {exc.__class__.__name__}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SeeClearError(f"{url!r} is a symbolic link loop (it never reaches a file); fix or remove the link") \
                from exc
        raise SeeClearError(f"cannot read {url!r}: {exc.strerror or exc.__class__.__name__}") from exc


def read_json(url: str) -> Any:
    return json.loads(read_bytes(url).decode("utf-8"))


# Errors a write to an open file fails with. They are about the file being written, so they are reported with its
# URL; any other OSError raised inside an `atomic_open` block (reading another file, say) passes through unchanged.
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_WRITE_ERRNOS: Final = _NO_SPACE | {errno.EIO, errno.EFBIG, errno.EROFS}


def _write_errno(exc: BaseException) -> int | None:
    """The errno in ``_WRITE_ERRNOS`` that ``exc`` (or an OSError it was raised from) carries, else None. Libraries
    that re-raise without an errno (pyarrow, say) are recognised by the system's message for ENOSPC."""
    for cur in exception_chain(exc):
        if isinstance(cur, OSError):
            if cur.errno in _WRITE_ERRNOS:
                return cur.errno
            if cur.errno is None and os.strerror(errno.ENOSPC) in str(cur):
                return errno.ENOSPC
    return None


def write_error(url: str, exc: OSError) -> SeeClearError:
    """The one line for ``exc`` met while writing ``url``: ``no space left on device writing <url>`` for a full disk
    (or quota), else ``cannot write <url>: <strerror>``."""
    code = _write_errno(exc) or exc.errno
    if code in _NO_SPACE:
        quota = " (disk quota exceeded)" if code == errno.EDQUOT else ""
        return SeeClearError(f"no space left on device{quota} writing {url}")
    reason = exc.strerror or (os.strerror(code) if code else str(exc))
    return SeeClearError(f"cannot write {url}: {reason}")


@contextlib.contextmanager
def atomic_open(url: str) -> Iterator[io.BufferedWriter]:
    """Open ``url`` for binary writing; the file appears under its name only if the block completes.

    The data go to a temporary sibling (``.NAME.tmp-XXXX``), renamed to ``url`` once closed; whatever ends the block
    early (an exception, an interrupt) removes the temporary file.

    Raises:
        SeeClearError: ``url`` is on a read-only protocol or its folder cannot be written; or writing, closing or
            renaming the file failed: ``no space left on device writing <url>`` (ENOSPC, EDQUOT), else ``cannot
            write <url>: <reason>`` (EIO, EFBIG, EROFS). The temporary file is removed first.
    """
    fs, path = split(url)
    if _is_read_only(fs):
        raise SeeClearError(f"cannot write {url!r}: {protocol(url)} is read-only here")
    parent = posixpath.dirname(path)
    tmp = posixpath.join(parent, f".{posixpath.basename(path)}.tmp-{uuid.uuid4().hex[:12]}")
    done = False
    try:
        try:
            fs.makedirs(parent, exist_ok=True)
            f = fs.open(tmp, "wb")
        except OSError as exc:
            if _write_errno(exc) in _NO_SPACE:
                raise write_error(url, exc) from exc
            raise SeeClearError(f"output {url!r} is not writable: {exc.strerror or exc}") from exc
        closing = False
        try:
            with f:
                yield f
                closing = True  # from here on, an error is the flush/close of this file
        except OSError as exc:
            if not closing and _write_errno(exc) is None:
                raise
            raise write_error(url, exc) from exc
        try:
            if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
                os.replace(tmp, path)
            else:
                fs.mv(tmp, path)
        except OSError as exc:
            raise write_error(url, exc) from exc
        done = True
    finally:
        if not done:
            with contextlib.suppress(Exception):
                fs.rm(tmp)


def write_bytes(url: str, data: bytes) -> None:
    """Atomically write ``data`` to ``url``."""
    with atomic_open(url) as f:
        f.write(data)


def write_json(url: str, obj: Any) -> None:
    write_bytes(url, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_url(url: str, chunk: int = 1 << 20) -> str:
    fs, path = split(url)
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_writable(url: str) -> None:
    """Fail fast (before any work starts) when ``url`` cannot be written: a file where a folder (``url`` or one of its
    parents) is expected is said so in one line."""
    fs, path = split(url)
    here = path.rstrip("/")
    while here and not fs.exists(here):
        parent = posixpath.dirname(here)
        if parent == here:
            break
        here = parent
    if here and fs.exists(here) and not fs.isdir(here):
        what = "the output folder" if here == path.rstrip("/") else f"a parent of the output folder {url}"
        raise SeeClearError(f"expected a folder at {here} ({what}), found a file; pass another --out or move the "
                            "file away")
    probe = join(url, f".write-probe-{uuid.uuid4().hex[:8]}")
    write_bytes(probe, b"")
    fs, path = split(probe)
    fs.rm(path)


def remove(url: str, recursive: bool = False) -> None:
    fs, path = split(url)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)
