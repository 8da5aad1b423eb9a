"""The one exception type a user can cause, and how an error raised in another process reaches the user.

The CLI prints a `SeeClearError` as a single line. A task or actor running elsewhere (a Ray worker) catches what it
raises as a `Failure` (its one line and its formatted traceback) and returns it as a value; the driver raises
`Failure.error`, so the user reads the same line as without Ray and ``--debug`` still shows where it happened.
Imports only the standard library (never ray).
"""
from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class SeeClearError(ValueError):
    """A problem with the user's input, spec or environment.

    The message is one line saying what was expected, what was found and, where it helps, how to fix it.
    """


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process, set as the ``__cause__`` of the driver's
    `SeeClearError` so that ``--debug`` prints it above the driver's own traceback."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text.rstrip("\n")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or during (``__cause__``, else ``__context__``), and so on; each once."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped ("" when there is none)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def one_line(exc: BaseException, where: str = "") -> str:
    """The one line a user reads for ``exc``.

    A `SeeClearError` is its own message, unchanged (the same line with or without Ray). Anything else is unexpected:
    ``"<ExcClass>: <first line of its message> (in <where>; run with --debug for the traceback)"``.
    """
    if isinstance(exc, SeeClearError):
        return str(exc) or type(exc).__name__
    text = first_line(str(exc))
    place = f"in {where}; " if where else ""
    return f"{type(exc).__name__}{': ' + text if text else ''} ({place}run with --debug for the traceback)"


@dataclass(frozen=True)
class Failure:
    """An exception caught where it was raised (a Ray task or actor) and returned as a plain, picklable value, so that
    Ray neither retries it nor logs it as unhandled.

    Attributes:
        message: the one line the user reads (`one_line`).
        kind: the exception's class name.
        traceback: the formatted traceback in the process that raised it (shown with ``--debug``).
    """

    message: str
    kind: str
    traceback: str = ""

    @classmethod
    def capture(cls, exc: BaseException, where: str = "") -> Failure:
        """The failure record of ``exc``; ``where`` names the task for exceptions other than `SeeClearError`."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(message=one_line(exc, where), kind=type(exc).__name__, traceback=text)

    def error(self, message: str | None = None) -> SeeClearError:
        """The `SeeClearError` to raise in the driver: ``message`` (default: this failure's own line), caused by the
        remote traceback."""
        err = SeeClearError(self.message if message is None else message)
        if self.traceback:
            err.__cause__ = RemoteTraceback(self.traceback)
        return err


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
