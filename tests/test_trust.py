"""Issue 11 without Ray: names from data never become paths, one run-folder layout that refuses paths outside its
root, one shard-set reader that verifies what it reads, one lock per output folder, stale temporaries swept."""
from __future__ import annotations

import hashlib
import io as pyio
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from seeclear_bench.data import schema
from seeclear_bench.data.shards import Sample, encode_sample, make_webdataset
from seeclear_bench.data.shardset import ShardSet
from seeclear_bench.errors import SeeClearError
from seeclear_bench.layout import PredictionSet, RunLayout
from seeclear_bench.names import check_name, plain_slug
from seeclear_bench.stages import prepare_demo_shards

EXE = [sys.executable, "-m", "seeclear_bench.cli"]
HOSTILE = "../../../../x"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def one_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# -- names ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [HOSTILE, "a/b", "a\\b", ".hidden", "a..b", "", "tab\there", "x" * 129, " pad"])
def test_names_that_are_not_plain_are_refused_naming_field_and_value(bad):
    with pytest.raises(SeeClearError, match=r"^--dataset .* is not a plain name \(") as err:
        check_name(bad, "--dataset")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("good", ["calendar", "000", "00001_0266", "my clip (1)", "REDS4", "a.b"])
def test_plain_names_pass(good):
    assert check_name(good, "clip") == good


def test_real_names_that_are_not_plain_become_a_stable_slug_with_a_hash():
    slug = plain_slug(".hidden clip")
    assert slug == plain_slug(".hidden clip") and slug.startswith("hidden clip~") and check_name(slug, "x") == slug
    assert plain_slug("a\nb") != plain_slug("a\rb")  # two originals never collide through the slug
    assert plain_slug("calendar") == "calendar"


def test_clip_folders_with_names_that_are_not_plain_are_slugged_and_labelled(tmp_path):
    from seeclear_bench.data.frames import write_frame
    from seeclear_bench.data.sources import discover_clips

    for name in ("ok", "bad\x07name"):
        write_frame(str(tmp_path / "ds" / name / "00000000.png"), np.zeros((8, 8, 3), np.uint8))
    refs = {r.clip_id: r for r in discover_clips(str(tmp_path / "ds"), layout="clips", dataset="ds")}
    assert refs["ok"].label == "" and len(refs) == 2
    (slugged,) = [r for r in refs.values() if r.clip_id != "ok"]
    assert slugged.label == "bad\x07name" and slugged.clip_id.startswith("bad_name~")


def test_layout_refuses_every_path_outside_its_root(tmp_path):
    layout = RunLayout(str(tmp_path / "run"))
    assert layout.metrics_part("REDS4", "000", "basicsr-reds4-rgb") == \
        f"{tmp_path}/run/metrics/parts/REDS4/basicsr-reds4-rgb/000.parquet"
    assert layout.predictions("bicubic").frame("REDS4", "000", 7) == f"{tmp_path}/run/predictions/bicubic/REDS4/000/00000007.png"
    for call in (lambda: layout.shards(HOSTILE), lambda: layout.predictions("../m"),
                 lambda: layout.metrics_part("d", HOSTILE, "p"), lambda: layout.metrics_part("d", "c", HOSTILE),
                 lambda: layout.predictions("m").clip("d", ".."),
                 lambda: PredictionSet(str(tmp_path)).member("d", "c", "../../etc/passwd")):
        with pytest.raises(SeeClearError, match="not a plain name"):
            call()
    with pytest.raises(SeeClearError, match="outside the output folder"):
        layout.check_inside(f"{tmp_path}/run/../elsewhere")


def test_spec_name_and_source_name_are_checked_where_they_enter(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "../../X"\n[[data.sources]]\nname = "a"\nurl = "demo"\n')
    line = one_line(cli("run", str(spec)))
    assert "spec name '../../X' is not a plain name" in line
    assert not (tmp_path.parent.parent / "X").exists()


# -- shard sets: one reader, verified ------------------------------------------------------------------------------
@pytest.fixture()
def shard_set(tmp_path) -> str:
    urls = prepare_demo_shards(str(tmp_path / "set"), frames=5, size=(32, 32), window=5, max_samples_per_shard=3)
    return str(Path(urls[0]).parent)


def _manifest(folder: str) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())


