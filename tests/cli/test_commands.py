"""degrade, evaluate and leaderboard from the command line on small real data."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.data.demo import write_demo_source
from seeclear_bench.data.frames import read_frame, write_frame

EXE = [sys.executable, "-m", "seeclear_bench.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def hr_source(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("hr"))
    write_demo_source(url, frames=4, size=(64, 96))
    return url


def test_degrade_is_reproducible_and_recorded(hr_source, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        res = cli("degrade", hr_source, "--out", str(out), "--kind", "realistic", "--seed", "7", "--layout", "clips")
        assert res.returncode == 0, res.stderr
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 5 * 4
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()  # same spec -> same bytes
    lr = read_frame(str(a / "astronaut_pan" / "00000000.png"))
    assert lr.shape == (16, 24, 3)
    record = json.loads((a / "astronaut_pan" / "degradation.json").read_text())
    assert record["kind"] == "realistic" and record["seed"] == 7
    assert json.loads((a / "degradation.json").read_text())["frames"] == 20


def test_degrade_refuses_indivisible_when_asked(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(2):
        write_frame(str(tmp_path / "src" / "c" / f"{i:08d}.png"), rng.integers(0, 255, (30, 41, 3), dtype=np.uint8))
    res = cli("degrade", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--on-indivisible", "error", "--layout", "clips")
    assert res.returncode == 1 and "30x41" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "degradation.json").exists()


def test_evaluate_outside_predictions_then_leaderboard(hr_source, tmp_path):
    lr = tmp_path / "lr"
    assert cli("degrade", hr_source, "--out", str(lr), "--layout", "clips").returncode == 0
    # an "outside method": LR upscaled by nearest neighbour, written as frames
    pred = tmp_path / "pred"
    for clip in (p for p in lr.iterdir() if p.is_dir()):
        for frame in sorted(clip.glob("*.png")):
            up = read_frame(str(frame)).repeat(4, axis=0).repeat(4, axis=1)
            write_frame(str(pred / clip.name / frame.name), up)
    res = cli("evaluate", str(pred), "--gt", hr_source, "--method", "nearest", "--dataset", "demo",
              "--protocol", "basicsr-reds4-rgb,basicsr-vid4-y", "--out", str(tmp_path / "eval"), "--no-progress")
    assert res.returncode == 0, res.stderr
    # the terminal gets a compact table (a line per protocol) and where the full tables are
    lines = res.stdout.strip().splitlines()
    assert max(map(len, lines[:3])) <= 100 and len(lines) == 4, res.stdout
    assert lines[1].split()[:3] == ["nearest", "demo", "basicsr-reds4-rgb"] and lines[2].split()[2] == "basicsr-vid4-y"
    assert lines[3].endswith(str(tmp_path / "eval" / "metrics"))
    frames = pd.read_parquet(tmp_path / "eval" / "metrics" / "frames.parquet")
    assert len(frames) == 2 * 5 * 4 * 2 and set(frames["method"]) == {"nearest"}
    frames = frames[frames["protocol"] == "basicsr-reds4-rgb"]
    row = frames[(frames["clip"] == "coffee_zoom") & (frames["frame"] == 0) & (frames["metric"] == "psnr")].iloc[0]
    p = read_frame(str(pred / "coffee_zoom" / "00000000.png")).astype(np.float64)
    g = read_frame(str(sorted((Path(hr_source) / "coffee_zoom").glob("*.png"))[0])).astype(np.float64)
    assert row["value"] == pytest.approx(10 * np.log10(255**2 / np.mean((p - g) ** 2)), abs=1e-9)

    board = cli("leaderboard", str(tmp_path / "eval" / "metrics" / "frames.parquet"), "--out", str(tmp_path / "board"))
    assert board.returncode == 0, board.stderr
    text = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "nearest" in text and "demo · basicsr-vid4-y" in text and "Conflicts" not in text
    assert "## Per clip" in text and "| coffee\\_zoom | nearest |" in text


def test_evaluate_refuses_mismatched_clips(hr_source, tmp_path):
    pred = tmp_path / "pred"
    write_frame(str(pred / "astronaut_pan" / "00000000.png"), np.zeros((64, 96, 3), np.uint8))
    res = cli("evaluate", str(pred), "--gt", hr_source, "--out", str(tmp_path / "eval"), "--no-progress")
    assert res.returncode == 1 and "missing predictions" in res.stderr
