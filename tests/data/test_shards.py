"""Shard write/read round trips, integrity errors, manifests and the WebDataset/torch reader."""
from __future__ import annotations

import io as _pyio
import json
import re
import tarfile
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seeclear_bench import io
from seeclear_bench.data import schema, shards
from seeclear_bench.data.frames import encode_png
from seeclear_bench.errors import SeeClearError


def _texture(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """Random texture frames (t h w 3) uint8: noise over a gradient, so PNG filters see real structure."""
    ramp = np.linspace(0, 200, w, dtype=np.float64)[None, None, :, None]
    noise = rng.integers(0, 56, size=(t, h, w, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def _sample(rng: np.random.Generator, dataset: str, clip: str, start: int, t: int = 3, h: int = 6, w: int = 8,
            scale: int = 4) -> shards.Sample:
    return shards.Sample.create(
        dataset=dataset, clip_id=clip, frame_indices=range(start, start + t),
        lr=_texture(rng, t, h, w), hr=_texture(rng, t, h * scale, w * scale),
        meta={"scale": scale, "degradation": "bd", "degradation_params": {"sigma": np.float64(1.6), "size": (13, 13)},
              "seed": 7, "spec_hash": "abc123"},
    )


def _assert_same(got: shards.Sample, want: shards.Sample) -> None:
    assert got.key == want.key and got.dataset == want.dataset and got.clip_id == want.clip_id
    assert got.frame_indices == want.frame_indices
    assert got.lr.dtype == np.uint8 and np.array_equal(got.lr, want.lr)
    assert got.hr.dtype == np.uint8 and np.array_equal(got.hr, want.hr)
    assert got.meta == want.meta


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def memory_root():
    root = f"memory://seeclear-test-{uuid.uuid4().hex[:8]}"
    yield root
    fs, path = io.split(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def two_shards(tmp_path, rng):
    """Two shards of 3 and 2 samples (different datasets and frame sizes) and the samples by key."""
    a = [_sample(rng, "reds", "000", s) for s in (6, 0, 3)]  # unsorted on purpose
    b = [_sample(rng, "Vid4", "city.v2", s, t=2, h=5, w=7) for s in (0, 2)]
    infos = [shards.write_shard(str(tmp_path / "shard-000000.tar"), a),
             shards.write_shard(str(tmp_path / "shard-000001.tar"), b)]
    return infos, {s.key: s for s in a + b}


# -- keys and layout ---------------------------------------------------------------------------------------------
def test_sample_key_plain_and_sanitised():
    assert schema.sample_key("reds", "000", 12) == "reds__000__000012"
    key = schema.sample_key("REDS.4", "a/b c", 3)
    assert re.fullmatch(r"REDS-4__a-b-c-[0-9a-f]{8}__000003", key)
    with pytest.raises(ValueError):
        schema.sample_key("reds", "000", -1)
    with pytest.raises(ValueError):
        schema.sample_key("", "000", 0)


@pytest.mark.parametrize("pair_a, pair_b", [
    (("a.b", "c"), ("a-b", "c")),        # replaced char vs literal dash
    (("a.b", "c"), ("a/b", "c")),        # two different replaced chars
    (("a_", "b"), ("a", "_b")),          # underscores merging into the separator
    (("a__b", "c"), ("a", "b__c")),      # separator inside a name
])
def test_sample_key_keeps_distinct_names_distinct(pair_a, pair_b):
    key_a, key_b = schema.sample_key(*pair_a, 0), schema.sample_key(*pair_b, 0)
    assert key_a != key_b
    assert schema.KEY_ALLOWED.fullmatch(key_a) and schema.KEY_ALLOWED.fullmatch(key_b)


def test_encode_sample_members_and_meta(rng):
    sample = _sample(rng, "reds", "000", 10, t=2)
    members = shards.encode_sample(sample)
    assert list(members) == ["hr.0000.png", "hr.0001.png", "lr.0000.png", "lr.0001.png", "meta.json"]
    assert members["lr.0001.png"] == encode_png(sample.lr[1], compress_level=shards.PNG_COMPRESS_LEVEL)
    meta = json.loads(members["meta.json"])
    assert meta["dataset"] == "reds" and meta["clip"] == "000" and meta["frame_indices"] == [10, 11]
    assert meta["n_frames"] == 2 and meta["lr_size"] == [6, 8] and meta["hr_size"] == [24, 32]
    assert meta["sha256"] == {m: io.sha256_bytes(d) for m, d in members.items() if m != "meta.json"}
    assert meta["degradation_params"] == {"sigma": 1.6, "size": [13, 13]} and meta["scale"] == 4


def test_sample_rejects_bad_input(rng):
    good = _sample(rng, "reds", "000", 0)
    with pytest.raises(ValueError, match="uint8"):
        shards.Sample(key=good.key, dataset="reds", clip_id="000", frame_indices=(0, 1, 2),
                      lr=good.lr.astype(np.float32), hr=good.hr)
    with pytest.raises(ValueError, match="no dots"):
        shards.Sample(key="reds.000", dataset="reds", clip_id="000", frame_indices=(0, 1, 2), lr=good.lr, hr=good.hr)
    with pytest.raises(ValueError, match="sha256"):
        shards.Sample(key=good.key, dataset="reds", clip_id="000", frame_indices=(0, 1, 2), lr=good.lr, hr=good.hr,
                      meta={"sha256": {}})
    with pytest.raises(ValueError, match="frame_indices"):
        shards.Sample(key=good.key, dataset="reds", clip_id="000", frame_indices=(0, 1), lr=good.lr, hr=good.hr)


# -- round trips -------------------------------------------------------------------------------------------------
def test_iter_shard_round_trip_is_lossless(two_shards):
    infos, originals = two_shards
    read = [s for info in infos for s in shards.iter_shard(info.url)]
    assert [s.key for s in read] == list(infos[0].keys + infos[1].keys)
    assert all(list(i.keys) == sorted(i.keys) for i in infos) and sorted(originals) == sorted(k.key for k in read)
    for sample in read:
        _assert_same(sample, originals[sample.key])
    assert infos[0].keys == ("reds__000__000000", "reds__000__000003", "reds__000__000006")
    assert infos[0].n_samples == 3 and infos[1].n_samples == 2


def test_shard_bytes_are_deterministic_and_info_is_exact(tmp_path, rng):
    samples = [_sample(rng, "reds", "011", s) for s in (0, 3)]
    first = shards.write_shard(str(tmp_path / "a.tar"), samples)
    second = shards.write_shard(str(tmp_path / "b.tar"), samples[::-1])
    data = (tmp_path / "a.tar").read_bytes()
    assert data == (tmp_path / "b.tar").read_bytes()
    assert first.sha256 == second.sha256 == io.sha256_bytes(data) and first.n_bytes == len(data)
    assert first.name == "a.tar" and not list(tmp_path.glob(".*tmp*"))  # atomic: no temp file left
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and len(names) == 2 * (3 + 3 + 1)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_write_shard_rejects_duplicates_and_empty(tmp_path, rng):
    sample = _sample(rng, "reds", "000", 0)
    with pytest.raises(ValueError, match="duplicate"):
        shards.write_shard(str(tmp_path / "x.tar"), [sample, sample])
    with pytest.raises(ValueError, match="at least one"):
        shards.write_shard(str(tmp_path / "x.tar"), [])
    assert not (tmp_path / "x.tar").exists()


@settings(max_examples=8, deadline=None)
@given(
    frames=st.integers(1, 3), height=st.integers(1, 5), width=st.integers(1, 5), scale=st.sampled_from([1, 2, 4]),
    starts=st.lists(st.integers(0, 999_999), min_size=1, max_size=3, unique=True), seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_property(frames, height, width, scale, starts, seed):
    rng = np.random.default_rng(seed)
    samples = [_sample(rng, "prop", "clip", s, t=frames, h=height, w=width, scale=scale) for s in starts]
    root = f"memory://seeclear-prop-{uuid.uuid4().hex[:8]}"
    try:
        info = shards.write_shard(io.join(root, "s.tar"), samples)
        read = list(shards.iter_shard(io.join(root, "s.tar")))
    finally:
        io.remove(root, recursive=True)
    assert [s.key for s in read] == sorted(s.key for s in samples) == list(info.keys)
    by_key = {s.key: s for s in samples}
    for sample in read:
        _assert_same(sample, by_key[sample.key])


def test_memory_urls_end_to_end(memory_root, rng):
    samples = [_sample(rng, "reds", "020", s) for s in (0, 3, 6)]
    info = shards.write_shard(io.join(memory_root, "shard-000000.tar"), samples)
    shards.write_manifest(memory_root, [info], spec_hash="h1", extra={})
    from seeclear_bench.data.shardset import ShardSet

    shard_set = ShardSet.open(memory_root)
    urls = shard_set.shard_urls()
    assert urls == [io.join(memory_root, "shard-000000.tar")] and shard_set.clips == ("020",)
    for got, want in zip(shard_set.samples(), samples):
        _assert_same(got, want)
    keys = [item["key"] for item in shards.make_webdataset(urls, expect=shard_set.expected())]
    assert keys == [s.key for s in samples]


# -- integrity ---------------------------------------------------------------------------------------------------
def _member_offset(path, member_suffix: str) -> tuple[str, int, int]:
    """(member name, data offset, data size) of the first member whose name ends with ``member_suffix``."""
    with tarfile.open(path) as tar:
        for info in tar.getmembers():
            if info.name.endswith(member_suffix):
                return info.name, info.offset_data, info.size
    raise AssertionError(member_suffix)


def test_corrupt_png_byte_names_shard_key_and_member(two_shards):
    infos, _ = two_shards
    path = infos[0].url
    name, offset, size = _member_offset(path, "lr.0001.png")
    data = bytearray(Path(path).read_bytes())
    data[offset + size // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    key, member = schema.split_tar_name(name)
    with pytest.raises(SeeClearError, match=rf"member {re.escape(member)}.*sample {key} in shard {re.escape(path)}|"
                                            rf"sample {key} in shard {re.escape(path)}: member {re.escape(member)}"):
        list(shards.iter_shard(path))
    with pytest.raises(SeeClearError, match=key):
        list(shards.make_webdataset([path]))
    assert not shards.shard_is_complete(path, infos[0])


@pytest.mark.parametrize("cut", ["mid_member", "member_boundary", "sample_boundary", "end_marker"])
def test_truncated_tar_is_an_error(two_shards, cut):
    infos, _ = two_shards
    path = infos[0].url
    data = Path(path).read_bytes()
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    second_sample = next(m for m in members if m.name.startswith(infos[0].keys[1]))
    end_of_last = members[-1].offset_data + -(-members[-1].size // 512) * 512
    keep = {
        "mid_member": members[3].offset_data + members[3].size // 2,
        "member_boundary": members[3].offset,
        "sample_boundary": second_sample.offset,  # whole samples gone: tarfile alone would stop silently here
        "end_marker": end_of_last,  # every member intact, end-of-archive blocks missing
    }[cut]
    Path(path).write_bytes(data[:keep])
    with pytest.raises(SeeClearError, match=rf"shard {re.escape(path)}"):
        list(shards.iter_shard(path))


def test_missing_or_garbage_shard(tmp_path):
    with pytest.raises(SeeClearError, match="expected a shard"):
        list(shards.iter_shard(str(tmp_path / "nope.tar")))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(SeeClearError, match="truncated or corrupt"):
        list(shards.iter_shard(str(tmp_path / "junk.tar")))


def test_non_contiguous_members_are_an_error(tmp_path, rng):
    a, b = _sample(rng, "reds", "000", 0, t=1), _sample(rng, "reds", "000", 1, t=1)
    entries = [(s.key, m, d) for s in (a, b) for m, d in shards.encode_sample(s).items()]
    entries.append(entries.pop(0))  # a's first member moves behind b's members
    path = tmp_path / "interleaved.tar"
    with tarfile.open(path, "w") as tar:
        for key, member, data in entries:
            info = tarfile.TarInfo(schema.tar_name(key, member))
            info.size = len(data)
            tar.addfile(info, _pyio.BytesIO(data))
    with pytest.raises(SeeClearError, match=rf"sample {a.key} are not contiguous"):
        list(shards.iter_shard(str(path)))


def test_sample_missing_a_frame_is_an_error(tmp_path, rng):
    sample = _sample(rng, "reds", "000", 0, t=2)
    path = tmp_path / "missing.tar"
    with tarfile.open(path, "w") as tar:
        for member, data in shards.encode_sample(sample).items():
            if member != "hr.0001.png":
                info = tarfile.TarInfo(schema.tar_name(sample.key, member))
                info.size = len(data)
                tar.addfile(info, _pyio.BytesIO(data))
    with pytest.raises(SeeClearError, match=r"hr\.0001\.png"):
        list(shards.iter_shard(str(path)))


# -- manifest ----------------------------------------------------------------------------------------------------
def test_manifest_round_trip_and_resume_check(tmp_path, two_shards):
    infos, originals = two_shards
    as_dicts = [shards.shard_info_dict(infos[1]), infos[0]]  # dicts (task records) and ShardInfo both accepted
    url = shards.write_manifest(str(tmp_path), as_dicts, spec_hash="deadbeef", extra={"seed": np.int64(3)})
    manifest = shards.read_manifest(str(tmp_path))
    assert url == io.join(str(tmp_path), "manifest.json")
    assert manifest["format"] == schema.MANIFEST_FORMAT and manifest["spec_hash"] == "deadbeef"
    assert [s["name"] for s in manifest["shards"]] == ["shard-000000.tar", "shard-000001.tar"]
    assert manifest["total_samples"] == 5 and manifest["n_shards"] == 2
    assert manifest["total_bytes"] == sum(i.n_bytes for i in infos)
    assert manifest["extra"] == {"seed": 3} and manifest["seeclear_bench_version"]
    assert sorted(k for s in manifest["shards"] for k in s["keys"]) == sorted(originals)
    for entry, info in zip(manifest["shards"], infos):
        assert entry == shards.shard_info_dict(info)
        assert shards.shard_is_complete(info.url, entry)
    assert not shards.shard_is_complete(str(tmp_path / "shard-000009.tar"), manifest["shards"][0])
    with open(infos[1].url, "ab") as f:
        f.write(b"\0")
    assert not shards.shard_is_complete(infos[1].url, manifest["shards"][1])


def test_manifest_absent_or_inconsistent(tmp_path, two_shards):
    infos, _ = two_shards
    with pytest.raises(SeeClearError, match=r"no manifest\.json in .*incomplete; run prepare again"):
        shards.read_manifest(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="in both"):
        shards.write_manifest(str(tmp_path), [infos[0], {**shards.shard_info_dict(infos[0]), "name": "x.tar"}],
                              spec_hash="h", extra={})
    with pytest.raises(ValueError, match="not inside"):
        shards.write_manifest(str(tmp_path / "other"), infos, spec_hash="h", extra={})
    io.write_json(io.join(str(tmp_path), "manifest.json"), {"format": "something-else"})
    with pytest.raises(SeeClearError, match="format"):
        shards.read_manifest(str(tmp_path))


# -- WebDataset / torch ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_make_webdataset_with_dataloader(two_shards, num_workers):
    import torch

    infos, originals = two_shards
    loader = torch.utils.data.DataLoader(shards.make_webdataset([i.url for i in infos]), batch_size=None,
                                         num_workers=num_workers)
    seen = {}
    for item in loader:
        want = originals[item["key"]]
        assert item["lr"].dtype == torch.float32 and item["lr"].shape == (want.lr.shape[0], 3, *want.lr.shape[1:3])
        assert float(item["hr"].min()) >= 0.0 and float(item["hr"].max()) <= 1.0
        lr = (item["lr"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        hr = (item["hr"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(lr, want.lr) and np.array_equal(hr, want.hr)
        assert item["meta"]["clip"] == want.clip_id and item["meta"]["scale"] == want.meta["scale"]
        seen[item["key"]] = seen.get(item["key"], 0) + 1
    assert seen == {key: 1 for key in originals}


def test_make_webdataset_batches_and_shuffles_deterministically(tmp_path, rng):
    import torch

    samples = [_sample(rng, "reds", "015", s, t=2) for s in range(0, 16, 2)]
    urls = [shards.write_shard(str(tmp_path / f"s{i}.tar"), samples[i::2]).url for i in range(2)]
    plain = [item["key"] for item in shards.make_webdataset(urls)]
    order_a = [item["key"] for item in shards.make_webdataset(urls, shuffle=True, seed=5, shuffle_buffer=8)]
    order_b = [item["key"] for item in shards.make_webdataset(urls, shuffle=True, seed=5, shuffle_buffer=8)]
    assert order_a == order_b and sorted(order_a) == sorted(plain) and order_a != plain
    batch = next(iter(torch.utils.data.DataLoader(shards.make_webdataset(urls), batch_size=4)))
    assert batch["lr"].shape == (4, 2, 3, 6, 8) and batch["hr"].shape == (4, 2, 3, 24, 32) and len(batch["key"]) == 4


def test_make_webdataset_needs_urls():
    with pytest.raises(SeeClearError, match="at least one shard"):
        shards.make_webdataset([])


def test_fsspec_file_urls_work(two_shards):
    infos, originals = two_shards
    url = "file://" + infos[1].url
    assert fsspec.core.url_to_fs(url)[0].protocol[0] == "file"
    for got in shards.iter_shard(url):
        _assert_same(got, originals[got.key])


# -- HR frames kept as their source PNG bytes (issue 13) -----------------------------------------------------------
def _png(frame: np.ndarray, **save) -> bytes:
    """``frame`` as a PNG the shard writer would never write itself (zlib 9 and a text chunk, unless told)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Source", "test footage")
    buffer = _pyio.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", **({"compress_level": 9, "pnginfo": info} | save))
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_is_plain_rgb_png_accepts_only_intact_8bit_rgb_of_the_size(rng):
    from PIL import Image

    from seeclear_bench.data.frames import is_plain_rgb_png, rgb8_png_size

    frame = _texture(rng, 1, 6, 8)[0]
    good = _png(frame)
    assert rgb8_png_size(good) == (6, 8) and is_plain_rgb_png(good, 6, 8)
    assert is_plain_rgb_png(encode_png(frame), 6, 8) and is_plain_rgb_png(_png(frame, optimize=True), 6, 8)
    assert not is_plain_rgb_png(good, 8, 6)  # another size
    idat = good.index(b"IDAT")
    flipped = good[: idat + 6] + bytes([good[idat + 6] ^ 1]) + good[idat + 7 :]
    assert not is_plain_rgb_png(flipped, 6, 8)  # a chunk fails its CRC
    assert not is_plain_rgb_png(good + b"\0", 6, 8) and not is_plain_rgb_png(good[:-1], 6, 8)  # after or before IEND
    animated = good[:33] + _chunk(b"acTL", bytes(8)) + good[33:]
    assert rgb8_png_size(animated) == (6, 8) and not is_plain_rgb_png(animated, 6, 8)
    unknown_critical = good[:33] + _chunk(b"ABCD", b"") + good[33:]
    assert not is_plain_rgb_png(unknown_critical, 6, 8)
    for mode in ("RGBA", "L", "P", "I;16"):
        image = Image.fromarray(frame).convert("RGBA" if mode == "RGBA" else "L" if mode != "P" else "P")
        if mode == "I;16":
            image = Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
        buffer = _pyio.BytesIO()
        image.save(buffer, format="PNG")
        assert rgb8_png_size(buffer.getvalue()) is None and not is_plain_rgb_png(buffer.getvalue(), 6, 8), mode


def test_sample_refuses_hr_png_that_does_not_fit(rng):
    sample = _sample(rng, "reds", "000", 0, t=2)
    with pytest.raises(ValueError, match="hr_png must hold 2"):
        shards.Sample.create(dataset="reds", clip_id="000", frame_indices=(0, 1), lr=sample.lr, hr=sample.hr,
                             hr_png=[None])
    with pytest.raises(ValueError, match=r"hr_png\[1\] is not an 8-bit RGB PNG of the frame's size 24x32"):
        shards.Sample.create(dataset="reds", clip_id="000", frame_indices=(0, 1), lr=sample.lr, hr=sample.hr,
                             hr_png=[None, _png(sample.hr[1][:8])])


def _prepare(tmp_path: Path, frames: list[np.ndarray], *, ext: str = "png",
             files: list[bytes] | None = None) -> tuple[Path, list[bytes]]:
    """``frames`` as one source clip (PNG files from :func:`_png`, or ``files`` as given), prepared (BI x4) by
    ``prepare_group`` in this process into a shard set with its manifest; returns the set's folder and the files."""
    from PIL import Image

    from seeclear_bench.config import RunConfig
    from seeclear_bench.data.sources import discover_clips
    from seeclear_bench.identity import shards_identity
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.stages import prepare_group

    def jpeg(frame: np.ndarray) -> bytes:
        buffer = _pyio.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    clip = tmp_path / "src" / "c0"
    clip.mkdir(parents=True)
    files = files if files is not None else [jpeg(f) if ext == "jpg" else _png(f) for f in frames]
    for i, data in enumerate(files):
        (clip / f"{i:08d}.{ext}").write_bytes(data)
    cfg = RunConfig.from_dict({"data": {"sources": [{"name": "src", "url": str(tmp_path / "src"), "layout": "clips"}]},
                               "shards": {"window": 4}})
    source, layout = cfg.data.sources[0], RunLayout(str(tmp_path / "run"))
    refs = discover_clips(source.url, layout="clips", dataset="src")
    infos = prepare_group(cfg, source, refs, 0, layout, shards_identity(cfg, source))
    shards.write_manifest(layout.shards("src"), infos, spec_hash="test")
    return Path(layout.shards("src")), files


def _members(folder: Path) -> dict[str, dict[str, bytes]]:
    """``{sample key: {member: bytes}}`` of every shard in ``folder``, read with plain tarfile."""
    found: dict[str, dict[str, bytes]] = {}
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            for info in tar.getmembers():
                key, member = schema.split_tar_name(info.name)
                found.setdefault(key, {})[member] = tar.extractfile(info).read()
    return found


def _hr_members(folder: Path) -> tuple[dict[int, bytes], dict[int, bool], set[int]]:
    """(HR member bytes, its ``hr_source_bytes`` flag, the recorded PNG levels) by source frame index."""
    data, flags, levels = {}, {}, set()
    for members in _members(folder).values():
        meta = json.loads(members["meta.json"])
        levels.add(meta["frame_encoding"]["png_compress_level"])
        for i, (index, flag) in enumerate(zip(meta["frame_indices"], meta["frame_encoding"]["hr_source_bytes"])):
            data[index], flags[index] = members[schema.frame_member("hr", i)], flag
            assert meta["sha256"][schema.frame_member("hr", i)] == io.sha256_bytes(data[index])
    return data, flags, levels


def test_prepare_keeps_plain_png_sources_as_they_are_and_the_set_verifies(tmp_path, rng):
    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.data.shardset import ShardSet

    frames = list(_texture(rng, 6, 32, 48))
    folder, files = _prepare(tmp_path, frames)
    hr, flags, levels = _hr_members(folder)
    assert hr == dict(enumerate(files))  # the source files' bytes, unchanged (zlib 9, text chunk and all)
    assert flags == dict.fromkeys(range(6), True) and levels == {shards.PNG_COMPRESS_LEVEL}
    clip = ShardSet.open(str(folder), dataset="src").clip("c0")  # every shard and member checked as it is read
    numbers, hr_frames = clip.frames("hr")
    assert numbers == list(range(6)) and np.array_equal(hr_frames, np.stack(frames))
    _, lr_frames = clip.frames("lr")
    members = _members(folder)
    first = members[min(members)]
    assert first["lr.0000.png"] == encode_png(lr_frames[0], compress_level=shards.PNG_COMPRESS_LEVEL)
    assert np.array_equal(decode_frame(first["lr.0000.png"]), lr_frames[0]) and lr_frames.shape == (6, 8, 12, 3)


def test_prepare_reencodes_frames_a_crop_changes(tmp_path, rng):
    """34x50 is not a multiple of 4: the HR frames are cropped to 32x48, so their source bytes cannot be stored."""
    from seeclear_bench.data.shardset import ShardSet

    frames = list(_texture(rng, 5, 34, 50))
    folder, files = _prepare(tmp_path, frames)
    hr, flags, levels = _hr_members(folder)
    cropped = [np.ascontiguousarray(f[:32, :48]) for f in frames]
    assert hr == {i: encode_png(f, compress_level=shards.PNG_COMPRESS_LEVEL) for i, f in enumerate(cropped)}
    assert not set(hr.values()) & set(files) and flags == dict.fromkeys(range(5), False)
    assert levels == {shards.PNG_COMPRESS_LEVEL}
    _, hr_frames = ShardSet.open(str(folder), dataset="src").clip("c0").frames("hr")
    assert np.array_equal(hr_frames, np.stack(cropped))


@pytest.mark.parametrize("kind", ["rgba", "gray", "palette", "jpeg", "mixed"])
def test_prepare_reencodes_sources_that_are_not_plain_rgb_png(tmp_path, rng, kind):
    """Alpha dropped, gray repeated, a palette or JPEG decoded: the pixels stored differ from what the file holds
    (or the file is no PNG), so the frame is encoded; in a mixed clip only the plain RGB frames keep their bytes."""
    from PIL import Image

    from seeclear_bench.data.frames import decode_frame
    from seeclear_bench.data.shardset import ShardSet

    frames = list(_texture(rng, 4, 16, 24))
    ext = "jpg" if kind == "jpeg" else "png"
    files = None
    if kind in ("rgba", "gray", "palette", "mixed"):
        mode = {"rgba": "RGBA", "gray": "L", "palette": "P", "mixed": "RGBA"}[kind]
        files = []
        for i, frame in enumerate(frames):
            buffer = _pyio.BytesIO()
            Image.fromarray(frame).convert(mode).save(buffer, format="PNG")
            files.append(_png(frame) if kind == "mixed" and i % 2 else buffer.getvalue())
    folder, files = _prepare(tmp_path, frames, ext=ext, files=files)
    expected = [decode_frame(data) for data in files]
    kept = [kind == "mixed" and i % 2 == 1 for i in range(4)]
    hr, flags, _ = _hr_members(folder)
    assert flags == dict(enumerate(kept))
    assert hr == {i: files[i] if kept[i] else encode_png(expected[i], compress_level=shards.PNG_COMPRESS_LEVEL)
                  for i in range(4)}
    _, hr_frames = ShardSet.open(str(folder), dataset="src").clip("c0").frames("hr")
    assert np.array_equal(hr_frames, np.stack(expected))
