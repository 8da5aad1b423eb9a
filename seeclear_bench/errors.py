"""The one exception type a user can cause; the CLI prints it as a single line."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeeClearError(ValueError):
    """A problem with the user's input, spec or environment.

    The message is one line saying what was expected, what was found and, where it helps, how to fix it.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid choice, or ``""`` when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
