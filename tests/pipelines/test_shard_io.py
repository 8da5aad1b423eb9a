"""Reading shards through Ray Data: lossless rows, fsspec bridging, corruption errors."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from seeclear_bench.data import shards
from seeclear_bench.errors import SeeClearError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


@pytest.fixture
def ray_module(ray_session):
    """The session's local Ray instance (tests/conftest.py)."""
    return ray_session


def _clip(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.fixture
def shard_set(tmp_path):
    """Two shards with different clip lengths and frame sizes; returns (urls, samples by key)."""
    rng = np.random.default_rng(99)
    groups = [
        [shards.Sample.create(dataset="reds", clip_id="000", frame_indices=range(s, s + 3), lr=_clip(rng, 3, 4, 6),
                              hr=_clip(rng, 3, 16, 24), meta={"scale": 4, "degradation": "bi", "seed": s})
         for s in (0, 3, 6)],
        [shards.Sample.create(dataset="vid4", clip_id="city", frame_indices=range(s, s + 2), lr=_clip(rng, 2, 5, 3),
                              hr=_clip(rng, 2, 10, 6), meta={"scale": 2, "params": {"sigma": 0.8}})
         for s in (0, 2)],
    ]
    urls = [shards.write_shard(str(tmp_path / f"shard-{i:06d}.tar"), group).url for i, group in enumerate(groups)]
    return urls, {s.key: s for group in groups for s in group}


def _check_rows(rows, originals) -> None:
    from pipelines.shard_io import samples_from_row

    assert sorted(row["key"] for row in rows) == sorted(originals)
    for row in rows:
        assert row["lr"].dtype == np.uint8 and row["hr"].dtype == np.uint8
        sample, want = samples_from_row(row), originals[row["key"]]
        assert np.array_equal(sample.lr, want.lr) and np.array_equal(sample.hr, want.hr)
        assert (sample.dataset, sample.clip_id, sample.frame_indices) == (want.dataset, want.clip_id, want.frame_indices)
        assert sample.meta == want.meta


def test_read_shards_ray_round_trip(ray_module, shard_set):
    from pipelines.shard_io import read_shards_ray

    urls, originals = shard_set
    rows = read_shards_ray([urls[0], "file://" + urls[1]]).take_all()
    _check_rows(rows, originals)


def test_read_shards_ray_through_fsspec_bridge(ray_module, shard_set):
    """A non-local fsspec filesystem (a caching wrapper) goes through pyarrow's FSSpecHandler."""
    from pipelines.shard_io import read_shards_ray

    urls, originals = shard_set
    rows = read_shards_ray([f"simplecache::file://{url}" for url in urls]).take_all()
    _check_rows(rows, originals)


def test_read_shards_ray_reports_corrupt_frame(ray_module, shard_set):
    from pipelines.shard_io import read_shards_ray

    urls, _ = shard_set
    with tarfile.open(urls[1]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("hr.0001.png"))
    data = bytearray(Path(urls[1]).read_bytes())
    data[member.offset_data + member.size // 2] ^= 0x55
    Path(urls[1]).write_bytes(bytes(data))
    key = member.name.split(".", 1)[0]
    with pytest.raises(SeeClearError, match=rf"sample {key} .*member hr\.0001\.png fails its sha256"):
        read_shards_ray(urls).take_all()


def test_read_shards_ray_rejects_bad_urls(tmp_path):
    from pipelines.shard_io import read_shards_ray

    with pytest.raises(SeeClearError, match="memory"):
        read_shards_ray(["memory://somewhere/shard-000000.tar"])
    with pytest.raises(SeeClearError, match=r"end in \.tar"):
        read_shards_ray([str(tmp_path / "shard.zip")])
    with pytest.raises(SeeClearError, match="at least one"):
        read_shards_ray([])
