"""Clip discovery (every layout and named split) and clip reading, on local, file://, memory:// and http:// URLs."""
from __future__ import annotations

import functools
import http.server
import logging
import threading
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest

from seeclear_bench.data.frames import encode_png
from seeclear_bench.data.sources import (
    SPLITS,
    ClipRef,
    clip_length,
    discover_clips,
    natural_key,
    read_clip,
)
from seeclear_bench.errors import SeeClearError

H, W = 8, 12


def _frame(value: int, h: int = H, w: int = W) -> np.ndarray:
    """A frame whose pixels encode ``value`` (so frame order is checkable) plus a little texture."""
    frame = np.full((h, w, 3), value % 256, dtype=np.uint8)
    frame[0, :, 1] = np.arange(w, dtype=np.uint8)
    return frame


def _clip(folder: Path, n: int = 3, *, base: int = 0, names: list[str] | None = None, size=(H, W)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names or [f"{i:08d}.png" for i in range(n)]):
        (folder / name).write_bytes(encode_png(_frame(base + i, *size)))
    return folder


def _ids(refs: list[ClipRef]) -> list[str]:
    return [r.clip_id for r in refs]


@pytest.fixture
def memory_root():
    root = f"/seeclear_test_{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}"
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


# ---- splits and ordering ---------------------------------------------------------------------------------------------
def test_split_table_matches_conventions():
    assert SPLITS["REDS4"].clips == ("000", "011", "015", "020")
    assert SPLITS["REDSofficial4"].clips == ("240", "241", "246", "257")
    assert SPLITS["Vid4"].clips == ("calendar", "city", "foliage", "walk")
    assert "sep_testlist.txt" in SPLITS["Vimeo-90K-T"].list_files


def test_natural_sort_orders_numbers_by_value():
    names = ["im10.png", "im2.png", "im1.png", "frame_100.png", "frame_9.png"]
    assert sorted(names, key=natural_key) == ["frame_9.png", "frame_100.png", "im1.png", "im2.png", "im10.png"]


def test_frames_are_read_in_natural_order(tmp_path):
    _clip(tmp_path / "clips" / "a", names=["1.png", "10.png", "2.png"])  # values 0, 1, 2 in that write order
    (ref,) = discover_clips(str(tmp_path / "clips"))
    assert [Path(u).name for u in ref.frame_urls] == ["1.png", "2.png", "10.png"]
    assert read_clip(ref)[:, 4, 4, 0].tolist() == [0, 2, 1]


# ---- layouts ---------------------------------------------------------------------------------------------------------
def test_reds_direct_folders_auto_detected_and_split(tmp_path, caplog):
    for clip in ["000", "001", "011", "015", "020"]:
        _clip(tmp_path / clip, base=int(clip))
    with caplog.at_level(logging.INFO, logger="seeclear_bench.data.sources"):
        refs = discover_clips(str(tmp_path), split="REDS4")
    assert "detected layout 'reds'" in caplog.text
    assert _ids(refs) == ["000", "011", "015", "020"]
    assert {r.dataset for r in refs} == {"REDS4"} and {r.kind for r in refs} == {"frames"}
    assert read_clip(refs[1])[:, 4, 4, 0].tolist() == [11, 12, 13]
    assert _ids(discover_clips(str(tmp_path), layout="reds")) == ["000", "001", "011", "015", "020"]
    assert discover_clips(str(tmp_path), layout="reds")[0].dataset == "REDS"


def test_reds_gt_folder_is_used(tmp_path):
    for clip in ["000", "011", "015", "020"]:
        _clip(tmp_path / "GT" / clip)
        _clip(tmp_path / "sharp_bicubic" / clip, size=(2, 3))
    refs = discover_clips(str(tmp_path), split="REDS4")
    assert _ids(refs) == ["000", "011", "015", "020"]
    assert read_clip(refs[0]).shape == (3, H, W, 3)


@pytest.mark.parametrize(("layout", "dataset"), [("auto", "ds"), ("clips", "ds"), ("vid4", "Vid4")])
def test_gt_folder_alone_is_the_root(tmp_path, layout, dataset):
    _clip(tmp_path / "ds" / "GT" / "clip_a")
    _clip(tmp_path / "ds" / "GT" / "clip_b", base=7)
    refs = discover_clips(str(tmp_path / "ds"), layout=layout)
    assert _ids(refs) == ["clip_a", "clip_b"] and refs[0].dataset == dataset
    assert read_clip(refs[1])[0, 4, 4, 0] == 7


