"""Symbolic links in dataset folders: followed to folders and frames, loops and cycles are one line, nothing is dropped
without a warning."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from seeclear_bench.data.frames import encode_png
from seeclear_bench.data.sources import ClipRef, discover_clips, list_frames, read_clip
from seeclear_bench.errors import SeeClearError


def _clip(folder: Path, n: int = 2, value: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:08d}.png").write_bytes(encode_png(np.full((4, 6, 3), value + i, dtype=np.uint8)))
    return folder


def _one_line(exc: pytest.ExceptionInfo[SeeClearError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_clip_folder_that_is_a_link_is_discovered_and_read(tmp_path):
    real = _clip(tmp_path / "elsewhere" / "real", value=50)
    root = tmp_path / "ds"
    _clip(root / "a")
    (root / "b").symlink_to(real, target_is_directory=True)
    refs = discover_clips(str(root), layout="clips")
    assert [r.clip_id for r in refs] == ["a", "b"]
    clip = read_clip(refs[1])
    assert clip.shape == (2, 4, 6, 3) and clip[1, 0, 0, 0] == 51


def test_linked_reds_clips_are_detected(tmp_path):
    """A REDS folder whose clip folders are links (a common way to build REDS4 from the full set) keeps its layout."""
    full = tmp_path / "full"
    root = tmp_path / "reds4"
    root.mkdir()
    for name in ("000", "011"):
        (root / name).symlink_to(_clip(full / name), target_is_directory=True)
    refs = discover_clips(str(root))
    assert [r.clip_id for r in refs] == ["000", "011"] and refs[0].dataset == "REDS"


def test_frame_that_is_a_link_counts(tmp_path):
    clip = _clip(tmp_path / "c", n=1)
    (clip / "00000001.png").symlink_to(clip / "00000000.png")
    assert [Path(u).name for u in list_frames(str(clip))] == ["00000000.png", "00000001.png"]
    assert read_clip(ClipRef("d", "c", str(clip), "frames")).shape[0] == 2


def test_link_loop_as_clip_folder_is_one_line(tmp_path):
    root = tmp_path / "ds"
    _clip(root / "a")
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(SeeClearError, match=r"loop.* is a symbolic link loop") as exc:
        discover_clips(str(root), layout="clips")
    assert str(root / "loop") in _one_line(exc)


def test_link_to_an_ancestor_is_a_cycle(tmp_path):
    root = tmp_path / "ds"
    _clip(root / "a")
    (root / "up").symlink_to(root, target_is_directory=True)
    with pytest.raises(SeeClearError, match=r"is a link cycle") as exc:
        discover_clips(str(root), layout="clips")
    assert str(root / "up") in _one_line(exc)


def test_frame_link_loop_is_one_line_naming_the_frame(tmp_path):
    clip = _clip(tmp_path / "c")
    (clip / "00000002.png").symlink_to(clip / "00000002.png")
    with pytest.raises(SeeClearError, match=r"00000002\.png.*symbolic link loop") as exc:
        read_clip(ClipRef("d", "c", str(clip), "frames"))
    assert _one_line(exc).startswith("clip 'c' of 'd': ")
    frame_urls = tuple(str(clip / f"{i:08d}.png") for i in range(3))  # listed by hand: the read itself fails
    with pytest.raises(SeeClearError, match=r"'.*00000002\.png' is a symbolic link loop") as exc:
        read_clip(ClipRef("d", "c", str(clip), "frames", frame_urls))
    _one_line(exc)


def test_broken_link_is_skipped_with_a_warning(tmp_path, caplog):
    root = tmp_path / "ds"
    _clip(root / "a")
    (root / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="seeclear_bench.data.sources"):
        refs = discover_clips(str(root), layout="clips")
    assert [r.clip_id for r in refs] == ["a"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(root / "gone") in w and "broken symbolic link" in w for w in warnings), warnings


def test_broken_frame_link_is_an_error_not_a_gap(tmp_path):
    clip = _clip(tmp_path / "c")
    (clip / "00000005.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(SeeClearError, match=r"frame '.*00000005\.png' cannot be read: it is a broken symbolic link"):
        list_frames(str(clip))


def test_special_file_is_skipped_with_a_warning(tmp_path, caplog):
    root = tmp_path / "ds"
    _clip(root / "a")
    os.mkfifo(root / "pipe")
    with caplog.at_level(logging.WARNING, logger="seeclear_bench.data.sources"):
        refs = discover_clips(str(root), layout="clips")
    assert [r.clip_id for r in refs] == ["a"]
    assert any("pipe" in r.getMessage() and "neither a file nor a folder" in r.getMessage() for r in caplog.records)


def test_dataset_root_that_is_a_loop_or_broken_link_says_so(tmp_path):
    (tmp_path / "root").symlink_to(tmp_path / "root")
    with pytest.raises(SeeClearError, match=r"root', found a symbolic link loop; check the path"):
        discover_clips(str(tmp_path / "root"))
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SeeClearError, match=r"gone', found a broken symbolic link; check the path"):
        discover_clips(str(tmp_path / "gone"))
