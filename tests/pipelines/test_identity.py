"""Issue 11, item 3: each stage's outputs are keyed by exactly the inputs that change them, so valid work is reused:
`prepare` then `run` rewrites no shard, a new metric scores only that metric, a new method predicts only that
method, a new seed rebuilds the shards; `degrade` and `prepare` give the same LR frames for every degradation.
Issue 13: the shard bytes do not depend on the number of workers, plain PNG sources' HR bytes included."""
from __future__ import annotations

import dataclasses
import hashlib
import io as io_module
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seeclear_bench import io
from seeclear_bench.config import DataConfig, MethodsConfig, RunConfig, SourceConfig

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _spec(src: str, **changes) -> RunConfig:
    cfg = RunConfig.demo()
    source = SourceConfig(name="tiny", url=src, layout="clips", clips=("astronaut_pan", "coffee_zoom"), max_frames=5)
    cfg = dataclasses.replace(cfg, data=DataConfig(sources=(source,)), methods=MethodsConfig(names=("bicubic",)),
                              stages=("prepare", "upscale", "evaluate"),
                              evaluate=dataclasses.replace(cfg.evaluate, protocols={}, metrics=("psnr",)))
    return dataclasses.replace(cfg, **changes)


def _stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.tar"))}


@pytest.fixture()
def source(tmp_path) -> str:
    from seeclear_bench.data.demo import write_demo_source

    src = str(tmp_path / "src")
    write_demo_source(src, frames=5, size=(32, 32))
    return src


def test_prepare_then_run_rewrites_no_shard_and_reuses_every_unit(tmp_path, source, ray_session):
    from pipelines.run import run

    out = str(tmp_path / "run")
    cfg = _spec(source)
    run(dataclasses.replace(cfg, stages=("prepare",)), out, progress=False)  # what `seeclear-bench prepare` runs
    shards = tmp_path / "run" / "shards" / "tiny"
    stamps, manifest = _stamps(shards), (shards / "manifest.json").read_bytes()
    first = run(cfg, out, progress=False)
    assert _stamps(shards) == stamps and (shards / "manifest.json").read_bytes() == manifest
    assert first.upscaled == {"written": 2, "skipped": 0}

    # a new method predicts that method only
    two = dataclasses.replace(cfg, methods=MethodsConfig(names=("bicubic", "lanczos")))
    second = run(two, out, progress=False)
    assert second.upscaled == {"written": 2, "skipped": 2} and _stamps(shards) == stamps

    # a new seed rebuilds the shards (the seed is in every sample's record, and it drives realistic degradations)
    third = run(dataclasses.replace(two, seed=7), out, progress=False)
    assert set(_stamps(shards)) == set(stamps) and all(_stamps(shards)[n] != stamps[n] for n in stamps)
    assert third.upscaled == {"written": 4, "skipped": 0}  # other shard set, other predictions


def test_a_new_metric_scores_only_that_metric(tmp_path, monkeypatch):
    """`score_with_reuse` keeps (method, metric) results whose inputs are unchanged; only the rest is computed."""
    import seeclear_bench.metrics.scoring as scoring
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.stages import score_with_reuse

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    preds = {m: np.clip(gt.astype(int) + rng.integers(-9, 10, gt.shape), 0, 255).astype(np.uint8)
             for m in ("a", "b")}
    calls: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    real = scoring.score_clip

    def counting(p, g, **kw):
        calls.append((tuple(sorted(p)), tuple(kw["metrics"])))
        return real(p, g, **kw)

    monkeypatch.setattr(scoring, "score_clip", counting)
    layout = RunLayout(str(tmp_path))

    def score(methods, metrics):
        return score_with_reuse(layout, dataset="d", clip="c", gt=("gt", lambda: gt),
                                preds={m: (f"digest-{m}", lambda m=m: preds[m]) for m in methods},
                                metrics=metrics, protocols=["basicsr-reds4-rgb"])

    first = score(["a"], ["psnr"])
    assert calls == [(("a",), ("psnr",))]
    calls.clear()
    both = score(["a"], ["psnr", "ssim"])
    assert calls == [(("a",), ("ssim",))]  # psnr of a was kept
    key = ["method", "metric", "frame"]
    kept = both[both["metric"] == "psnr"].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, first.sort_values(key).reset_index(drop=True))
    calls.clear()
    score(["a", "b"], ["psnr", "ssim"])
    assert calls == [(("b",), ("psnr", "ssim"))]  # a new method: that method only
    calls.clear()
    again = score(["a", "b"], ["psnr", "ssim"])
    assert calls == [] and len(again) == 2 * 2 * 3
    record = json.loads((tmp_path / "metrics" / "parts" / "d" / "basicsr-reds4-rgb" / "c.json").read_text())
    assert set(record["methods"]) == {"a", "b", "ground-truth"} and set(record["metrics"]) == {"psnr", "ssim"}


