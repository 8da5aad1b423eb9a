"""SIGINT (Ctrl-C) and SIGTERM end any seeclear-bench command with exit 130 / 143 and one line (issue 11, item 5).

The subprocess tests start the embedded demo (`seeclear-bench run`, which starts a local Ray), wait until a task of
its prepare stage is paused just after writing a shard (a test-only pause point, `seeclear_bench._pause`: Ray is up
and the stage is mid-way), and signal it: Ctrl-C as a terminal sends it (to the whole process group), SIGTERM
as ``kill PID`` does. Before this, Ctrl-C exited 0 printing nothing (typer returned the exit code 130 to a ``main``
that ignored it) and SIGTERM ended in Ray's handlers (a C++ stack dump, exit 1, or an abort).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seeclear_bench import interrupts

REPO = Path(__file__).resolve().parents[2]
EXE = [sys.executable, "-m", "seeclear_bench.cli"]
LINES = {signal.SIGINT: "interrupted; run the same command again to resume",
         signal.SIGTERM: "terminated; run the same command again to resume"}


@pytest.fixture
def restored():
    """`main` installs process-wide handlers; put Python's back whatever a test does."""
    handlers = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    yield
    interrupts.uninstall()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


# -- main(), with a stand-in command (in a child process: main shuts Ray down and owns the process's signals) -------
def _main_with(body: str) -> subprocess.CompletedProcess:
    """Run ``seeclear_bench.cli.main()`` with ``app`` replaced by a function of ``standalone_mode`` whose body is
    ``body``."""
    code = "\n".join([
        "import os, signal, sys, time",
        "from seeclear_bench import cli, interrupts",
        "def command(standalone_mode):",
        *("    " + line for line in body.strip().splitlines()),
        "cli.app = command",
        "cli.main()",
    ])
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_a_command_is_its_exit_code_and_one_line(signum):
    done = _main_with(f"""
os.kill(os.getpid(), {int(signum)})
time.sleep(5)  # the handler interrupts this
raise AssertionError("not interrupted")
""")
    assert (done.returncode, done.stderr, done.stdout) == (128 + signum, LINES[signum] + "\n", "")


def test_an_interrupt_wrapped_by_native_code_is_still_an_interrupt():
    done = _main_with("""
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except KeyboardInterrupt as exc:  # as Ray's Cython wait leaves a handler's exception: set, then wrapped
    raise SystemError("<cyfunction CoreWorker.wait> returned a result with an exception set") from exc
""")
    assert (done.returncode, done.stderr) == (143, LINES[signal.SIGTERM] + "\n")


def test_a_plain_keyboard_interrupt_in_place_of_a_signal_keeps_the_signal():
    """Ray raises its own KeyboardInterrupt when a signal interrupts its wait; typer turns it into exit code 130."""
    done = _main_with("""
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except KeyboardInterrupt:
    raise KeyboardInterrupt from None
""")
    assert (done.returncode, done.stderr) == (143, LINES[signal.SIGTERM] + "\n")


@pytest.mark.parametrize(("value", "code", "err"), [
    ("3", 3, ""),  # standalone_mode=False returns an Exit's code: it is the exit status
    ("130", 130, LINES[signal.SIGINT] + "\n"),  # what typer returns for a KeyboardInterrupt
    ("None", 0, ""),
])
def test_exit_codes_typer_returns_are_kept(value, code, err):
    done = _main_with(f"return {value}")
    assert (done.returncode, done.stderr) == (code, err)


def test_libraries_cannot_replace_the_installed_handlers(restored):
    """Ray Train's fit() sets a SIGINT handler that aborts training and lets the command go on; ray.init sets a
    SIGTERM one that exits 1. While installed, neither takes."""
    interrupts.install()
    assert signal.signal(signal.SIGINT, signal.default_int_handler) is interrupts._raise
    assert signal.getsignal(signal.SIGINT) is interrupts._raise
    assert signal.signal(signal.SIGUSR1, signal.SIG_IGN) == signal.SIG_DFL  # other signals are untouched
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    interrupts.uninstall()
    assert signal.getsignal(signal.SIGINT) is not interrupts._raise


def test_shutdown_ray_never_imports_ray():
    code = ("import sys; from seeclear_bench import interrupts; interrupts.shutdown_ray(); "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# -- the demo run, signalled --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize(("signum", "whole_group", "point"), [
    (signal.SIGINT, True, "shard-written"),  # a prepare task mid-stage
    (signal.SIGTERM, False, "shard-written"),
    (signal.SIGINT, True, "predict-first-frame-written"),  # a predict actor inside a video: Ray kills the actors
], ids=["ctrl-c", "sigterm", "ctrl-c-in-upscale"])
def test_signalled_run_exits_with_one_line_and_stops_ray(tmp_path, pause_points, signum, whole_group, point):
    import psutil

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # with SEECLEAR_TEST_PAUSE_DIR
    pause_points.arm(point)
    proc = subprocess.Popen([*EXE, "run", "--out", str(out), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        (task, *_) = pause_points.wait(point, 240)  # signalled while a worker is paused there
        started = psutil.Process(proc.pid).children(recursive=True)
        assert task in {p.pid for p in started}
        assert any("raylet" in _cmdline(p) for p in started)
        if whole_group:
            os.killpg(proc.pid, signum)  # a terminal's Ctrl-C reaches every process of the foreground group
        else:
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.strip()] == [LINES[signum]], stderr[-3000:]
    assert stdout.strip() == ""
    assert sorted(out.rglob(".*.tmp-*")) == []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in started):
        time.sleep(0.5)
    assert not [p for p in started if _alive(p)]  # Ray's processes (raylet, GCS, workers) are gone


def _cmdline(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # ended meanwhile
        return ""


def _alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
