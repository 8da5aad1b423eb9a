"""Faults: a training worker killed, the driver killed, an inference actor killed; each run still ends complete.

Every kill happens at a known point, never after a sleep: the test arms a pause point (`seeclear_bench._pause`,
the ``pause_points`` fixture), the worker stops there (after the step-N checkpoint is published; inside a video, one
frame written and no record yet), the test kills it and then releases the point. Processes are killed by pid
(SIGKILL): the pid a paused process reports, a rank's pid file (``<train>/workers/rank-R.json``), or, for the
driver, the process group of the ``seeclear-bench run`` subprocess this test started.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seeclear_bench.config import TrainStageConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def _shards(root: Path) -> list[str]:
    from seeclear_bench.stages import prepare_demo_shards

    return prepare_demo_shards(str(root), spec_hash="test")


@pytest.mark.timeout(600)
def test_killed_training_worker_resumes_to_the_same_weights(ray_session, pause_points, tmp_path):
    """Deterministic mode: data position, augmentation and noise are functions of the step and the checkpoint holds
    optimizer, scheduler, EMA and every rank's data position, and gloo's 2-rank all-reduce is order-stable, so the
    run restarted from step 4 ends on the same weights as a run never interrupted. Rank 1 is killed while both ranks
    are paused just after the step-4 checkpoint."""
    import torch

    from pipelines.train import fit, plan_for
    from seeclear_bench.checkpoints import load_checkpoint
    from seeclear_bench.layout import TrainFolder
    from seeclear_bench.train import read_log

    shards = _shards(tmp_path)
    settings = TrainStageConfig(workers=2, cpus_per_worker=0.5, checkpoint_every=4, max_failures=2, deterministic=True,
                                config={"steps": 8, "lr": 1e-3, "min_lr": 1e-4, "warmup": 1, "batch_size": 1,
                                        "crop_size": 32, "clips_per_sample": 1})
    plan = plan_for(settings, shards)
    out = tmp_path / "killed"
    killed: list[int] = []
    seen: dict[str, object] = {}
    point = "train-checkpoint-4"
    pause_points.arm(point)

    def killer() -> None:
        try:
            seen["paused"] = pause_points.wait(point, 300, count=2)  # both ranks, the step-4 checkpoint published
            seen["complete"] = (out / "condenser" / "checkpoints" / "step-00000004" / "COMPLETE").exists()
            pid = json.loads((out / "condenser" / "workers" / "rank-1.json").read_text())["pid"]
            if _kill(pid):
                killed.append(pid)
        except BaseException as exc:  # reported by the test's assertions, not lost in the thread
            seen["error"] = exc
        finally:
            pause_points.release(point)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = fit(plan, str(out), settings, progress=False)
    thread.join(5)
    assert "error" not in seen, seen
    assert killed and killed[0] in seen["paused"] and seen["complete"], (killed, seen)
    new_pid = json.loads((out / "condenser" / "workers" / "rank-1.json").read_text())["pid"]
    assert new_pid != killed[0]  # Ray Train started a new worker group
    assert result["step"] == 8
    assert [int(r["step"]) for r in read_log(TrainFolder(str(out)), "condenser")] == list(range(1, 9))

    reference = fit(plan, str(tmp_path / "clean"), settings, progress=False)
    a, _ = load_checkpoint(result["checkpoint"])
    b, _ = load_checkpoint(reference["checkpoint"])
    sa, sb = a.trainable_state_dict(), b.trainable_state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _spec(tmp_path: Path, steps: int) -> Path:
    from seeclear_bench.data.demo import write_demo_source

    src = tmp_path / "src"
    write_demo_source(str(src), frames=10, size=(64, 64))
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
name = "driver-kill"
stages = ["prepare", "train"]
[[data.sources]]
name = "demo"
url = "{src}"
layout = "clips"
clips = ["astronaut_pan", "coffee_zoom", "bunny_010"]
[shards]
window = 5
max_samples_per_shard = 2
[train]
datasets = ["demo"]
workers = 2
cpus_per_worker = 0.5
checkpoint_every = 3
max_failures = 0
[train.config]
steps = {steps}
warmup = 1
batch_size = 1
crop_size = 32
clips_per_sample = 1
[ray]
num_cpus = 2
""")
    return spec