def test_reds_val_sharp_is_renumbered_like_basicsr_regroup(tmp_path):
    for clip in ["000", "011"]:
        _clip(tmp_path / "train_sharp" / clip)
    for val_clip in ["000", "001", "006", "017"]:  # 240, 241, 246, 257 after regrouping
        _clip(tmp_path / "val_sharp" / val_clip, base=100 + int(val_clip))
    assert _ids(discover_clips(str(tmp_path))) == ["000", "011", "240", "241", "246", "257"]
    refs = discover_clips(str(tmp_path), split="REDSofficial4")
    assert _ids(refs) == ["240", "241", "246", "257"]
    assert refs[2].url.endswith("val_sharp/006")
    assert read_clip(refs[2])[0, 4, 4, 0] == 106


def test_reds_clip_in_train_and_val_is_an_error(tmp_path):
    _clip(tmp_path / "train_sharp" / "240")
    _clip(tmp_path / "val_sharp" / "000")
    with pytest.raises(SeeClearError, match="'240' appears in both train_sharp and val_sharp"):
        discover_clips(str(tmp_path), layout="reds")


def test_reds4_with_missing_clips_lists_them(tmp_path):
    for clip in ["000", "015", "001"]:
        _clip(tmp_path / clip)
    with pytest.raises(SeeClearError) as info:
        discover_clips(str(tmp_path), split="REDS4")
    message = str(info.value)
    assert "split 'REDS4'" in message and "missing" in message and "011, 020" in message and "\n" not in message


def test_vid4_auto_detected_with_gt_folder_and_capitalised_names(tmp_path, caplog):
    for clip in ["Calendar", "city", "foliage", "walk"]:
        _clip(tmp_path / "GT" / clip)
        _clip(tmp_path / "BIx4" / clip, size=(2, 3))
    with caplog.at_level(logging.INFO, logger="seeclear_bench.data.sources"):
        refs = discover_clips(str(tmp_path), split="Vid4")
    assert "detected layout 'vid4'" in caplog.text
    assert _ids(refs) == ["calendar", "city", "foliage", "walk"]  # the split's spelling
    assert refs[0].url.endswith("GT/Calendar") and refs[0].dataset == "Vid4"
    assert read_clip(refs[0]).shape == (3, H, W, 3)


def test_vid4_missing_clip_is_named(tmp_path):
    for clip in ["calendar", "city", "walk"]:
        _clip(tmp_path / clip)
    with pytest.raises(SeeClearError, match=r"split 'Vid4' names 1 clip\(s\) missing .*: foliage"):
        discover_clips(str(tmp_path), layout="vid4", split="Vid4")


def _vimeo(root: Path, septuplets: list[str], listed: list[str] | None) -> Path:
    for i, sep in enumerate(septuplets):
        _clip(root / "sequences" / sep, names=[f"im{k}.png" for k in range(1, 8)], base=10 * i)
    if listed is not None:
        (root / "sep_testlist.txt").write_text("".join(f"{s}\n" for s in listed) + "\n")
    return root


def test_vimeo90k_test_list(tmp_path):
    root = _vimeo(tmp_path, ["00001/0266", "00001/0268", "00002/0001"], ["00001/0266", "00002/0001"])
    refs = discover_clips(str(root), split="Vimeo-90K-T")
    assert _ids(refs) == ["00001_0266", "00002_0001"]
    assert refs[0].dataset == "Vimeo-90K-T" and len(refs[0].frame_urls) == 7
    clip = read_clip(refs[1])
    assert clip.shape == (7, H, W, 3) and clip[:, 4, 4, 0].tolist() == list(range(20, 27))
    assert _ids(discover_clips(str(root / "sep_testlist.txt"))) == ["00001_0266", "00002_0001"]
    assert _ids(discover_clips(str(root))) == ["00001_0266", "00001_0268", "00002_0001"]


def test_vimeo90k_basicsr_meta_info_format(tmp_path):
    root = _vimeo(tmp_path, ["00001/0266"], None)
    (root / "meta_info_Vimeo90K_test_GT.txt").write_text("00001/0266 7 (256,448,3)\n")
    assert _ids(discover_clips(str(root), split="Vimeo-90K-T")) == ["00001_0266"]


