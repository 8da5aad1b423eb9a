"""Ending a command on SIGINT (Ctrl-C) or SIGTERM: one line, exit status 128 + signal, Ray shut down.

`install` (called once by the CLI's ``main``) makes both signals raise `Interrupted` in the main thread, wherever the
driver happens to be: ``finally`` blocks run on the way out (`seeclear_bench.io.atomic_open` removes its temporary
file), then ``main`` prints the one line, shuts Ray down (`shutdown_ray`) and exits with `Interrupted.exit_code`.

While installed, the CLI process keeps these handlers: Ray replaces the SIGTERM handler in ``ray.init`` (``sys.exit``
with the signal number, then exit 1 from its node's handler) and Ray Train the SIGINT handler in ``fit`` (abort the
training, let the command carry on, and exit 0 on the third Ctrl-C), so `install` makes ``signal.signal`` leave
SIGINT and SIGTERM alone in the main thread; Ray's core worker also installs a C++ SIGTERM handler (a stack dump,
then abort), which `reinstall` replaces once ``ray.init`` returns. A second signal while the first is handled ends
the process at once.

Owns only process-wide signal handling for the CLI; library code never calls `install`. Never imports ray.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, Final

log = logging.getLogger(__name__)

SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_real_signal: Final = signal.signal
_saved: dict[int, Any] = {}
_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A `KeyboardInterrupt`: ``except Exception`` in library code does not swallow it, and
    Ray treats it as Ctrl-C (its blocking calls check for signals and stop on a `KeyboardInterrupt` only; anything
    else a handler raises there is lost until the call returns), though it may re-raise a plain `KeyboardInterrupt`
    in its place, which is why the handler also records the signal (`received`).

    Attributes:
        signum: the signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum

    def __str__(self) -> str:
        word = "terminated" if self.signum == signal.SIGTERM else "interrupted"
        return f"{word}; run the same command again to resume"


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(int(signum))
    for sig in SIGNALS:  # the first signal is being handled: a second one must not interrupt its cleanup halfway
        _real_signal(sig, _exit_now)
    raise Interrupted(signum)


def received() -> int | None:
    """The first signal the installed handler received, if any."""
    return _received[0] if _received else None


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os._exit(128 + signum)


def _keep_ours(signalnum: int, handler: Any) -> Any:
    """``signal.signal`` while installed: SIGINT and SIGTERM keep this module's handlers (see the module docstring)."""
    if signalnum in SIGNALS and threading.current_thread() is threading.main_thread():
        log.debug("kept the handler of signal %d", signalnum)
        return signal.getsignal(signalnum)
    return _real_signal(signalnum, handler)


def installed() -> bool:
    return bool(_saved)


def install() -> None:
    """Make SIGINT and SIGTERM raise `Interrupted` in the main thread, and keep them so (call from ``main`` only)."""
    if threading.current_thread() is not threading.main_thread() or installed():
        return
    for sig in SIGNALS:
        _saved[sig] = _real_signal(sig, _raise)
    signal.signal = _keep_ours


def reinstall() -> None:
    """Make the installed handlers the process's again at the OS level, after native code replaced them behind
    Python's back (Ray's core worker installs a C++ SIGTERM handler in ``ray.init`` that prints a stack and aborts)."""
    if not installed() or threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        _real_signal(sig, signal.getsignal(sig))


def interrupted_by(exc: BaseException) -> Interrupted | None:
    """The `Interrupted` that ``exc`` is or was raised from, else None.

    A signal may come back as a plain `KeyboardInterrupt` (Ray raises its own when its wait is interrupted; its signal
    is the one `received`, else SIGINT), or wrapped (``SystemError: ... returned a result with an exception set``
    from native code, or a library's own error raised from it).
    """
    from seeclear_bench.errors import exception_chain

    for cur in exception_chain(exc):
        if isinstance(cur, Interrupted):
            return cur
        if isinstance(cur, KeyboardInterrupt):
            return Interrupted(received() or signal.SIGINT)
    return None


def uninstall() -> None:
    """Put back the handlers `install` found, and ``signal.signal`` itself."""
    if not installed() or threading.current_thread() is not threading.main_thread():
        return
    signal.signal = _real_signal
    for sig, handler in _saved.items():
        _real_signal(sig, handler)
    _saved.clear()
    _received.clear()


def shutdown_ray(*, quiet: bool = False) -> None:
    """Shut Ray down if this process started or joined it (without importing ray when nothing did).

    Args:
        quiet: silence the process's standard error (file descriptor 2) while Ray stops: after a failure or an
            interrupt, Ray's C++ core prints a line per cancelled task ("Failed to push error to driver"), which would
            follow the command's one line.
    """
    ray = sys.modules.get("ray")
    if ray is None or not hasattr(ray, "is_initialized"):
        return
    with contextlib.suppress(Exception), _silenced_stderr(quiet):
        if ray.is_initialized():
            ray.shutdown()


@contextlib.contextmanager
def _silenced_stderr(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
