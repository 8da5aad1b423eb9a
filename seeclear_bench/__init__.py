"""seeclear-bench: video super-resolution from raw video to a leaderboard people can trust.

Importing this package is cheap: it never imports ray, pyiqa, webdataset or the ``model`` package.
Heavy modules are imported lazily inside the functions that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from seeclear_bench.errors import SeeClearError

__all__ = ["SeeClearError", "__version__"]
