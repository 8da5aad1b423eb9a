"""Finding clips in a dataset folder (or video files) over fsspec URLs, and reading them into frame arrays.

Owns the on-disk layouts of the field's datasets and the named evaluation splits (:data:`SPLITS`, numbers from
CONVENTIONS.md §0). Supported layouts (``layout="auto"`` detects them and logs which one it picked):

* ``reds``: ``ROOT/000/00000000.png`` or ``ROOT/GT/000/...`` (BasicSR's REDS4 folder) or ``ROOT/train_sharp/000/...``
  (+ ``ROOT/val_sharp/000/...``; val clips numbered below 240 are renumbered +240, as BasicSR's regroup script does).
* ``vid4``: ``ROOT/calendar/*.png`` or ``ROOT/GT/calendar/*.png``.
* ``vimeo90k``: ``ROOT/sequences/00001/0266/im1.png .. im7.png`` plus a list file (``sep_testlist.txt`` or BasicSR's
  ``meta_info_Vimeo90K_test_GT.txt``) in ROOT; clip id ``00001_0266``. The URL may also be the list file itself.
* ``clips``: every subfolder of ROOT holds the frames of one clip (a folder holding frames directly is one clip).
* ``video``: a single video file, or a folder of video files, one clip per file (clip id = file stem).

Frames are PNG/JPEG/BMP files sorted numerically (``2.png`` before ``10.png``). Works on local paths, ``file://``,
``memory://`` and object stores. Over ``http(s)://`` (needs ``aiohttp``) folders are listed by parsing the server's
HTML index page, as fsspec does; servers without such pages only work for single video files and explicit
``ClipRef.frame_urls``.

Imports numpy and fsspec only at module level; video decoding (:mod:`seeclear_bench.data.video`) is imported when needed.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import unquote

import numpy as np
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from seeclear_bench import io
from seeclear_bench.data.frames import decode_frame, is_image_name
from seeclear_bench.errors import SeeClearError, did_you_mean
from seeclear_bench.names import check_name, plain_slug

logger = logging.getLogger(__name__)

LAYOUTS: Final = ("auto", "reds", "vid4", "vimeo90k", "clips", "video")
VIDEO_EXTENSIONS: Final = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
VIMEO_FRAMES: Final = tuple(f"im{i}.png" for i in range(1, 8))
REDS_VAL_OFFSET: Final = 240
_LOCAL_PROTOCOLS: Final = frozenset({"file", "local", "memory"})
_HTTP_PROTOCOLS: Final = frozenset({"http", "https"})
_READ_THREADS: Final = 8


@dataclass(frozen=True)
class SplitSpec:
    """A named evaluation split: which clips it holds, or which list file names them (Vimeo-90K-T)."""

    name: str
    layout: str
    clips: tuple[str, ...] = ()
    list_files: tuple[str, ...] = ()
    source: str = ""


SPLITS: Final = MappingProxyType({
    "REDS4": SplitSpec("REDS4", "reds", ("000", "011", "015", "020"), source="BasicSR meta_info_REDS4_test_GT.txt"),
    "REDSofficial4": SplitSpec("REDSofficial4", "reds", ("240", "241", "246", "257"), source="BasicSR REDS val"),
    "Vid4": SplitSpec("Vid4", "vid4", ("calendar", "city", "foliage", "walk"), source="Vid4: 41+34+49+47 frames"),
    "Vimeo-90K-T": SplitSpec(
        "Vimeo-90K-T", "vimeo90k", list_files=("sep_testlist.txt", "meta_info_Vimeo90K_test_GT.txt"),
        source="Vimeo-90K septuplet test list (7,824 entries)",
    ),
})
_DEFAULT_DATASET: Final = {"reds": "REDS", "vid4": "Vid4", "vimeo90k": "Vimeo-90K"}


@dataclass(frozen=True)
class ClipRef:
    """Where one clip lives.

    Attributes:
        dataset: Dataset name, e.g. ``"REDS4"``.
        clip_id: The clip's name inside the dataset, e.g. ``"000"``, ``"calendar"``, ``"00001_0266"``.
        url: The clip's folder of frames (``kind="frames"``) or its video file (``kind="video"``).
        kind: ``"frames"`` or ``"video"``.
        frame_urls: The frame files in display order; empty means "list ``url`` when reading".
        label: The clip's original name when it is not a plain name (:func:`seeclear_bench.names.plain_slug` made
            ``clip_id`` from it); empty otherwise.
    """

    dataset: str
    clip_id: str
    url: str
    kind: Literal["frames", "video"]
    frame_urls: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        check_name(self.dataset, "dataset name")
        check_name(self.clip_id, f"clip name in dataset {self.dataset}")


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``im2.png < im10.png``; ties broken by the plain string."""
    parts = re.split(r"(\d+)", str(name))
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), str(name)


