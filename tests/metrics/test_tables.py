"""Per-frame table schema, validation, clip/dataset aggregation with inf policies, and table files."""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import Protocol, get_protocol
from seeclear_bench.metrics.tables import (
    CLIP_COLUMNS,
    DATASET_COLUMNS,
    FRAME_COLUMNS,
    clip_table,
    dataset_table,
    frame_rows,
    load_frames,
    read_table,
    save_table,
    validate_frames_df,
)

REDS = get_protocol("basicsr-reds4-rgb")
EXCLUDE = Protocol(name="reds-exclude", channel="rgb", inf_policy="exclude")
FRAME_MEAN = Protocol(name="teco-frame-mean", channel="y", aggregation="frame-mean")


def table(protocol: Protocol = REDS, **extra: object) -> pd.DataFrame:
    """Two clips of unequal length; clip '011' has one identical frame (inf PSNR)."""
    return pd.concat(
        [
            frame_rows(method="m", dataset="D", clip="000", protocol=protocol, extra=extra,
                       values={"psnr": [30.0, 32.0], "ssim": [0.8, 0.9]}),
            frame_rows(method="m", dataset="D", clip="011", protocol=protocol, extra=extra,
                       values={"psnr": [20.0, 24.0, math.inf, 28.0], "ssim": [0.5, 0.6, 1.0, 0.7]}),
        ],
        ignore_index=True,
    )


def test_frame_rows_schema() -> None:
    rows = frame_rows(method="BasicVSR", dataset="Vid4", clip="calendar", protocol=get_protocol("vimeo90k-t-center-y"),
                      values={"psnr": np.array([27.5]), "ssim": np.array([0.81])}, frames=[3],
                      extra={"git_sha": "abc123", "device": "cpu"})
    assert list(rows.columns) == [*FRAME_COLUMNS, "git_sha", "device"]
    assert rows["frame"].tolist() == [3, 3] and rows["frame"].dtype == np.int64
    assert rows["metric"].tolist() == ["psnr", "ssim"] and rows["value"].tolist() == [27.5, 0.81]
    assert set(rows["protocol_hash"]) == {get_protocol("vimeo90k-t-center-y").hash}
    assert set(rows["git_sha"]) == {"abc123"}
    validate_frames_df(rows, "rows")


def test_frame_rows_rejects_bad_arguments() -> None:
    with pytest.raises(SeeClearError, match=r"clip must be a non-empty string, got 0"):
        frame_rows(method="m", dataset="D", clip=0, protocol=REDS, values={"psnr": [1.0]})  # type: ignore[arg-type]
    with pytest.raises(SeeClearError, match=r"'psnr' has 2 values but 1 frame indices"):
        frame_rows(method="m", dataset="D", clip="0", protocol=REDS, values={"psnr": [1.0, 2.0]}, frames=[3])
    with pytest.raises(SeeClearError, match=r"clash with the per-frame schema"):
        frame_rows(method="m", dataset="D", clip="0", protocol=REDS, values={"psnr": [1.0]}, extra={"value": 1})


def test_clip_table_caps_inf_and_counts_it() -> None:
    clips = clip_table(table(git_sha="abc"), REDS)
    assert list(clips.columns) == [*CLIP_COLUMNS, "git_sha"]
    psnr = clips[clips["metric"] == "psnr"].set_index("clip")
    assert psnr.loc["000", "value"] == 31.0
    assert psnr.loc["011", "value"] == pytest.approx((20 + 24 + 100 + 28) / 4, abs=1e-12)
    assert psnr["n_frames"].tolist() == [2, 4] and psnr["n_inf"].tolist() == [0, 1]
    ssim = clips[clips["metric"] == "ssim"].set_index("clip")
    assert ssim.loc["011", "value"] == pytest.approx(0.7, abs=1e-12) and ssim.loc["011", "n_inf"] == 0


