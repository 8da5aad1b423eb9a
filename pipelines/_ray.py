"""Connecting to Ray, running a list of independent tasks, and turning what fails inside Ray into one line.

Only ``pipelines/`` imports ray. A task's own exceptions (bad input, a full disk, a corrupt file, a bug) are caught
inside the worker and come back as values (:class:`seeclear_bench.errors.Failure`): Ray neither retries them (they
would fail again) nor logs them as unhandled, and the driver raises the same one line the task would have raised
outside Ray. Only system failures (a worker or node that died) are retried.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from seeclear_bench import interrupts
from seeclear_bench.errors import Failure, SeeClearError, one_line

log = logging.getLogger(__name__)

SYSTEM_RETRIES: Final = 2  # runs again of a task whose worker or node died; a task's own exception is never retried
SMALL_JOB_TASKS: Final = 8  # `auto`: this many tasks or fewer run in this process when no Ray is connected or named
DRAIN_SECONDS: Final = 60.0  # how long a failed run waits for its cancelled tasks to stop


def connect(address: str | None = None, *, num_cpus: int = 0, ship_code: bool | None = None) -> dict[str, Any]:
    """Start a local Ray instance, or join a cluster at ``address`` (``auto``, ``ray://host:10001``, ``host:6379``) or
    at ``RAY_ADDRESS``.

    Joining a cluster ships this checkout's ``seeclear_bench``, ``pipelines`` and ``model`` packages to the workers
    (``runtime_env.py_modules``) unless ``ship_code`` is False; the cluster needs the dependencies installed.

    Returns:
        The cluster's resources, e.g. ``{"CPU": 2.0, ...}``.
    """
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_ACCEPT_CALLABLE_CLASSES", "1")
        # Ray's start-up lines and what its workers and raylets print (e.g. "Task ... failed" when an interrupted run
        # kills its actors) stay out of the terminal unless the user asked for logs (--verbose, --debug); they are
        # kept in Ray's session logs, and a task's own failure still reaches the user as its one line
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": verbose,
                                  "logging_level": logging.INFO if verbose else logging.WARNING}
        if address:
            if ship_code is None or ship_code:
                root = Path(__file__).resolve().parents[1]
                kwargs["runtime_env"] = {"py_modules": [str(root / name) for name in ("seeclear_bench", "pipelines", "model")]}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SeeClearError(f"could not connect to a Ray cluster at {address!r}: {exc}") from exc
        else:
            if not verbose:
                logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_token_notice)
            # "local": a new instance even when another local Ray is running (ray.init() would join it); RAY_ADDRESS,
            # as `ray job submit` sets it, still names the cluster to join
            ray.init(address=None if os.environ.get("RAY_ADDRESS") else "local", num_cpus=num_cpus or None, **kwargs)
        interrupts.reinstall()
    return dict(ray.cluster_resources())


def _token_notice(record: logging.LogRecord) -> bool:
    """Drop Ray's notice that a new local cluster uses token authentication (its secure default, said as a warning on
    every command); the warning that authentication is *disabled* still shows."""
    return not record.getMessage().startswith("Token authentication is enabled")


def use_ray(executor: str, n_tasks: int, address: str | None) -> bool:
    """Whether a job of ``n_tasks`` tasks runs on Ray (``executor`` ``ray``) or in this process (``local``).

    ``auto`` runs small jobs (at most `SMALL_JOB_TASKS` tasks) in this process when no cluster is named (``address``,
    ``RAY_ADDRESS``) and no Ray is connected yet: starting a local Ray costs 8-12 s, more than scoring a few clips.
    Both run the same task functions and give the same results.

    Raises:
        SeeClearError: an unknown executor, or ``local`` with a cluster address.
    """
    import sys

    if executor not in ("auto", "ray", "local"):
        raise SeeClearError(f"--executor must be auto, ray or local, got {executor!r}")
    cluster = bool(address or os.environ.get("RAY_ADDRESS"))
    if executor == "local" and cluster:
        raise SeeClearError("--executor local runs in this process; drop --address (or RAY_ADDRESS) or use ray")
    if executor != "auto":
        return executor == "ray"
    ray = sys.modules.get("ray")
    connected = ray is not None and hasattr(ray, "is_initialized") and ray.is_initialized()
    return cluster or connected or n_tasks > SMALL_JOB_TASKS


def run_local(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], *, desc: str,
              progress: bool = True) -> list[Any]:
    """`run_tasks` in this process: the same task function, the same `Failure` capture and the same one-line error,
    without Ray. Calls run on a thread per core (decoding, torch and OpenCV release the GIL); results come back in
    call order, and the first failure in call order is raised once the running calls have finished."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    where = f"task {desc}"
    workers = max(1, min(len(calls), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=desc) as pool, \
            tqdm(total=len(calls), desc=desc, unit="task", disable=None if progress else True, leave=False) as bar:
        futures = [pool.submit(_call, fn, where, *args) for args in calls]
        results = []
        for future in futures:
            value = future.result()
            if isinstance(value, Failure):
                for rest in futures:
                    rest.cancel()
                raise value.error()
            results.append(value)
            bar.update(1)
    return results


def run_tasks(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    desc: str,
    num_cpus: float = 0.5,
    num_gpus: float = 0,
    progress: bool = True,
) -> list[Any]:
    """Run ``fn(*args)`` for each args tuple as a Ray task; return the results in the order of ``calls``.

    ``fn`` runs inside `_call`, which returns any exception it raises as a `Failure`. The first failure to complete
    (completion order, not call order) ends the run: the tasks not finished yet are cancelled (a running one gets a
    `KeyboardInterrupt` at its next Python bytecode, so what it was writing through ``io.atomic_open`` is removed)
    and waited for, up to ``DRAIN_SECONDS``, so that Ray logs none of them as unhandled; then the failure is raised.
    An interrupt (SIGINT/SIGTERM) is not waited on: the CLI shuts Ray down.

    Raises:
        SeeClearError: a task failed: its own message for a `SeeClearError`, else ``<ExcClass>: <message> (in task
            <desc>; run with --debug for the traceback)``, with the worker's traceback as ``__cause__``; or a task's
            worker died ``SYSTEM_RETRIES`` + 1 times (Ray's error, in one line).
    """
    import ray
    from tqdm.auto import tqdm

    if not calls:
        return []
    remote = ray.remote(_call).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=SYSTEM_RETRIES,
                                       retry_exceptions=False, name=getattr(fn, "__name__", desc))
    where = f"task {desc}"
    refs = [remote.remote(fn, where, *args) for args in calls]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    try:
        with tqdm(total=len(refs), desc=desc, unit="task", disable=None if progress else True, leave=False) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    value = _get(ref, where)
                    if isinstance(value, Failure):
                        raise value.error()
                    results[index[ref]] = value
                    bar.update(1)
    except Exception as exc:
        if interrupts.interrupted_by(exc) is None:  # an interrupt ends the command now; Ray's shutdown stops the rest
            _cancel(pending)
        raise
    return results


def _call(fn: Callable[..., Any], where: str, *args: Any) -> Any:
    """``fn(*args)`` inside a Ray worker, any `Exception` it raises returned as a `Failure` (interrupts, exits and
    a dying worker still end the task)."""
    try:
        return fn(*args)
    except Exception as exc:
        return Failure.capture(exc, where)


def _get(ref: Any, where: str) -> Any:
    """The value of a `run_tasks` task: its result or its `Failure`; Ray's own errors (the worker died after every
    retry, the task was cancelled) as one line."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise SeeClearError(one_line(root_cause(exc), where)) from exc


def _cancel(refs: Sequence[Any]) -> None:
    """Cancel tasks that have not finished and wait for them to stop, reading each outcome so that Ray does not log
    it later as an unhandled error."""
    import ray

    if not refs:
        return
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref)
    done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=DRAIN_SECONDS)
    for ref in done:
        with contextlib.suppress(Exception):
            ray.get(ref)


def cluster_gpus() -> float:
    """GPUs in the connected cluster (0 on CPU-only machines)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


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
