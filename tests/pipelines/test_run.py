"""`seeclear-bench run` end to end on a local Ray: shards, predictions, metrics, leaderboard; resume; bad input."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from seeclear_bench import io
from seeclear_bench.config import DataConfig, MethodsConfig, RunConfig, SourceConfig
from seeclear_bench.data.frames import read_frame
from seeclear_bench.errors import SeeClearError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _psnr_rgb(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, ray_session):
    from pipelines.run import run

    out = str(tmp_path_factory.mktemp("demo-run"))
    result = run(RunConfig.demo(), out, progress=False, command="seeclear-bench run")
    return out, result


def test_demo_writes_every_stage(demo_run):
    out, result = demo_run
    assert result.manifests["demo-train"]["total_samples"] == 6  # 3 clips x 10 frames, windows of 5
    assert result.manifests["demo-heldout"]["total_samples"] == 4
    assert result.upscaled == {"written": 15, "skipped": 0}  # 5 whole videos x 3 methods
    for method in ("bicubic", "lanczos", "seeclear"):
        pngs = [u for u in io.glob(io.join(out, "predictions", method, "*", "*", "*.png"))]
        assert len(pngs) == 50
    frames = pd.read_parquet(io.join(out, "metrics", "frames.parquet"))
    # methods x (frames x {psnr, ssim} + clips x tOF steps: TecoGAN skips 2 frames at each end of a 10-frame clip)
    assert len(frames) == 3 * (50 * 2 + 5 * 5)
    assert set(frames["protocol"]) == {"basicsr-reds4-rgb"}
    assert frames["value"].notna().all() and np.isfinite(frames["value"]).all()
    assert {"spec_hash", "git_commit", "seeclear_bench", "seed", "device"} <= set(frames.columns)
    text = io.read_bytes(io.join(out, "leaderboard.md")).decode()
    assert all(word in text for word in ("bicubic", "lanczos", "seeclear", "demo-train", "demo-heldout"))


def _board_rows(markdown: str) -> dict[str, list[float]]:
    """The leaderboard table's numbers by method, marks dropped (the first table of a leaderboard.md)."""
    import re

    lines = markdown.split("\n## ")[0].splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| Method")]
    return {row.split("|")[1].strip(): [float(v) for v in re.findall(r"\d+\.\d+", "|".join(row.split("|")[2:]))]
            for row in rows}


def test_committed_demo_leaderboard_is_what_the_demo_makes(demo_run):
    """reports/demo-leaderboard.md is current: its table (methods in the same order, every value) is what the demo
    makes now, within one unit of the last displayed digit (another CPU may round a last digit the other way).
    Refresh it with `make demo`."""
    from pathlib import Path

    out, _ = demo_run
    ours = _board_rows(io.read_bytes(io.join(out, "leaderboard.md")).decode())
    committed = _board_rows((Path(__file__).resolve().parents[2] / "reports" / "demo-leaderboard.md").read_text())
    assert list(committed) == list(ours), "row order differs: run `make demo` to refresh reports/"
    for method, values in ours.items():
        assert len(committed[method]) == len(values)
        for mine, theirs in zip(values, committed[method]):
            assert mine == pytest.approx(theirs, abs=1.01e-2 if mine > 1 else 1.01e-4), (
                f"{method}: {values} vs committed {committed[method]}; run `make demo` to refresh reports/")


def test_trained_seeclear_tiny_beats_bicubic_on_held_out_clips(demo_run):
    out, _ = demo_run
    frames = pd.read_parquet(io.join(out, "metrics", "frames.parquet"))
    psnr = frames[(frames["dataset"] == "demo-heldout") & (frames["metric"] == "psnr")]
    clip_means = psnr.groupby(["method", "clip"])["value"].mean().groupby("method").mean()
    assert clip_means["seeclear"] > clip_means["bicubic"] + 0.1


