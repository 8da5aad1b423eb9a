"""The installed console script: help texts, one-line errors with non-zero exit, cheap imports."""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = [sys.executable, "-m", "seeclear_bench.cli"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _command_paths() -> list[tuple[str, ...]]:
    """Every (visible) command and sub-command of the typer app, read from the app itself, so that a new one is
    covered at once."""
    import typer.main

    from seeclear_bench.cli import app

    def walk(command, path: tuple[str, ...]):
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                yield (*path, name)
                yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


COMMANDS = _command_paths()


def test_help_lists_every_command():
    out = cli("--help")
    assert out.returncode == 0, out.stderr
    top = [path[0] for path in COMMANDS if len(path) == 1]
    assert {"run", "train", "infer", "evaluate", "weights"} <= set(top)  # the derivation finds the app's commands
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert set(top) <= listed, (top, out.stdout)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_explains_itself(path):
    from typer.testing import CliRunner

    from seeclear_bench.cli import app

    out = CliRunner().invoke(app, [*path, "--help"], terminal_width=120)
    assert out.exit_code == 0, out.output
    assert f"Usage: seeclear-bench {' '.join(path)} " in out.output and len(out.output.splitlines()) > 5, out.output


def test_import_is_cheap():
    code = ("import sys, seeclear_bench, seeclear_bench.config, seeclear_bench.cli; "
            "print([m for m in ('ray', 'torch', 'pyiqa', 'webdataset', 'model') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_key_in_spec(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('[[data.sources]]\nname = "a"\nurl = "demo"\n[degrade]\nscael = 4\n')
    line = _one_line_error(cli("run", str(spec), "--out", str(tmp_path / "out")))
    assert "degrade.scael" in line and "did you mean 'scale'" in line
    assert not (tmp_path / "out").exists()  # rejected before anything is written


def test_wrong_type_in_spec(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('seed = "zero"\n[[data.sources]]\nname = "a"\nurl = "demo"\n')
    line = _one_line_error(cli("run", str(spec)))
    assert "seed must be int, got str 'zero'" in line


def test_missing_spec_file(tmp_path):
    line = _one_line_error(cli("run", str(tmp_path / "absent.toml")))
    assert "absent.toml" in line


def test_missing_source(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(f'[[data.sources]]\nname = "a"\nurl = "{tmp_path / "no-such-dir"}"\n')
    line = _one_line_error(cli("prepare", str(spec), "--out", str(tmp_path / "out"), "--no-progress"))
    assert "no-such-dir" in line


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _one_line_error(cli("run", "--out", str(blocker / "run")))
    assert f"expected a folder at {blocker}" in line and "found a file" in line and "write-probe" not in line
    line = _one_line_error(cli("run", "--out", str(blocker)))
    assert f"expected a folder at {blocker} (the output folder), found a file" in line


def test_infer_options_are_checked_before_ray_starts(tmp_path):
    line = _one_line_error(cli("infer", str(tmp_path), "--method", "bicubc", "--out", str(tmp_path / "out")))
    assert "--method 'bicubc' is not a method (did you mean 'bicubic'?)" in line
    line = _one_line_error(cli("infer", str(tmp_path), "--out", str(tmp_path / "out")))
    assert "--method seeclear needs --checkpoint" in line
    assert not (tmp_path / "out").exists()


def test_debug_shows_traceback(tmp_path):
    out = cli("--debug", "run", str(tmp_path / "absent.toml"))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_info_reports_versions_and_protocols():
    out = cli("info")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["packages"]["torch"] == importlib.metadata.version("torch")  # what is installed, whatever it is
    assert "basicsr-reds4-rgb" in data["protocols"] and len(data["protocols"]["basicsr-reds4-rgb"]) >= 8
    assert {"psnr", "ssim"} <= set(data["metrics"])


def test_weights_list_and_fetch_from_a_mirror(tmp_path):
    import hashlib
    import os

    env = {**os.environ, "SEECLEAR_WEIGHTS": str(tmp_path / "cache")}
    run = lambda *a: subprocess.run([*EXE, *a], capture_output=True, text=True, timeout=120, env=env)  # noqa: E731
    listed = json.loads(run("weights", "list", "--json").stdout)
    niqe = next(r for r in listed if r["name"] == "niqe")
    assert not niqe["present"] and "niqe" in niqe["used_by"]
    mirror = tmp_path / "mirror.mat"
    mirror.write_bytes(b"test-made weights")
    out = run("weights", "fetch", "niqe", "--url", mirror.as_uri())
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256(b"test-made weights").hexdigest() in out.stdout
    again = json.loads(run("weights", "list", "--json").stdout)
    assert next(r for r in again if r["name"] == "niqe")["present"]
    missing = run("weights", "fetch")
    assert missing.returncode == 1 and "name at least one" in missing.stderr
