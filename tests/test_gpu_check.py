"""benchmarks/gpu_check.py: the CPU dry run prints one table and writes its rows as JSON; its helpers."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
MAIN_ROWS = ("sample_fp32", "sample_bf16", "sample_compile", "train_small", "train_paper", "run_small")


def _load_script():
    if "gpu_check" not in sys.modules:  # dataclasses look their module up while the class body runs
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


@pytest.mark.slow
def test_dry_run_writes_the_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "tmp.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    # from another folder: the script finds model/ from its own location
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--device", "cpu", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["mode"] == "dry-run" and data["complete"] is True
    assert data["torch"] == torch.__version__ and data["device"].startswith("cpu")
    rows = {row["key"]: row for row in data["rows"]}
    assert len(rows) == len(data["rows"]), "row keys are unique"
    curve = sorted(k for k in rows if k.startswith("run_small_curve_"))
    assert 1 <= len(curve) <= 10 and curve[0] == "run_small_curve_01"
    for key in (*MAIN_ROWS, "run_small_ratio", *curve):
        assert key in rows, f"missing row {key}: {sorted(rows)}"
        value = rows[key]["value"]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, rows[key])
    for key in MAIN_ROWS:
        assert rows[key]["peak_mem_gib"] == "n/a (cpu)", rows[key]
    assert rows["sample_paper"]["value"] == 1.142
    assert [r["key"] for r in data["rows"][:4]] == ["sample_paper", "sample_fp32", "sample_bf16", "sample_compile"]
    assert rows["sample_fp32"]["unit"] == "s/frame" and rows["train_paper"]["unit"] == "steps/s"
    # one plain-text table on stdout, holding every row
    assert done.stdout.count("figure") == 1 and "torch: " + torch.__version__ in done.stdout
    for row in data["rows"]:
        assert row["label"] in done.stdout


def test_stand_in_keeps_the_paper_sizes() -> None:
    gpu_check = _load_script()
    from model.seeclear import SeeClearConfig

    cfg, note = gpu_check.stand_in_config("paper")
    paper = SeeClearConfig.paper().network
    assert cfg.network.distiller == "learned"
    assert (cfg.network.token_dim, cfg.network.seg_channels, cfg.network.level_channels) == (
        paper.token_dim, paper.seg_channels, paper.level_channels
    )
    if paper.distiller != "learned":
        assert "stand-in" in note and paper.distiller in note


def test_synthetic_clips_are_box_downscaled_and_in_range() -> None:
    gpu_check = _load_script()
    gen = torch.Generator().manual_seed(0)
    lr, hr = gpu_check.synthetic_clips(2, 5, 32, 4, gen, torch.device("cpu"))
    assert lr.shape == (2, 5, 3, 8, 8) and hr.shape == (2, 5, 3, 32, 32)
    assert float(hr.min()) >= 0 and float(hr.max()) <= 1
    assert torch.allclose(lr, F.avg_pool2d(hr.flatten(0, 1), 4).unflatten(0, (2, 5)))
    assert not torch.equal(hr[:, 0], hr[:, 1]), "the frames move"


def test_out_of_memory_is_recognised() -> None:
    gpu_check = _load_script()
    assert gpu_check.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert gpu_check.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not gpu_check.is_oom(RuntimeError("shape mismatch"))
