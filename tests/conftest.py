"""Shared fixtures and hooks: offline settings, the listed kinds of skip (and the strict check that no other kind
happened), pause points for fault tests, one Ray instance per test session, a local S3 endpoint."""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Final

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


# -- skips: only these kinds, each for something no repository can carry -----------------------------------------
# A test that needs anything the repository or its declared dependencies (pyproject's `test` and `metrics` extras)
# provide never skips for its absence: it imports it plainly and fails. With SEECLEAR_STRICT_SKIPS=1 (`make test` and
# CI set it) a skip of any other kind fails the session; `-rs` (addopts) prints every skip's reason.
ALLOWED_SKIPS: Final = {
    "no-gpu": "needs a CUDA GPU",
    "no-weights": "needs pretrained weights that are not in the local cache",
    "no-browser": "needs Chromium at /usr/bin/chromium, which `make chromium` could not install",
    # A genuinely full disk needs a small filesystem; mounting one takes root (or CAP_SYS_ADMIN). CI runs as root and
    # mounts it; elsewhere the same errno handling is covered by the tests that inject ENOSPC/EDQUOT/EIO.
    "no-mount": "needs to mount a small tmpfs (root or CAP_SYS_ADMIN)",
}
_SKIP_KIND: Final = re.compile(r"\[([a-z-]+)\] ")
STRICT_SKIPS_VAR: Final = "SEECLEAR_STRICT_SKIPS"


def skip_reason(kind: str, detail: str = "") -> str:
    """The reason of an allowed skip: ``[kind] what it needs[: detail]``; the strict check reads the kind back."""
    if kind not in ALLOWED_SKIPS:
        raise ValueError(f"skip kind must be one of {sorted(ALLOWED_SKIPS)}, got {kind!r}")
    return f"[{kind}] {ALLOWED_SKIPS[kind]}" + (f": {detail}" if detail else "")


@pytest.fixture(scope="session")
def allowed_skip():
    """``allowed_skip(kind, detail="")`` skips the test with a reason of a listed kind (`ALLOWED_SKIPS`)."""

    def skip(kind: str, detail: str = "") -> None:
        pytest.skip(skip_reason(kind, detail))

    return skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu_items:
        import torch

        if not torch.cuda.is_available():
            for item in gpu_items:
                item.add_marker(pytest.mark.skip(reason=skip_reason("no-gpu")))


_skipped: list[tuple[str, str]] = []


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def _unlisted_skips() -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in _skipped
            if not ((m := _SKIP_KIND.match(reason)) and m.group(1) in ALLOWED_SKIPS)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(STRICT_SKIPS_VAR) == "1" and _unlisted_skips() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    unlisted = _unlisted_skips()
    if os.environ.get(STRICT_SKIPS_VAR) == "1" and unlisted:
        terminalreporter.section(f"skips of an unlisted kind ({STRICT_SKIPS_VAR}=1)", red=True)
        for node, reason in unlisted:
            terminalreporter.line(f"{node}: {reason}")
        terminalreporter.line(f"allowed kinds: {', '.join(sorted(ALLOWED_SKIPS))} (tests/conftest.py); a test must "
                              "not skip for anything the repository or its declared dependencies provide")


# -- pause points: stop a worker at a known place, so that a fault test acts there and not after a sleep -----------
# seeclear_bench/_pause.py reads SEECLEAR_TEST_PAUSE_DIR; set here, before any Ray starts, so that every worker
# inherits it. A point pauses only while a test has armed it (`pause_points`); otherwise it costs one stat.
os.environ.setdefault("SEECLEAR_TEST_PAUSE_DIR",
                      os.path.join(tempfile.gettempdir(), f"seeclear-test-pause-{os.getpid()}"))


class PausePoints:
    """The folder of `seeclear_bench._pause.pause_point`: `arm` a point, `wait` until a process reaches it (its pid),
    `release` it. Subprocesses started with this process's environment share the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def arm(self, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.pause").touch()

    def reached(self, name: str) -> list[int]:
        """Pids of the processes paused at ``name`` (so far)."""
        return sorted(json.loads(p.read_text())["pid"] for p in self.folder.glob(f"{name}.reached-*"))

    def wait(self, name: str, timeout: float, count: int = 1) -> list[int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(pids := self.reached(name)) >= count:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"no process reached pause point {name!r} within {timeout:.0f} s")

    def release(self, name: str) -> None:
        (self.folder / f"{name}.go").touch()


@pytest.fixture
def pause_points():
    """Pause points of this test; all are disarmed (which releases any paused process) at the end."""
    import shutil

    points = PausePoints(Path(os.environ["SEECLEAR_TEST_PAUSE_DIR"]))
    shutil.rmtree(points.folder, ignore_errors=True)
    yield points
    shutil.rmtree(points.folder, ignore_errors=True)


def _start_ray():
    import ray

    if not ray.is_initialized():
        # "local": a new instance of our own even when another local Ray runs on the machine (ray.init() would join it)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    return ray


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole session (2 CPUs, no dashboard)."""
    yield _start_ray()
    import ray

    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_is_up(request):
    """A test that asks for `ray_session` gets a running Ray, also after an earlier test's code shut it down (the CLI
    shuts down the Ray it joined on the way out)."""
    if "ray_session" in request.fixturenames:
        _start_ray()


# -- an S3 endpoint on loopback (moto's server speaks the S3 protocol; s3fs talks to it for real) ------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_PORT = _free_port()
# Set before Ray starts so that Ray workers inherit them: fsspec reads FSSPEC_<PROTOCOL>_<KWARG> at import.
os.environ.setdefault("FSSPEC_S3_ENDPOINT_URL", f"http://127.0.0.1:{S3_PORT}")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 endpoint for the session; yields a function making a fresh bucket URL."""
    import moto.server

    server = moto.server.ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    import itertools

    import fsspec

    counter = itertools.count()

    def make_bucket() -> str:
        name = f"bucket-{next(counter)}"
        fs = fsspec.filesystem("s3", endpoint_url=os.environ["FSSPEC_S3_ENDPOINT_URL"], skip_instance_cache=True)
        fs.mkdir(name)
        return f"s3://{name}"

    yield make_bucket
    server.stop()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks gain nothing from intra-op threads, and on a shared 2-core machine they lose a lot."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- a tiny CLIPSeg saved with save_pretrained (the real loading path, no download) ---------------------------------
CLIPSEG_VOCAB = ("person", "bicycle", "car", "dog", "sky")


@pytest.fixture(scope="session")
def tiny_clipseg(tmp_path_factory):
    """A randomly initialised CLIPSeg (projection 24, 64x64 input, patch 16) and a word-level tokenizer, saved
    together as a ``save_pretrained`` folder. Returns a namespace: folder, model, tokenizer, vocabulary, token_dim."""
    import types

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, PreTrainedTokenizerFast

    config = CLIPSegConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=24, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPSegForImageSegmentation(config).eval()
    words = ["[BOS]", "[EOS]", "[UNK]", "a", "photo", "of", ".", *CLIPSEG_VOCAB]  # other class names map to [UNK]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[EOS]")
    folder = tmp_path_factory.mktemp("clipseg") / "tiny-clipseg"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return types.SimpleNamespace(folder=str(folder), model=model, tokenizer=tokenizer, vocabulary=CLIPSEG_VOCAB,
                                 token_dim=24)
