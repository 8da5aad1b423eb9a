"""What made an artifact: code version, git commit, library versions and the device, recorded with every output."""
from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import seeclear_bench


@functools.cache
def git_commit() -> str:
    """The commit of the source tree this package runs from, or "unknown" outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        sha = out.stdout.strip()
        # reports/ holds generated leaderboards; regenerating them must not mark the code that made them as dirty
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)reports"], capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def code_version() -> dict[str, str]:
    return {"seeclear_bench": seeclear_bench.__version__, "git_commit": git_commit()}


def record(**extra: Any) -> dict[str, Any]:
    """A provenance record: code version, time, host and any ``extra`` fields (spec hash, seed, protocol...)."""
    return {
        **code_version(),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "host": platform.node(),
        **extra,
    }


def device_name() -> str:
    """The device this process computes on, in words (CUDA GPU name or the CPU)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"
