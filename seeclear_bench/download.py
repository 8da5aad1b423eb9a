"""Downloading one file to a local path: resumed over HTTP ranges, checked by size and SHA-256, renamed into place last.

The one owner of "fetch a file from a URL" for the package: metric weights (:mod:`seeclear_bench.metrics.weights`) and
dataset archives (:mod:`seeclear_bench.data.fetch`) both call :func:`download`.

The bytes go to ``DEST.part`` beside the destination. A later call finds that file and asks the server for the rest
(``Range: bytes=N-``); a server that answers ``206`` with the matching ``Content-Range`` is appended to, any other
answer (a ``200`` from a server without range support, a ``416``) restarts the file from its first byte. A connection
that breaks after some bytes arrived is retried from where it broke, a few times, within the same call. The
destination name appears only once the whole file is there and its size and digest agree with what was expected; a
digest mismatch removes the partial file, so the next call starts clean.

Imports only the standard library and :mod:`seeclear_bench.errors` (tqdm while a transfer runs).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError

logger = logging.getLogger(__name__)

PART_SUFFIX: Final = ".part"
CHUNK_BYTES: Final = 1 << 20
ATTEMPTS: Final = 4
_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_USER_AGENT: Final = "seeclear-bench"


@dataclass(frozen=True)
class Downloaded:
    """A file :func:`download` put in place.

    Attributes:
        path: The local file.
        url: Where its bytes came from.
        size: Its size in bytes.
        sha256: Its SHA-256 hex digest.
        resumed: Whether part of it came from an earlier, interrupted transfer.
    """

    path: Path
    url: str
    size: int
    sha256: str
    resumed: bool


def file_sha256(path: Path | str) -> str:
    """SHA-256 hex digest of a local file, memoised per (path, size, mtime) so large files are hashed once."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _SHA_MEMO.get(key)
    if digest is None:
        digest = _SHA_MEMO[key] = io.sha256_url(str(path), CHUNK_BYTES)
    return digest


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def digest_matches(digest: str, expected: str | None) -> bool | None:
    """Whether ``digest`` agrees with ``expected`` (a full hex digest, or its leading digits where only those are
    published, as torchvision's file names carry); None when nothing is expected."""
    return None if not expected else digest.lower().startswith(expected.lower())


def part_path(dest: Path) -> Path:
    """Where :func:`download` keeps the bytes of ``dest`` until the file is complete."""
    return dest.with_name(dest.name + PART_SUFFIX)


class _Interrupted(Exception):
    """The transfer stopped early; ``received`` bytes of this attempt were written and can be resumed from."""

    def __init__(self, reason: str, received: int) -> None:
        super().__init__(reason)
        self.received = received


def download(
    url: str,
    dest: Path,
    *,
    what: str,
    sha256: str | None = None,
    size: int | None = None,
    if_unreachable: str = "",
    attempts: int = ATTEMPTS,
    timeout: float = 60.0,
    progress: bool = False,
) -> Downloaded:
    """Download ``url`` to ``dest``, resuming ``dest.part`` where an earlier call left it.

    Args:
        url: ``http(s)://`` (resumed with range requests) or any other scheme urllib opens (``file://``: copied).
        dest: The local file to create; its folder is created.
        what: How messages name the file (``"weights 'vgg16'"``, ``"REDS train_sharp (train_sharp.zip)"``).
        sha256: Expected SHA-256 hex digest, or its leading digits; None accepts any digest.
        size: Expected size in bytes; None accepts the size the server states.
        if_unreachable: What the user can do instead, appended to the error when the URL cannot be read.
        attempts: Transfers tried in all while each one delivers some bytes before breaking off.
        timeout: Seconds a connection may stay silent.
        progress: Show a progress bar on a terminal (tqdm, on stderr; never when stderr is not a terminal).

    Returns:
        The file in place, with its size and digest.

    Raises:
        SeeClearError: The URL cannot be read (the message names it; a partial file is kept for the next call), the
            size or digest differs from what was expected (the partial file is removed, nothing is put in place),
            or ``dest`` cannot be written.
    """
    part = part_path(dest)
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeeClearError(f"cannot write {part.parent}: {exc.strerror or exc}") from exc
    hasher = _Hasher()
    resumed = False
    error = ""
    for attempt in range(1, max(1, attempts) + 1):
        try:
            resumed = _transfer(url, part, hasher, timeout=timeout, progress=progress, what=what) or resumed
            error = ""
            break
        except _Interrupted as exc:
            error = str(exc)
            if exc.received == 0 or attempt >= attempts:
                break
            logger.warning("%s: transfer from %s broke off (%s); resuming (attempt %d of %d)", what, url, exc,
                           attempt + 1, attempts)
            resumed = True
            time.sleep(min(0.2 * attempt, 2.0))
    if error:
        kept = part.stat().st_size if part.is_file() else 0
        keep = f" ({kept} bytes kept in {part}; the next run resumes from there)" if kept else ""
        hint = f"; {if_unreachable}" if if_unreachable else ""
        raise SeeClearError(f"cannot download {what} from {url}: {error}{keep}{hint}")
    got = part.stat().st_size
    digest = hasher.digest_of(part)
    problem = ""
    if size is not None and got != size:
        problem = f"is {got} bytes, expected {size}"
    elif digest_matches(digest, sha256) is False:
        problem = f"has sha256 {digest}, expected {sha256}"
    if problem:
        part.unlink(missing_ok=True)
        raise SeeClearError(f"{what} downloaded from {url} {problem}; refusing a corrupt or different file (the "
                            f"download was removed; run again to download it afresh, or pass another URL)")
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise SeeClearError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    _SHA_MEMO[(str(dest.resolve()), got, dest.stat().st_mtime_ns)] = digest
    logger.info("%s: %d bytes from %s, sha256 %s%s", what, got, url, digest, " (resumed)" if resumed else "")
    return Downloaded(path=dest, url=url, size=got, sha256=digest, resumed=resumed)


