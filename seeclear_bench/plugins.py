"""Methods added without editing the package: a spec's ``[methods.NAME]`` tables (`PluginMethodConfig`).

Two kinds, both :class:`seeclear_bench.methods.Upscaler` like the built-ins, run by the same predict stage:

- ``entry = "package.module:factory"``: ``factory(**options)`` returns an object whose ``upscale`` (or the object
  itself, when callable) takes a whole LR video ``(t h w 3)`` uint8 and the scale and returns the HR video
  ``(t, h*scale, w*scale, 3)`` uint8; its optional ``describe()`` (JSON-able) goes into every record.
- ``command = "prog arg {lr_dir} {out_dir} {scale}"``: any program. The LR video is written as PNG frames
  ``00000000.png, 00000001.png, ...`` into ``lr_dir``; the program writes one PNG per frame, with the same names, into
  ``out_dir``. Its argv is ``shlex.split(command)`` with the placeholders filled in argument by argument; it never runs
  through a shell.

A method's *identity* (what a record must name to be reused; :func:`describe_plugin`) is computed from the spec and
the files it names, without building the method, so the driver and every actor agree on it: the entry point and
options, the version of the package it comes from (``importlib.metadata``) and the SHA-256 of its module file and of
option values that are existing files; or the command line as written and the SHA-256 of its program and of every
argument that is an existing file. Changing any of them predicts again. Relative paths are resolved against the
working directory of the process running the method (the driver's, on a local Ray).

Imports neither ray nor torch.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from seeclear_bench.download import file_sha256
from seeclear_bench.errors import SeeClearError, did_you_mean, first_line, one_line

if TYPE_CHECKING:
    from seeclear_bench.config import PluginMethodConfig

log = logging.getLogger(__name__)

PLACEHOLDERS: Final = ("lr_dir", "out_dir", "scale")
_ENTRY: Final = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# -- checks of the spec (no file is read) -------------------------------------------------------------------------
def check_entry(entry: str, where: str) -> str:
    """``entry`` when it reads ``package.module:factory`` (dotted names; the factory may be ``Class.method``)."""
    if not _ENTRY.match(entry):
        raise SeeClearError(f"{where}.entry must read 'package.module:factory', got {entry!r}")
    return entry


def command_argv(command: str, where: str) -> list[str]:
    """``shlex.split(command)``, each argument checked for placeholders: only ``{lr_dir}``, ``{out_dir}`` and
    ``{scale}`` (literal braces doubled, ``{{``), and the program itself takes none.

    Raises:
        SeeClearError: an unparsable line, an empty one, an unknown or formatted placeholder, or no ``{lr_dir}`` or
            ``{out_dir}``.
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SeeClearError(f"{where}.command cannot be split into arguments ({exc}): {command!r}") from exc
    if not argv:
        raise SeeClearError(f"{where}.command is empty; give a program and its arguments")
    used = set()
    for i, arg in enumerate(argv):
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(arg) if f is not None]
        except ValueError as exc:
            raise SeeClearError(f"{where}.command argument {arg!r}: {exc} (write a literal brace as '{{{{' or "
                                "'}}}}')") from exc
        for field, spec, conv in fields:
            if field not in PLACEHOLDERS or spec or conv:
                raise SeeClearError(f"{where}.command has placeholder {{{field}{'!' + conv if conv else ''}"
                                    f"{':' + spec if spec else ''}}}{did_you_mean(field, PLACEHOLDERS)}; valid: "
                                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
            if i == 0:
                raise SeeClearError(f"{where}.command: the program ({arg!r}) may not hold a placeholder")
            used.add(field)
    for needed in ("lr_dir", "out_dir"):
        if needed not in used:
            raise SeeClearError(f"{where}.command must pass {{{needed}}} to the program (it reads the LR frames from "
                                f"{{lr_dir}} and writes the HR frames to {{out_dir}}), got {command!r}")
    return argv


# -- identity and provenance ---------------------------------------------------------------------------------------
def describe_plugin(name: str, cfg: PluginMethodConfig) -> dict[str, Any]:
    """The identity of plug-in ``name``: what its predictions' records must name to be reused (see the module).

    Raises:
        SeeClearError: the entry's module cannot be found, or the command's program is not a file nor on ``PATH``.
    """
    if cfg.entry:
        module_name = cfg.entry.split(":")[0]
        origin = _module_file(name, module_name)
        options = _jsonable_options(name, cfg.options)
        files = {key: file_sha256(Path(value)) for key, value in options.items()
                 if isinstance(value, str) and value and os.path.isfile(value)}
        return {"entry": cfg.entry, "options": options, "package": _distribution(module_name.split(".")[0]),
                "module_sha256": file_sha256(origin) if origin else None, "files": files}
    argv = command_argv(cfg.command, f"methods.{name}")
    program = _program(name, argv[0])
    files = {arg: file_sha256(Path(arg)) for arg in argv[1:] if "{" not in arg and os.path.isfile(arg)}
    return {"command": cfg.command, "program_sha256": file_sha256(program), "files": files}


def _module_file(name: str, module_name: str) -> Path | None:
    """The file of the entry's module, found without running it (its parent packages are imported)."""
    parents = {".".join(module_name.split(".")[: i + 1]) for i in range(module_name.count(".") + 1)}
    try:
        try:
            spec = importlib.util.find_spec(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in parents:
                raise
            spec = None  # a parent package that is not there
    except Exception as exc:  # a parent package that fails to import (a missing dependency), or is not a package
        raise SeeClearError(f"method {name}: cannot find module {module_name!r} ({one_line(exc)})") from exc
    if spec is None:
        raise SeeClearError(f"method {name}: no module named {module_name!r}; install its package or put its folder "
                            "on PYTHONPATH (the prediction actors need it too)")
    origin = spec.origin
    return Path(origin) if origin and os.path.isfile(origin) else None


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def _distribution(top_level: str) -> dict[str, str] | None:
    """``{"name", "version"}`` of the installed distribution providing ``top_level``, or None (a module on
    ``PYTHONPATH``)."""
    names = _distributions().get(top_level) or []
    if not names:
        return None
    try:
        return {"name": names[0], "version": metadata.version(names[0])}
    except metadata.PackageNotFoundError:
        return None


def _jsonable_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(options)))
    except (TypeError, ValueError) as exc:
        raise SeeClearError(f"methods.{name}.options must hold strings, numbers, booleans, lists and tables ({exc})") \
            from exc


def _program(name: str, program: str) -> Path:
    """The file a command's program names: a path, or a name found on ``PATH`` (``shutil.which``)."""
    found = shutil.which(program)
    if found is None:
        where = "is not an executable file" if os.sep in program else "is not on PATH"
        raise SeeClearError(f"method {name}: the command's program {program!r} {where}")
    return Path(os.path.abspath(found))  # not resolved: a virtualenv's python is a link that must stay one


# -- the two kinds ----------------------------------------------------------------------------------------------
class EntryMethod:
    """A Python entry point: ``factory(**options)`` built once per actor, then called on whole videos."""

    def __init__(self, name: str, cfg: PluginMethodConfig) -> None:
        self.name = name
        self.identity = describe_plugin(name, cfg)
        module_name, _, attr = cfg.entry.partition(":")
        try:
            factory: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise SeeClearError(f"method {name}: importing {module_name!r} failed: {_cause(exc)}") from exc
        for part in attr.split("."):
            if not hasattr(factory, part):
                known = [n for n in dir(factory) if not n.startswith("_")]
                raise SeeClearError(f"method {name}: {cfg.entry!r}: {module_name} has no {part!r}"
                                    f"{did_you_mean(part, known)}")
            factory = getattr(factory, part)
        if not callable(factory):
            raise SeeClearError(f"method {name}: {cfg.entry!r} is not callable (a {type(factory).__name__}); it "
                                "must be a factory returning the upscaler")
        try:
            obj = factory(**self.identity["options"])
        except Exception as exc:
            raise SeeClearError(f"method {name}: {cfg.entry}(**options) failed: {_cause(exc)}") from exc
        upscale = getattr(obj, "upscale", None)
        self._upscale: Any = upscale if callable(upscale) else obj if callable(obj) else None
        if self._upscale is None:
            raise SeeClearError(f"method {name}: {cfg.entry} returned a {type(obj).__name__}, which has no upscale() "
                                "and is not callable; return an object taking (lr_video, scale)")
        self._provenance = {"module_file": _module_origin(module_name), "object": type(obj).__qualname__}
        describe = getattr(obj, "describe", None)
        if callable(describe):
            try:
                self._provenance["describe"] = json.loads(json.dumps(describe()))
            except Exception as exc:
                raise SeeClearError(f"method {name}: describe() must return JSON-able values: {_cause(exc)}") from exc

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        try:
            out = self._upscale(lr.copy(), scale)  # a copy: the next method of the video reads the same frames
        except Exception as exc:
            raise SeeClearError(_cause(exc)) from exc
        return np.asarray(out) if hasattr(out, "__array__") else out  # e.g. a CPU tensor; anything else is refused

    def describe(self) -> dict[str, Any]:
        return dict(self.identity)

    def provenance(self) -> dict[str, Any]:
        """Recorded with every prediction beside the identity: where the module was loaded from, the object's type
        and its own ``describe()``."""
        return dict(self._provenance)


def _module_origin(module_name: str) -> str | None:
    import sys

    return getattr(sys.modules.get(module_name), "__file__", None)


def _cause(exc: BaseException) -> str:
    """``ExcClass: first line`` of an exception raised by a plug-in's own code."""
    text = first_line(str(exc))
    return f"{type(exc).__name__}{': ' + text if text else ''}"


class CommandMethod:
    """A program run once per video on PNG frames in a temporary folder (see the module)."""

    def __init__(self, name: str, cfg: PluginMethodConfig) -> None:
        self.name = name
        self.identity = describe_plugin(name, cfg)
        argv = command_argv(cfg.command, f"methods.{name}")
        # Resolved once here, so the program still finds them from the temporary folder it runs in.
        self.argv = [str(_program(name, argv[0])),
                     *(str(Path(a).resolve()) if "{" not in a and os.path.isfile(a) else a for a in argv[1:])]
        self.timeout = cfg.timeout or None

    def __call__(self, lr: np.ndarray, scale: int, *, key: str = "") -> np.ndarray:
        from seeclear_bench.data.frames import decode_frame, encode_png
        from seeclear_bench.layout import frame_name

        where = f"method {self.name} on {key or 'a video'}"  # for the debug log; predict_video names both in errors
        names = [frame_name(i) for i in range(len(lr))]
        with tempfile.TemporaryDirectory(prefix=f"seeclear-{self.name}-") as tmp:
            lr_dir, out_dir = Path(tmp, "lr"), Path(tmp, "out")
            lr_dir.mkdir()
            out_dir.mkdir()
            for frame_file, frame in zip(names, lr):
                (lr_dir / frame_file).write_bytes(encode_png(frame))
            values = {"lr_dir": str(lr_dir), "out_dir": str(out_dir), "scale": str(scale)}
            argv = [self.argv[0], *(a.format(**values) for a in self.argv[1:])]
            self._run(argv, Path(tmp), where)
            missing = [n for n in names if not (out_dir / n).is_file()]
            if missing:
                found = sorted(p.name for p in out_dir.iterdir())[:3]
                raise SeeClearError(f"the command wrote {len(names) - len(missing)} of {len(names)} frames "
                                    f"(missing {missing[0]}{' ...' if len(missing) > 1 else ''}; out_dir holds "
                                    f"{found or 'nothing'}); it must write a PNG named like each input frame")
            want = (lr.shape[1] * scale, lr.shape[2] * scale, 3)
            frames = []
            for frame_file in names:
                try:
                    frame = decode_frame((out_dir / frame_file).read_bytes(), name=frame_file)
                except SeeClearError as exc:
                    raise SeeClearError(f"the command's output {exc}") from exc
                if frame.shape != want:
                    raise SeeClearError(f"the command's frame {frame_file} is {frame.shape[1]}x{frame.shape[0]}, "
                                        f"expected {want[1]}x{want[0]} (x{scale})")
                frames.append(frame)
        return np.stack(frames)

    def _run(self, argv: list[str], cwd: Path, where: str) -> None:
        """Run ``argv`` in its own process group (killed whole on a timeout or an interrupt); stdout and stderr go
        to files, and a failure is one line with the last line of its stderr."""
        err_path = cwd / "stderr.txt"
        with open(cwd / "stdout.txt", "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True)
            except OSError as exc:
                raise SeeClearError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
            try:
                code = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise SeeClearError(f"the command ran longer than its timeout ({self.timeout:g} s) and was "
                                    f"stopped; raise methods.{self.name}.timeout (0: no limit)") from None
            finally:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        log.debug("%s: %s exited with %s", where, shlex.join(argv), code)
        if code != 0:
            with open(err_path, "rb") as f:  # its tail: a model may log a lot before it fails
                f.seek(max(0, err_path.stat().st_size - 65536))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            last = f"; last line of its stderr: {lines[-1][:300]}" if lines else "; it wrote nothing to stderr"
            raise SeeClearError(f"the command {how}{last}")

    def describe(self) -> dict[str, Any]:
        return dict(self.identity)

    def provenance(self) -> dict[str, Any]:
        """Recorded with every prediction beside the identity: the argv as run (paths resolved, placeholders
        unfilled) and the timeout."""
        return {"argv": list(self.argv), "timeout": self.timeout}


def build_plugin(name: str, cfg: PluginMethodConfig) -> EntryMethod | CommandMethod:
    """The method of table ``[methods.<name>]``, built (an entry point imported and its factory called)."""
    return EntryMethod(name, cfg) if cfg.entry else CommandMethod(name, cfg)
