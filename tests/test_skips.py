"""The strict-skips switch of tests/conftest.py: with SEECLEAR_STRICT_SKIPS=1 a skip of an unlisted kind fails the
session and is named; the listed kinds pass; without the switch nothing changes. Run on a tiny suite in a child
pytest that uses a copy of the real conftest."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # three child pytest sessions, a few seconds each
CONFTEST = Path(__file__).with_name("conftest.py")
SUITE = '''
import pytest


def test_passes():
    assert True


def test_no_gpu_here(allowed_skip):
    allowed_skip("no-gpu")


@pytest.mark.gpu
def test_marked_gpu():
    import torch

    assert torch.cuda.is_available()


def test_listed_kind(allowed_skip):
    allowed_skip("no-mount", "mount: permission denied")
'''
LOOSE = '''
import pytest


def test_free_text_skip():
    pytest.skip("scipy is not installed")


def test_module_missing():
    pytest.importorskip("no_such_module_seeclear")
'''


def _pytest(folder: Path, strict: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SEECLEAR_STRICT_SKIPS"}
    if strict:
        env["SEECLEAR_STRICT_SKIPS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "test_suite.py").write_text(SUITE)
    return tmp_path


def test_listed_kinds_pass_the_strict_session(suite: Path) -> None:
    import torch

    done = _pytest(suite, strict=True)
    assert done.returncode == 0, done.stdout[-3000:]
    gpu = not torch.cuda.is_available()
    assert f"1 passed, {2 + gpu} skipped" in done.stdout or f"2 passed, {2 + gpu} skipped" in done.stdout, done.stdout
    # -rs names each skip with its kind
    assert "[no-mount] needs to mount a small tmpfs (root or CAP_SYS_ADMIN): mount: permission denied" in done.stdout
    assert ("[no-gpu] needs a CUDA GPU" in done.stdout) == gpu


def test_an_unlisted_skip_fails_only_the_strict_session_and_is_named(suite: Path) -> None:
    (suite / "test_loose.py").write_text(LOOSE)
    assert _pytest(suite, strict=False).returncode == 0
    done = _pytest(suite, strict=True)
    assert done.returncode == 1, done.stdout[-3000:]
    after = done.stdout[done.stdout.index("skips of an unlisted kind (SEECLEAR_STRICT_SKIPS=1)"):].splitlines()[1:]
    section = "\n".join(line for line in itertools.takewhile(lambda line: not line.startswith("="), after))
    assert "test_loose.py::test_free_text_skip: scipy is not installed" in section
    assert "test_loose.py::test_module_missing: could not import 'no_such_module_seeclear'" in section
    assert "test_suite.py" not in section  # the listed kinds are not reported