def test_clip_table_excludes_inf_when_asked() -> None:
    clips = clip_table(table(EXCLUDE), EXCLUDE)
    psnr = clips[clips["metric"] == "psnr"].set_index("clip")
    assert psnr.loc["011", "value"] == pytest.approx(24.0, abs=1e-12)  # mean of 20, 24, 28
    assert (psnr.loc["011", "n_frames"], psnr.loc["011", "n_inf"]) == (4, 1)
    all_inf = frame_rows(method="copy", dataset="D", clip="000", protocol=EXCLUDE, values={"psnr": [math.inf, math.inf]})
    with pytest.raises(SeeClearError, match=r"copy on D/000: all 2 psnr values are inf.*inf_policy='cap'"):
        clip_table(all_inf, EXCLUDE)
    # Under cap the same clip has a defined mean, and the per-frame table still says inf.
    capped = frame_rows(method="copy", dataset="D", clip="000", protocol=REDS, values={"psnr": [math.inf, math.inf]})
    assert clip_table(capped)["value"].tolist() == [100.0]
    assert np.isinf(capped["value"]).all()


def test_clip_table_refuses_foreign_or_unknown_protocols() -> None:
    with pytest.raises(SeeClearError, match=r"computed under protocol 'basicsr-reds4-rgb' \(4901837f1d35\) but protocol 'reds-exclude'"):
        clip_table(table(REDS), EXCLUDE)
    with pytest.raises(SeeClearError, match=r"'reds-exclude'.*pass the custom Protocol"):
        clip_table(table(EXCLUDE))
    assert len(clip_table(table(EXCLUDE), protocols=[EXCLUDE])) == 4


def test_provenance_columns_that_vary_within_a_clip_are_dropped() -> None:
    frames = table(git_sha="abc")
    frames["timestamp"] = np.arange(len(frames))  # differs per frame: cannot summarise a clip
    frames["shard"] = frames["clip"].map({"000": "s0.tar", "011": "s1.tar"})  # constant per clip
    clips = clip_table(frames)
    assert "timestamp" not in clips.columns and clips["shard"].tolist() == ["s0.tar"] * 2 + ["s1.tar"] * 2
    datasets = dataset_table(clips)
    assert "shard" not in datasets.columns and set(datasets["git_sha"]) == {"abc"}


