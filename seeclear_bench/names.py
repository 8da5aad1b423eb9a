"""Names that come from data or from a user (dataset, clip, method, run, shard names) and may become parts of paths.

Owns the one rule for such a name, checked once where the name enters (a spec, a CLI option, a shard set's manifest
or sample metadata, a folder listing): a *plain name* is a non-empty string of at most :data:`MAX_NAME_LENGTH`
characters with no ``/`` or ``\\``, no ``..``, no leading ``.`` and no control characters. Anything else is refused in
one line naming the field and the value (:func:`check_name`), or, where the field's real data have such names (clip
folders discovered on disk), mapped to a plain slug plus a short hash of the original (:func:`plain_slug`) while the
original is kept as a label. Imports nothing of the rest of the package but its error type.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

from seeclear_bench.errors import SeeClearError

MAX_NAME_LENGTH: Final = 128
SLUG_HASH_DIGITS: Final = 8
_SLUG_KEEP: Final = re.compile(r"[^A-Za-z0-9_+=,@()\[\] -]+")


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a plain name, or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_NAME_LENGTH})"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    if value.startswith("."):
        return "starts with '.'"
    if value != value.strip():
        return "starts or ends with white space"
    if any(unicodedata.category(c).startswith("C") for c in value):
        return "contains a control character"
    return None


def is_plain_name(value: object) -> bool:
    """True when ``value`` passes :func:`check_name`."""
    return name_problem(value) is None


def check_name(value: object, field: str) -> str:
    """Return ``value`` when it is a plain name, else raise one line naming ``field`` and the value.

    Args:
        value: The name as received.
        field: Where it came from, as the user would recognise it (``"data.sources.name"``, ``"--dataset"``,
            ``"clip name in shards/REDS4/manifest.json"``).

    Raises:
        SeeClearError: ``value`` is not a plain name.
    """
    problem = name_problem(value)
    if problem is not None:
        shown = repr(value)[:MAX_NAME_LENGTH + 16]
        raise SeeClearError(f"{field} {shown} is not a plain name ({problem}): use a name without '/', '\\', '..', a "
                            f"leading '.' or control characters, at most {MAX_NAME_LENGTH} characters")
    assert isinstance(value, str)
    return value


def plain_slug(value: str) -> str:
    """``value`` itself when it is a plain name; else a plain slug of it plus ``~`` and a short hash of the original.

    For names the field's real data may carry (a clip folder called ``.hidden`` or with a line break in it): the slug
    keeps letters, digits and a few safe marks, so it stays readable, and the hash keeps two different originals
    apart. The same original always gives the same slug.
    """
    if is_plain_name(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:SLUG_HASH_DIGITS]
    slug = _SLUG_KEEP.sub("_", unicodedata.normalize("NFKC", value)).strip(" _.")[:MAX_NAME_LENGTH - SLUG_HASH_DIGITS - 1]
    return f"{slug or 'clip'}~{digest}"
