"""Writes and reads over s3:// against a local S3 endpoint, through the same helpers every stage uses."""
from __future__ import annotations

import pytest

from seeclear_bench import io


def test_atomic_write_and_read_over_s3(s3_server):
    bucket = s3_server()
    url = io.join(bucket, "run", "spec.json")
    io.write_json(url, {"spec": 1})
    assert io.read_json(url) == {"spec": 1}
    assert [io.basename(u) for u in io.listdir(io.join(bucket, "run"))] == ["spec.json"]  # no temporary left behind
    io.check_writable(io.join(bucket, "other"))


def test_missing_key_over_s3(s3_server):
    bucket = s3_server()
    with pytest.raises(io.SeeClearError, match="expected a file"):
        io.read_bytes(io.join(bucket, "absent.json"))
