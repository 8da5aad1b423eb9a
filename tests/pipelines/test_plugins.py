"""Methods of your own (``[methods.NAME]``): a Python entry point and a program, written by the tests, run by the same
predict stage as the built-ins; their records, resume and provenance; each bad plug-in in one line."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from seeclear_bench.config import MethodsConfig, PluginMethodConfig, RunConfig
from seeclear_bench.errors import SeeClearError

UPSCALER = '''
import numpy as np


class Nearest:
    """Nearest-neighbour upscaling: every pixel repeated scale x scale times."""

    def __init__(self, tag):
        self.tag = tag

    def upscale(self, lr, scale):
        return np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)

    def describe(self):
        return {"kind": "nearest", "tag": self.tag}


def make(tag="plain"):
    return Nearest(tag)


def make_fn():
    return lambda lr, scale: np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)


def make_same_size():
    return lambda lr, scale: lr


def make_float():
    return lambda lr, scale: np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2).astype(np.float32)


def make_fewer_frames():
    return lambda lr, scale: np.repeat(np.repeat(lr[1:], scale, axis=1), scale, axis=2)


def make_raises():
    def upscale(lr, scale):
        raise RuntimeError("weights not loaded\\nsecond line")
    return upscale


def make_nothing():
    return 42


NOT_A_FACTORY = 3
'''

# The command: nearest-neighbour in another process; the fifth argument picks a way to misbehave.
SCRIPT = '''
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

lr_dir, out_dir, scale = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "ok"
if mode == "fail":
    print("loading model", file=sys.stderr)
    print("RuntimeError: CUDA out of memory (pretend)", file=sys.stderr)
    sys.exit(3)
if mode == "sleep":
    time.sleep(60)
for i, path in enumerate(sorted(lr_dir.glob("*.png"))):
    if mode == "skip" and i == 1:
        continue
    lr = np.asarray(Image.open(path).convert("RGB"))
    s = scale + (mode == "big")
    Image.fromarray(np.repeat(np.repeat(lr, s, axis=0), s, axis=1)).save(out_dir / path.name)
'''

_modules = itertools.count()


def nearest(lr: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """The test-made upscaler module under a fresh name, importable from this process (as on PYTHONPATH)."""
    name = f"tiny_upscaler_{os.getpid()}_{next(_modules)}"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{name}.py").write_text(UPSCALER)
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "nearest.py"
    path.write_text(SCRIPT)
    return path


def command(script: Path, *extra: str) -> str:
    return " ".join([sys.executable, str(script), "{lr_dir}", "{out_dir}", "{scale}", *extra])


@pytest.fixture
def rows(tmp_path):
    """Two LR videos of 3 frames at 16x16 (frame folders)."""
    from seeclear_bench.data.demo import write_demo_source
    from seeclear_bench.predict import videos_from_url

    url = str(tmp_path / "lr")
    write_demo_source(url, frames=3, size=(16, 16))
    return [r for r in videos_from_url(url, dataset="lr", layout="clips")][:2]


def predict_one(row, methods_cfg: MethodsConfig, out: Path, *, scale: int = 2) -> dict[str, dict]:
    """Every method of ``methods_cfg`` on one video through `predict_video`, as an actor runs it; returns the
    records, after checking that each is complete under the identity the driver computes."""
    from seeclear_bench.methods import describe_method, get_upscaler
    from seeclear_bench.predict import RECORD, predict_video, video_state

    row = {**row, "scale": scale}
    names = methods_cfg.names
    outputs = {n: str(out / n) for n in names}
    methods = {n: get_upscaler(n, methods_cfg) for n in names}
    assert predict_video({**row, "todo": dict.fromkeys(names, "missing")}, methods, outputs) == len(names)
    records = {}
    for n in names:
        assert video_state(outputs[n], row, describe_method(n, methods_cfg)) == "complete"
        record_path = out / n / row["dataset"] / row["clip_id"] / "_records" / f"{RECORD}.json"
        records[n] = json.loads(record_path.read_text())
    return records


def predicted(out: Path, row, n: int = 3) -> np.ndarray:
    from seeclear_bench.data.frames import read_frame

    return np.stack([read_frame(str(out / row["dataset"] / row["clip_id"] / f"{i:08d}.png")) for i in range(n)])


# -- the spec -------------------------------------------------------------------------------------------------------
def spec(methods: str) -> RunConfig:
    return RunConfig.from_toml('name = "p"\nstages = ["upscale"]\n' + textwrap.dedent(methods))


def test_spec_tables_of_own_methods_round_trip():
    cfg = spec('''
        [methods]
        names = ["bicubic", "mine", "theirs"]
        [methods.mine]
        entry = "my_models.basicvsr:make"
        options = { weights = "w.pth", frames = 7 }
        gpu = true
        [methods.theirs]
        command = "python infer.py --in {lr_dir} --out={out_dir} -s {scale} --literal {{x}}"
        timeout = 600
    ''')
    mine, theirs = cfg.methods.plugins["mine"], cfg.methods.plugins["theirs"]
    assert mine == PluginMethodConfig(entry="my_models.basicvsr:make", options={"weights": "w.pth", "frames": 7}, gpu=True)
    assert theirs.command.startswith("python infer.py") and theirs.timeout == 600.0
    from seeclear_bench.methods import uses_gpu

    assert uses_gpu("mine", cfg.methods) and not uses_gpu("theirs", cfg.methods)
    data = cfg.to_dict()
    assert data["methods"]["mine"]["entry"] == "my_models.basicvsr:make" and "plugins" not in data["methods"]
    assert RunConfig.from_dict(data) == cfg
    # a spec without methods of its own keeps the hash it had before they existed
    assert set(RunConfig.demo().to_dict()["methods"]) == {"names", "seeclear"}


@pytest.mark.parametrize(("methods", "message"), [
    ('[methods.mine]\nentry = "m:f"\noptons = {}', "unknown key 'methods.mine.optons' (did you mean 'options'?)"),
    ('[methods.mine]\ncomand = "x {lr_dir} {out_dir}"', "[methods.mine] needs entry = 'package.module:factory' or"),
    ('[methods.seeclar]\ncheckpoint = "c"', "(did you mean 'seeclear'?)"),
    ('[methods]\nnmes = ["bicubic"]', "unknown key 'methods.nmes' (did you mean 'names'?)"),
    ('[methods]\nnames = ["mien"]\n[methods.mine]\nentry = "m:f"', "unknown method 'mien' in methods.names (did you mean 'mine'?)"),
    ('[methods.".."]\nentry = "m:f"', "method name [methods.NAME] '..' is not a plain name"),
    ('[methods."a/b"]\nentry = "m:f"', "is not a plain name (contains a path separator)"),
    ('[methods.bicubic]\nentry = "m:f"', "[methods.bicubic]: 'bicubic' is taken by a built-in"),
    ('[methods.mine]\nentry = "m:f"\ncommand = "x {lr_dir} {out_dir}"', "needs exactly one of entry"),
    ('[methods.mine]\nentry = "m.py"', "methods.mine.entry must read 'package.module:factory', got 'm.py'"),
    ('[methods.mine]\ncommand = "x {lr_dir} {out}"', "placeholder {out} (did you mean 'out_dir'?)"),
    ('[methods.mine]\ncommand = "x {lr_dir}"', "methods.mine.command must pass {out_dir}"),
    ('[methods.mine]\ncommand = "{lr_dir}/x {lr_dir} {out_dir}"', "the program ('{lr_dir}/x') may not hold"),
    ('[methods.mine]\ncommand = "x \'{lr_dir} {out_dir}"', "methods.mine.command cannot be split"),
    ('[methods.mine]\ncommand = "x {lr_dir} {out_dir}"\noptions = {a = 1}', "options are an entry's factory"),
    ('[methods.mine]\nentry = "m:f"\ntimeout = 5', "methods.mine.timeout applies to a command"),
    ('[methods.mine]\ncommand = "x {lr_dir} {out_dir}"\ntimeout = -1', "methods.mine.timeout must be in"),
    ('[methods.mine]\nentry = "m:f"\noptions = {when = 2024-01-01}', "methods.mine.options must hold"),
])
def test_bad_tables_are_one_line(methods, message):
    with pytest.raises(SeeClearError) as err:
        spec(methods)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


# -- in one process (what an actor does with one video) ------------------------------------------------------------
def test_entry_and_command_predict_record_and_describe(tmp_path, plugin_module, script, rows):
    def _sha256(path: Path) -> str:  # independent of the library's hashing
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    cfg = MethodsConfig(names=("mine", "fn", "cmd"), plugins={
        "mine": PluginMethodConfig(entry=f"{plugin_module}:make", options={"tag": "t1"}),
        "fn": PluginMethodConfig(entry=f"{plugin_module}:make_fn"),
        "cmd": PluginMethodConfig(command=command(script), timeout=60)})
    records = predict_one(rows[0], cfg, tmp_path / "out")
    from seeclear_bench.predict import read_video

    _, lr, _ = read_video(rows[0])
    for name in cfg.names:
        assert np.array_equal(predicted(tmp_path / "out" / name, rows[0]), nearest(lr, 2)), name

    mine = records["mine"]
    assert mine["identity"]["method"] == {
        "entry": f"{plugin_module}:make", "options": {"tag": "t1"}, "package": None, "files": {},
        "module_sha256": _sha256(tmp_path / "plugins" / f"{plugin_module}.py")}
    assert mine["method_provenance"]["describe"] == {"kind": "nearest", "tag": "t1"}
    assert mine["method_provenance"]["object"] == "Nearest" and mine["scale"] == 2 and len(mine["frames"]) == 3
    assert "describe" not in records["fn"]["method_provenance"]  # a plain function has none
    cmd = records["cmd"]
    assert cmd["identity"]["method"] == {
        "command": command(script), "program_sha256": _sha256(Path(sys.executable)),
        "files": {str(script): _sha256(script)}}
    assert cmd["method_provenance"] == {"argv": [os.path.abspath(sys.executable), str(script), "{lr_dir}",
                                                 "{out_dir}", "{scale}"], "timeout": 60.0}


def test_package_version_is_recorded_for_an_installed_package():
    """An entry in an installed distribution names it and its version (numpy provides the factory here)."""
    from seeclear_bench.plugins import describe_plugin

    described = describe_plugin("np", PluginMethodConfig(entry="numpy.lib:NumpyVersion"))
    assert described["package"] == {"name": "numpy", "version": np.__version__}
    assert len(described["module_sha256"]) == 64


def test_an_option_naming_a_file_is_hashed(tmp_path, plugin_module):
    from seeclear_bench.plugins import describe_plugin

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"one")
    plugin = PluginMethodConfig(entry=f"{plugin_module}:make", options={"tag": str(weights)})
    first = describe_plugin("mine", plugin)
    weights.write_bytes(b"two")
    assert describe_plugin("mine", plugin)["files"]["tag"] != first["files"]["tag"]


@pytest.mark.parametrize(("factory", "message"), [
    ("make_same_size", "method bad on lr/{clip}: returned frames of 16x16, expected 32x32 (x2 of 16x16)"),
    ("make_float", "method bad on lr/{clip}: returned dtype float32, expected uint8 (0..255)"),
    ("make_fewer_frames", "method bad on lr/{clip}: returned 2 frames for 3 LR frames"),
    ("make_raises", "method bad on lr/{clip}: RuntimeError: weights not loaded"),
])
def test_bad_entry_outputs_are_one_line(tmp_path, plugin_module, rows, factory, message):
    cfg = MethodsConfig(names=("bad",), plugins={"bad": PluginMethodConfig(entry=f"{plugin_module}:{factory}")})
    with pytest.raises(SeeClearError) as err:
        predict_one(rows[0], cfg, tmp_path / "out")
    assert str(err.value) == message.format(clip=rows[0]["clip_id"])


@pytest.mark.parametrize(("entry", "message"), [
    ("{m}:NOT_A_FACTORY", "method bad: '{m}:NOT_A_FACTORY' is not callable (a int)"),
    ("{m}:make_nothing", "method bad: {m}:make_nothing returned a int, which has no upscale() and is not callable"),
    ("{m}:mkae", "method bad: '{m}:mkae': {m} has no 'mkae' (did you mean 'make'?)"),
    ("no_such_module_xyz:make", "method bad: no module named 'no_such_module_xyz'; install its package or put"),
    ("{m}_broken:make", "method bad: importing '{m}_broken' failed: ModuleNotFoundError: No module named 'missing_dep"),
])
def test_bad_entries_are_one_line(tmp_path, plugin_module, entry, message):
    from seeclear_bench.methods import get_upscaler

    (tmp_path / "plugins" / f"{plugin_module}_broken.py").write_text("import missing_dependency_of_the_model\n")
    cfg = MethodsConfig(names=("bad",), plugins={"bad": PluginMethodConfig(entry=entry.format(m=plugin_module))})
    try:
        with pytest.raises(SeeClearError) as err:
            get_upscaler("bad", cfg)
    finally:
        sys.modules.pop(f"{plugin_module}_broken", None)
    assert str(err.value).startswith(message.format(m=plugin_module)) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize(("extra", "timeout", "message"), [
    ("fail", 60, "method bad on lr/{clip}: the command exited with status 3; last line of its stderr: RuntimeError: "
                 "CUDA out of memory (pretend)"),
    ("skip", 60, "method bad on lr/{clip}: the command wrote 2 of 3 frames (missing 00000001.png; out_dir holds "
                 "['00000000.png', '00000002.png']); it must write a PNG named like each input frame"),
    ("big", 60, "method bad on lr/{clip}: the command's frame 00000000.png is 48x48, expected 32x32 (x2)"),
    ("sleep", 1, "method bad on lr/{clip}: the command ran longer than its timeout (1 s) and was stopped; raise "
                 "methods.bad.timeout (0: no limit)"),
])
def test_bad_commands_are_one_line(tmp_path, script, rows, extra, timeout, message):
    cfg = MethodsConfig(names=("bad",), plugins={"bad": PluginMethodConfig(command=command(script, extra),
                                                                           timeout=timeout)})
    with pytest.raises(SeeClearError) as err:
        predict_one(rows[0], cfg, tmp_path / "out")
    assert str(err.value) == message.format(clip=rows[0]["clip_id"])


def test_a_missing_program_is_named_before_any_work(tmp_path):
    from seeclear_bench.methods import describe_method

    cfg = MethodsConfig(names=("bad",), plugins={"bad": PluginMethodConfig(
        command="no-such-upscaler-program {lr_dir} {out_dir}")})
    with pytest.raises(SeeClearError, match=r"^method bad: the command's program 'no-such-upscaler-program' is not "
                                            r"on PATH$"):
        describe_method("bad", cfg)


# -- on Ray: the predict stage's actors --------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(180)
def test_command_on_ray_actors_resumes_and_redoes_a_changed_script(ray_session, tmp_path, script, rows):
    from pipelines.upscale import predict_videos
    from seeclear_bench.predict import read_video

    cfg = MethodsConfig(names=("bicubic", "cmd"), plugins={"cmd": PluginMethodConfig(command=command(script))})
    outputs = {n: str(tmp_path / "out" / n) for n in cfg.names}
    kwargs = {"scale": 2, "progress": False, "cpus_per_actor": 0.25}
    assert predict_videos(rows, outputs, cfg, **kwargs) == {"written": 4, "skipped": 0}
    for row in rows:
        assert np.array_equal(predicted(tmp_path / "out" / "cmd", row), nearest(read_video(row)[1], 2))
    assert predict_videos(rows, outputs, cfg, **kwargs) == {"written": 0, "skipped": 4}
    script.write_text(SCRIPT + "# a new version of the model\n")
    assert predict_videos(rows, outputs, cfg, **kwargs) == {"written": 2, "skipped": 2}  # cmd only, both videos

    bad = MethodsConfig(names=("cmd",), plugins={"cmd": PluginMethodConfig(command=command(script, "fail"))})
    with pytest.raises(SeeClearError) as err:
        predict_videos(rows[:1], {"cmd": str(tmp_path / "bad")}, bad, **kwargs)
    assert str(err.value) == (f"upscale: 1 of 1 video(s) failed (method cmd on lr/{rows[0]['clip_id']}: the command "
                              "exited with status 3; last line of its stderr: RuntimeError: CUDA out of memory "
                              "(pretend))")


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_an_entry_that_fails_to_build_in_the_actors_is_one_line(ray_session, tmp_path, plugin_module, rows):
    """The driver finds the module (it describes the method); the actor building the method reports what failed."""
    from pipelines.upscale import predict_videos

    cfg = MethodsConfig(names=("bad",), plugins={"bad": PluginMethodConfig(entry=f"{plugin_module}:NOT_A_FACTORY")})
    with pytest.raises(SeeClearError) as err:
        predict_videos(rows, {"bad": str(tmp_path / "bad")}, cfg, scale=2, progress=False, cpus_per_actor=0.25)
    # The actors do not have this test's sys.path (Ray's workers get the environment Ray was started with): the
    # module the driver found is missing there, said in one line with the fix.
    assert str(err.value) == (f"method bad: no module named '{plugin_module}'; install its package or put its folder "
                              "on PYTHONPATH (the prediction actors need it too)")


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_spec_with_own_methods_as_a_user_runs_it(tmp_path, script):
    """`seeclear-bench run` on a spec naming an entry point (its module on PYTHONPATH, as a user would put it) and a
    command: both predicted on the run's own local Ray beside bicubic, scored, and skipped when run again."""
    from seeclear_bench.data.demo import write_demo_source

    write_demo_source(str(tmp_path / "hr"), frames=3, size=(32, 32))
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "user_upscaler.py").write_text(UPSCALER)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(textwrap.dedent(f'''
        name = "plugins"
        stages = ["prepare", "upscale", "evaluate"]
        [[data.sources]]
        name = "tiny"
        url = "{tmp_path / 'hr'}"
        layout = "clips"
        clips = ["astronaut_pan"]
        [degrade]
        scale = 2
        [methods]
        names = ["bicubic", "mine", "cmd"]
        [methods.mine]
        entry = "user_upscaler:make"
        options = {{ tag = "from-spec" }}
        [methods.cmd]
        command = "{command(script)}"
        [evaluate]
        metrics = ["psnr"]
    '''))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "plugins")}
    out = tmp_path / "run"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "seeclear_bench.cli", "run", str(spec_path), "--out", str(out),
                               "--no-progress"], capture_output=True, text=True, timeout=240, env=env,
                              cwd=tmp_path)

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    from seeclear_bench.predict import read_video, videos_from_shard_set

    row = videos_from_shard_set(str(out / "shards" / "tiny"), "tiny")[0]
    _, lr_video, _ = read_video(row)
    for name in ("mine", "cmd"):
        assert np.array_equal(predicted(out / "predictions" / name, row), nearest(lr_video, 2)), name
    records = {n: out / "predictions" / n / "tiny" / "astronaut_pan" / "_records" / "video.json" for n in ("mine", "cmd")}
    record = json.loads(records["mine"].read_text())
    assert record["method_provenance"]["describe"] == {"kind": "nearest", "tag": "from-spec"}
    assert record["identity"]["method"]["options"] == {"tag": "from-spec"}
    import pandas as pd

    frames = pd.read_parquet(out / "metrics" / "frames.parquet")
    assert set(frames["method"]) == {"bicubic", "mine", "cmd"}
    written = {n: path.read_bytes() for n, path in records.items()}
    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert {n: path.read_bytes() for n, path in records.items()} == written  # nothing predicted again
