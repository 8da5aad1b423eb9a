"""Evaluation is resumable: a run killed part way and started again ends with the same table as an unbroken run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from seeclear_bench import io

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

KEYS = ["method", "dataset", "clip", "frame", "metric"]


def _spec(source: str, stages: list[str]) -> str:
    return f"""
name = "resume"
stages = {stages!r}
[[data.sources]]
name = "clips"
url = "{source}"
layout = "clips"
[evaluate]
metrics = ["psnr", "ssim", "tof"]
protocol = "basicsr-vid4-y"
[ray]
task_cpus = 1.0
num_cpus = 1
"""


def _table(run: str) -> pd.DataFrame:
    frames = pd.read_parquet(io.join(run, "metrics", "frames.parquet"))
    return frames[[*KEYS, "value", "protocol_hash", "metric_hash"]].sort_values(KEYS).reset_index(drop=True)


def test_killed_evaluation_resumes_to_the_same_table(tmp_path, ray_session, pause_points):
    from pipelines.run import run
    from seeclear_bench.config import RunConfig
    from seeclear_bench.data.demo import write_demo_source

    source = str(tmp_path / "source")
    write_demo_source(source, frames=8, size=(64, 96))
    full = RunConfig.from_toml(_spec(source, ["prepare", "upscale", "evaluate", "report"]))
    unbroken, broken = str(tmp_path / "unbroken"), str(tmp_path / "broken")
    run(full, unbroken, progress=False)
    run(RunConfig.from_toml(_spec(source, ["prepare", "upscale"])), broken, progress=False)

    spec_file = tmp_path / "evaluate.toml"
    spec_file.write_text(_spec(source, ["evaluate", "report"]))
    point = "metrics-part-written"
    pause_points.arm(point)  # the first clip's part is written, then its task waits there (one task at a time)
    proc = subprocess.Popen([sys.executable, "-m", "seeclear_bench.cli", "run", str(spec_file), "--out", broken,
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    parts = tmp_path / "broken" / "metrics" / "parts" / "clips" / "basicsr-vid4-y"
    pause_points.wait(point, timeout=180)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its Ray and every worker, mid-run
    proc.wait(timeout=30)
    pause_points.release(point)  # the resumed run below passes the point without stopping
    done = {p.stem: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    assert 0 < len(done) < 5, f"the kill should land part way, found {len(done)} of 5 clips scored"
    assert not (tmp_path / "broken" / "metrics" / "frames.parquet").exists()

    run(RunConfig.from_toml(_spec(source, ["evaluate", "report"])), broken, progress=False)
    pd.testing.assert_frame_equal(_table(broken), _table(unbroken))
    for clip, mtime in done.items():  # parts finished before the kill were reused, not recomputed
        assert (parts / f"{clip}.json").stat().st_mtime_ns == mtime