def _write_manifest(folder: str, manifest: dict) -> None:
    (Path(folder) / "manifest.json").write_text(json.dumps(manifest))


def test_shard_set_serves_clips_and_its_content_digest(shard_set):
    from seeclear_bench.report.provenance import manifest_hash

    opened = ShardSet.open(shard_set, dataset="demo")
    assert len(opened.clips) == 5 and opened.digest == manifest_hash(_manifest(shard_set))
    indices, lr = opened.clip(opened.clips[0]).frames("lr")
    _, hr = opened.clip(opened.clips[0]).frames("hr")
    assert indices == [0, 1, 2, 3, 4] and lr.shape == (5, 8, 8, 3) and hr.shape == (5, 32, 32, 3)


def test_a_shard_whose_bytes_differ_from_its_manifest_is_one_line_with_both_digests(shard_set):
    opened = ShardSet.open(shard_set, dataset="demo")
    entry = opened.entries[0]
    tar = Path(shard_set) / entry.name
    with tarfile.open(tar) as archive:  # a byte of the padding after a member's data: no frame check covers it
        member = next(m for m in archive.getmembers() if m.size % 512)
    data = bytearray(tar.read_bytes())
    data[member.offset_data + member.size] = 0xFF
    tar.write_bytes(bytes(data))
    found = hashlib.sha256(bytes(data)).hexdigest()
    clip = next(c for c in opened.clips if entry.name in opened.clip(c).shard_urls[0])
    with pytest.raises(SeeClearError) as err:
        opened.clip(clip).frames("hr")
    message = str(err.value)
    assert "\n" not in message
    assert f"{entry.name} fails its SHA-256 check: expected {entry.sha256}, found {found}" in message
    # the training reader checks the same digest while it streams
    stream = make_webdataset(opened.shard_urls(), expect=opened.expected(), split_by_node=False)
    with pytest.raises(SeeClearError, match=f"fails its SHA-256 check: expected {entry.sha256}, found {found}"):
        list(stream)


def test_a_shard_padded_after_its_end_still_fails_its_digest(shard_set):
    opened = ShardSet.open(shard_set, dataset="demo")
    entry = opened.entries[0]
    with open(Path(shard_set) / entry.name, "ab") as f:
        f.write(b"\0" * 1024)  # tarfile would read this as more end-of-archive blocks
    clip = next(c for c in opened.clips if opened.clip(c).shard_urls[0].endswith(entry.name))
    with pytest.raises(SeeClearError, match=rf"{entry.name} fails its SHA-256 check: expected {entry.sha256}"):
        opened.clip(clip).frames("lr")


