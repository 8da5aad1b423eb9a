"""The `seeclear` method inside the pipeline: checkpoint loading, deterministic sampling, records that track it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from seeclear_bench import io
from seeclear_bench.config import MethodsConfig, RunConfig, SeeClearMethodConfig
from seeclear_bench.data.frames import read_frame
from seeclear_bench.errors import SeeClearError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    from model.seeclear import SeeClear, SeeClearConfig
    from seeclear_bench.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny())
    url = str(tmp_path_factory.mktemp("ckpt") / "seeclear-tiny")
    save_checkpoint(url, model, step=0)
    return url


def _cfg(source: str, checkpoint: str, steps: int = 2) -> RunConfig:
    cfg = RunConfig.from_toml(f'[[data.sources]]\nname = "d"\nurl = "{source}"\nlayout = "clips"\n'
                              'clips = ["astronaut_pan", "bunny_010"]\n')
    methods = MethodsConfig(names=("bicubic", "seeclear"),
                            seeclear=SeeClearMethodConfig(checkpoint=checkpoint, steps=steps, seed=3))
    return dataclasses.replace(cfg, methods=methods, evaluate=dataclasses.replace(cfg.evaluate, metrics=("psnr",)))


def test_seeclear_predictions_are_recorded_and_reproducible(tmp_path, ray_session, untrained_checkpoint):
    from pipelines.run import run
    from seeclear_bench.checkpoints import checkpoint_hash
    from seeclear_bench.data.demo import write_demo_source

    source = str(tmp_path / "src")
    write_demo_source(source, frames=5, size=(64, 96))
    out = str(tmp_path / "run")
    result = run(_cfg(source, untrained_checkpoint), out, progress=False)
    assert result.upscaled == {"written": 4, "skipped": 0}
    pred_url = io.join(out, "predictions", "seeclear", "d", "astronaut_pan")
    pred = read_frame(io.join(pred_url, "00000002.png")).astype(int)
    base = read_frame(io.join(out, "predictions", "bicubic", "d", "astronaut_pan", "00000002.png")).astype(int)
    # an untrained SeeClear's head is zero, so it returns its residual base: the MATLAB-bicubic upsampled LR
    assert np.abs(pred - base).max() <= 1 and np.mean(pred != base) < 0.01
    record = io.read_json(io.join(pred_url, "_records", "d__astronaut_pan__000000.json"))
    assert record["identity"]["method"]["checkpoint_hash"] == checkpoint_hash(untrained_checkpoint)
    assert record["identity"]["method"]["steps"] == 2 and record["identity"]["method"]["preset"] == "tiny"
    again = run(_cfg(source, untrained_checkpoint), out, progress=False)
    assert again.upscaled == {"written": 0, "skipped": 4}
    changed = run(_cfg(source, untrained_checkpoint, steps=1), out, progress=False)
    assert changed.upscaled == {"written": 2, "skipped": 2}  # only seeclear's windows are redone


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(SeeClearError, match="methods.seeclear.checkpoint is empty"):
        MethodsConfig(names=("seeclear",))
    from seeclear_bench.methods import resolve_checkpoint

    with pytest.raises(SeeClearError, match="no built-in checkpoint 'nope'"):
        resolve_checkpoint("builtin:nope")
