"""Test-only pause points: a fault test stops a worker at a known place, acts (kills it, signals the run), then lets
it go, instead of sleeping and hoping the worker is still there.

Inert unless ``SEECLEAR_TEST_PAUSE_DIR`` is set (tests/conftest.py sets it); even then a point pauses only while a
test has armed it by creating ``<dir>/<name>.pause``. A paused process writes ``<dir>/<name>.reached-<pid>`` (JSON
with its pid) and waits until ``<dir>/<name>.go`` appears or the ``.pause`` file is removed, at most
``TIMEOUT_S``. Nothing here changes what a run computes. Imports nothing of seeclear_bench.
"""
from __future__ import annotations

import json
import os
import time
from typing import Final

ENV_VAR: Final = "SEECLEAR_TEST_PAUSE_DIR"
TIMEOUT_S: Final = 300.0


def pause_point(name: str) -> None:
    """Pause here while a test has armed ``name`` (see the module docstring); otherwise return at once."""
    folder = os.environ.get(ENV_VAR)
    if not folder:
        return
    armed = os.path.join(folder, f"{name}.pause")
    if not os.path.exists(armed):
        return
    pid = os.getpid()
    partial = os.path.join(folder, f".{name}.{pid}.tmp")
    with open(partial, "w") as f:  # then renamed: a reader never sees a half-written marker
        json.dump({"pid": pid, "name": name}, f)
    os.replace(partial, os.path.join(folder, f"{name}.reached-{pid}"))
    go, end = os.path.join(folder, f"{name}.go"), time.monotonic() + TIMEOUT_S
    while time.monotonic() < end and os.path.exists(armed) and not os.path.exists(go):
        time.sleep(0.05)