def test_dataset_table_clip_mean_and_frame_mean() -> None:
    frames = table()
    datasets = dataset_table(clip_table(frames), frames)
    assert list(datasets.columns) == list(DATASET_COLUMNS)
    datasets = datasets.set_index("metric")
    assert datasets.loc["psnr", "value"] == pytest.approx((31.0 + 43.0) / 2, abs=1e-12)  # mean of clip means
    assert (datasets.loc["psnr", "n_clips"], datasets.loc["psnr", "n_frames"], datasets.loc["psnr", "n_inf"]) == (2, 6, 1)
    assert datasets.loc["psnr", "aggregation"] == "clip-mean"

    pooled = table(FRAME_MEAN)
    clips = clip_table(pooled, FRAME_MEAN)
    from_frames = dataset_table(clips, pooled, protocols=[FRAME_MEAN]).set_index("metric")
    from_clips = dataset_table(clips, protocols=[FRAME_MEAN]).set_index("metric")
    expected = (30 + 32 + 20 + 24 + 100 + 28) / 6  # every frame weighs the same; inf counted as the cap
    assert from_frames.loc["psnr", "value"] == pytest.approx(expected, abs=1e-12)
    assert from_clips.loc["psnr", "value"] == pytest.approx(expected, abs=1e-12)
    assert from_frames.loc["psnr", "aggregation"] == "frame-mean"
    # With exclusion, frame-mean pools only the finite frames.
    excl = Protocol(name="pooled-exclude", channel="rgb", aggregation="frame-mean", inf_policy="exclude")
    rows = table(excl)
    for value in (dataset_table(clip_table(rows, excl), rows, protocols=[excl]),
                  dataset_table(clip_table(rows, excl), protocols=[excl])):
        assert value.set_index("metric").loc["psnr", "value"] == pytest.approx((30 + 32 + 20 + 24 + 28) / 5, abs=1e-12)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda df: df.drop(columns=["protocol_hash"]), r"src.csv: missing columns \['protocol_hash'\]"),
        (lambda df: df.iloc[:0], r"src.csv: the per-frame table has no rows"),
        (lambda df: df.assign(clip=df["clip"].where(df.index != 2, None)), r"src.csv: row 2 has clip=(None|nan), expected a non-empty string"),
        (lambda df: df.assign(frame=df["frame"].astype(float)), r"src.csv: column 'frame' must hold integer"),
        (lambda df: df.assign(frame=df["frame"].where(df.index != 5, -1)), r"integer indices >= 0, found -1 .* at row 5"),
        (lambda df: df.assign(value=df["value"].where(df.index != 3, np.nan)), r"src.csv: row 3 .*has value nan"),
        (lambda df: df.assign(value=df["value"].where(df.index != 1, -np.inf)), r"src.csv: row 1 .*has value -inf"),
        (lambda df: df.assign(metric=df["metric"].where(df.index != 4, "ssmi")),
         r"src.csv: row 4 has unknown metric 'ssmi'.*did you mean 'ssim'"),
        (lambda df: pd.concat([df, df.iloc[[7]]], ignore_index=True),
         r"src.csv: row 12 repeats \(method='m', dataset='D', clip='011', frame=3, metric='psnr'\)"),
    ],
)
def test_validate_names_source_and_row(mutate: Callable[[pd.DataFrame], pd.DataFrame], match: str) -> None:
    with pytest.raises(SeeClearError, match=match) as info:
        validate_frames_df(mutate(table()), "src.csv")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_round_trip_exactly(tmp_path: Path, fmt: str) -> None:
    frames = table(git_sha="0123")
    frames.loc[0, "value"] = 1 / 3  # needs all 17 digits to round-trip
    url = str(tmp_path / "run" / "frames")
    written = save_table(frames, url, formats=(fmt,))
    assert written == [f"{url}.{fmt}"]
    back = load_frames(written)
    pd.testing.assert_frame_equal(back, frames, check_dtype=False)
    assert back["clip"].tolist()[:2] == ["000", "000"]  # not the integer 0
    assert back.loc[0, "value"] == 1 / 3 and np.isinf(back["value"]).sum() == 1
    assert back["git_sha"].tolist()[0] == "0123"
    assert sorted(os.listdir(tmp_path / "run")) == [f"frames.{fmt}"]  # no temporary files left behind


def test_save_table_writes_both_formats_or_the_named_one(tmp_path: Path) -> None:
    frames = table()
    written = save_table(frames, str(tmp_path / "frames"))
    assert written == [str(tmp_path / "frames.parquet"), str(tmp_path / "frames.csv")]
    assert save_table(frames, str(tmp_path / "only.csv")) == [str(tmp_path / "only.csv")]
    assert sorted(os.listdir(tmp_path)) == ["frames.csv", "frames.parquet", "only.csv"]
    with pytest.raises(SeeClearError, match=r"unknown table format 'json'"):
        save_table(frames, str(tmp_path / "x"), formats=("json",))


def test_load_frames_names_files(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")
    save_table(table(), a)
    save_table(table(), b)
    with pytest.raises(SeeClearError, match=r"a.parquet and .*b.csv both hold \(method='m', dataset='D', clip='000', frame=0"):
        load_frames([a, b])
    other = table()
    other["method"] = "n"
    save_table(other, b)
    assert sorted(load_frames([a, b])["method"].unique()) == ["m", "n"]
    with pytest.raises(SeeClearError, match=r"expected a file at .*missing.parquet"):
        load_frames([str(tmp_path / "missing.parquet")])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SeeClearError, match=r"cannot read table .*junk.parquet"):
        read_table(str(tmp_path / "junk.parquet"))
    broken = table().drop(columns=["metric"])
    save_table(broken, str(tmp_path / "broken.csv"))
    with pytest.raises(SeeClearError, match=r"broken.csv: missing columns \['metric'\]"):
        load_frames(str(tmp_path / "broken.csv"))