@pytest.mark.timeout(600)
def test_killed_driver_resumes_without_duplicate_or_lost_steps(pause_points, tmp_path):
    """The driver is killed (with its Ray) while both ranks are paused just after the step-3 checkpoint."""
    from seeclear_bench.checkpoints import list_checkpoints
    from seeclear_bench.layout import TrainFolder
    from seeclear_bench.train import read_log

    spec, out = _spec(tmp_path, steps=9), tmp_path / "run"
    stage = out / "train" / "condenser"
    cli = [str(Path(sys.executable).parent / "seeclear-bench"), "run", str(spec), "--out", str(out), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # with SEECLEAR_TEST_PAUSE_DIR
    pause_points.arm("train-checkpoint-3")
    proc = subprocess.Popen(cli, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        pause_points.wait("train-checkpoint-3", 400, count=2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its local Ray and the training workers
        proc.wait(30)
        pause_points.release("train-checkpoint-3")
    assert [s for s, _ in list_checkpoints(str(stage / "checkpoints"))] == [3]
    done = subprocess.run(cli, cwd=REPO, env=env, capture_output=True, text=True, timeout=500, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [int(r["step"]) for r in read_log(TrainFolder(str(out / "train")), "condenser")]
    assert steps == list(range(1, 10))  # resumed: nothing repeated, nothing missing
    assert [s for s, _ in list_checkpoints(str(stage / "checkpoints"))][-1] == 9


@pytest.mark.timeout(420)
def test_killed_inference_actor_leaves_no_missing_or_half_written_video(ray_session, pause_points, tmp_path):
    """An actor is killed mid-video (one frame of it written, no record yet); its video is redone whole by the
    restarted actor, and no video is left missing or half-written."""
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.predict import RECORD, videos_from_url

    sys.path.insert(0, str(Path(__file__).parent))
    from test_infer_ray import infer_videos, make_checkpoint

    ckpt = make_checkpoint(str(tmp_path / "ckpt"))
    write_demo_source(str(tmp_path / "lr"), frames=10, size=(32, 32))
    rows = videos_from_url(str(tmp_path / "lr"), dataset="lr", layout="clips")
    out = tmp_path / "out"
    killed: list[int] = []
    seen: dict[str, object] = {}
    point = "predict-first-frame-written"
    pause_points.arm(point)

    def killer() -> None:
        try:
            pid = pause_points.wait(point, 200)[0]
            # mid-video: a clip with frames and no record yet
            seen["half"] = [p.name for p in out.glob("lr/*") if list(p.glob("*.png"))
                            and not (p / "_records" / f"{RECORD}.json").exists()]
            if _kill(pid):
                killed.append(pid)
        except BaseException as exc:
            seen["error"] = exc
        finally:
            pause_points.release(point)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    counts = infer_videos(rows, str(out), checkpoint=ckpt, steps=1, actors=2, progress=False)
    thread.join(5)
    assert "error" not in seen, seen
    assert killed and seen["half"], (killed, seen)
    assert counts["written"] == len(rows) == 5
    for row in rows:
        folder = out / "lr" / row["clip_id"]
        record = json.loads((folder / "_records" / f"{RECORD}.json").read_text())
        visible = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        assert visible == sorted(record["frames"]) == [f"{i:08d}.png" for i in range(10)]
        assert all(decode_frame((folder / name).read_bytes()).shape == (128, 128, 3) for name in visible)
    assert infer_videos(rows, str(out), checkpoint=ckpt, steps=1, progress=False) == {"written": 0, "skipped": 5}


_MULTI_NODE = r"""
import json, sys
from pathlib import Path
import ray
from ray.cluster_utils import Cluster
sys.path.insert(0, sys.argv[2])
from test_faults import _shards
from pipelines.train import fit, plan_for
from seeclear_bench.config import TrainStageConfig
from seeclear_bench.layout import TrainFolder
from seeclear_bench.train import read_log

root = Path(sys.argv[1])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
try:
    settings = TrainStageConfig(workers=2, cpus_per_worker=1, checkpoint_every=2, max_failures=0,
                                config={"steps": 4, "warmup": 1, "batch_size": 1, "crop_size": 32,
                                        "clips_per_sample": 1})
    result = fit(plan_for(settings, _shards(root)), str(root / "run"), settings, progress=False)
    stage = root / "run" / "condenser"
    nodes = sorted(json.loads((stage / "workers" / f"rank-{r}.json").read_text())["node_id"] for r in (0, 1))
    log = [int(r["step"]) for r in read_log(TrainFolder(str(root / "run")), "condenser")]
    print(json.dumps({"step": result["step"], "nodes": nodes, "log": log}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.timeout(400)
def test_two_raylet_cluster_trains_one_worker_per_node(tmp_path):
    """Two raylets on this machine (ray.cluster_utils.Cluster, 1 CPU each), in a child process so that it does not
    meet the session's Ray instance; whole-CPU workers must land on different nodes and still train together."""
    script = tmp_path / "multi_node.py"
    script.write_text(_MULTI_NODE)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(Path(__file__).parent)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=380, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["step"] == 4 and result["log"] == [1, 2, 3, 4]
    assert len(set(result["nodes"])) == 2  # one rank per raylet
