"""fsspec storage helpers: atomic writes, URLs of several protocols, clear errors."""
from __future__ import annotations

import os
import re

import pytest

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "a.bin"
    with pytest.raises(RuntimeError):
        with io.atomic_open(str(target)) as f:
            f.write(b"half")
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # the temporary file is gone too


def test_write_read_and_checksum_local_and_file_url(tmp_path):
    for url in (str(tmp_path / "x.bin"), f"file://{tmp_path}/y.bin"):
        io.write_bytes(url, b"hello")
        assert io.read_bytes(url) == b"hello"
        assert io.sha256_url(url) == io.sha256_bytes(b"hello")
        assert io.exists(url)


def test_memory_filesystem_round_trip():
    io.write_json("memory://seeclear-test/io/rec.json", {"a": 1})
    assert io.read_json("memory://seeclear-test/io/rec.json") == {"a": 1}
    (listed,) = io.listdir("memory://seeclear-test/io")
    assert listed.startswith("memory://") and io.basename(listed) == "rec.json"
    assert io.read_json(listed) == {"a": 1}  # a listed URL reads back as it is


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(SeeClearError, match="expected a file at .*nope"):
        io.read_bytes(str(tmp_path / "nope"))


def test_unwritable_output():
    """A folder the system refuses to create, for every user, root included (CI runs as root, where a chmod-ed
    folder would not stop it): sysfs takes no new entries (EPERM, or EROFS where /sys is mounted read-only)."""
    with pytest.raises(SeeClearError, match=r"^output '/sys/seeclear-out/\.write-probe-[0-9a-f]{8}' is not writable: "
                                            r"(Operation not permitted|Read-only file system)$"):
        io.check_writable("/sys/seeclear-out")
    assert not os.path.exists("/sys/seeclear-out")


def test_write_under_a_file_is_one_line(tmp_path):
    """A write whose folder cannot be made (a file where a parent folder should be: ENOTDIR, for root too) is one
    line naming the output, and leaves nothing behind."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    url = str(blocker / "run" / "x.json")
    with pytest.raises(SeeClearError, match=rf"^output '{re.escape(url)}' is not writable: Not a directory$"):
        io.write_json(url, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and blocker.read_text() == "x"


def test_unwritable_output_file_in_the_way(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SeeClearError, match=rf"expected a folder at {blocker} \(a parent of the output folder .*\), "
                                            "found a file"):
        io.check_writable(str(blocker / "run"))
    with pytest.raises(SeeClearError, match=rf"expected a folder at {blocker} \(the output folder\), found a file"):
        io.check_writable(str(blocker))


def test_http_is_read_only():
    with pytest.raises(SeeClearError, match="read-only"):
        io.write_bytes("https://example.invalid/x.bin", b"x")


def test_join_uses_forward_slashes():
    assert io.join("s3://bucket/a/", "b", "/c.tar") == "s3://bucket/a/b/c.tar"
