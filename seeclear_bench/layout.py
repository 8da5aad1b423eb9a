"""The layout of the folders seeclear-bench writes: the only code that knows the paths of a run folder.

:class:`RunLayout` owns every path under ``runs/<name>/`` (spec, shard sets, prediction folders, metric parts and
tables, the training folder, the report's files, the lock), built from names checked once by
:func:`seeclear_bench.names.check_name`, and refuses any path outside its root. :class:`PredictionSet` owns the layout
of one method's predictions (``<root>/<dataset>/<clip>/<frame>.png`` plus ``_records/``), used inside a run folder and
by ``seeclear-bench infer --out``. :meth:`RunLayout.lock` is the one-writer-at-a-time lock and sweeps the temporary
files a killed writer left behind. Imports :mod:`seeclear_bench.io` and :mod:`seeclear_bench.names` only; never ray.

Layout of a run folder (``R``)::

    R/spec.json                                  the resolved spec, its hash and provenance
    R/.lock                                      held while a command writes R (host, pid, start time, command)
    R/source/<dataset>/                          materialised built-in sources (the demo footage)
    R/shards/<dataset>/{<dataset>-GGGGG-PP.tar, manifest.json, _tasks/GGGGG.json}
    R/predictions/<method>/<dataset>/<clip>/{NNNNNNNN.png, _records/video.json}
    R/metrics/parts/<dataset>/<protocol>/<clip>.{parquet,json}
    R/metrics/{frames,clips,datasets,intervals,scores,provenance,paired}.{parquet,csv}
    R/train/                                     the train stage (a `TrainFolder`)
    R/leaderboard.{md,csv,parquet,html}, R/figures/<picture>.png
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import posixpath
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any, Final

import fsspec

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.names import check_name, is_plain_name

log = logging.getLogger(__name__)

LOCK_NAME: Final = ".lock"
RECORDS_DIR: Final = "_records"
TASKS_DIR: Final = "_tasks"
FRAME_DIGITS: Final = 8
TEMPORARY: Final = re.compile(r"^\..+\.tmp-[0-9a-f]{12}$")  # io.atomic_open's temporary names


def frame_name(index: int) -> str:
    """File name of frame ``index`` of a predicted clip (``00000012.png``)."""
    if isinstance(index, bool) or int(index) < 0:
        raise SeeClearError(f"frame index must be a non-negative integer, got {index!r}")
    return f"{int(index):0{FRAME_DIGITS}d}.png"


class _Folder:
    """A root URL and the checked joins under it."""

    def __init__(self, root: str) -> None:
        if not str(root):
            raise SeeClearError("output folder is empty; pass --out")
        self.root = str(root).rstrip("/") or "/"

    def _under(self, *parts: str) -> str:
        """``root/part/...``; every part must be a fixed name of this module or a name checked by ``check_name``."""
        for part in parts:
            if part != LOCK_NAME and not is_plain_name(part):
                raise SeeClearError(f"refusing to write {part!r} under {self.root}: not a plain name")
        url = io.join(self.root, *parts)
        self.check_inside(url)
        return url

    def check_inside(self, url: str) -> str:
        """Return ``url`` when it lies under the root (after normalising ``.``/``..``), else refuse it."""
        _, root_path = io.split(self.root)
        _, path = io.split(url)
        root_norm = posixpath.normpath(root_path)
        norm = posixpath.normpath(path)
        if norm != root_norm and not norm.startswith(root_norm.rstrip("/") + "/"):
            raise SeeClearError(f"refusing to write {url}: outside the output folder {self.root}")
        return url


    def _children(self, url: str) -> list[str]:
        """Names of the sub-folders of ``url`` that are plain names (others are not ours and are ignored)."""
        fs, path = io.split(url)
        if not fs.isdir(path):
            return []
        found = [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False) if fs.isdir(p)]
        return sorted(n for n in found if is_plain_name(n) and not n.startswith("_"))


class PredictionSet(_Folder):
    """One method's predicted clips: ``<root>/<dataset>/<clip>/NNNNNNNN.png`` and ``_records/<record>.json``."""

    def datasets(self) -> list[str]:
        return self._children(self.root)

    def clips(self, dataset: str) -> list[str]:
        return self._children(self._under(check_name(dataset, "dataset name")))

    def records(self, dataset: str, clip: str) -> list[str]:
        """URLs of the clip's record files, sorted."""
        return io.glob(io.join(self.clip(dataset, clip), RECORDS_DIR, "*.json"))

    def clip(self, dataset: str, clip: str) -> str:
        return self._under(check_name(dataset, "dataset name"), check_name(clip, "clip name"))

    def frame(self, dataset: str, clip: str, index: int) -> str:
        return io.join(self.clip(dataset, clip), frame_name(index))

    def record(self, dataset: str, clip: str, name: str) -> str:
        """A record of the clip (the predict stage writes ``video``)."""
        return io.join(self.clip(dataset, clip), RECORDS_DIR, f"{check_name(name, 'record name')}.json")

    def member(self, dataset: str, clip: str, name: str) -> str:
        """A file a record lists (a frame or the clip's mp4), refused unless it is a plain name inside the clip."""
        return io.join(self.clip(dataset, clip), check_name(name, f"file name in a record of {dataset}/{clip}"))