@pytest.mark.parametrize("kind", ["bicubic", "blur-downsample", "realistic"])
def test_degrade_and_prepare_give_the_same_lr_bytes(tmp_path, source, kind):
    """One seed rule (seed, clip name) for both commands: the LR frames of a clip are the same pixels in a shard and
    in `seeclear-bench degrade`'s output, and the same bytes once encoded alike (shards encode at their own zlib
    level, :data:`seeclear_bench.data.shards.PNG_COMPRESS_LEVEL`)."""
    from seeclear_bench.config import DegradeConfig, ShardsConfig
    from seeclear_bench.data.frames import encode_png
    from seeclear_bench.data.shards import write_manifest
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.data.sources import discover_clips
    from seeclear_bench.degrade import degrade_folder
    from seeclear_bench.identity import shards_identity
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.stages import prepare_group

    cfg = _spec(source, seed=11, degrade=DegradeConfig(kind=kind, scale=4), shards=ShardsConfig(window=0))

    layout = RunLayout(str(tmp_path / "run"))
    src = cfg.data.sources[0]
    refs = discover_clips(source, layout="clips", clips=list(src.clips), dataset="tiny")
    infos = prepare_group(cfg, src, refs, 0, layout, shards_identity(cfg, src))
    write_manifest(layout.shards("tiny"), infos, spec_hash="test")
    degrade_folder(dataclasses.replace(src, name="other-name"), cfg.degrade, str(tmp_path / "lr"), seed=11,
                   progress=False)
    shard_set = ShardSet.open(layout.shards("tiny"))
    for clip in src.clips:
        _, lr = shard_set.clip(clip).frames("lr")
        files = sorted((tmp_path / "lr" / clip).glob("*.png"))
        assert len(files) == len(lr) == 5
        assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == \
            [hashlib.sha256(encode_png(frame)).hexdigest() for frame in lr]
    assert io.exists(str(tmp_path / "lr" / "degradation.json"))


def test_shard_bytes_do_not_depend_on_the_number_of_workers(tmp_path, source, ray_session):
    """A plain loop, Ray tasks of 1 CPU (2 at once) and of 0.5 CPU (4 at once) write byte-identical shard sets, whose
    HR frames are the demo source's PNG files unchanged."""
    import tarfile

    from pipelines import prepare
    from seeclear_bench.config import RayConfig, ShardsConfig
    from seeclear_bench.data.schema import split_tar_name
    from seeclear_bench.data.shards import write_manifest
    from seeclear_bench.data.shardset import ShardSet
    from seeclear_bench.identity import shards_identity
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.stages import prepare_group

    cfg = _spec(source, shards=ShardsConfig(window=2, clips_per_task=1))
    src = cfg.data.sources[0]
    clips = prepare.discover(cfg, RunLayout(str(tmp_path / "loop")))
    loop = RunLayout(str(tmp_path / "loop"))
    infos = [info for group, ref in enumerate(clips["tiny"])
             for info in prepare_group(cfg, src, [ref], group, loop, shards_identity(cfg, src))]
    write_manifest(loop.shards("tiny"), infos, spec_hash="test")
    sets = {"loop": ShardSet.open(loop.shards("tiny"))}
    for cpus in (1.0, 0.5):
        layout = RunLayout(str(tmp_path / f"ray-{cpus}"))
        prepare.run(dataclasses.replace(cfg, ray=RayConfig(task_cpus=cpus)), layout, "test", clips=clips,
                    progress=False)
        sets[f"ray-{cpus}"] = ShardSet.open(layout.shards("tiny"))
    tars = {way: {e.name: (Path(shard_set.url) / e.name).read_bytes() for e in shard_set.entries}
            for way, shard_set in sets.items()}
    assert len(tars["loop"]) == 2 and tars["ray-1.0"] == tars["loop"] == tars["ray-0.5"]

    hr_members = {}
    for data in tars["loop"].values():
        with tarfile.open(fileobj=io_module.BytesIO(data)) as tar:
            for info in tar.getmembers():
                key, member = split_tar_name(info.name)
                if member.startswith("hr."):
                    meta = json.loads(tar.extractfile(f"{key}.meta.json").read())
                    index = meta["frame_indices"][int(member.split(".")[1])]
                    hr_members[(meta["clip"], index)] = tar.extractfile(info).read()
    files = {(clip, index): path.read_bytes() for clip in src.clips
             for index, path in enumerate(sorted((Path(source) / clip).glob("*.png")))}
    assert len(files) == 10 and hr_members == files