def test_table_value_matches_an_independent_psnr(demo_run):
    out, _ = demo_run
    frames = pd.read_parquet(io.join(out, "metrics", "frames.parquet"))
    row = frames[(frames["method"] == "lanczos") & (frames["clip"] == "astronaut_pan") & (frames["frame"] == 7)
                 & (frames["metric"] == "psnr")].iloc[0]
    pred = read_frame(io.join(out, "predictions", "lanczos", "demo-train", "astronaut_pan", "00000007.png"))
    gt = read_frame(io.join(out, "source", "demo", "astronaut_pan", sorted(
        io.basename(u) for u in io.glob(io.join(out, "source", "demo", "astronaut_pan", "*.png")))[7]))
    assert row["value"] == pytest.approx(_psnr_rgb(pred, gt), abs=1e-9)
    assert 20 < row["value"] < 45


def test_bicubic_prediction_is_matlab_imresize_of_the_lr(demo_run):
    from seeclear_bench.data import shards
    from seeclear_bench.data.imresize import imresize

    out, _ = demo_run
    url = io.join(out, "shards", "demo-train", "demo-train-00000-00.tar")
    sample = next(shards.iter_shard(url))
    expected = imresize(sample.lr, output_shape=sample.hr.shape[1:3])
    got = np.stack([read_frame(io.join(out, "predictions", "bicubic", sample.dataset, sample.clip_id, f"{i:08d}.png"))
                    for i in sample.frame_indices])
    assert np.array_equal(got, expected)


def test_rerun_skips_verified_work_and_gives_the_same_table(demo_run):
    from pipelines.run import run

    out, _ = demo_run
    before = pd.read_parquet(io.join(out, "metrics", "frames.parquet"))
    again = run(RunConfig.demo(), out, progress=False)
    assert again.upscaled == {"written": 0, "skipped": 15}
    after = pd.read_parquet(io.join(out, "metrics", "frames.parquet"))
    cols = ["method", "dataset", "clip", "frame", "metric", "value", "protocol_hash"]
    pd.testing.assert_frame_equal(before[cols], after[cols])


def _flip_byte_in_member(tar_url: str, suffix: str) -> str:
    with tarfile.open(tar_url) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(suffix))
    with open(tar_url, "r+b") as f:
        f.seek(member.offset_data + member.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    return member.name


def _small_spec(url: str, **degrade) -> RunConfig:
    cfg = RunConfig.demo()
    source = SourceConfig(name="tiny", url=url, layout="clips", clips=("astronaut_pan",), max_frames=5)
    cfg = dataclasses.replace(cfg, data=DataConfig(sources=(source,)), methods=MethodsConfig(names=("bicubic", "lanczos")),
                              evaluate=dataclasses.replace(cfg.evaluate, protocols={}, metrics=("psnr", "ssim")))
    if degrade:
        cfg = dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, **degrade))
    return cfg


def test_corrupt_shard_is_named_and_prepare_rebuilds_it(tmp_path, demo_run):
    from pipelines.run import run

    out_demo, _ = demo_run
    out = str(tmp_path / "run")
    cfg = _small_spec(io.join(out_demo, "source", "demo"))
    run(dataclasses.replace(cfg, stages=("prepare",)), out, progress=False)
    tar_url = io.join(out, "shards", "tiny", "tiny-00000-00.tar")
    recorded = json.loads((tmp_path / "run" / "shards" / "tiny" / "manifest.json").read_text())["shards"][0]["sha256"]
    member = _flip_byte_in_member(tar_url, "lr.0002.png")
    found = hashlib.sha256(open(tar_url, "rb").read()).hexdigest()
    # the shard is checked against its manifest while it streams: one line naming it and both digests
    with pytest.raises(SeeClearError, match=rf"shard .*tiny-00000-00\.tar fails its SHA-256 check: expected "
                                            rf"{recorded}, found {found}") as err:
        run(dataclasses.replace(cfg, stages=("upscale",)), out, progress=False)
    assert "\n" not in str(err.value) and member.startswith("tiny__astronaut_pan")
    # the whole video's shards verify before anything of it is written
    assert not [p for p in (tmp_path / "run" / "predictions").rglob("*") if p.suffix in (".png", ".json")]
    # prepare notices the checksum mismatch, rewrites that shard, and the run then completes
    result = run(cfg, out, progress=False)
    assert result.n_rows == 2 * 5 * 2


