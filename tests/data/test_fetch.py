"""Dataset fetching end to end against a real HTTP server on 127.0.0.1 (written here: ranges, cut connections, a
server without range support), serving archives built in each dataset's published layout; then the sources read
what landed."""
from __future__ import annotations

import hashlib
import io as pyio
import json
import re
import socket
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seeclear_bench.data import fetch as fetching
from seeclear_bench.data.sources import discover_clips, read_clip
from seeclear_bench.download import download, part_path
from seeclear_bench.errors import SeeClearError


# ---- a file server with range support, written for the test ----------------------------------------------------
@dataclass
class Served:
    """What the loopback server serves and what it was asked."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cuts: dict[str, int] = field(default_factory=dict)  # path -> how many answers still stop half-way
    no_range: set[str] = field(default_factory=set)  # paths answered 200 whatever Range says
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served: Served

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        served = self.served
        asked = self.headers.get("Range")
        served.log.append((self.path, asked))
        body = served.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if match and self.path not in served.no_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Content-Type", "text/html" if chunk.startswith(b"<!DOCTYPE") else "application/octet-stream")
        self.end_headers()
        if served.cuts.get(self.path, 0) > 0:  # the connection dies half-way through the body
            served.cuts[self.path] -= 1
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Served]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    served = Served(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    _Handler.served = served
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- archives in the published layouts ---------------------------------------------------------------------------
def _png(seed: int, size: int = 8) -> bytes:
    frame = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = pyio.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = pyio.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2019, 6, 1, 0, 0, 0)), data)  # the same bytes every time
    return buf.getvalue()


def _zip_with_link(name: str, target: str) -> bytes:
    buf = pyio.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("GT/calendar/0000.png", _png(0))
        info = zipfile.ZipInfo(name)
        info.create_system = 3  # Unix: the high bits of external_attr hold the file type
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return buf.getvalue()


def _tar(members: dict[str, bytes], links: dict[str, tuple[str, bytes]] | None = None) -> bytes:
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, pyio.BytesIO(data))
        for name, (target, kind) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buf.getvalue()


def _reds(part: str, clips: tuple[str, ...], frames: int = 2) -> dict[str, bytes]:
    """train_sharp.zip holds train/train_sharp/000/00000000.png; *_bicubic zips add X4/."""
    top = part.split("_")[0]
    sub = "X4/" if part.endswith("bicubic") else ""
    size = 4 if sub else 8
    return {f"{top}/{part}/{sub}{clip}/{i:08d}.png": _png(int(clip) * 100 + i, size)
            for clip in clips for i in range(frames)}


VID4 = ("calendar", "city", "foliage", "walk")


def _vid4() -> dict[str, bytes]:
    """Vid4.zip as BasicSR links it: GT/, BIx4/, BDx4/ at the top."""
    return {f"{folder}/{clip}/{i:04d}.png": _png(len(folder) * 100 + len(clip) * 10 + i, 8 if folder == "GT" else 4)
            for folder in ("GT", "BIx4", "BDx4") for clip in VID4 for i in range(2)}


def _vimeo_test() -> dict[str, bytes]:
    """vimeo_super_resolution_test.zip: target/, low_resolution/, input/ of 00001/0266 ... plus sep_testlist.txt."""
    septuplets = ("00001/0266", "00002/0010")
    members = {"vimeo_super_resolution_test/sep_testlist.txt": "\n".join(septuplets).encode() + b"\n"}
    for folder, size in (("target", 8), ("low_resolution", 4), ("input", 8)):
        for s, sep in enumerate(septuplets):
            for i in range(1, 8):
                members[f"vimeo_super_resolution_test/{folder}/{sep}/im{i}.png"] = _png(s * 10 + i, size)
    return members


def _serve(server: Served, path: str, members: dict[str, bytes], kind: str = "zip") -> bytes:
    data = _zip(members) if kind == "zip" else _tar(members)
    server.files[path] = data
    return data


# ---- the tests -----------------------------------------------------------------------------------------------------
def test_reds4_resumes_a_cut_download_and_lands_where_the_sources_read(server: Served, tmp_path: Path) -> None:
    clips = ("000", "001", "011", "015", "020")
    sharp = _serve(server, "/REDS/train_sharp.zip", _reds("train_sharp", clips))
    _serve(server, "/REDS/train_sharp_bicubic.zip", _reds("train_sharp_bicubic", clips))
    server.cuts["/REDS/train_sharp.zip"] = 1
    out = tmp_path / "datasets"

    done = fetching.fetch("REDS4", str(out), mirror=server.url + "/REDS")

    assert [(d.part, d.status) for d in done] == [("train_sharp", "fetched"), ("train_sharp_bicubic", "fetched")]
    asked = [rng for path, rng in server.log if path == "/REDS/train_sharp.zip"]
    assert asked == [None, f"bytes={len(sharp) // 2}-"]  # the second request continued where the first broke off
    refs = discover_clips(str(out / "REDS"), split="REDS4")
    assert [r.clip_id for r in refs] == ["000", "011", "015", "020"]
    expected = np.asarray(Image.open(pyio.BytesIO(_png(1100 + 1))))
    np.testing.assert_array_equal(read_clip(refs[1])[1], expected)  # clip 011, frame 1, bit for bit
    lr = discover_clips(str(out / "REDS" / "train_sharp_bicubic" / "X4"), split="REDS4")
    assert read_clip(lr[0]).shape == (2, 4, 4, 3)
    # the first verified download's digest is recorded beside the data; the archives are gone, no staging is left
    registry = json.loads((out / fetching.REGISTRY_NAME).read_text())
    assert registry["train_sharp.zip"]["sha256"] == hashlib.sha256(sharp).hexdigest()
    assert list((out / fetching.DOWNLOADS_DIR).iterdir()) == []
    assert sorted(p.name for p in (out / "REDS").iterdir()) == ["train_sharp", "train_sharp_bicubic"]

    # a re-run finds the completion records and asks the server nothing
    requests = len(server.log)
    again = fetching.fetch("REDS4", str(out), mirror=server.url + "/REDS")
    assert [d.status for d in again] == ["present", "present"] and len(server.log) == requests
    assert [d.status for d in fetching.fetch("REDS4", str(out), verify=True)] == ["verified", "verified"]
    (out / "REDS" / "train_sharp" / "020" / "00000001.png").unlink()
    with pytest.raises(SeeClearError, match="changed since it was fetched") as info:
        fetching.fetch("REDS", str(out), parts=("train_sharp",), verify=True)
    assert "\n" not in str(info.value)


def test_redsofficial4_reads_the_val_clips_renumbered(server: Served, tmp_path: Path) -> None:
    _serve(server, "/val_sharp.zip", _reds("val_sharp", ("000", "001", "006", "017", "029"), frames=1))
    fetching.fetch("REDS", str(tmp_path), parts=("val_sharp",), mirror=server.url)
    assert [r.clip_id for r in discover_clips(str(tmp_path / "REDS"), split="REDSofficial4")] == \
        ["240", "241", "246", "257"]


def test_download_resumes_a_partial_file_left_by_an_earlier_run(server: Served, tmp_path: Path) -> None:
    body = bytes(range(256)) * 400
    server.files["/blob.bin"] = body
    server.cuts["/blob.bin"] = 1
    dest = tmp_path / "blob.bin"
    with pytest.raises(SeeClearError, match=r"cannot download blob from http://127\.0\.0\.1:\d+/blob\.bin") as info:
        download(server.url + "/blob.bin", dest, what="blob", attempts=1)
    assert "next run resumes" in str(info.value) and "\n" not in str(info.value)
    assert part_path(dest).stat().st_size == len(body) // 2 and not dest.exists()

    got = download(server.url + "/blob.bin", dest, what="blob", sha256=hashlib.sha256(body).hexdigest())
    assert got.resumed and dest.read_bytes() == body and not part_path(dest).exists()
    assert server.log[-1] == ("/blob.bin", f"bytes={len(body) // 2}-")


def test_a_server_without_range_support_restarts_from_byte_zero(server: Served, tmp_path: Path) -> None:
    body = b"0123456789" * 5000
    server.files["/blob.bin"] = body
    server.no_range.add("/blob.bin")
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(b"stale bytes of an earlier try")
    got = download(server.url + "/blob.bin", dest, what="blob")
    assert dest.read_bytes() == body and not got.resumed
    assert server.log[-1] == ("/blob.bin", "bytes=29-")  # asked for a range, got the whole file, started over


def test_vimeo_test_set_through_a_cut_connection_to_a_server_without_ranges(server: Served, tmp_path: Path) -> None:
    _serve(server, "/vimeo_super_resolution_test.zip", _vimeo_test())
    server.cuts["/vimeo_super_resolution_test.zip"] = 1
    server.no_range.add("/vimeo_super_resolution_test.zip")
    (done,) = fetching.fetch("Vimeo-90K-T", str(tmp_path), mirror=server.url)
    assert done.status == "fetched" and done.part == "sr_test"
    gt = discover_clips(str(tmp_path / "Vimeo-90K-T"), split="Vimeo-90K-T")
    assert [r.clip_id for r in gt] == ["00001_0266", "00002_0010"]
    assert read_clip(gt[0]).shape == (7, 8, 8, 3)
    lr = discover_clips(str(tmp_path / "Vimeo-90K-T" / "low_resolution"), split="Vimeo-90K-T")
    assert read_clip(lr[1]).shape == (7, 4, 4, 3)
    assert not (tmp_path / "Vimeo-90K-T" / "input").exists()


def test_vid4_and_a_udm10_tar(server: Served, tmp_path: Path) -> None:
    _serve(server, "/Vid4.zip", _vid4())
    _serve(server, "/udm10_paddle.tar", {f"udm10/{f}/{c}/{i:03d}.png": _png(i) for f in ("GT", "BDx4")
                                         for c in ("archpeople", "auditorium") for i in range(2)}, kind="tar")
    fetching.fetch("Vid4", str(tmp_path), mirror=server.url)
    fetching.fetch("UDM10", str(tmp_path), mirror=server.url)
    assert [r.clip_id for r in discover_clips(str(tmp_path / "Vid4"), split="Vid4")] == list(VID4)
    assert read_clip(discover_clips(str(tmp_path / "Vid4" / "BIx4"), split="Vid4")[0]).shape == (2, 4, 4, 3)
    assert [r.clip_id for r in discover_clips(str(tmp_path / "UDM10"))] == ["archpeople", "auditorium"]


def test_the_first_downloads_checksum_is_recorded_and_a_different_archive_refused(server: Served, tmp_path: Path) -> None:
    first = _serve(server, "/Vid4.zip", _vid4())
    fetching.fetch("Vid4", str(tmp_path), mirror=server.url)
    record = json.loads((tmp_path / fetching.REGISTRY_NAME).read_text())["Vid4.zip"]
    assert record["sha256"] == hashlib.sha256(first).hexdigest() and record["size"] == len(first)
    assert record["published_sha256"] is None

    members = _vid4()
    members["GT/calendar/0000.png"] = _png(999)
    _serve(server, "/Vid4.zip", members)  # the host now serves other bytes
    with pytest.raises(SeeClearError, match=f"expected {record['size']}|expected {record['sha256']}") as info:
        fetching.fetch("Vid4", str(tmp_path), mirror=server.url, force=True)
    assert "refusing" in str(info.value) and "\n" not in str(info.value)
    assert list((tmp_path / fetching.DOWNLOADS_DIR).iterdir()) == []  # nothing partial kept
    fetching.fetch("Vid4", str(tmp_path), verify=True)  # the installed copy is untouched
    _serve(server, "/Vid4.zip", _vid4())
    assert fetching.fetch("Vid4", str(tmp_path), mirror=server.url, force=True)[0].status == "fetched"


def test_a_corrupt_first_download_is_refused_and_nothing_is_installed(server: Served, tmp_path: Path) -> None:
    data = bytearray(_zip(_vid4()))
    at = data.index(b"IDAT") + 8  # inside a member's bytes: its CRC-32 no longer matches
    data[at:at + 4] = b"\x00\x01\x02\x03"
    server.files["/Vid4.zip"] = bytes(data)
    with pytest.raises(SeeClearError, match=r"is corrupt \(BadZipFile") as info:
        fetching.fetch("Vid4", str(tmp_path), mirror=server.url)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fetching.DOWNLOADS_DIR]  # no Vid4/, no staging, no record
    assert list((tmp_path / fetching.DOWNLOADS_DIR).iterdir()) == []


def test_an_html_page_instead_of_the_archive_is_named(server: Served, tmp_path: Path) -> None:
    server.files["/Vid4.zip"] = b"<!DOCTYPE html><html><body>Virus scan warning</body></html>"
    with pytest.raises(SeeClearError, match="HTML page.*--archive"):
        fetching.fetch("Vid4", str(tmp_path), mirror=server.url)
    assert not (tmp_path / "Vid4").exists()


def test_a_zip_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.zip"
    archive.write_bytes(_zip_with_link("GT/calendar/0001.png", "../../../../etc/passwd"))
    with pytest.raises(SeeClearError, match="symbolic link .* pointing outside the target folder; refusing"):
        fetching.fetch("Vid4", str(tmp_path / "out"), archive=str(archive))
    assert not (tmp_path / "out" / "Vid4").exists()


@pytest.mark.parametrize("kind, members, links, needle", [
    ("zip", {"GT/calendar/0000.png": b"x", "../escaped.png": b"x"}, None, "climbs out"),
    ("zip", {"/tmp/absolute.png": b"x"}, None, "absolute path"),
    ("tar", {"GT/calendar/0000.png": b"x"}, {"GT/calendar/link.png": ("/etc/passwd", tarfile.SYMTYPE)},
     "symbolic link"),
    ("tar", {"GT/calendar/0000.png": b"x"}, {"GT/evil": ("../../outside", tarfile.SYMTYPE)}, "pointing outside"),
    ("tar", {"GT/calendar/0000.png": b"x"}, {"GT/hard": ("../outside", tarfile.LNKTYPE)}, "hard link"),
])
def test_members_escaping_the_folder_refuse_the_archive(tmp_path: Path, kind: str, members: dict[str, bytes],
                                                       links: dict[str, tuple[str, bytes]] | None, needle: str) -> None:
    archive = tmp_path / f"evil.{kind}"
    archive.write_bytes(_zip(members) if kind == "zip" else _tar(members, links))
    out = tmp_path / "out"
    with pytest.raises(SeeClearError, match=needle) as info:
        fetching.fetch("Vid4", str(out), archive=str(archive))
    assert "refusing" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "outside").exists()
    assert not (out / "Vid4").exists() and [p.name for p in out.iterdir()] == []  # no staging left
    assert archive.exists()  # the user's own file is never removed


def test_an_unreachable_host_names_the_url_and_a_local_archive_works_offline(tmp_path: Path) -> None:
    mirror = f"http://127.0.0.1:{_closed_port()}/mirror"
    with pytest.raises(SeeClearError) as info:
        fetching.fetch("Vid4", str(tmp_path), mirror=mirror)
    message = str(info.value)
    assert f"{mirror}/Vid4.zip" in message and "--archive PATH" in message and "\n" not in message
    archive = tmp_path / "Vid4.zip"
    archive.write_bytes(_zip(_vid4()))
    (done,) = fetching.fetch("Vid4", str(tmp_path / "out"), archive=str(archive))
    assert done.status == "fetched" and archive.exists()
    assert len(discover_clips(str(tmp_path / "out" / "Vid4"), split="Vid4")) == 4


def test_a_folder_not_made_by_fetch_is_kept_unless_forced(tmp_path: Path) -> None:
    archive = tmp_path / "Vid4.zip"
    archive.write_bytes(_zip(_vid4()))
    own = tmp_path / "out" / "Vid4"
    own.mkdir(parents=True)
    (own / "mine.txt").write_text("hand-made")
    with pytest.raises(SeeClearError, match="holds no completion record"):
        fetching.fetch("Vid4", str(tmp_path / "out"), archive=str(archive))
    assert (own / "mine.txt").exists()
    fetching.fetch("Vid4", str(tmp_path / "out"), archive=str(archive), force=True)
    assert not (own / "mine.txt").exists() and (own / "GT" / "calendar").is_dir()


def test_names_parts_and_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SeeClearError, match="unknown dataset 'vid5'.*did you mean 'Vid4'"):
        fetching.fetch("vid5", str(tmp_path))
    with pytest.raises(SeeClearError, match="no part 'train_shrp'.*did you mean 'train_sharp'"):
        fetching.fetch("REDS", str(tmp_path), parts=("train_shrp",))
    with pytest.raises(SeeClearError, match="--url gives one archive.*--part"):
        fetching.fetch("REDS4", str(tmp_path), url="http://127.0.0.1:1/x.zip")
    with pytest.raises(SeeClearError, match="no stable public location.*--archive PATH"):
        fetching.fetch("SPMCS", str(tmp_path))
    with pytest.raises(SeeClearError, match="writes to a local folder"):
        fetching.fetch("Vid4", "memory://somewhere")
