"""``seeclear-bench data fetch``: download a catalogued dataset's archives, verify them, install them where the
sources read them, and never leave a folder that looks complete but is not.

For each archive (:class:`~seeclear_bench.data.catalog.PartSpec`) of a dataset:

1. **Already there?** ``OUT/<dest>/.seeclear-fetch.json`` (the completion record) says the folder was installed
   whole: nothing is done (``verify=True`` re-lists the folder and compares it with the record).
2. **Archive.** Downloaded to ``OUT/downloads/<filename>`` by :func:`seeclear_bench.download.download` (resumed over
   HTTP ranges; ``--url`` takes a mirror; ``--archive PATH`` uses a file the user downloaded by hand). Its size and
   SHA-256 must match the published digest where there is one, else the digest recorded in
   ``OUT/seeclear-data.json`` by the first verified download; the first download records it.
3. **Extraction.** Into a hidden staging folder beside the destination (:func:`seeclear_bench.data.extract.extract`
   refuses members escaping it), rearranged into the sources' layout, the completion record written inside, then
   renamed into place in one step. A failure at any point removes the staging folder; a half-extracted folder is
   never under the destination's name.

The archive is removed once installed (``keep_archive=True`` keeps it; a user's ``--archive`` file is never touched).
Only local output folders are supported: extraction needs a filesystem with an atomic rename.

Imports the standard library and the package's own modules.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from fsspec.implementations.local import LocalFileSystem

from seeclear_bench import io
from seeclear_bench.data.catalog import DatasetSpec, PartSpec, resolve
from seeclear_bench.data.extract import archive_format, extract
from seeclear_bench.download import digest_matches, download, file_sha256, read_downloads, record_download
from seeclear_bench.errors import SeeClearError

logger = logging.getLogger(__name__)

RECORD_NAME: Final = ".seeclear-fetch.json"
REGISTRY_NAME: Final = "seeclear-data.json"
DOWNLOADS_DIR: Final = "downloads"
_STAGING_PREFIX: Final = ".fetch-"


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch` did for one archive.

    Attributes:
        dataset: The dataset's name.
        part: The archive's part name.
        path: The installed folder.
        status: ``fetched`` (installed now), ``present`` (already complete) or ``verified`` (already complete and
            checked against its record).
        sha256: The archive's digest (as recorded).
        files: Files in the installed folder.
    """

    dataset: str
    part: str
    path: Path
    status: Literal["fetched", "present", "verified"]
    sha256: str
    files: int


def fetch(
    name: str,
    out_url: str,
    *,
    parts: Sequence[str] = (),
    url: str | None = None,
    mirror: str | None = None,
    archive: str | None = None,
    force: bool = False,
    verify: bool = False,
    keep_archive: bool = False,
    progress: bool = False,
) -> list[Fetched]:
    """Fetch dataset (or split) ``name`` into the folder ``out_url``.

    Args:
        name: A dataset or split name of :mod:`seeclear_bench.data.catalog` (``REDS``, ``REDS4``, ``Vid4``, ...).
        out_url: Local output folder (a path or ``file://`` URL).
        parts: Parts to fetch (default: the dataset's all, or the split's).
        url: Download from this URL (a mirror) instead of the catalogue's; one part only.
        mirror: Download every part from ``MIRROR/<archive file name>`` instead of the catalogue's URLs (a mirror
            of the host's files, or a local copy served over HTTP).
        archive: Use this local archive file instead of downloading; one part only.
        force: Download and install again even when the folder is complete, replacing it.
        verify: For a complete folder, check its files against the completion record.
        keep_archive: Keep the downloaded archive in ``OUT/downloads`` after installing it.
        progress: Show download progress on a terminal.

    Returns:
        One :class:`Fetched` per part, in order.

    Raises:
        SeeClearError: Unknown name or part; a non-local ``out_url``; an unreachable host (naming the URL and the
            ``--archive`` alternative); a size or checksum mismatch (nothing installed, download removed); an unsafe
            or corrupt archive; a destination folder that exists without a completion record; a complete folder
            that no longer matches its record (``verify``).
    """
    spec, chosen = resolve(name, tuple(parts))
    if (url or archive) and len(chosen) != 1:
        option = "--url" if url else "--archive"
        raise SeeClearError(f"{option} gives one archive, but {spec.name} has {len(chosen)} parts to fetch "
                            f"({', '.join(p.name for p in chosen)}); choose one with --part")
    if sum(map(bool, (url, mirror, archive))) > 1:
        raise SeeClearError("pass one of --url, --mirror and --archive")
    out = local_folder(out_url)
    return [_fetch_part(spec, part, out, url=url or (io.join(mirror, part.filename) if mirror else None),
                        archive=Path(archive) if archive else None, force=force, verify=verify,
                        keep_archive=keep_archive, progress=progress) for part in chosen]


