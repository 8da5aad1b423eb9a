"""`seeclear-bench data list|fetch` as a user runs them: the catalogue, fetching from a local archive (offline), and
one-line errors with exit status 1 (unknown name, unreachable host, corrupt or different archive)."""
from __future__ import annotations

import io as pyio
import json
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

EXE = [sys.executable, "-m", "seeclear_bench.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=120)


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def _vid4_zip(path: Path, seed: int = 0) -> Path:
    """A Vid4.zip in the layout BasicSR links: GT/<clip>/*.png beside BIx4/ and BDx4/."""
    with zipfile.ZipFile(path, "w") as zf:
        for folder, size in (("GT", 8), ("BIx4", 2), ("BDx4", 2)):
            for k, clip in enumerate(("calendar", "city", "foliage", "walk")):
                frame = np.random.default_rng(seed * 100 + k).integers(0, 256, (size, size, 3), dtype=np.uint8)
                buf = pyio.BytesIO()
                Image.fromarray(frame).save(buf, format="PNG")
                zf.writestr(f"{folder}/{clip}/0000.png", buf.getvalue())
    return path


def test_data_list_shows_every_dataset_with_its_location_and_licence() -> None:
    out = cli("data", "list")
    assert out.returncode == 0, out.stderr
    for needle in ("REDS", "train_sharp_bicubic", "val_sharp", "REDS4", "REDSofficial4", "Vid4", "BIx4",
                   "Vimeo-90K-T", "sep_testlist.txt", "UDM10", "SPMCS", "CC BY 4.0",
                   "http://data.cv.snu.ac.kr:8008/webdav/dataset/REDS/train_sharp.zip",
                   "http://data.csail.mit.edu/tofu/dataset/vimeo_septuplet.zip", "mirror"):
        assert needle in out.stdout, needle
    listed = json.loads(cli("data", "list", "--json").stdout)
    parts = [p for d in listed["datasets"] for p in d["parts"]]
    assert {"REDS", "Vid4", "Vimeo-90K", "UDM10", "SPMCS"} == {d["name"] for d in listed["datasets"]}
    assert all({"urls", "sha256", "approx_size", "format", "dest"} <= set(p) for p in parts)
    assert listed["splits"]["REDS4"] == {"dataset": "REDS", "parts": ["train_sharp", "train_sharp_bicubic"]}


def test_fetch_from_a_local_archive_then_a_different_archive_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "datasets"
    archive = _vid4_zip(tmp_path / "Vid4.zip")
    first = cli("data", "fetch", "Vid4", "--out", str(out), "--archive", str(archive))
    assert first.returncode == 0, first.stderr
    assert "Vid4 all: fetched, 12 files" in first.stdout and (out / "Vid4" / "GT" / "walk" / "0000.png").is_file()
    again = cli("data", "fetch", "vid4", "--out", str(out), "--verify")
    assert again.returncode == 0 and "Vid4 all: verified" in again.stdout

    (tmp_path / "other").mkdir()
    other = _vid4_zip(tmp_path / "other" / "Vid4.zip", seed=1)
    line = _one_line_error(cli("data", "fetch", "Vid4", "--out", str(out), "--archive", str(other), "--force"))
    assert "has sha256" in line and "refusing a corrupt or different file" in line


def test_a_corrupt_archive_is_one_line_and_installs_nothing(tmp_path: Path) -> None:
    data = bytearray(_vid4_zip(tmp_path / "Vid4.zip").read_bytes())
    at = data.index(b"IDAT") + 8
    data[at:at + 4] = b"\xff\xfe\xfd\xfc"
    (tmp_path / "Vid4.zip").write_bytes(bytes(data))
    line = _one_line_error(cli("data", "fetch", "Vid4", "--out", str(tmp_path / "out"), "--archive",
                               str(tmp_path / "Vid4.zip")))
    assert "is corrupt" in line and "Bad CRC-32" in line
    assert not (tmp_path / "out" / "Vid4").exists()


def test_unknown_names_and_unreachable_hosts_are_one_line(tmp_path: Path) -> None:
    line = _one_line_error(cli("data", "fetch", "REDS5", "--out", str(tmp_path)))
    assert "unknown dataset 'REDS5'" in line and "did you mean" in line and "data list" in line
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = _one_line_error(cli("data", "fetch", "Vid4", "--out", str(tmp_path), "--mirror", f"http://127.0.0.1:{port}"))
    assert f"http://127.0.0.1:{port}/Vid4.zip" in line and "--archive PATH" in line
