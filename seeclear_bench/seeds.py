"""The one way a random generator is built from a seed and a name (a clip, an interval), so every seeded choice of
the toolkit is independent of the machine, the process, the number of workers and the order of anything else.

Imports numpy and the error type only.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from seeclear_bench.errors import SeeClearError


def named_rng(seed: int, name: str) -> np.random.Generator:
    """PCG64 seeded from ``(seed, first 8 bytes of sha256(name))``: different names give independent streams.

    Args:
        seed: Non-negative integer seed (the spec's ``seed``).
        name: What the stream is for, e.g. a clip id (`seeclear_bench.data.degradations.clip_rng`) or an interval's
            names encoded as one string (`seeclear_bench.metrics.intervals.interval_rng`).

    Raises:
        SeeClearError: ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeeClearError(f"seed must be a non-negative integer, got {seed!r}")
    name_hash = int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), name_hash])))


def derive_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for a torch.Generator: the first 8 bytes of sha256 of ``(seed, *parts)`` as JSON.

    The training loop seeds every random draw from what it is for, never from its order in the process: e.g.
    ``derive_seed(seed, "noise", stage, epoch, sample)`` gives the same t and noise to a sample whatever the number of
    ranks, the batch it lands in or a resume.

    Raises:
        SeeClearError: ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeeClearError(f"seed must be a non-negative integer, got {seed!r}")
    text = json.dumps([int(seed), *[p if isinstance(p, str) else int(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
