"""Merging result tables: protocols never share a column, conflicts reported, duplicates and bad tables refused
naming file and row, provenance filled from run folders and marked when missing."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from seeclear_bench import io
from seeclear_bench.errors import SeeClearError
from seeclear_bench.leaderboard import build_leaderboard
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.tables import write_csv, write_parquet
from seeclear_bench.report.merge import load_results, merge_results, resolve_table
from seeclear_bench.report.provenance import (
    fill_from_run,
    manifest_hash,
    provenance_table,
)

REDS = get_protocol("basicsr-reds4-rgb")
REDS_Y = get_protocol("basicsr-vid4-y")  # Y channel: another protocol for the same dataset
PROV = {"git_commit": "abc123", "seeclear_bench": "0.1.0", "seed": 0, "device": "cpu"}


@pytest.fixture
def two_runs(make_table):
    a = pd.concat([make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2]}, "011": {"psnr": [25.0, 25.4]}},
                              extra=PROV),
                   make_table("BasicVSR", "REDS4", {"000": {"psnr": [31.0, 31.2]}, "011": {"psnr": [30.0, 30.4]}},
                              extra=PROV)], ignore_index=True)
    b = make_table("SeeClear", "REDS4", {"000": {"psnr": [29.0, 29.5]}, "011": {"psnr": [28.0, 28.5]}}, extra=PROV)
    return a, b


def test_merging_keeps_every_value_and_names_sources(two_runs):
    a, b = two_runs
    merged = merge_results([("a.parquet", a), ("b.csv", b)])
    frames = merged.frames
    assert len(frames) == len(a) + len(b)
    assert merged.groups == {"REDS4": ("REDS4", REDS.name, REDS.hash)} and merged.conflicts == ()
    assert set(frames.loc[frames["method"] == "SeeClear", "source"]) == {"b.csv"}
    row = frames[(frames["method"] == "BasicVSR") & (frames["clip"] == "011") & (frames["frame"] == 1)].iloc[0]
    assert row["value"] == 30.4 and row["source"] == "a.parquet" and row["source_row"] == 7
    board = build_leaderboard(merged.results())
    assert board.loc["SeeClear", ("REDS4", "psnr")] == pytest.approx((29.25 + 28.25) / 2, abs=1e-12)


def test_different_protocol_hashes_never_share_a_column(make_table):
    rgb = make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2]}}, extra=PROV)
    y = make_table("bicubic", "REDS4", {"000": {"psnr": [27.5, 27.7]}}, protocol=REDS_Y, extra=PROV)
    merged = merge_results([("rgb.parquet", rgb), ("y.parquet", y)])
    rgb_label, y_label = f"REDS4 · {REDS.name} ({REDS.hash})", f"REDS4 · {REDS_Y.name} ({REDS_Y.hash})"
    assert merged.groups == {rgb_label: ("REDS4", REDS.name, REDS.hash), y_label: ("REDS4", REDS_Y.name, REDS_Y.hash)}
    assert len(merged.conflicts) == 1
    assert all(s in merged.conflicts[0] for s in ("2 protocols", "rgb.parquet", "y.parquet", "never averaged"))
    board = build_leaderboard(merged.results())
    assert board.loc["bicubic", (rgb_label, "psnr")] == pytest.approx(26.1, abs=1e-12)  # not (26.1 + 27.6) / 2
    assert board.loc["bicubic", (y_label, "psnr")] == pytest.approx(27.6, abs=1e-12)
    for label, protocol in ((rgb_label, REDS), (y_label, REDS_Y)):
        assert set(merged.frames.loc[merged.frames["dataset"] == label, "protocol_hash"]) == {protocol.hash}


def test_duplicate_rows_are_refused_naming_both_files_and_rows(two_runs):
    a, _ = two_runs
    again = a[a["method"] == "BasicVSR"].copy()
    again.loc[again.index[3], "value"] = 99.0
    with pytest.raises(SeeClearError) as err:
        merge_results([("a.parquet", a), ("again.csv", again.reset_index(drop=True))])
    message = str(err.value)
    # the differing row (BasicVSR 011 frame 1) is named: row 7 of a.parquet and row 3 of again.csv
    assert "again.csv row 3 repeats a.parquet row 7" in message
    assert "frame=1" in message and "30.4" in message and "99.0" in message and "\n" not in message


def test_identical_duplicates_are_refused_unless_allowed_then_kept_once_and_reported(two_runs, make_table):
    a, b = two_runs
    bicubic = a[a["method"] == "bicubic"].reset_index(drop=True)
    with pytest.raises(SeeClearError, match=r"b\+bicubic.csv row 0 repeats a.parquet row 0 .* with the same value; .*--merge-identical"):
        merge_results([("a.parquet", a), ("b+bicubic.csv", pd.concat([bicubic, b], ignore_index=True))])
    merged = merge_results([("a.parquet", a), ("b+bicubic.csv", pd.concat([bicubic, b], ignore_index=True))],
                           allow_identical=True)
    assert len(merged.frames) == len(a) + len(b)
    assert set(merged.frames.loc[merged.frames["method"] == "bicubic", "source"]) == {"a.parquet"}
    assert merged.conflicts == (
        "bicubic on REDS4: 4 rows repeated with identical values in a.parquet, b+bicubic.csv; kept the copy from a.parquet",)


def test_empty_inputs_are_refused(make_table):
    with pytest.raises(SeeClearError, match="no result tables given"):
        merge_results([])
    with pytest.raises(SeeClearError, match="no result tables given"):
        load_results([])
    empty = make_table("bicubic", "REDS4", {"000": {"psnr": [26.0]}}).iloc[:0]
    with pytest.raises(SeeClearError, match=r"^empty.parquet: the per-frame table has no rows$"):
        merge_results([("empty.parquet", empty)])


def test_missing_columns_and_unknown_metrics_name_file_and_row(make_table):
    good = make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.1], "ssim": [0.7, 0.71]}})
    with pytest.raises(SeeClearError, match=r"^old.csv: missing columns \['protocol_hash'\]"):
        merge_results([("good.parquet", good), ("old.csv", good.drop(columns=["protocol_hash"]))])
    typo = good.copy()
    typo.loc[3, "metric"] = "ssmi"
    with pytest.raises(SeeClearError, match=r"^typo.csv: row 3 has unknown metric 'ssmi'.*did you mean 'ssim'"):
        merge_results([("good.parquet", good.assign(method="x")), ("typo.csv", typo)])
    nan = good.copy()
    nan.loc[2, "value"] = np.nan
    with pytest.raises(SeeClearError, match=r"^nan.parquet: row 2 .*has value nan"):
        merge_results([("nan.parquet", nan)])


def test_metric_variants_in_one_column_are_refused(make_table):
    a = make_table("bicubic", "REDS4", {"000": {"tof": [0.2, 0.3]}}).assign(metric_hash="aaaaaaaaaaaa")
    b = make_table("lanczos", "REDS4", {"000": {"tof": [0.1, 0.2]}}).assign(metric_hash="bbbbbbbbbbbb")
    with pytest.raises(SeeClearError, match=r"REDS4 tof: a.parquet row 0 was computed by metric variant aaaaaaaaaaaa "
                                            r"but b.parquet row 0 by bbbbbbbbbbbb"):
        merge_results([("a.parquet", a), ("b.parquet", b)])


def test_methods_scored_on_other_frames_are_refused_naming_files(make_table):
    a = make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2]}, "011": {"psnr": [25.0, 25.4]}})
    b = make_table("SeeClear", "REDS4", {"000": {"psnr": [29.0, 29.5]}})
    with pytest.raises(SeeClearError, match=r"REDS4 psnr: SeeClear \(b.parquet\) was scored on 2 frames but bicubic "
                                            r"\(a.parquet\) on 4 \(clips differing: \['011'\]\)"):
        merge_results([("a.parquet", a), ("b.parquet", b)])


def test_one_method_with_different_provenance_becomes_separate_rows(make_table):
    old = make_table("SeeClear", "REDS4", {"000": {"psnr": [29.0, 29.5]}}, extra={**PROV, "git_commit": "1111111"})
    new = make_table("SeeClear", "REDS4", {"000": {"ssim": [0.8, 0.81]}}, extra={**PROV, "git_commit": "2222222"})
    merged = merge_results([("old.parquet", old), ("new.parquet", new)])
    assert set(merged.frames["method"]) == {"SeeClear [git_commit=1111111]", "SeeClear [git_commit=2222222]"}
    assert set(merged.frames.loc[merged.frames["metric"] == "ssim", "method"]) == {"SeeClear [git_commit=2222222]"}
    assert len(merged.conflicts) == 1 and "provenance differs (git_commit)" in merged.conflicts[0]
    # the same provenance split over two tables (an evaluation done in parts) stays one row
    part = make_table("SeeClear", "REDS4", {"000": {"ssim": [0.8, 0.81]}}, extra={**PROV, "git_commit": "1111111"})
    assert set(merge_results([("old.parquet", old), ("part.parquet", part)]).frames["method"]) == {"SeeClear"}


def test_rows_without_provenance_are_marked(make_table):
    bare = make_table("outside", "REDS4", {"000": {"psnr": [27.0, 27.1]}})
    rich = make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2]}}, extra=PROV)
    merged = merge_results([("bare.csv", bare), ("rich.parquet", rich)])
    flags = merged.frames.groupby("method")["has_provenance"].agg(set).to_dict()
    assert flags == {"outside": {False}, "bicubic": {True}}
    table = provenance_table(merged.results()).set_index("method")
    assert table.loc["outside", "status"] == "no provenance"
    assert table.loc["outside", "git_commit"] == "unknown" and table.loc["outside", "checkpoint_hash"] == "unknown"
    assert table.loc["bicubic", "checkpoint_hash"] == "n/a"  # a kernel baseline loads no weights
    assert table.loc["bicubic", "git_commit"] == "abc123" and table.loc["bicubic", "seed"] == "0"
    assert table.loc["bicubic", "status"] == "incomplete: data manifest, date"


def test_load_results_reads_run_folders_and_fills_provenance(tiny_run, tmp_path):
    assert resolve_table(tiny_run) == (io.join(tiny_run, "metrics", "frames.parquet"), tiny_run)
    outside = pd.read_parquet(io.join(tiny_run, "metrics", "frames.parquet"))
    outside = outside[outside["method"] == "sharp"][["method", "dataset", "clip", "frame", "metric", "value",
                                                    "protocol", "protocol_hash"]].assign(method="outside")
    write_csv(outside, str(tmp_path / "outside.csv"))
    merged = load_results([tiny_run, str(tmp_path / "outside.csv")])
    assert merged.runs == (tiny_run,)
    assert merged.sources == (io.join(tiny_run, "metrics", "frames.parquet"), str(tmp_path / "outside.csv"))
    manifest = io.read_json(io.join(tiny_run, "shards", "tiny", "manifest.json"))
    table = provenance_table(merged.results()).set_index("method")
    assert table.loc["sharp", "manifest_hash"] == manifest_hash(manifest)
    assert table.loc["sharp", "created_at"] == "2026-01-02T03:04:05+00:00"
    assert table.loc["sharp", "checkpoint_hash"] == "cksha"  # from the upscale record
    assert table.loc["bicubic", "status"] == "complete"
    assert table.loc["outside", "status"] == "no provenance"
    with pytest.raises(SeeClearError, match=r"no per-frame table; expected a .parquet/.csv file or a folder"):
        load_results([str(tmp_path)])
    with pytest.raises(SeeClearError, match=re.escape(f"expected a file at '{tmp_path}/nothing.parquet'")):
        load_results([str(tmp_path / "nothing.parquet")])


def test_fill_from_run_never_overwrites_and_respects_spec_hash(tiny_run):
    frames = pd.read_parquet(io.join(tiny_run, "metrics", "frames.parquet"))
    frames["created_at"] = None
    frames.loc[0, "created_at"] = "kept"
    frames.loc[1, "spec_hash"] = "another-run"
    filled = fill_from_run(frames, tiny_run)
    assert filled.loc[0, "created_at"] == "kept"
    assert filled.loc[1, "created_at"] is None or pd.isna(filled.loc[1, "created_at"])
    assert filled.loc[2, "created_at"] == "2026-01-02T03:04:05+00:00"
    assert frames.loc[2, "created_at"] is None  # the input is not modified


def test_manifest_hash_ignores_dates():
    shards = [{"name": "x.tar", "n_samples": 2, "sha256": "ab" * 32, "n_bytes": 10, "keys": ["k"]}]
    one = manifest_hash({"created_at": "2026-01-01", "shards": shards})
    assert one == manifest_hash({"created_at": "2027-05-05", "host": "elsewhere", "shards": shards})
    assert one != manifest_hash({"shards": [{**shards[0], "sha256": "cd" * 32}]})
    assert re.fullmatch(r"[0-9a-f]{12}", one)


def test_parquet_and_csv_of_one_table_merge_the_same(tmp_path, two_runs):
    a, b = two_runs
    write_parquet(a, str(tmp_path / "a.parquet"))
    write_csv(b, str(tmp_path / "b.csv"))
    merged = load_results([str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")])
    direct = merge_results([(str(tmp_path / "a.parquet"), a), (str(tmp_path / "b.csv"), b)])
    pd.testing.assert_frame_equal(merged.frames[["method", "clip", "frame", "value"]],
                                  direct.frames[["method", "clip", "frame", "value"]])
