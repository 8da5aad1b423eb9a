"""Issue 11, item 6: before any Ray work, `run` checks everything its stages will need and lists all that is missing
in one message (sources, output folder, metric weights, checkpoints, distiller folders)."""
from __future__ import annotations

import os
import subprocess
import sys

EXE = [sys.executable, "-m", "seeclear_bench.cli"]


def test_everything_missing_is_listed_in_one_line_before_ray_starts(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "checks"\nstages = ["prepare", "upscale", "evaluate"]\n'
        f'[[data.sources]]\nname = "gone"\nurl = "{tmp_path / "absent-footage"}"\n'
        '[methods]\nnames = ["bicubic", "seeclear", "mine", "theirs"]\n'
        f'[methods.seeclear]\ncheckpoint = "{tmp_path / "no-checkpoint"}"\n'
        '[methods.mine]\nentry = "no_such_vsr_package.model:make"\n'
        '[methods.theirs]\ncommand = "no-such-vsr-program {lr_dir} {out_dir} {scale}"\n'
        '[evaluate]\nmetrics = ["psnr", "dists"]\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SEECLEAR_WEIGHTS": str(empty), "TORCH_HOME": str(empty)}
    out = subprocess.run([*EXE, "run", str(spec), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    line = lines[0]
    assert "problems found before starting" in line
    assert "dataset gone:" in line and "absent-footage" in line  # the source
    assert "weights 'vgg16'" in line and "weights 'dists'" in line  # every missing weight file
    assert "methods.seeclear.checkpoint" in line and "no-checkpoint" in line  # the checkpoint
    assert "method mine: no module named 'no_such_vsr_package.model'" in line  # the plug-ins, before any stage
    assert "method theirs: the command's program 'no-such-vsr-program' is not on PATH" in line
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]  # nothing written, no spec.json, no lock


def test_a_checkpoint_whose_files_fail_their_digests_is_found_before_ray_starts(tmp_path):
    import shutil

    from seeclear_bench.methods import resolve_checkpoint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(resolve_checkpoint("builtin:seeclear-tiny-demo"), ckpt)
    weights = next(p for p in ckpt.iterdir() if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    spec = tmp_path / "s.toml"
    spec.write_text(f'name = "ck"\n[[data.sources]]\nname = "demo"\nurl = "demo"\n[methods]\n'
                    f'names = ["bicubic", "seeclear"]\n[methods.seeclear]\ncheckpoint = "{ckpt}"\n')
    out = subprocess.run([*EXE, "run", str(spec), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: methods.seeclear.checkpoint:") and weights.name in lines[0]
    assert not (tmp_path / "out" / "shards").exists()
