"""Connecting to Ray and running a list of independent tasks with a progress bar.

Only ``pipelines/`` imports ray. Task failures caused by user input (:class:`SeeClearError`) come back to the
driver as the same one-line error, not as a Ray traceback.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seeclear_bench.errors import SeeClearError

log = logging.getLogger(__name__)


def connect(address: str | None = None, *, num_cpus: int = 0, ship_code: bool | None = None) -> dict[str, Any]:
    """Start a local Ray instance, or join a cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``).

    Joining a cluster ships this checkout's ``seeclear_bench``, ``pipelines`` and ``model`` packages to the workers
    (``runtime_env.py_modules``) unless ``ship_code`` is False; the cluster needs the dependencies installed.

    Returns:
        The cluster's resources, e.g. ``{"CPU": 2.0, ...}``.
    """
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_ACCEPT_CALLABLE_CLASSES", "1")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
        if address:
            if ship_code is None or ship_code:
                root = Path(__file__).resolve().parents[1]
                kwargs["runtime_env"] = {"py_modules": [str(root / name) for name in ("seeclear_bench", "pipelines", "model")]}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SeeClearError(f"could not connect to a Ray cluster at {address!r}: {exc}") from exc
        else:
            ray.init(num_cpus=num_cpus or None, **kwargs)
    return dict(ray.cluster_resources())


def run_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    desc: str,
    num_cpus: float = 0.5,
    num_gpus: float = 0,
    progress: bool = True,
) -> list[Any]:
    """Run ``fn(*args)`` for each args tuple as a Ray task; return the results in the order of ``calls``."""
    import ray
    from tqdm.auto import tqdm

    if not calls:
        return []
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=2,  # type: ignore[call-overload]
                        retry_exceptions=[OSError])(fn)  # ray's stubs type retry_exceptions as bool only
    refs = [remote.remote(*args) for args in calls]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="task", disable=None if progress else True, leave=False) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = _get(ref)
                bar.update(1)
    return results


def cluster_gpus() -> float:
    """GPUs in the connected cluster (0 on CPU-only machines)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def _get(ref: Any) -> Any:
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, SeeClearError):
            raise SeeClearError(str(cause)) from None
        raise


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception under Ray's wrappers (``RayTaskError.cause``, ``__cause__``, Ray Train's
    ``worker_failures``), so a worker's `SeeClearError` reaches the user as its one line."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = getattr(exc, "cause", None) or exc.__cause__
        errors = getattr(exc, "worker_failures", None)
        if isinstance(errors, dict) and errors:
            nxt = next(iter(errors.values()))
        if not isinstance(nxt, BaseException):
            break
        exc = nxt
    return exc