def test_vimeo90k_list_naming_missing_septuplets(tmp_path):
    root = _vimeo(tmp_path, ["00001/0266"], ["00001/0266", "00001/0999", "00003/0001"])
    with pytest.raises(SeeClearError, match=r"names 2 clip\(s\) missing .*: 00001_0999, 00003_0001"):
        discover_clips(str(root), split="Vimeo-90K-T")


def test_vimeo90k_split_without_list_file(tmp_path):
    root = _vimeo(tmp_path, ["00001/0266"], None)
    with pytest.raises(SeeClearError, match="needs a list file .*sep_testlist.txt"):
        discover_clips(str(root), split="Vimeo-90K-T")


def test_vimeo90k_missing_frame_is_named_at_read(tmp_path):
    root = _vimeo(tmp_path, ["00001/0266"], ["00001/0266"])
    (root / "sequences" / "00001" / "0266" / "im7.png").unlink()
    (ref,) = discover_clips(str(root), split="Vimeo-90K-T")
    with pytest.raises(SeeClearError, match=r"clip '00001_0266' of 'Vimeo-90K-T': .*im7\.png.*found nothing"):
        read_clip(ref)


def test_clips_layout_and_clip_filter(tmp_path):
    for name in ["walk_2", "walk_10", "zebra"]:
        _clip(tmp_path / "mine" / name)
    (tmp_path / "mine" / "notes.txt").write_text("ignored")
    refs = discover_clips(str(tmp_path / "mine"))
    assert _ids(refs) == ["walk_2", "walk_10", "zebra"] and refs[0].dataset == "mine"
    assert _ids(discover_clips(str(tmp_path / "mine"), clips=["zebra", "walk_2"], dataset="x")) == ["walk_2", "zebra"]
    with pytest.raises(SeeClearError, match=r"clips= names 1 clip\(s\) missing .*: zebr \(did you mean 'zebra'\?\)"):
        discover_clips(str(tmp_path / "mine"), clips=["zebr"])


def test_folder_of_frames_is_one_clip(tmp_path):
    _clip(tmp_path / "solo", n=4)
    (ref,) = discover_clips(str(tmp_path / "solo"))
    assert ref.clip_id == "solo" and clip_length(ref) == 4


def _video(path: Path, n: int, base: int = 0) -> np.ndarray:
    from seeclear_bench.data.video import encode_video

    frames = np.stack([np.full((16, 16, 3), base + 20 * i, np.uint8) for i in range(n)])
    encode_video(frames, str(path), codec="libx264", crf=0)
    return frames


def test_video_folder_one_clip_per_file(tmp_path):
    _video(tmp_path / "vids" / "b.mp4", 5)
    _video(tmp_path / "vids" / "a.mkv", 4, base=50)
    assert _ids(discover_clips(str(tmp_path / "vids"), layout="video")) == ["a", "b"]
    refs = discover_clips(str(tmp_path / "vids"))
    assert _ids(refs) == ["a", "b"] and {r.kind for r in refs} == {"video"} and refs[0].dataset == "vids"
    assert [clip_length(r) for r in refs] == [4, 5]  # mkv has no frame count: decoded; mp4: from metadata
    clip = read_clip(refs[1])
    assert clip.shape == (5, 16, 16, 3)
    assert np.abs(clip[:, 8, 8].astype(int).mean(1) - np.arange(0, 100, 20)).max() <= 2
    window = read_clip(refs[1], start=2, max_frames=2)
    np.testing.assert_array_equal(window, clip[2:4])


def test_single_video_file(tmp_path):
    _video(tmp_path / "one.mp4", 3)
    (ref,) = discover_clips(str(tmp_path / "one.mp4"))
    assert ref.clip_id == "one" and ref.dataset == "one" and ref.kind == "video"
    with pytest.raises(SeeClearError, match="layout 'reds' expects a folder"):
        discover_clips(str(tmp_path / "one.mp4"), layout="reds")


def test_two_videos_with_one_stem_is_an_error(tmp_path):
    _video(tmp_path / "a.mp4", 2)
    _video(tmp_path / "a.mkv", 2)
    with pytest.raises(SeeClearError, match="share the clip id 'a'"):
        discover_clips(str(tmp_path), layout="video")