def test_indivisible_hr_refused_when_spec_says_so(tmp_path, ray_session):
    from pipelines.run import run
    from seeclear_bench.data.frames import write_frame

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for i in range(3):
        write_frame(str(src / "clipA" / f"{i:08d}.png"), rng.integers(0, 255, (34, 50, 3), dtype=np.uint8))
    cfg = _small_spec(str(src), on_indivisible="error")
    cfg = dataclasses.replace(cfg, data=DataConfig(sources=(SourceConfig(name="odd", url=str(src), layout="clips"),)))
    with pytest.raises(SeeClearError, match=r"34x50.*4"):
        run(cfg, str(tmp_path / "out"), progress=False)
    assert not io.exists(str(tmp_path / "out" / "shards" / "odd" / "manifest.json"))
    cropped = run(dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, on_indivisible="crop")),
                  str(tmp_path / "out2"), progress=False)
    assert cropped.manifests["odd"]["total_samples"] == 1
    sample_meta = cropped.manifests["odd"]
    assert sample_meta["shards"][0]["n_samples"] == 1


def test_whole_pipeline_over_s3(s3_server, ray_session, demo_run):
    from pipelines.run import run

    out_demo, _ = demo_run
    bucket = s3_server()
    out = io.join(bucket, "runs", "tiny")
    result = run(_small_spec(io.join(out_demo, "source", "demo")), out, progress=False)
    assert result.n_rows == 2 * 5 * 2
    names = {io.basename(u) for u in io.listdir(out)}
    assert {"spec.json", "shards", "predictions", "metrics", "leaderboard.md"} <= names
    assert not any(".tmp-" in u for u in io.glob(io.join(out, "shards", "tiny", "*")))