class TrainFolder(_Folder):
    """The layout of a training folder (``R/train`` of a run, or ``seeclear-bench train --out``)::

        T/train.json                                   the plan, the shards and the result
        T/<stage>/checkpoints/step-NNNNNNNN/           checkpoints (seeclear_bench.checkpoints), Ray's copy on Ray
        T/<stage>/{log,val}.csv                        per-step log; per-validation scores
        T/<stage>/workers/rank-R.json                  pid, host and attempts of each rank
        T/<stage>/_failure-<token>.json                a worker's one-line failure while Ray restarts the others

    Stages are SeeClear's training stages (``condenser``, ``memory``, ``joint``) in the order they run.
    """

    STAGES: Final = ("condenser", "memory", "joint")

    def summary(self) -> str:
        return self._under("train.json")

    def stage(self, stage: str) -> str:
        if stage not in self.STAGES:
            raise SeeClearError(f"unknown training stage {stage!r}; stages are {', '.join(self.STAGES)}")
        return self._under(stage)

    def checkpoints(self, stage: str) -> str:
        return self._under(stage, "checkpoints") if self.stage(stage) else ""

    def checkpoint(self, stage: str, step: int) -> str:
        return self._under(stage, "checkpoints", f"step-{int(step):08d}") if self.stage(stage) else ""

    def log(self, stage: str) -> str:
        return self._under(stage, "log.csv") if self.stage(stage) else ""

    def val(self, stage: str) -> str:
        return self._under(stage, "val.csv") if self.stage(stage) else ""

    def worker(self, stage: str, rank: int) -> str:
        return self._under(stage, "workers", f"rank-{int(rank)}.json") if self.stage(stage) else ""

    def failure(self, stage: str, token: str) -> str:
        return self._under(stage, f"_failure-{check_name(token, 'failure token')}.json") if self.stage(stage) else ""


