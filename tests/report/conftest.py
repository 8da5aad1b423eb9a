"""Fixtures for report tests: per-frame tables built row by row, and a tiny real run folder written with the
project's own writers (WebDataset shards with a manifest, PNG predictions, spec.json, metrics/frames.parquet)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seeclear_bench import io
from seeclear_bench.data.frames import write_frame
from seeclear_bench.data.shards import Sample, write_manifest, write_shard
from seeclear_bench.metrics.protocols import Protocol, get_protocol
from seeclear_bench.metrics.tables import frame_rows, write_parquet

REDS = get_protocol("basicsr-reds4-rgb")
VID4 = get_protocol("basicsr-vid4-y")


def table(method: str, dataset: str, per_clip: dict[str, dict[str, list[float]]], *, protocol: Protocol = REDS,
          extra: dict | None = None) -> pd.DataFrame:
    """Per-frame rows of one method: ``{clip: {metric: [value per frame]}}``."""
    return pd.concat([frame_rows(method=method, dataset=dataset, clip=clip, values=values, protocol=protocol,
                                 extra=extra) for clip, values in per_clip.items()], ignore_index=True)


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    mse = np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


TINY_CLIPS = ("a", "b")
TINY_FRAMES = 6
TINY_SIZE = (48, 64)
TINY_NOISE = {"bicubic": 12.0, "sharp": 4.0}


def tiny_clip(clip: str) -> np.ndarray:
    """(6 48 64 3) ground truth: a smooth ramp, with a textured square at rows 8-23, columns 32-47 moving right."""
    rng = np.random.default_rng(0 if clip == "a" else 1)
    h, w = TINY_SIZE
    ramp = np.linspace(40, 200, w)[None, :, None] * np.ones((h, 1, 3))
    texture = rng.integers(0, 256, size=(16, 16, 3))
    frames = []
    for t in range(TINY_FRAMES):
        frame = ramp.copy()
        frame[8:24, 30 + t : 46 + t] = texture
        frames.append(frame)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def tiny_prediction(gt: np.ndarray, method: str, clip: str) -> np.ndarray:
    rng = np.random.default_rng([len(method), ord(clip)])
    noise = rng.normal(0, TINY_NOISE[method], size=gt.shape)
    return np.clip(gt.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> str:
    """A run folder with dataset 'tiny' (clips a, b), methods bicubic and sharp, PSNR per frame."""
    run = str(tmp_path_factory.mktemp("tiny-run"))
    io.write_json(io.join(run, "spec.json"), {"spec": {"name": "tiny"}, "spec_hash": "feedc0ffee123456",
                                              "created_at": "2026-01-02T03:04:05+00:00", "git_commit": "abc"})
    infos, clip_shards, parts = [], {}, []
    for i, clip in enumerate(TINY_CLIPS):
        gt = tiny_clip(clip)
        lr = gt[:, ::4, ::4]
        samples = [Sample.create(dataset="tiny", clip_id=clip, frame_indices=range(s, s + 3), lr=lr[s : s + 3],
                                 hr=gt[s : s + 3]) for s in (0, 3)]
        name = f"tiny-{i:05d}.tar"
        infos.append(write_shard(io.join(run, "shards", "tiny", name), samples))
        clip_shards[clip] = [name]
        for method in TINY_NOISE:
            pred = tiny_prediction(gt, method, clip)
            for t, frame in enumerate(pred):
                write_frame(io.join(run, "predictions", method, "tiny", clip, f"{t:08d}.png"), frame)
            io.write_json(io.join(run, "predictions", method, "tiny", clip, "_records", "r.json"),
                          {"method": method, "checkpoint_hash": "ck" + method[:3] if method == "sharp" else None})
            parts.append(table(method, "tiny", {clip: {"psnr": [psnr(p, g) for p, g in zip(pred, gt)]}}, extra={
                "seeclear_bench": "0.1.0", "git_commit": "abc", "spec_hash": "feedc0ffee123456", "seed": 0,
                "device": "cpu (test)"}))
    write_manifest(io.join(run, "shards", "tiny"), infos, spec_hash="feedc0ffee123456",
                   extra={"clip_shards": clip_shards})
    write_parquet(pd.concat(parts, ignore_index=True), io.join(run, "metrics", "frames.parquet"))
    return run


@pytest.fixture(scope="session")
def make_table():
    """:func:`table` for tests (importlib import mode: test modules cannot import conftest helpers)."""
    return table
