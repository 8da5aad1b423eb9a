"""Spec files that are not what they should be: bytes that are not UTF-8 are one line naming the file and the byte."""
from __future__ import annotations

import codecs

import pytest

from seeclear_bench.config import RunConfig
from seeclear_bench.errors import SeeClearError

SPEC = 'name = "t"\n[[data.sources]]\nname = "clips"\nurl = "/tmp/nowhere"\n'


def test_spec_file_that_is_not_utf8_names_file_and_offset(tmp_path):
    data = SPEC.encode("utf-8").replace(b'"t"', b'"t\xff"')  # a Latin-1 byte inside the run name
    path = tmp_path / "x.toml"
    path.write_bytes(data)
    with pytest.raises(SeeClearError) as info:
        RunConfig.from_url(str(path))
    message = str(info.value)
    offset = data.index(b"\xff")
    assert message == (f"spec {path} is not UTF-8 text: invalid byte 0xff at byte offset {offset} (line 1); "
                       "save it as UTF-8")
    assert not isinstance(info.value, UnicodeDecodeError)


def test_utf16_spec_and_later_lines(tmp_path):
    path = tmp_path / "wide.toml"
    path.write_bytes(SPEC.encode("utf-16"))  # starts with the byte-order mark ff fe
    with pytest.raises(SeeClearError, match=r"wide\.toml is not UTF-8 text: invalid byte 0xff at byte offset 0 \(line 1\)"):
        RunConfig.from_url(str(path))
    late = SPEC.encode("utf-8") + b"# caf\xe9\n"
    with pytest.raises(SeeClearError, match=rf"invalid byte 0xe9 at byte offset {len(late) - 2} \(line 5\)"):
        RunConfig.from_toml(late, source="late.toml")


def test_utf8_with_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(codecs.BOM_UTF8 + SPEC.encode("utf-8"))
    assert RunConfig.from_url(str(path)).name == "t"
    bad = codecs.BOM_UTF8 + b"name = \"\xc3\x28\"\n"  # offsets count the mark's three bytes
    with pytest.raises(SeeClearError, match=r"invalid byte 0xc3 at byte offset 11 \(line 1\)"):
        RunConfig.from_toml(bad, source="bom.toml")