def local_folder(out_url: str) -> Path:
    """The local path of ``out_url``; other filesystems are one line (extraction needs a local atomic rename)."""
    fs, path = io.split(out_url)
    if not isinstance(fs, LocalFileSystem):
        raise SeeClearError(f"data fetch writes to a local folder, got {out_url!r}; fetch to local disk, then copy "
                            "the dataset folder to the object store")
    return Path(path)


def _fetch_part(spec: DatasetSpec, part: PartSpec, out: Path, *, url: str | None, archive: Path | None, force: bool,
                verify: bool, keep_archive: bool, progress: bool = False) -> Fetched:
    label = f"{spec.name} {part.name}"
    dest = out.joinpath(*part.dest.split("/"))
    record = read_record(dest)
    if record is not None and not force:
        if verify:
            verify_folder(dest, record)
        logger.info("%s: already complete at %s", label, dest)
        return Fetched(spec.name, part.name, dest, "verified" if verify else "present", str(record.get("sha256")),
                       int(record.get("files", 0)))
    if dest.exists() and record is None and not force:
        raise SeeClearError(f"{dest} exists but holds no completion record of `seeclear-bench data fetch` (it may be "
                            "a half-copied or hand-made folder); move it away, or pass --force to replace it")
    expected, expected_size = _expected_digest(part, out)
    if archive is not None:
        archive_path, digest = _use_local_archive(label, part, archive, expected, expected_size)
        source = str(archive.resolve())
    else:
        archive_path, digest, source = _download(label, part, out, url, expected, expected_size, spec, progress)
    size = archive_path.stat().st_size
    try:
        files = _install(label, part, archive_path, dest, {
            "dataset": spec.name, "part": part.name, "archive": part.filename, "sha256": digest, "size": size,
            "url": source, "licence": spec.licence,
        })
    except SeeClearError:
        if archive is None:  # a corrupt or unsafe download is not kept to be found again; a user's file is theirs
            archive_path.unlink(missing_ok=True)
        raise
    # recorded once it extracted whole: a corrupt first download must not become the reference
    _register(out, part, spec, digest=digest, size=size, source=source)
    if archive is None and not keep_archive:
        archive_path.unlink(missing_ok=True)
    return Fetched(spec.name, part.name, dest, "fetched", digest, files)


def _expected_digest(part: PartSpec, out: Path) -> tuple[str | None, int | None]:
    """(digest, size) an archive must have: the published digest, else those recorded at the first download."""
    entry = read_registry(out).get(part.filename)
    recorded = entry if isinstance(entry, dict) else {}
    size = recorded.get("size") if isinstance(recorded.get("size"), int) else None
    return part.sha256 or recorded.get("sha256"), size


def _download(label: str, part: PartSpec, out: Path, url: str | None, expected: str | None,
              expected_size: int | None, spec: DatasetSpec, progress: bool = False) -> tuple[Path, str, str]:
    """Download the archive (trying each published URL in turn); returns (file, sha256, URL it came from)."""
    urls = (url,) if url else part.urls
    target = out / DOWNLOADS_DIR / part.filename
    fix = (f"download {part.filename} by hand and run `seeclear-bench data fetch {spec.name} --part {part.name} "
           f"--archive PATH --out {out}`, or pass --url with a mirror")
    if not urls:
        raise SeeClearError(f"{label} has no stable public location ({part.note or spec.homepage}); {fix}")
    if target.is_file():  # downloaded by an earlier run that stopped before installing, or put there by hand
        digest = file_sha256(target)
        if digest_matches(digest, expected) is not False:
            return target, digest, str(target)
        target.unlink()
    errors: list[str] = []
    for i, source in enumerate(urls):
        last = i == len(urls) - 1
        try:
            got = download(source, target, what=f"{label} ({part.filename})", sha256=expected, size=expected_size,
                           if_unreachable=fix if last else "", progress=progress)
        except SeeClearError as exc:
            if not last:
                errors.append(str(exc).split("; ")[0])
                continue
            if errors:
                raise SeeClearError(f"{exc} (tried first: {'; '.join(errors)})") from exc
            raise
        _check_format(got.path)
        return got.path, got.sha256, source
    raise AssertionError("unreachable")  # pragma: no cover


def _check_format(path: Path) -> None:
    """Refuse (and remove) a download that is no archive at all: a web page in its place, say."""
    try:
        archive_format(path)
    except SeeClearError:
        path.unlink(missing_ok=True)
        raise


def _use_local_archive(label: str, part: PartSpec, archive: Path, expected: str | None,
                       expected_size: int | None) -> tuple[Path, str]:
    if not archive.is_file():
        raise SeeClearError(f"--archive {archive}: expected the downloaded {part.filename} there, found "
                            f"{'a folder' if archive.is_dir() else 'nothing'}")
    size = archive.stat().st_size
    digest = file_sha256(archive)
    if expected_size is not None and size != expected_size:
        raise SeeClearError(f"{label}: --archive {archive} is {size} bytes, expected {expected_size}; refusing a "
                            "corrupt or different file")
    if digest_matches(digest, expected) is False:
        raise SeeClearError(f"{label}: --archive {archive} has sha256 {digest}, expected {expected}; refusing a "
                            "corrupt or different file")
    return archive, digest