class RunLayout(_Folder):
    """Every path of a run folder; see the module docstring for the layout."""

    def spec(self) -> str:
        return self._under("spec.json")

    def lock_file(self) -> str:
        return self._under(LOCK_NAME)

    def source(self, name: str) -> str:
        return self._under("source", check_name(name, "data.sources.name"))

    def shards(self, dataset: str) -> str:
        return self._under("shards", check_name(dataset, "dataset name"))

    def shard_task_record(self, dataset: str, group: int) -> str:
        return io.join(self.shards(dataset), TASKS_DIR, f"{int(group):05d}.json")

    def predictions(self, method: str) -> PredictionSet:
        return PredictionSet(self._under("predictions", check_name(method, "method name")))

    def is_run(self) -> bool:
        """Whether the folder is a run folder (it holds ``spec.json``)."""
        return io.exists(self.spec())

    def datasets(self) -> list[str]:
        """Datasets with a shard set folder."""
        return self._children(self._under("shards"))

    def methods(self) -> list[str]:
        """Methods with a predictions folder."""
        return self._children(self._under("predictions"))

    def metrics(self, table: str = "") -> str:
        """The metrics folder, or the URL stem of one of its tables (``frames`` -> ``metrics/frames``)."""
        return self._under("metrics", table) if table else self._under("metrics")

    def metrics_part(self, dataset: str, clip: str, protocol: str) -> str:
        return self._under("metrics", "parts", check_name(dataset, "dataset name"), check_name(protocol, "protocol name"),
                           f"{check_name(clip, 'clip name')}.parquet")

    def train(self) -> TrainFolder:
        return TrainFolder(self._under("train"))

    def report_file(self, name: str) -> str:
        """A file of the report at the top of the folder (``leaderboard.md``, ``leaderboard.html``)."""
        return self._under(name)

    def figure(self, name: str) -> str:
        return self._under("figures", f"{check_name(name, 'figure name')}.png")

    # -- one writer at a time -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str = "") -> Iterator[RunLayout]:
        """Hold the folder's lock for the block: one command writes a folder at a time.

        The lock is ``.lock`` (JSON: host, pid, start time, command), created atomically on local disks
        (``O_CREAT | O_EXCL``). A second command fails at once naming the holder. A lock whose process is gone (same
        host, pid no longer running) is taken over with a warning. Once held, the temporary files that a killed or
        crashed writer left in the folder are removed (no live writer can own them). On object stores there is no
        atomic create here: the lock is checked then written, which stops the common case of a second command but
        not two started in the same instant (documented in README).

        Raises:
            SeeClearError: Another live command holds the lock.
        """
        url = self.lock_file()
        fs, path = io.split(url)
        io.check_writable(self.root)  # one line for a file where the folder should be, a read-only place, ...
        token = uuid.uuid4().hex
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": _now(), "command": command,
                  "token": token}
        data = (json.dumps(holder, indent=2, sort_keys=True) + "\n").encode("utf-8")
        for _attempt in range(2):
            if _create_exclusive(fs, path, data):
                break
            found = _read_holder(fs, path)
            if not _is_stale(found):
                raise SeeClearError(f"{self.root} is in use by another seeclear-bench command ({_describe(found)}); "
                                    f"wait for it to finish, or delete {url} if that command is no longer running")
            log.warning("taking over the lock of %s left by a command that is no longer running (%s)", self.root,
                        _describe(found))
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path)
        else:
            raise SeeClearError(f"could not take the lock {url}: another command took it at the same time")
        try:
            self.sweep_temporaries()
            yield self
        finally:
            with contextlib.suppress(Exception):
                if _read_holder(fs, path).get("token") == token:
                    fs.rm(path)

    def sweep_temporaries(self, *, quiet: bool = False) -> int:
        """Remove the temporary files (``.NAME.tmp-xxxxxxxxxxxx``) under the folder; call it holding the lock.

        Args:
            quiet: log the count at INFO instead of WARNING (after a failed or interrupted command, whose temporaries
                are expected).

        Returns:
            How many were removed.
        """
        fs, root = io.split(self.root)
        if not fs.exists(root):
            return 0
        stale = [p for p in fs.find(root) if TEMPORARY.match(posixpath.basename(p))]
        for p in stale:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(p)
        if stale:
            log.log(logging.INFO if quiet else logging.WARNING,
                    "removed %d temporary file(s) left in %s by an interrupted command", len(stale), self.root)
        return len(stale)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; atomic on local disks."""
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise SeeClearError(f"cannot create the lock {path}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    if fs.exists(path):
        return False
    with fs.open(path, "wb") as f:
        f.write(data)
    return True


def _read_holder(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    try:
        with fs.open(path, "rb") as f:
            found = json.loads(f.read().decode("utf-8"))
        return found if isinstance(found, dict) else {}
    except FileNotFoundError:
        return {"gone": True}
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict[str, Any]) -> bool:
    """The lock's process is known to be gone: the file vanished, or it names a pid of this host that is not running.

    A lock from another host, or one that cannot be read (its writer may be writing it right now), is not stale.
    """
    if holder.get("gone"):
        return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _describe(holder: dict[str, Any]) -> str:
    if not holder or holder.get("gone"):
        return "holder unknown"
    command = f": {holder['command']}" if holder.get("command") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started_at')}{command}"