def test_manifest_shard_names_outside_the_set_are_refused(shard_set, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    manifest = _manifest(shard_set)
    first = manifest["shards"][0]["name"]
    (outside / "x.tar").write_bytes((Path(shard_set) / first).read_bytes())
    manifest["shards"][0]["name"] = "../outside/x.tar"
    _write_manifest(shard_set, manifest)
    with pytest.raises(SeeClearError, match=r"shard name '../outside/x.tar' is not a plain shard name"):
        ShardSet.open(shard_set)


def test_manifest_clip_names_that_are_not_plain_are_refused(shard_set):
    manifest = _manifest(shard_set)
    index = manifest["extra"].setdefault("clip_shards", {})
    index[HOSTILE] = [manifest["shards"][0]["name"]]
    _write_manifest(shard_set, manifest)
    with pytest.raises(SeeClearError, match=r"clip name in .*manifest.json '\.\./\.\./\.\./\.\./x' is not a plain"):
        ShardSet.open(shard_set)


def hostile_shard_set(folder: Path) -> Path:
    """A shard set whose one sample's meta.json names the clip ``../../../../x`` and whose manifest (without a clip
    index) records the tar's true digest: only the name check can stop it."""
    rng = np.random.default_rng(0)
    sample = Sample.create(dataset="evil", clip_id="fine", frame_indices=[0], lr=rng.integers(0, 255, (1, 4, 4, 3),
                           dtype=np.uint8), hr=rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8), meta={"scale": 4})
    members = encode_sample(sample)
    meta = json.loads(members[schema.META_MEMBER])
    meta[schema.META_CLIP] = HOSTILE
    members[schema.META_MEMBER] = json.dumps(meta).encode()
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in sorted(members.items()):
            info = tarfile.TarInfo(schema.tar_name(sample.key, member))
            info.size = len(data)
            tar.addfile(info, pyio.BytesIO(data))
    folder.mkdir(parents=True)
    name = "evil-00000-00.tar"
    (folder / name).write_bytes(buf.getvalue())
    entry = {"name": name, "n_samples": 1, "n_bytes": len(buf.getvalue()),
             "sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "keys": [sample.key]}
    (folder / "manifest.json").write_text(json.dumps({"format": schema.MANIFEST_FORMAT, "shards": [entry],
                                                      "extra": {"dataset": "evil"}}))
    return folder


def test_infer_on_a_shard_set_naming_a_clip_outside_out_is_one_line_and_writes_nothing(tmp_path):
    evil = hostile_shard_set(tmp_path / "deep" / "a" / "b" / "evil")
    out = tmp_path / "deep" / "a" / "b" / "out"
    line = one_line(cli("infer", str(evil), "--checkpoint", "builtin:seeclear-tiny-demo", "--out", str(out),
                        "--no-progress"))
    assert f"clip name of sample evil__fine__000000 {HOSTILE!r} is not a plain name" in line
    assert not list(tmp_path.rglob("*.png")) and not (tmp_path / "x").exists() and not (tmp_path / "deep" / "x").exists()


def test_evaluate_dataset_option_is_checked_before_anything_is_written(tmp_path, shard_set):
    line = one_line(cli("evaluate", shard_set, "--gt", shard_set, "--dataset", "../../X", "--out",
                        str(tmp_path / "ev"), "--no-progress"))
    assert "--dataset '../../X' is not a plain name" in line
    assert not (tmp_path.parent / "X").exists() and not list((tmp_path / "ev").rglob("*.parquet"))


# -- one writer at a time --------------------------------------------------------------------------------------------
HOLD = """
import sys, time
from seeclear_bench.layout import RunLayout
with RunLayout(sys.argv[1]).lock("holder for the test"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_command_on_a_locked_folder_fails_at_once_naming_the_holder(tmp_path, shard_set):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        line = one_line(cli("degrade", str(tmp_path / "set" / "src"), "--out", str(out)))
        assert "is in use by another seeclear-bench command" in line and f"pid {holder.pid}" in line
        assert "holder for the test" in line
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the holder died without releasing it: the next command takes the lock over (with a warning) and works
    done = cli("degrade", str(tmp_path / "set" / "src"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "taking over the lock" in done.stderr and not (out / ".lock").exists()


def test_stale_temporaries_are_swept_when_the_lock_is_taken(tmp_path):
    folder = tmp_path / "run" / "predictions" / "m" / "d" / "c"
    folder.mkdir(parents=True)
    stale = folder / ".00000001.png.tmp-0123456789ab"
    stale.write_bytes(b"half")
    keep = folder / "00000001.png"
    keep.write_bytes(b"whole")
    with RunLayout(str(tmp_path / "run")).lock("test"):
        assert not stale.exists() and keep.exists()
        with pytest.raises(SeeClearError, match="in use by another seeclear-bench command"):
            with RunLayout(str(tmp_path / "run")).lock("second"):
                pass
    assert not (tmp_path / "run" / ".lock").exists()