def _install(label: str, part: PartSpec, archive: Path, dest: Path, record: dict[str, Any]) -> int:
    """Extract ``archive`` into a staging folder beside ``dest``, arrange it, record it, rename it into place."""
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    _sweep_staging(parent, dest.name)
    staging = parent / f"{_STAGING_PREFIX}{dest.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        extract(archive, staging / "x")
        content = _content_root(label, part, staging / "x", archive)
        if part.moves:
            content = _arrange(label, part, content, staging / "arranged")
        files, tree = tree_digest(content)
        if files == 0:
            raise SeeClearError(f"{label}: archive {archive} holds no files in {content.relative_to(staging / 'x')}")
        io.write_json(str(content / RECORD_NAME), {
            **record, "files": files, "tree_sha256": tree,
            "fetched_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })
        old = None
        if dest.exists():  # --force: the complete old folder goes only once the new one is ready
            old = parent / f"{_STAGING_PREFIX}{dest.name}.old-{uuid.uuid4().hex[:12]}"
            os.replace(dest, old)
        os.replace(content, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # a full disk, a read-only folder: one line naming where
        raise io.write_error(str(dest), exc) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s: %d files installed at %s", label, files, dest)
    return files


def _sweep_staging(parent: Path, name: str) -> None:
    """Remove staging folders an interrupted earlier run left for ``name``."""
    for leftover in parent.glob(f"{_STAGING_PREFIX}{name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _content_root(label: str, part: PartSpec, extracted: Path, archive: Path) -> Path:
    for candidate in part.content:
        if candidate == ".":
            entries = [p for p in extracted.iterdir() if not p.name.startswith(".")]
            return entries[0] if len(entries) == 1 and entries[0].is_dir() and not part.moves else extracted
        path = extracted.joinpath(*candidate.split("/"))
        if path.is_dir():
            return path
    top = ", ".join(sorted(p.name for p in extracted.iterdir())[:8]) or "nothing"
    raise SeeClearError(f"{label}: archive {archive} holds none of the expected folders "
                        f"({', '.join(part.content)}); its top level holds {top}")


def _arrange(label: str, part: PartSpec, content: Path, arranged: Path) -> Path:
    """Lay out ``content`` as ``part.moves`` say; a source used twice is copied, otherwise moved."""
    uses: dict[str, int] = {}
    for src, _ in part.moves:
        uses[src] = uses.get(src, 0) + 1
    for src, dst in part.moves:
        source = content.joinpath(*src.split("/"))
        if not source.exists():
            raise SeeClearError(f"{label}: the archive has no {src} in {content.name}; expected "
                                f"{', '.join(dict.fromkeys(s for s, _ in part.moves))}")
        target = arranged.joinpath(*dst.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        uses[src] -= 1
        if uses[src] > 0:
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
        else:
            os.replace(source, target)
    return arranged


def tree_digest(folder: Path) -> tuple[int, str]:
    """(file count, SHA-256 over every file's relative path and size) of ``folder``, the record excluded.

    A cheap fingerprint: a missing, added, renamed or resized file changes it; the archive's digest vouches for the
    bytes.
    """
    lines = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if rel != RECORD_NAME:
                lines.append(f"{rel}\t{path.stat().st_size}\n")
    lines.sort()
    return len(lines), hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def read_record(dest: Path) -> dict[str, Any] | None:
    """The completion record of an installed folder, or None when there is none."""
    path = dest / RECORD_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeeClearError(f"{path} is not a readable completion record ({exc}); pass --force to fetch again") \
            from exc
    if not isinstance(data, dict):
        raise SeeClearError(f"{path} should hold a JSON object; pass --force to fetch again")
    return data


def verify_folder(dest: Path, record: dict[str, Any]) -> None:
    """Check an installed folder against its completion record.

    Raises:
        SeeClearError: Files were added, removed, renamed or resized since it was installed.
    """
    files, tree = tree_digest(dest)
    if tree != record.get("tree_sha256"):
        raise SeeClearError(f"{dest} changed since it was fetched: {files} files now, {record.get('files')} then, "
                            "or a file was renamed or resized; pass --force to fetch it again")


def read_registry(out: Path) -> dict[str, Any]:
    """``OUT/seeclear-data.json``: archive file name -> the size, digest and source of its first verified download."""
    return read_downloads(out / REGISTRY_NAME, "archive")


def _register(out: Path, part: PartSpec, spec: DatasetSpec, *, digest: str, size: int, source: str) -> None:
    # the first verified download is the reference; later ones were checked against it
    record_download(out / REGISTRY_NAME, "archive", part.filename, {
        "dataset": spec.name, "part": part.name, "sha256": digest, "size": size, "url": source,
        "published_sha256": part.sha256,
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }, keep_first=True)