# ---- listing ------------------------------------------------------------------------------------------------------
def _is_http(url: str) -> bool:
    return str(url).split("://", 1)[0].lower() in _HTTP_PROTOCOLS if "://" in str(url) else False


def _name(url: str) -> str:
    base = io.basename(url)
    return unquote(base) if _is_http(url) else base


def _scan(url: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(sub-folder URLs, file URLs, skipped (URL, reason)) directly inside folder ``url``; hidden names skipped.

    Symbolic links are followed (fsspec's local ``ls`` reports them as type ``other``): a link to a folder is a
    folder, a link to a file is a file. A broken link or an entry that is neither file nor folder (socket, FIFO) is
    returned in ``skipped`` with the reason, so that callers say what they leave out.

    Raises:
        SeeClearError: ``url`` cannot be listed, or an entry is a link loop (``a -> a``) or a link to a folder that
            contains it (a cycle a recursive walk would follow forever).
    """
    fs, path = io.split(url.rstrip("/") + "/" if _is_http(url) else url)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError as exc:
        raise SeeClearError(f"expected a folder at {url!r}, found nothing; check the path") from exc
    except (NotADirectoryError, PermissionError) as exc:
        raise SeeClearError(f"cannot list folder {url!r}: {exc.__class__.__name__}") from exc
    except OSError as exc:
        reason = "it is a symbolic link loop" if exc.errno == errno.ELOOP else (exc.strerror or exc.__class__.__name__)
        raise SeeClearError(f"cannot list folder {url!r}: {reason}; fix the path or the link") from exc
    dirs: list[str] = []
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    for entry in entries:
        name = entry["name"]
        base = posixpath.basename(name.rstrip("/"))
        if not base or base.startswith(".") or name.rstrip("/") == path.rstrip("/"):
            continue
        child = name.rstrip("/") if _is_http(url) else io.join(url, base)
        kind = entry.get("type")
        if kind not in ("directory", "file"):
            kind, reason = _resolve_special(fs, path, name, child, entry)
            if kind is None:
                skipped.append((child, reason))
                continue
        (dirs if kind == "directory" else files).append(child)
    return sorted(dirs, key=_url_key), sorted(files, key=_url_key), sorted(skipped, key=lambda s: _url_key(s[0]))


def _resolve_special(
    fs: AbstractFileSystem, parent: str, name: str, child: str, entry: Mapping[str, object]
) -> tuple[Literal["directory", "file"] | None, str]:
    """What a non-file, non-folder entry of folder ``parent`` stands for: (kind, "") or (None, why it is skipped)."""
    if not entry.get("islink") or not isinstance(fs, LocalFileSystem):
        return None, f"it is neither a file nor a folder (type {entry.get('type')!r})"
    target = entry.get("destination", "?")
    try:
        mode = os.stat(name).st_mode  # follows the whole chain of links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SeeClearError(
                f"{child!r} is a symbolic link loop (-> {target!r} never reaches a file or folder); fix or remove the link"
            ) from exc
        return None, f"it is a broken symbolic link to {target!r} ({exc.strerror or exc.__class__.__name__})"
    if stat.S_ISDIR(mode):
        real, here = os.path.realpath(name), os.path.realpath(parent)
        if here == real or here.startswith(real.rstrip(os.sep) + os.sep):
            raise SeeClearError(
                f"{child!r} is a link cycle: it points to {real!r}, which contains the link itself; "
                "remove the link or point it elsewhere"
            )
        return "directory", ""
    if stat.S_ISREG(mode):
        return "file", ""
    return None, f"it is a symbolic link to {target!r}, which is neither a file nor a folder"


def _list(url: str) -> tuple[list[str], list[str]]:
    """(sub-folder URLs, file URLs) directly inside folder ``url``, naturally sorted; each skipped entry is logged."""
    dirs, files, skipped = _scan(url)
    for child, reason in skipped:
        logger.warning("skipped %s: %s", child, reason)
    return dirs, files


def _url_key(url: str) -> tuple:
    return natural_key(_name(url))


def _is_video_name(name: str) -> bool:
    return str(name).lower().endswith(VIDEO_EXTENSIONS)


def list_frames(url: str) -> list[str]:
    """Image files directly inside folder ``url``, in natural order (``2.png`` before ``10.png``).

    Links to image files count as frames. A frame name that is a broken link is an error, not a silent gap in the
    clip; other entries that cannot be read are logged and skipped.

    Raises:
        SeeClearError: ``url`` cannot be listed, or a frame is a broken link, a link loop or not a regular file.
    """
    _, files, skipped = _scan(url)
    for child, reason in skipped:
        if is_image_name(child):
            raise SeeClearError(f"frame {child!r} cannot be read: {reason}; fix or remove it")
        logger.warning("skipped %s: %s", child, reason)
    return [f for f in files if is_image_name(f)]


# ---- discovery ----------------------------------------------------------------------------------------------------
def _detect(url: str, dirs: list[str], files: list[str]) -> str:
    names = {_name(d) for d in dirs}
    if "sequences" in names:
        return "vimeo90k"
    if names & {"train_sharp", "val_sharp"}:
        return "reds"
    if dirs:
        if all(re.fullmatch(r"\d{3}", n) for n in names):
            return "reds"
        if {n.casefold() for n in names} & set(SPLITS["Vid4"].clips):
            return "vid4"
        return "clips"
    if any(_is_video_name(f) for f in files):
        return "video"
    if any(is_image_name(f) for f in files):
        return "clips"
    raise SeeClearError(
        f"found no clips in {url!r}: expected clip folders of PNG/JPEG/BMP frames, a 'sequences' folder "
        f"(Vimeo-90K) or video files ({', '.join(VIDEO_EXTENSIONS)})"
    )


def _folder_clips(url: str, dirs: list[str], files: list[str]) -> dict[str, str]:
    if dirs:
        return {_name(d): d for d in dirs}
    if any(is_image_name(f) for f in files):
        return {_name(url): url}  # a folder of frames is one clip
    return {}


def _reds_clips(url: str, dirs: list[str], files: list[str]) -> dict[str, str]:
    by_name = {_name(d): d for d in dirs}
    if not by_name.keys() & {"train_sharp", "val_sharp"}:
        return _folder_clips(url, dirs, files)
    found: dict[str, str] = {}
    for part in ("train_sharp", "val_sharp"):
        if part not in by_name:
            continue
        clips = _folder_clips(by_name[part], *_list(by_name[part]))
        # An un-regrouped val_sharp numbers its 30 clips 000-029; BasicSR's regroup names them 240-269.
        shift = part == "val_sharp" and all(n.isdigit() and int(n) < REDS_VAL_OFFSET for n in clips)
        for name, clip_url in clips.items():
            clip_id = f"{int(name) + REDS_VAL_OFFSET:03d}" if shift else name
            if clip_id in found:
                raise SeeClearError(
                    f"REDS clip {clip_id!r} appears in both train_sharp and val_sharp under {url!r}; keep one copy"
                )
            found[clip_id] = clip_url
    return found


def _vimeo_clips(url: str, split: SplitSpec | None) -> tuple[dict[str, str], list[str] | None]:
    """(clip id -> folder URL for every septuplet found, clip ids named by the list file or None)."""
    list_url: str | None = None
    root = url
    if str(url).lower().endswith(".txt"):
        list_url, root = url, (url.rsplit("/", 1)[0] if "/" in url else ".")
    elif split is not None and split.list_files:
        candidates = [io.join(root, name) for name in split.list_files]
        list_url = next((c for c in candidates if io.exists(c)), None)
        if list_url is None:
            raise SeeClearError(
                f"split {split.name!r} needs a list file in {root!r} (one of {', '.join(split.list_files)}), "
                "found none; copy it from the Vimeo-90K download"
            )
    wanted: list[str] | None = None
    if list_url is not None:
        lines = io.read_bytes(list_url).decode("utf-8", errors="replace").splitlines()
        wanted = [line.split()[0].strip("/").replace("/", "_") for line in lines if line.strip()]
    sequences = io.join(root, "sequences")
    groups = _list(sequences)[0]
    if wanted is not None:  # list only the groups the list names
        needed = {w.split("_")[0] for w in wanted}
        groups = [g for g in groups if _name(g) in needed]
    found = {f"{_name(g)}_{_name(s)}": s for g in groups for s in _list(g)[0]}
    return found, wanted


def _select(found: dict[str, str], wanted: Sequence[str], what: str, url: str) -> dict[str, str]:
    """Keep ``wanted`` clip ids (exact match first, then case-insensitive); raise naming every missing one."""
    folded: dict[str, list[str]] = {}
    for name in found:
        folded.setdefault(name.casefold(), []).append(name)
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for clip_id in dict.fromkeys(wanted):
        if clip_id in found:
            chosen[clip_id] = found[clip_id]
        elif len(folded.get(clip_id.casefold(), [])) == 1:
            chosen[clip_id] = found[folded[clip_id.casefold()][0]]
        else:
            missing.append(clip_id)
    if missing:
        shown = ", ".join(sorted(found, key=natural_key)[:8]) + (", ..." if len(found) > 8 else "")
        hint = did_you_mean(missing[0], found) if len(missing) == 1 else ""
        raise SeeClearError(
            f"{what} names {len(missing)} clip(s) missing from {url!r}: {', '.join(missing)}{hint}; "
            f"found {len(found)} clip(s): {shown or 'none'}"
        )
    return chosen


def _resolve(url: str, layout: str) -> tuple[str, str, list[str], list[str]]:
    """(layout, root, sub-folders of root, files of root); root is ``url`` or its ``GT`` folder."""
    if _is_video_name(url) or url.lower().endswith(".txt"):
        found_layout = "video" if _is_video_name(url) else "vimeo90k"
        if layout not in ("auto", found_layout):
            raise SeeClearError(f"layout {layout!r} expects a folder, got the file {url!r}; pass its folder instead")
        if found_layout == "video" and not io.exists(url):
            raise SeeClearError(f"expected a video file at {url!r}, found nothing; check the path")
        return found_layout, url, [], []
    if not (_is_http(url) or io.isdir(url)):
        what = "a file" if io.exists(url) else _dangling_link(url) or "nothing"
        raise SeeClearError(f"expected a dataset folder or video file at {url!r}, found {what}; check the path")
    root = url
    dirs, files = _list(url)
    names = {_name(d) for d in dirs}
    if "GT" in names and layout != "vimeo90k" and not names & {"train_sharp", "val_sharp", "sequences"}:
        root = io.join(url, "GT") if not _is_http(url) else next(d for d in dirs if _name(d) == "GT")
        dirs, files = _list(root)  # BasicSR's test-set layout: ROOT/GT/<clip> beside ROOT/<LR folder>/<clip>
    if layout == "auto":
        layout = _detect(root, dirs, files)
        logger.info("discover_clips: detected layout %r at %s", layout, root)
    return layout, root, dirs, files


def _dangling_link(url: str) -> str:
    """``"a symbolic link loop"`` / ``"a broken symbolic link"`` for a local link that leads nowhere, else ``""``."""
    fs, path = io.split(url)
    if not isinstance(fs, LocalFileSystem) or not os.path.islink(path):
        return ""
    try:
        os.stat(path)
    except OSError as exc:
        return "a symbolic link loop" if exc.errno == errno.ELOOP else "a broken symbolic link"
    return ""


def _video_clips(url: str, files: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for video_url in [url] if _is_video_name(url) else [f for f in files if _is_video_name(f)]:
        stem = _name(video_url).rsplit(".", 1)[0]
        if stem in found:
            raise SeeClearError(f"two video files in {url!r} share the clip id {stem!r}; rename one of them")
        found[stem] = video_url
    return found


def discover_clips(
    url: str,
    *,
    layout: str = "auto",
    split: str | None = None,
    clips: Sequence[str] | None = None,
    dataset: str | None = None,
) -> list[ClipRef]:
    """Find the clips of a dataset folder or video file(s).

    Args:
        url: Dataset root folder, a video file, or (Vimeo-90K) a list file; local path or fsspec URL.
        layout: One of :data:`LAYOUTS`; ``"auto"`` detects it and logs the result.
        split: A name in :data:`SPLITS` (``"REDS4"``, ``"REDSofficial4"``, ``"Vid4"``, ``"Vimeo-90K-T"``): keep only
            its clips. Clip ids match exactly, else case-insensitively (``Calendar`` serves ``calendar``); the
            returned ``clip_id`` is the split's spelling.
        clips: Keep only these clip ids (applied after ``split``).
        dataset: Name recorded in each ClipRef; default the split name, else the layout's dataset
            (``REDS``/``Vid4``/``Vimeo-90K``), else the folder or file name.

    Returns:
        ClipRefs sorted by clip id in natural order. Frame-folder clips carry their ``frame_urls``.

    Raises:
        SeeClearError: Unknown layout or split, nothing found at ``url``, or a split/clip list naming missing clips.
    """
    if layout not in LAYOUTS:
        hint = did_you_mean(layout, LAYOUTS)
        raise SeeClearError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}{hint}")
    spec: SplitSpec | None = None
    if split is not None:
        if split not in SPLITS:
            raise SeeClearError(f"unknown split {split!r}; known: {', '.join(SPLITS)}{did_you_mean(split, SPLITS)}")
        spec = SPLITS[split]
    url = str(url)
    layout, root, dirs, files = _resolve(url, layout)
    wanted: list[str] | None = list(spec.clips) if spec is not None and spec.clips else None
    if layout == "video":
        found = _video_clips(url, files)
    elif layout == "vimeo90k":
        found, listed = _vimeo_clips(url, spec)
        wanted = listed if listed is not None else wanted
    elif layout == "reds":
        found = _reds_clips(root, dirs, files)
    else:
        found = _folder_clips(root, dirs, files)
    if not found:
        raise SeeClearError(f"found no clips in {url!r} with layout {layout!r}; check the path or pass layout=")

    if wanted is not None:
        found = _select(found, wanted, f"split {split!r}" if spec is not None else "the list file", url)
    if clips is not None:
        found = _select(found, [str(c) for c in clips], "clips=", url)
    dataset = dataset or split or _DEFAULT_DATASET.get(layout) or plain_slug(_name(url).rsplit(".", 1)[0] or "dataset")

    refs = []
    for clip_id in sorted(found, key=natural_key):
        clip_url = found[clip_id]
        kind: Literal["frames", "video"] = "video" if layout == "video" else "frames"
        if kind == "video":
            frame_urls: tuple[str, ...] = ()
        elif layout == "vimeo90k":
            frame_urls = tuple(io.join(clip_url, name) for name in VIMEO_FRAMES)
        else:
            frame_urls = tuple(list_frames(clip_url))
        plain = plain_slug(clip_id)
        if plain != clip_id:
            logger.warning("dataset %s: clip %r is not a plain name; it is called %r in shards, predictions and "
                           "tables (the original is kept as its label)", dataset, clip_id, plain)
        refs.append(ClipRef(dataset=dataset, clip_id=plain, url=clip_url, kind=kind, frame_urls=frame_urls,
                            label=clip_id if plain != clip_id else ""))
    return refs


# ---- reading ------------------------------------------------------------------------------------------------------
def _where(ref: ClipRef) -> str:
    return f"clip {ref.clip_id!r} of {ref.dataset!r}"


def _frame_urls(ref: ClipRef) -> list[str]:
    if ref.frame_urls:
        return list(ref.frame_urls)
    try:
        urls = list_frames(ref.url)
    except SeeClearError as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            raise SeeClearError(f"{_where(ref)}: expected a folder of frames at {ref.url!r}, found nothing") from exc
        raise SeeClearError(f"{_where(ref)}: {exc}") from exc  # a link loop, a broken frame link, no permission
    if not urls:
        raise SeeClearError(f"{_where(ref)}: no frames (PNG/JPEG/BMP) in {ref.url!r}; the clip is empty")
    return urls


def _check_window(ref: ClipRef, start: int, max_frames: int | None) -> None:
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise SeeClearError(f"{_where(ref)}: start must be an integer >= 0, got {start!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer))
                                   or max_frames < 1):
        raise SeeClearError(f"{_where(ref)}: max_frames must be None or an integer >= 1, got {max_frames!r}")


def _read_frame_bytes(url: str) -> bytes:
    """The bytes of one frame file; a failure is `io.read_bytes`' one line plus the fix."""
    try:
        return io.read_bytes(url)  # a missing file, a link loop, no permission: one line naming it
    except SeeClearError as exc:
        raise SeeClearError(f"{exc}; re-copy the clip") from exc


def _read_bytes(urls: list[str]) -> list[bytes]:
    """Read many small files; remote stores are read by a few threads at once (latency, not CPU, dominates)."""
    if len(urls) < 2 or io.protocol(urls[0]) in _LOCAL_PROTOCOLS:
        return [_read_frame_bytes(u) for u in urls]
    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        return list(pool.map(_read_frame_bytes, urls))


def _read_frames(
    ref: ClipRef, urls: list[str], keep: Callable[[bytes, np.ndarray], bool] | None = None
) -> tuple[np.ndarray, list[bytes | None]]:
    clip: np.ndarray | None = None
    kept: list[bytes | None] = []
    chunk = 2 * _READ_THREADS  # bounds the encoded bytes held at once (but those kept)
    for first in range(0, len(urls), chunk):
        try:
            blobs = _read_bytes(urls[first : first + chunk])
        except SeeClearError as exc:
            raise SeeClearError(f"{_where(ref)}: {exc}") from exc
        for i, data in enumerate(blobs, start=first):
            try:
                frame = decode_frame(data, urls[i])
            except SeeClearError as exc:
                raise SeeClearError(f"{_where(ref)}: {exc}") from exc
            if clip is None:
                clip = np.empty((len(urls), *frame.shape), dtype=np.uint8)
            elif frame.shape != clip.shape[1:]:
                raise SeeClearError(
                    f"{_where(ref)}: frame {_name(urls[i])!r} is {frame.shape[0]}x{frame.shape[1]} (h x w) but "
                    f"frame {_name(urls[0])!r} is {clip.shape[1]}x{clip.shape[2]}; all frames of a clip must share "
                    "one size"
                )
            clip[i] = frame
            kept.append(data if keep is not None and keep(data, frame) else None)
    assert clip is not None
    return clip, kept


def _read_video(ref: ClipRef, start: int, max_frames: int | None) -> np.ndarray:
    from seeclear_bench.data.video import decode_video

    if not io.exists(ref.url):
        raise SeeClearError(f"{_where(ref)}: expected a video file at {ref.url!r}, found nothing; check the path")
    stop = None if max_frames is None else start + max_frames
    try:
        video = decode_video(ref.url, max_frames=stop)
    except SeeClearError as exc:
        raise SeeClearError(f"{_where(ref)}: {exc}") from exc
    if len(video) == 0:
        raise SeeClearError(f"{_where(ref)}: the video {ref.url!r} holds no frames; the clip is empty")
    if start >= len(video):
        raise SeeClearError(f"{_where(ref)}: start {start} is past the end of the clip ({len(video)} frames)")
    return video if start == 0 else np.ascontiguousarray(video[start:])


def read_clip(ref: ClipRef, *, max_frames: int | None = None, start: int = 0) -> np.ndarray:
    """Read frames ``start .. start + max_frames - 1`` of a clip.

    Args:
        ref: The clip, from :func:`discover_clips` or built by hand.
        max_frames: Read at most this many frames (None: to the end).
        start: Index of the first frame to read.

    Returns:
        clip: (t h w 3) uint8 RGB, ``t = min(max_frames, length - start)``.

    Raises:
        SeeClearError: One line naming the clip (and frame): missing or unreadable source, empty clip, ``start``
            past the end, frames of different sizes, or a corrupt frame.
    """
    return read_clip_keeping(ref, max_frames=max_frames, start=start)[0]


def read_clip_keeping(
    ref: ClipRef, *, max_frames: int | None = None, start: int = 0,
    keep: Callable[[bytes, np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, list[bytes | None]]:
    """:func:`read_clip`, and per frame the bytes of its file where ``keep(bytes, frame)`` is true, else None.

    Each file is read once, so the bytes kept are exactly the bytes decoded (shard preparation stores an intact PNG
    as it is). A video's frames have no bytes of their own: all None.
    """
    _check_window(ref, start, max_frames)
    if ref.kind == "video":
        video = _read_video(ref, start, max_frames)
        return video, [None] * len(video)
    urls = _frame_urls(ref)
    if start >= len(urls):
        raise SeeClearError(f"{_where(ref)}: start {start} is past the end of the clip ({len(urls)} frames)")
    return _read_frames(ref, urls[start : None if max_frames is None else start + max_frames], keep)


def clip_length(ref: ClipRef) -> int:
    """Number of frames in a clip: the frame-file count, or the video's frame count from container metadata
    (decoding the video only when the container does not store it).

    Raises:
        SeeClearError: The source is missing or empty, or the video cannot be opened.
    """
    if ref.kind != "video":
        return len(_frame_urls(ref))
    if not io.exists(ref.url):
        raise SeeClearError(f"{_where(ref)}: expected a video file at {ref.url!r}, found nothing; check the path")
    import av

    fs, path = io.split(ref.url)
    try:
        with fs.open(path, "rb") as f, av.open(f) as container:
            frames = container.streams.video[0].frames if container.streams.video else 0
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise SeeClearError(f"{_where(ref)}: cannot open the video {ref.url!r} ({exc.__class__.__name__})") from exc
    if frames > 0:
        return int(frames)
    return len(read_clip(ref))