def test_evaluate_outside_predictions_against_a_shard_set(demo_run, tmp_path):
    from pipelines.evaluate_folders import run as evaluate_folders

    out, _ = demo_run
    shards = io.join(out, "shards", "demo-heldout")
    clips = evaluate_folders(io.join(out, "predictions", "lanczos", "demo-heldout"), shards, method="lanczos",
                             dataset="demo-heldout", protocols=["basicsr-reds4-rgb"], metrics=["psnr"],
                             out_url=str(tmp_path / "eval"), progress=False)
    pipeline = pd.read_parquet(io.join(out, "metrics", "clips.parquet"))
    want = pipeline[(pipeline["method"] == "lanczos") & (pipeline["dataset"] == "demo-heldout")
                    & (pipeline["metric"] == "psnr")].set_index("clip")["value"]
    got = clips.set_index("clip")["value"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    # a shard set as the predictions: its hr frames against themselves are identical frames (PSNR inf, kept per frame)
    same = evaluate_folders(shards, shards, method="gt", dataset="demo-heldout", protocols=["basicsr-reds4-rgb"],
                            metrics=["psnr"], out_url=str(tmp_path / "same"), progress=False)
    frames = pd.read_parquet(tmp_path / "same" / "metrics" / "frames.parquet")
    assert np.isinf(frames["value"]).all() and (same["n_inf"] == same["n_frames"]).all()


def test_small_evaluate_in_this_process_equals_the_ray_path(demo_run, tmp_path):
    """A small job runs its tasks in this process (no Ray start-up) with the same task function: the per-frame table
    equals the one Ray's tasks make, and a bad input is the same one line."""
    from pipelines._ray import SMALL_JOB_TASKS, use_ray
    from pipelines.evaluate_folders import run as evaluate_folders

    out, _ = demo_run
    shards = io.join(out, "shards", "demo-heldout")
    kwargs = {"method": "lanczos", "dataset": "demo-heldout", "protocols": ["basicsr-reds4-rgb"],
              "metrics": ["psnr", "ssim", "tof"], "progress": False}
    pred = io.join(out, "predictions", "lanczos", "demo-heldout")
    local = evaluate_folders(pred, shards, out_url=str(tmp_path / "local"), executor="local", **kwargs)
    on_ray = evaluate_folders(pred, shards, out_url=str(tmp_path / "ray"), executor="ray", **kwargs)
    pd.testing.assert_frame_equal(local, on_ray)
    a = pd.read_parquet(tmp_path / "local" / "metrics" / "frames.parquet")
    b = pd.read_parquet(tmp_path / "ray" / "metrics" / "frames.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert set(a["metric"]) == {"psnr", "ssim", "tof"}
    # auto: a small job with no cluster named runs here only while no Ray is connected (this session's is)
    assert use_ray("auto", 2, None) and use_ray("auto", SMALL_JOB_TASKS + 1, None) and not use_ray("local", 99, None)
    with pytest.raises(SeeClearError, match="--executor must be auto, ray or local"):
        use_ray("threads", 1, None)
    with pytest.raises(SeeClearError, match="drop --address"):
        use_ray("local", 1, "auto")
    import shutil

    from seeclear_bench.data.frames import encode_png, read_frame

    bad = tmp_path / "bad"
    shutil.copytree(pred, bad)
    frame = sorted((bad / "chelsea_pan").glob("*.png"))[0]
    frame.write_bytes(encode_png(read_frame(str(frame))[:-4]))  # a frame of the wrong size: fails inside the task
    errors = []
    for executor in ("local", "ray"):
        with pytest.raises(SeeClearError) as err:
            evaluate_folders(str(bad), shards, out_url=str(tmp_path / executor / "bad"), executor=executor, **kwargs)
        errors.append(str(err.value))
    assert errors[0] == errors[1] and "\n" not in errors[0]


def test_two_protocols_in_one_run_score_each_frame_once_per_protocol(demo_run, tmp_path):
    """A spec asks for RGB and Y on one dataset: PSNR/SSIM rows under both, tOF (its own colour and crop) once under
    the first; the Y numbers equal a Y-only run's; the leaderboard has one column group per protocol and no
    conflict; a re-run reuses every part."""
    import shutil

    from pipelines import evaluate, report
    from pipelines.evaluate_folders import run as evaluate_folders
    from seeclear_bench.config import EvaluateConfig
    from seeclear_bench.layout import RunLayout

    out, _ = demo_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir, ignore=shutil.ignore_patterns("leaderboard*", "figures"))
    rgb, y = "basicsr-reds4-rgb", "basicsr-vid4-y"
    cfg = dataclasses.replace(RunConfig.demo(), evaluate=EvaluateConfig(
        metrics=("psnr", "ssim", "tof"), protocols={"demo-heldout": (rgb, y)}))
    layout = RunLayout(str(run_dir))
    frames = evaluate.run(cfg, layout, "spec", progress=False)
    held = frames[frames["dataset"] == "demo-heldout"]
    assert set(held.loc[held["protocol"] == rgb, "metric"]) == {"psnr", "ssim", "tof"}
    assert set(held.loc[held["protocol"] == y, "metric"]) == {"psnr", "ssim"}
    assert set(frames.loc[frames["dataset"] == "demo-train", "protocol"]) == {rgb}
    rgb_rows = held[(held["protocol"] == rgb) & (held["metric"] == "psnr")].set_index(["method", "clip", "frame"])
    y_rows = held[(held["protocol"] == y) & (held["metric"] == "psnr")].set_index(["method", "clip", "frame"])
    assert (y_rows["value"] > rgb_rows["value"].reindex(y_rows.index)).mean() > 0.9  # Y PSNR is higher than RGB
    evaluate_folders(str(run_dir / "predictions" / "lanczos" / "demo-heldout"), str(run_dir / "shards" / "demo-heldout"),
                     method="lanczos", dataset="demo-heldout", protocols=[y], metrics=["psnr"],
                     out_url=str(tmp_path / "y-only"), progress=False, executor="local")
    alone = pd.read_parquet(tmp_path / "y-only" / "metrics" / "frames.parquet").set_index(["clip", "frame"])["value"]
    np.testing.assert_array_equal(y_rows.loc["lanczos", "value"].reindex(alone.index).to_numpy(), alone.to_numpy())
    parts = sorted(p.relative_to(run_dir / "metrics" / "parts") for p in (run_dir / "metrics" / "parts").rglob("*.parquet"))
    assert {p.parts[1] for p in parts if p.parts[0] == "demo-heldout"} == {rgb, y}
    stamps = {p: (run_dir / "metrics" / "parts" / p).stat().st_mtime_ns for p in parts}
    again = evaluate.run(cfg, layout, "spec", progress=False)
    pd.testing.assert_frame_equal(again, frames)
    assert {p: (run_dir / "metrics" / "parts" / p).stat().st_mtime_ns for p in parts} == stamps

    text = report.run(frames, str(run_dir), title="t", html=False)
    assert f"demo-heldout · {y}" in text and f"demo-heldout · {rgb}" in text and "Conflicts" not in text


def test_evaluate_outside_predictions_resumes_per_clip(demo_run, tmp_path):
    """A second run reuses every clip's verified rows; a changed frame re-scores only its clip."""
    import shutil

    from pipelines.evaluate_folders import run as evaluate_folders
    from seeclear_bench.data.frames import encode_png, read_frame

    out, _ = demo_run
    pred = tmp_path / "pred"
    shutil.copytree(io.join(out, "predictions", "lanczos", "demo-heldout"), pred)
    kwargs = {"method": "lanczos", "dataset": "demo-heldout", "protocols": ["basicsr-reds4-rgb"], "metrics": ["psnr"],
              "out_url": str(tmp_path / "eval"), "progress": False}
    shards = io.join(out, "shards", "demo-heldout")
    first = evaluate_folders(str(pred), shards, **kwargs)
    part_dir = tmp_path / "eval" / "metrics" / "parts" / "demo-heldout" / "basicsr-reds4-rgb"
    parts = {p.stem: p for p in part_dir.glob("*.parquet")}
    assert set(parts) == {"chelsea_pan", "bunny_040"} and all(p.with_suffix(".json").exists() for p in parts.values())
    stamps = {c: p.stat().st_mtime_ns for c, p in parts.items()}

    again = evaluate_folders(str(pred), shards, **kwargs)
    pd.testing.assert_frame_equal(again, first)
    assert {c: p.stat().st_mtime_ns for c, p in parts.items()} == stamps  # read back, not scored again

    frame = next(iter(sorted((pred / "chelsea_pan").glob("*.png"))))
    (frame).write_bytes(encode_png(255 - read_frame(str(frame))))
    changed = evaluate_folders(str(pred), shards, **kwargs).set_index("clip")["value"]
    before = first.set_index("clip")["value"]
    assert parts["bunny_040"].stat().st_mtime_ns == stamps["bunny_040"]
    assert parts["chelsea_pan"].stat().st_mtime_ns != stamps["chelsea_pan"]
    assert changed["bunny_040"] == before["bunny_040"] and changed["chelsea_pan"] < before["chelsea_pan"]


def test_evaluate_scores_only_predictions_that_match_their_records(demo_run, tmp_path):
    """Evaluate reads each whole-video prediction through its record: a frame changed after it was predicted is one
    line naming it, and the predict stage then redoes that (method, video) only."""
    import shutil

    from pipelines.run import run
    from seeclear_bench.data.frames import encode_png

    out, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    frame = copy / "predictions" / "lanczos" / "demo-heldout" / "chelsea_pan" / "00000003.png"
    frame.write_bytes(encode_png(255 - read_frame(str(frame))))
    cfg = dataclasses.replace(RunConfig.demo(), stages=("evaluate",))
    with pytest.raises(SeeClearError, match=r"^frame 00000003\.png of the lanczos prediction of demo-heldout/"
                                            r"chelsea_pan does not match its record; run the 'upscale' stage again$"):
        run(cfg, str(copy), progress=False)
    redone = run(dataclasses.replace(cfg, stages=("upscale", "evaluate")), str(copy), progress=False)
    assert redone.upscaled == {"written": 1, "skipped": 14}
    cols = ["method", "dataset", "clip", "frame", "metric", "value"]
    pd.testing.assert_frame_equal(pd.read_parquet(copy / "metrics" / "frames.parquet")[cols],
                                  pd.read_parquet(io.join(out, "metrics", "frames.parquet"))[cols])