class _Hasher:
    """SHA-256 of the partial file, kept up to date as bytes are appended (a resumed file's earlier bytes are
    hashed once, from disk), so a complete file is not read a second time."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.upto = 0

    def restart(self) -> None:
        self.h, self.upto = hashlib.sha256(), 0

    def catch_up(self, part: Path, offset: int) -> None:
        """Hash ``part``'s first ``offset`` bytes unless they are hashed already."""
        if self.upto == offset:
            return
        self.restart()
        with part.open("rb") as f:
            while self.upto < offset and (block := f.read(min(CHUNK_BYTES, offset - self.upto))):
                self.h.update(block)
                self.upto += len(block)

    def update(self, block: bytes) -> None:
        self.h.update(block)
        self.upto += len(block)

    def digest_of(self, part: Path) -> str:
        self.catch_up(part, part.stat().st_size)
        return self.h.hexdigest()


def _transfer(url: str, part: Path, hasher: _Hasher, *, timeout: float, progress: bool = False, what: str = "") -> bool:
    """One exchange with the server, appending to (or restarting) ``part``; returns whether it resumed.

    Raises:
        _Interrupted: The URL could not be opened, or the body ended before its stated length.
        SeeClearError: ``part`` cannot be written.
    """
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    ranged = offset > 0 and url.lower().startswith(("http://", "https://"))
    if ranged:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and ranged:  # asked past the end: the partial file is not a prefix of this one
            part.unlink()
            return _transfer(url, part, hasher, timeout=timeout, progress=progress, what=what)
        raise _Interrupted(f"HTTP {exc.code} {exc.reason}", 0) from exc
    except urllib.error.URLError as exc:
        raise _Interrupted(str(getattr(exc, "reason", exc)), 0) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc) or type(exc).__name__, 0) from exc
    with response:
        status = getattr(response, "status", None)
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if ranged and status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != offset:
                response.close()
                part.unlink()  # an answer for other bytes than were asked for: start again from byte 0
                return _transfer(url, part, hasher, timeout=timeout, progress=progress, what=what)
            mode, resumed = "ab", True
            hasher.catch_up(part, offset)
        else:
            if ranged:
                logger.info("%s answered without range support (status %s); restarting from byte 0", url, status)
            mode, resumed, offset = "wb", False, 0
            hasher.restart()
        received = 0
        try:
            out = part.open(mode)
        except OSError as exc:
            raise SeeClearError(f"cannot write {part}: {exc.strerror or exc}") from exc
        from tqdm import tqdm

        total = offset + expected if expected is not None else None
        with out, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
                       leave=False, disable=None if progress else True) as bar:
            while True:
                try:
                    block = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as exc:
                    raise _Interrupted(f"the connection broke after {offset + received} bytes "
                                       f"({type(exc).__name__})", received) from exc
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as exc:
                    raise SeeClearError(f"cannot write {part}: {exc.strerror or exc}") from exc
                hasher.update(block)
                received += len(block)
                bar.update(len(block))
        if expected is not None and received < expected:
            raise _Interrupted(f"the connection closed after {offset + received} of {offset + expected} bytes",
                               received)
    return resumed


def read_downloads(path: Path, what: str) -> dict[str, Any]:
    """The record of verified downloads kept at ``path`` (a JSON object: file name -> its size, SHA-256, source, ...),
    {} when there is none yet. ``what`` names the record in errors (``weights``, ``archive``)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeeClearError(f"{path} is not a readable JSON record of {what} downloads ({exc}); delete it to record "
                            "the next download afresh") from exc
    if not isinstance(data, dict):
        raise SeeClearError(f"{path} should hold a JSON object of {what} records, found {type(data).__name__}; delete it")
    return data


def record_download(path: Path, what: str, name: str, entry: Mapping[str, Any], *, keep_first: bool = False) -> None:
    """Add (or, unless ``keep_first``, replace) ``name``'s entry in the record at ``path``, written atomically."""
    records = read_downloads(path, what)
    if keep_first and name in records:
        return
    records[name] = dict(entry)
    io.write_json(str(path), records)
