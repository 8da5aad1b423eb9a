"""Errors inside Ray reach the user as the one line they would be outside it (issue 11, item 5).

- a task's own exception (a full disk, bad input, a bug) is not retried; only a dead worker is;
- it comes back as `SeeClearError` with the same line (or ``ExcClass: message (in task ...)``), the worker's
  traceback kept as ``__cause__`` for ``--debug``; the other tasks are cancelled;
- ``io.atomic_open`` turns ENOSPC into ``no space left on device writing <url>``, temporary file removed;
- a checkpoint that kills the inference actor's constructor is one line naming the checkpoint; any per-video
  exception is one line too;
- nothing else on stderr: no "Unhandled error" logs, no worker tracebacks.

The full-disk tests mount a 256 KiB tmpfs: a real full disk. Mounting takes root (or CAP_SYS_ADMIN), which CI has;
elsewhere they skip with the listed kind ``no-mount`` (tests/conftest.py), and the same errno handling stays covered
by the tests below that inject ENOSPC, EDQUOT and EIO.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seeclear_bench import io
from seeclear_bench.errors import RemoteTraceback, SeeClearError

REPO = Path(__file__).resolve().parents[2]
NO_SPACE = os.strerror(errno.ENOSPC)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, allowed_skip) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder``, unmounted after; where mounting is not permitted, the test skips
    with the listed kind ``no-mount``."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True, timeout=30, check=False)
    if done.returncode != 0:
        allowed_skip("no-mount", done.stderr.strip() or f"mount exited {done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def small_fs(tmp_path, allowed_skip):
    """A 256 KiB tmpfs at ``tmp_path/small``."""
    with tmpfs(tmp_path / "small", "256k", allowed_skip) as folder:
        yield folder


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp-*")]


# -- io.atomic_open, in this process --------------------------------------------------------------------------------
def test_full_disk_is_one_line_naming_the_file(small_fs):
    url = str(small_fs / "shards" / "A-00004-00.tar")
    with pytest.raises(SeeClearError) as info:
        io.write_bytes(url, b"\0" * 400_000)
    assert str(info.value) == f"no space left on device writing {url}"
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert list((small_fs / "shards").iterdir()) == []  # no temporary file, no partial file
    io.write_bytes(url, b"fits")  # the space the failed write took was given back
    assert Path(url).read_bytes() == b"fits"


def test_a_buffered_write_failing_when_the_file_is_closed(small_fs):
    """A small write stays in the buffer and fails only when the file is flushed on closing."""
    ballast = small_fs / "ballast"
    with open(ballast, "wb") as f:
        with pytest.raises(OSError):
            f.write(b"\0" * 400_000)  # fills the disk
    url = str(small_fs / "small.json")
    with pytest.raises(SeeClearError) as info:
        io.write_bytes(url, b"x" * 100)
    assert str(info.value) == f"no space left on device writing {url}"
    assert sorted(p.name for p in small_fs.iterdir()) == ["ballast"]


def _failing(monkeypatch, method: str, code: int) -> None:
    """Make the local file object's ``method`` raise OSError(code), as a full or broken disk would."""
    from fsspec.implementations.local import LocalFileOpener

    def fail(self, *args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(LocalFileOpener, method, fail)


@pytest.mark.parametrize(("method", "code", "message"), [
    ("write", errno.ENOSPC, "no space left on device writing {url}"),
    ("write", errno.EDQUOT, "no space left on device (disk quota exceeded) writing {url}"),
    ("write", errno.EIO, "cannot write {url}: " + os.strerror(errno.EIO)),
])
def test_write_errors_name_the_final_url_and_leave_no_temporary(tmp_path, monkeypatch, method, code, message):
    url = str(tmp_path / "out" / "x.json")
    _failing(monkeypatch, method, code)
    with pytest.raises(SeeClearError) as info:
        io.write_json(url, {"a": 1})
    assert str(info.value) == message.format(url=url)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_rename_is_one_line_too(tmp_path, monkeypatch):
    url = str(tmp_path / "y.bin")

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(SeeClearError, match=r"^no space left on device writing .*/y\.bin$"):
        io.write_bytes(url, b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_other_errors_inside_the_block_pass_through(tmp_path):
    """An OSError that is not about the file being written (reading another file, say) is not renamed after it."""
    url = str(tmp_path / "z.bin")
    with pytest.raises(FileNotFoundError), io.atomic_open(url) as f:
        f.write(b"partial")
        (tmp_path / "missing").read_bytes()
    assert list(tmp_path.iterdir()) == []


# -- run_tasks on a local Ray -------------------------------------------------------------------------------------
@pytest.fixture
def by_value():
    """Functions of this module travel to Ray workers by value (the workers cannot import the tests folder)."""
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def _record_and_raise(log_url: str, kind: str) -> None:
    """A task that appends a line per run to ``log_url``, then fails as a full disk, bad input or a user error do."""
    with open(log_url, "a") as f:
        f.write("run\n")
    if kind == "oserror":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if kind == "valueerror":
        raise ValueError("bad input")
    raise SeeClearError("clip 'x': a user error")


@pytest.mark.ray
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("kind", "line"), [
    ("oserror", f"OSError: [Errno 28] {NO_SPACE} (in task probe; run with --debug for the traceback)"),
    ("valueerror", "ValueError: bad input (in task probe; run with --debug for the traceback)"),
    ("seeclear", "clip 'x': a user error"),
])
def test_task_errors_are_one_line_and_never_retried(ray_session, by_value, tmp_path, kind, line):
    from pipelines._ray import run_tasks

    log_url = str(tmp_path / "runs.log")
    with pytest.raises(SeeClearError) as info:
        run_tasks(_record_and_raise, [(log_url, kind)], desc="probe", num_cpus=0.5, progress=False)
    assert str(info.value) == line
    assert Path(log_url).read_text() == "run\n"  # ran once: Ray did not retry it
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "_record_and_raise" in cause.text  # the worker's traceback


def _record_and_die(log_url: str) -> None:
    with open(log_url, "a") as f:
        f.write("run\n")
    os._exit(1)  # the worker process dies: a system failure, not the task's own error


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_a_dead_worker_is_retried_then_one_line(ray_session, by_value, tmp_path):
    from pipelines._ray import SYSTEM_RETRIES, run_tasks

    log_url = str(tmp_path / "runs.log")
    with pytest.raises(SeeClearError) as info:
        run_tasks(_record_and_die, [(log_url,)], desc="die", num_cpus=0.5, progress=False)
    assert Path(log_url).read_text() == "run\n" * (1 + SYSTEM_RETRIES)
    message = str(info.value)
    assert "\n" not in message and message.endswith("(in task die; run with --debug for the traceback)"), message


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_library_error_in_a_task_is_the_same_line_as_outside_ray(ray_session, tmp_path):
    from pipelines._ray import run_tasks

    missing = str(tmp_path / "nothing.json")
    with pytest.raises(SeeClearError) as outside:
        io.read_json(missing)
    with pytest.raises(SeeClearError) as inside:
        run_tasks(io.read_json, [(missing,)], desc="read", progress=False)
    assert str(inside.value) == str(outside.value)
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(SeeClearError) as info:
        run_tasks(io.read_json, [(str(tmp_path / "bad.json"),)], desc="read", progress=False)
    assert str(info.value) == ("JSONDecodeError: Expecting value: line 1 column 1 (char 0) "
                               "(in task read; run with --debug for the traceback)")


def _spin_until(path: Path, timeout: float) -> None:
    """Busy until ``path`` exists (Python bytecode, so a cancel's KeyboardInterrupt lands at once), at most
    ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not path.exists():
        sum(range(1000))


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_the_first_failure_cancels_the_other_tasks(ray_session, by_value, tmp_path):
    """No timing: the slow tasks run until a go-ahead file that is only written after run_tasks has returned (so it
    returned without waiting for them), the failing task fails once both are running, and a slow task that was not
    cancelled would write its mark as soon as it sees the go-ahead."""
    from pipelines._ray import run_tasks

    go = tmp_path / "go"

    def task(name: str) -> str:
        if name == "fails":
            _spin_until(tmp_path / "started-slow-2", 120)  # the others are running by now
            _spin_until(tmp_path / "started-slow-1", 120)
            raise SeeClearError("first failure")
        (tmp_path / f"started-{name}").touch()
        _spin_until(go, 120)
        (tmp_path / name).write_text("done")
        return name

    with pytest.raises(SeeClearError, match="^first failure$"):
        run_tasks(task, [("slow-1",), ("fails",), ("slow-2",)], desc="cancel", num_cpus=0.5, progress=False)
    assert (tmp_path / "started-slow-1").exists() and (tmp_path / "started-slow-2").exists()
    go.touch()
    time.sleep(2.0)  # a task still running writes its mark within milliseconds of the go-ahead
    assert not (tmp_path / "slow-1").exists() and not (tmp_path / "slow-2").exists()


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_full_disk_inside_a_task_is_one_line(ray_session, small_fs):
    from pipelines._ray import run_tasks

    url = str(small_fs / "runs" / "x" / "shards" / "A" / "A-00004-00.tar")
    with pytest.raises(SeeClearError) as info:
        run_tasks(io.write_bytes, [(url, b"\0" * 400_000)], desc="prepare shards", progress=False)
    assert str(info.value) == f"no space left on device writing {url}"
    assert _temporaries(small_fs) == [] and not Path(url).exists()


_SCRIPT = """
import sys
from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from pipelines._ray import connect, run_tasks

connect(num_cpus=2)
try:
    run_tasks(io.read_json, [(f"{sys.argv[1]}/missing-{i}.json",) for i in range(6)], desc="read", num_cpus=0.25,
              progress=False)
except SeeClearError as exc:
    message = str(exc)
print(f"error: {message}", file=sys.stderr)  # as the CLI does, once the exception (and its refs) are gone
import gc, time
gc.collect()
time.sleep(3)  # Ray logs a task error nobody read when its last ref goes: give it the time to
sys.exit(1)
"""


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_failed_tasks_leave_no_unhandled_error_logs(tmp_path):
    """Six tasks fail: the driver prints the first one's line and Ray adds nothing (today each other failure is an
    "Unhandled error" log with its worker traceback)."""
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=200, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: expected a file at '{tmp_path}/missing-"), lines[:40]


# -- inference actors ---------------------------------------------------------------------------------------------
def _corrupt_header(checkpoint: str) -> None:
    """Replace model.safetensors' JSON header by bytes of the same length that are not JSON, and record the new
    file's SHA-256, as a hostile or broken copy would: the hash matches, the header does not parse."""
    path = Path(checkpoint) / "model.safetensors"
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    data[8:8 + n] = b"{" + b"x" * (n - 1)
    path.write_bytes(bytes(data))
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    config["files"]["model.safetensors"] = io.sha256_bytes(bytes(data))
    (Path(checkpoint) / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def corrupt_checkpoint(tmp_path_factory) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_infer_ray import make_checkpoint

    ckpt = make_checkpoint(str(tmp_path_factory.mktemp("corrupt") / "ckpt"))
    _corrupt_header(ckpt)
    return ckpt


def _rows(tmp_path: Path, clips: int = 2) -> list[dict]:
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.predict import videos_from_url

    write_demo_source(str(tmp_path / "lr"), frames=5, size=(32, 32))
    return videos_from_url(str(tmp_path / "lr"), dataset="lr", layout="clips")[:clips]


def _actor(out: Path, checkpoint: str):
    from pipelines.upscale import VideoPredictor
    from seeclear_bench.config import MethodsConfig, SeeClearMethodConfig

    return VideoPredictor({"seeclear": str(out)}, MethodsConfig(names=("seeclear",), seeclear=SeeClearMethodConfig(
        checkpoint=checkpoint, steps=1)))


def _calls(actor, rows: list[dict]) -> dict:
    """The actor called once per video, as the pool calls it; its results column by column."""
    results = [actor(json.dumps({**r, "todo": {"seeclear": "missing"}})) for r in rows]
    return {key: [r[key] for r in results] for key in results[0]}


def test_actor_constructor_failure_is_reported_for_every_video(corrupt_checkpoint, tmp_path):
    actor = _actor(tmp_path / "out", corrupt_checkpoint)  # does not raise: the actor stays alive
    rows = _rows(tmp_path)
    out = _calls(actor, rows)
    assert out["actor_failed"] == [True, True]
    assert out["error"][0] == out["error"][1]
    assert out["error"][0].startswith(f"checkpoint {corrupt_checkpoint}: model.safetensors is not a valid "
                                      "safetensors file")
    assert "\n" not in out["error"][0] and "_read_safetensors" in out["traceback"][0]


def test_any_per_video_exception_is_one_line(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_infer_ray import make_checkpoint

    actor = _actor(tmp_path / "out", make_checkpoint(str(tmp_path / "ckpt")))
    rows = _rows(tmp_path)

    def write_video(row):
        if row["clip_id"] == rows[0]["clip_id"]:
            raise KeyError("frames")
        return 1

    monkeypatch.setattr(actor, "write_video", write_video)
    out = _calls(actor, rows)
    assert out["error"] == ["KeyError: 'frames' (run with --debug for the traceback)", ""]
    assert out["written"] == [0, 1] and out["actor_failed"] == [False, False]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_corrupt_checkpoint_header_is_one_line_from_the_actor_pool(ray_session, corrupt_checkpoint, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_infer_ray import infer_videos

    with pytest.raises(SeeClearError) as info:
        infer_videos(_rows(tmp_path), str(tmp_path / "out"), checkpoint=corrupt_checkpoint, steps=1, actors=1,
                     progress=False)
    message = str(info.value)
    assert message.startswith(f"checkpoint {corrupt_checkpoint}: model.safetensors is not a valid safetensors file")
    assert "\n" not in message and isinstance(info.value.__cause__, RemoteTraceback)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_infer_command_with_a_corrupt_checkpoint_prints_one_error_line(corrupt_checkpoint, tmp_path):
    rows = _rows(tmp_path)
    assert rows
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "seeclear_bench.cli", "infer", str(tmp_path / "lr"), "--layout",
                           "clips", "--checkpoint", corrupt_checkpoint, "--out", str(tmp_path / "out"), "--actors",
                           "1", "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
                          check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"error: checkpoint {corrupt_checkpoint}: model.safetensors is not a "
                                          "valid safetensors file"), done.stderr[-3000:]  # nothing follows it
    assert sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in done.stderr and "ActorDiedError" not in done.stderr, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_run_on_a_full_disk_prints_one_error_line(tmp_path, allowed_skip):
    """The demo run on a 3 MiB tmpfs: its sources fit, its shards do not."""
    with tmpfs(tmp_path / "full", "3m", allowed_skip) as folder:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        done = subprocess.run([sys.executable, "-m", "seeclear_bench.cli", "run", "--out", str(folder / "run"),
                               "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
                              check=False)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 1, done.stderr[-3000:]
        assert len(lines) == 1 and lines[0].startswith(f"error: no space left on device writing {folder}/run/"), \
            lines[:40]
        assert _temporaries(folder) == []