# ---- discovery errors ------------------------------------------------------------------------------------------------
def test_unknown_layout_and_split_suggest_names(tmp_path):
    with pytest.raises(SeeClearError, match=r"did you mean 'vimeo90k'"):
        discover_clips(str(tmp_path), layout="vimeo_90k")
    with pytest.raises(SeeClearError, match=r"unknown split 'REDS5'.*did you mean 'REDS4'"):
        discover_clips(str(tmp_path), split="REDS5")


def test_missing_root_and_empty_folder(tmp_path):
    with pytest.raises(SeeClearError, match="found nothing"):
        discover_clips(str(tmp_path / "absent"))
    with pytest.raises(SeeClearError, match="found nothing"):
        discover_clips(str(tmp_path / "absent.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeeClearError, match="found no clips"):
        discover_clips(str(tmp_path / "empty"))


# ---- read errors: each names the clip and, where there is one, the frame --------------------------------------------
def test_missing_source_folder(tmp_path):
    ref = ClipRef(dataset="d", clip_id="gone", url=str(tmp_path / "gone"), kind="frames")
    with pytest.raises(SeeClearError, match=r"clip 'gone' of 'd': expected a folder of frames at .*gone'"):
        read_clip(ref)
    with pytest.raises(SeeClearError, match="clip 'gone' of 'd'"):
        clip_length(ref)


def test_missing_video_file(tmp_path):
    ref = ClipRef(dataset="d", clip_id="v", url=str(tmp_path / "v.mp4"), kind="video")
    with pytest.raises(SeeClearError, match=r"clip 'v' of 'd': expected a video file at .*v\.mp4"):
        read_clip(ref)
    with pytest.raises(SeeClearError, match=r"clip 'v' of 'd': expected a video file"):
        clip_length(ref)


def test_empty_clip(tmp_path):
    _clip(tmp_path / "ds" / "full")
    (tmp_path / "ds" / "hollow").mkdir()
    (tmp_path / "ds" / "hollow" / "readme.txt").write_text("no frames here")
    refs = discover_clips(str(tmp_path / "ds"))
    assert _ids(refs) == ["full", "hollow"] and refs[1].frame_urls == ()
    with pytest.raises(SeeClearError, match=r"clip 'hollow' of 'ds': no frames .* the clip is empty"):
        read_clip(refs[1])


def test_frames_of_different_sizes(tmp_path):
    folder = _clip(tmp_path / "ds" / "mixed", n=2)
    (folder / "00000002.png").write_bytes(encode_png(_frame(2, 10, W)))
    (ref,) = discover_clips(str(tmp_path / "ds"))
    with pytest.raises(SeeClearError) as info:
        read_clip(ref)
    message = str(info.value)
    assert message.startswith("clip 'mixed' of 'ds': frame '00000002.png' is 10x12 (h x w)")
    assert "frame '00000000.png' is 8x12" in message and "\n" not in message
    assert read_clip(ref, max_frames=2).shape == (2, H, W, 3)  # the window before the odd frame is fine


def test_corrupt_frame(tmp_path):
    folder = _clip(tmp_path / "ds" / "broken", n=3)
    (folder / "00000001.png").write_bytes(encode_png(_frame(1))[:40])
    (ref,) = discover_clips(str(tmp_path / "ds"))
    with pytest.raises(SeeClearError, match=r"clip 'broken' of 'ds': frame '.*00000001\.png' is not a readable"):
        read_clip(ref)
    assert read_clip(ref, max_frames=1).shape == (1, H, W, 3)


def test_corrupt_video(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 50)
    (ref,) = discover_clips(str(tmp_path / "bad.mp4"))
    with pytest.raises(SeeClearError, match=r"clip 'bad' of 'bad': .*bad\.mp4"):
        read_clip(ref)
    with pytest.raises(SeeClearError, match=r"clip 'bad' of 'bad': .*bad\.mp4"):
        clip_length(ref)


def test_long_clip_read_in_chunks_keeps_order_and_finds_late_odd_frame(tmp_path):
    folder = _clip(tmp_path / "ds" / "long", n=40)
    (ref,) = discover_clips(str(tmp_path / "ds"))
    assert read_clip(ref)[:, 4, 4, 0].tolist() == list(range(40)) and clip_length(ref) == 40
    (folder / "00000037.png").write_bytes(encode_png(_frame(37, H, 16)))
    with pytest.raises(SeeClearError, match=r"'00000037\.png' is 8x16 \(h x w\) but frame '00000000\.png' is 8x12"):
        read_clip(ref)


def test_window_arguments(tmp_path):
    (ref,) = discover_clips(str(_clip(tmp_path / "w", n=5)))
    assert read_clip(ref, start=3)[:, 4, 4, 0].tolist() == [3, 4]
    assert read_clip(ref, start=1, max_frames=2)[:, 4, 4, 0].tolist() == [1, 2]
    with pytest.raises(SeeClearError, match=r"clip 'w' of 'w': start 5 is past the end of the clip \(5 frames\)"):
        read_clip(ref, start=5)
    with pytest.raises(SeeClearError, match="start must be an integer >= 0"):
        read_clip(ref, start=-1)
    with pytest.raises(SeeClearError, match="max_frames must be None or an integer >= 1"):
        read_clip(ref, max_frames=0)


# ---- URL schemes -----------------------------------------------------------------------------------------------------
def test_file_url(tmp_path):
    for clip in ["calendar", "city", "foliage", "walk"]:
        _clip(tmp_path / clip, n=2)
    refs = discover_clips(f"file://{tmp_path}", split="Vid4")
    assert _ids(refs) == ["calendar", "city", "foliage", "walk"]
    assert read_clip(refs[3]).shape == (2, H, W, 3) and clip_length(refs[3]) == 2


def test_memory_url(memory_root):
    from seeclear_bench import io

    for clip in ["000", "011", "015", "020", "033"]:
        for i in range(3):
            io.write_bytes(io.join(memory_root, "GT", clip, f"{i:08d}.png"), encode_png(_frame(int(clip) + i)))
    refs = discover_clips(memory_root, split="REDS4")
    assert _ids(refs) == ["000", "011", "015", "020"]
    assert all(r.url.startswith("memory://") and r.frame_urls[0].startswith("memory://") for r in refs)
    assert read_clip(refs[2])[:, 4, 4, 0].tolist() == [15, 16, 17]
    io.write_bytes(io.join(memory_root, "GT", "020", "00000001.png"), b"garbage")
    with pytest.raises(SeeClearError, match=r"clip '020' of 'REDS4': frame 'memory://.*00000001\.png'"):
        read_clip(refs[3])


@pytest.fixture
def http_root(tmp_path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_url_lists_folders_and_reads_clips(http_root):
    root, base = http_root
    for clip in ["a b", "c"]:
        _clip(root / "ds" / clip, names=["1.png", "2.png", "10.png"], base=ord(clip[0]))
    _video(root / "v.mp4", 3)
    refs = discover_clips(f"{base}/ds")
    assert _ids(refs) == ["a b", "c"] and refs[0].dataset == "ds"
    assert [u.rsplit("/", 1)[1] for u in refs[0].frame_urls] == ["1.png", "2.png", "10.png"]
    np.testing.assert_array_equal(read_clip(refs[0]), read_clip(discover_clips(str(root / "ds"))[0]))
    assert clip_length(refs[1]) == 3
    (video,) = discover_clips(f"{base}/v.mp4")
    assert read_clip(video).shape == (3, 16, 16, 3) and clip_length(video) == 3


def test_s3_url_discovers_and_reads_with_parallel_fetches(s3_server):
    from seeclear_bench import io

    bucket = s3_server()
    fs, root = io.split(io.join(bucket, "REDS4", "GT"))
    fs.pipe({f"{root}/{clip}/{i:08d}.png": encode_png(_frame(int(clip) + i))  # one concurrent upload
             for clip in ["000", "011", "015", "020"] for i in range(18 if clip == "011" else 3)})
    refs = discover_clips(io.join(bucket, "REDS4"), split="REDS4")
    assert _ids(refs) == ["000", "011", "015", "020"] and refs[0].url.startswith("s3://")
    assert read_clip(refs[1])[:, 4, 4, 0].tolist() == list(range(11, 29))  # 18 frames: > one chunk of parallel reads
    assert read_clip(refs[2], start=1)[:, 4, 4, 0].tolist() == [16, 17] and clip_length(refs[2]) == 3
    io.remove(refs[3].frame_urls[2])
    with pytest.raises(SeeClearError, match=r"clip '020' of 'REDS4': expected a file at 's3://.*00000002\.png'"):
        read_clip(refs[3])
