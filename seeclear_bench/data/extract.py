"""Extracting a downloaded zip or tar archive into a folder, refusing any member that could land outside it.

Member names come from the archive's author and are untrusted: an absolute name, a ``..`` part, a name that is not a
plain name (:func:`seeclear_bench.names.name_problem`: control characters, over-long parts), a link pointing outside
the folder, a device or FIFO member: any of them refuses the whole archive in one line before a byte is written.
Hidden members (``.DS_Store``, macOS ``__MACOSX/`` and ``._*`` forks) are skipped: the sources never read hidden names.
Members are checked, then written; a zip member's CRC-32 is checked as it is read, and tar extraction runs under
tarfile's ``data`` filter as a second line of defence.

Imports only the standard library and :mod:`seeclear_bench.names` / :mod:`seeclear_bench.errors`.
"""
from __future__ import annotations

import logging
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Final

from seeclear_bench.errors import SeeClearError
from seeclear_bench.names import name_problem

logger = logging.getLogger(__name__)

_COPY_BYTES: Final = 1 << 20
_SKIPPED_TOP: Final = frozenset({"__MACOSX"})


def archive_format(path: Path) -> str:
    """``"zip"`` or ``"tar"`` from the file's own bytes (its name may lie).

    Raises:
        SeeClearError: Neither; the message quotes the first bytes (an HTML page instead of an archive says so).
    """
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    with path.open("rb") as f:
        head = f.read(64)
    what = ("an HTML page (the host answered with a web page, e.g. a sign-in or download-confirmation page: download "
            "the file in a browser and pass --archive)" if head.lstrip().lower().startswith((b"<!doctype", b"<html"))
            else f"unknown data starting {head[:16]!r}")
    raise SeeClearError(f"{path} is neither a zip nor a tar archive: it is {what}")


def _member_path(name: str, archive: Path) -> tuple[str, ...] | None:
    """The parts of member ``name`` below the target folder, or None for a member to skip.

    Raises:
        SeeClearError: The name is absolute, climbs out with ``..`` or has a part that is not a plain name.
    """
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise SeeClearError(f"archive {archive} holds a member with an absolute path {name!r}; refusing to extract it")
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if ".." in parts:
        raise SeeClearError(f"archive {archive} holds a member {name!r} that climbs out of the target folder with "
                            "'..'; refusing to extract it")
    if not parts or parts[0] in _SKIPPED_TOP or any(p.startswith(".") for p in parts):
        return None
    for part in parts:
        problem = name_problem(part)
        if problem is not None:
            raise SeeClearError(f"archive {archive} holds a member {name!r} whose name part {part!r} {problem}; "
                                "refusing to extract it")
    return parts


def _check_link(archive: Path, member: str, parts: tuple[str, ...], target: str, hard: bool) -> None:
    """Refuse a link whose target is absolute or leads outside the folder (a hard link's target is archive-rooted)."""
    text = target.replace("\\", "/")
    base = () if hard else parts[:-1]
    joined = posixpath.normpath(posixpath.join(*base, text)) if base else posixpath.normpath(text)
    if text.startswith("/") or joined == ".." or joined.startswith("../"):
        kind = "hard link" if hard else "symbolic link"
        raise SeeClearError(f"archive {archive} holds a {kind} {member!r} -> {target!r} pointing outside the target "
                            "folder; refusing to extract it")


def extract(archive: Path, target: Path) -> int:
    """Extract ``archive`` (zip or any tar) into the folder ``target``, which should be new and empty.

    Returns:
        The number of files written.

    Raises:
        SeeClearError: The archive is neither zip nor tar, is corrupt (bad CRC, truncated), or holds a member that
            :func:`_member_path`/:func:`_check_link` refuse; the disk is too small for what it holds. Whatever was
            written to ``target`` stays there for the caller to remove.
    """
    kind = archive_format(archive)
    target.mkdir(parents=True, exist_ok=True)
    try:
        return _extract_zip(archive, target) if kind == "zip" else _extract_tar(archive, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zipfile.LargeZipFile) as exc:
        raise SeeClearError(f"archive {archive} is corrupt ({type(exc).__name__}: {exc}); remove it and download it "
                            "again") from exc


def _check_space(archive: Path, target: Path, needed: int) -> None:
    free = shutil.disk_usage(target).free
    if needed > free:
        raise SeeClearError(f"extracting {archive} needs {needed / 1e9:.1f} GB but {target.parent} has "
                            f"{free / 1e9:.1f} GB free; free some space or pass another --out")


def _extract_zip(archive: Path, target: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
        for info in zf.infolist():
            parts = _member_path(info.filename, archive)
            if parts is None:
                continue
            # Unix-made zips keep the file type in the high bits of external_attr; other systems' bits mean nothing
            mode = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                link = zf.read(info).decode("utf-8", "replace")
                _check_link(archive, info.filename, parts, link, hard=False)
                raise SeeClearError(f"archive {archive} holds a symbolic link {info.filename!r} -> {link!r}; zip "
                                    "links are not extracted (unpack it by hand and pass the folder instead)")
            if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise SeeClearError(f"archive {archive} holds {info.filename!r}, which is neither a file nor a "
                                    "folder; refusing to extract it")
            plan.append((info, parts))
        _check_space(archive, target, sum(info.file_size for info, _ in plan))
        written = 0
        for info, parts in plan:
            path = target.joinpath(*parts)
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, path.open("wb") as dst:  # zipfile checks the CRC-32 at the end of the read
                shutil.copyfileobj(src, dst, _COPY_BYTES)
            written += 1
    return written


def _extract_tar(archive: Path, target: Path) -> int:
    with tarfile.open(archive, "r:*") as tf:
        plan: list[tarfile.TarInfo] = []
        for member in tf:
            parts = _member_path(member.name, archive)
            if parts is None:
                continue
            if member.issym() or member.islnk():
                _check_link(archive, member.name, parts, member.linkname, hard=member.islnk())
            elif not (member.isfile() or member.isdir()):
                raise SeeClearError(f"archive {archive} holds {member.name!r}, which is neither a file, a folder nor "
                                    "a link; refusing to extract it")
            plan.append(member)
        _check_space(archive, target, sum(m.size for m in plan if m.isfile()))
        tf.extractall(target, members=plan, filter="data")
    return sum(1 for m in plan if m.isfile())
