"""Leaderboard: values, ordering, refusal to mix protocols or frame sets, and the exact Markdown rendering."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.errors import SeeClearError
from seeclear_bench.leaderboard import build_leaderboard, leaderboard_markdown
from seeclear_bench.metrics.protocols import Protocol, get_protocol
from seeclear_bench.metrics.registry import METRICS, MetricSpec
from seeclear_bench.metrics.tables import frame_rows

REDS = get_protocol("basicsr-reds4-rgb")
VID4 = get_protocol("basicsr-vid4-y")


def rows(method: str, dataset: str, protocol: Protocol, per_clip: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    return pd.concat(
        [frame_rows(method=method, dataset=dataset, clip=clip, values=values, protocol=protocol)
         for clip, values in per_clip.items()],
        ignore_index=True,
    )


def results() -> pd.DataFrame:
    """Three methods on two datasets; 'copy' is identical to the ground truth on REDS4."""
    return pd.concat(
        [
            rows("bicubic", "REDS4", REDS, {"000": {"psnr": [26.0, 26.2], "ssim": [0.72, 0.74]},
                                            "011": {"psnr": [26.1, 26.3], "ssim": [0.73, 0.73]}}),
            rows("BasicVSR", "REDS4", REDS, {"000": {"psnr": [31.4, 31.5], "ssim": [0.89, 0.891]},
                                             "011": {"psnr": [31.3, 31.45], "ssim": [0.8905, 0.89]}}),
            rows("copy", "REDS4", REDS, {"000": {"psnr": [math.inf, math.inf], "ssim": [1.0, 1.0]},
                                         "011": {"psnr": [math.inf, math.inf], "ssim": [1.0, 1.0]}}),
            rows("bicubic", "Vid4", VID4, {"calendar": {"psnr": [23.7, 23.8], "ssim": [0.63, 0.64]}}),
            rows("BasicVSR", "Vid4", VID4, {"calendar": {"psnr": [27.2, 27.3], "ssim": [0.82, 0.83]}}),
        ],
        ignore_index=True,
    )


def test_board_values_and_order() -> None:
    board = build_leaderboard(results())
    # ranked on the first metric (PSNR) of the first column group (REDS4), best first
    assert board.index.tolist() == ["copy", "BasicVSR", "bicubic"]
    assert board.columns.tolist() == [("REDS4", "psnr"), ("REDS4", "ssim"), ("Vid4", "psnr"), ("Vid4", "ssim")]
    assert board.loc["bicubic", ("REDS4", "psnr")] == pytest.approx((26.1 + 26.2) / 2, abs=1e-12)
    assert board.loc["BasicVSR", ("Vid4", "ssim")] == pytest.approx(0.825, abs=1e-12)
    assert board.loc["copy", ("REDS4", "psnr")] == 100.0  # inf capped, never inf in a mean
    assert np.isnan(board.loc["copy", ("Vid4", "psnr")])
    assert board.attrs["protocols"] == {"REDS4": [[REDS.name, REDS.hash]], "Vid4": [[VID4.name, VID4.hash]]}
    assert board.attrs["inf_frames"] == [["copy", "REDS4", "psnr", 4, 4, "counted as 100 dB"]]
    shuffled = results().sample(frac=1.0, random_state=np.random.RandomState(0)).reset_index(drop=True)
    pd.testing.assert_frame_equal(build_leaderboard(shuffled), board)


def test_rows_follow_the_rank_on_the_first_column_unscored_and_ground_truth_last() -> None:
    from seeclear_bench.leaderboard import method_order

    table = pd.DataFrame({
        "method": ["b", "a", "c", "ground-truth", "d", "a"],
        "dataset": ["REDS4", "REDS4", "REDS4", "REDS4", "Vid4", "REDS4"],
        "metric": ["psnr", "psnr", "psnr", "psnr", "psnr", "tof"],
        "value": [30.004, 30.001, 31.0, 99.0, 40.0, 0.1],
    })
    # b and a tie as displayed (30.00): by name; d has no REDS4 PSNR; the ground truth is not ranked
    assert method_order(table) == ["c", "a", "b", "d", "ground-truth"]
    tof = table[table["metric"] == "psnr"].assign(metric="tof", value=[0.3, 0.2, 0.25, 0.0, 0.1])
    assert method_order(tof) == ["a", "c", "b", "d", "ground-truth"]  # tOF: lower is better


def test_mixed_protocols_in_one_column_are_refused() -> None:
    mixed = pd.concat([results(), rows("RVRT", "Vid4", REDS, {"calendar": {"psnr": [28.0, 28.1]}})], ignore_index=True)
    with pytest.raises(SeeClearError) as info:
        build_leaderboard(mixed)
    message = str(info.value)
    assert f"Vid4 psnr: rows use protocol 'basicsr-reds4-rgb' ({REDS.hash}) and protocol 'basicsr-vid4-y' ({VID4.hash})" in message
    # A different protocol for another metric of the same dataset is a different column: allowed.
    ok = pd.concat([results(), rows("RVRT", "UDM10", VID4, {"a": {"psnr": [30.0]}}),
                    rows("RVRT", "UDM10", REDS, {"a": {"ssim": [0.9]}})], ignore_index=True)
    assert build_leaderboard(ok).attrs["protocols"]["UDM10"] == sorted([[REDS.name, REDS.hash], [VID4.name, VID4.hash]])


def test_methods_scored_on_different_frames_are_refused() -> None:
    partial = results()
    partial = partial[~((partial["method"] == "bicubic") & (partial["clip"] == "011"))]
    with pytest.raises(SeeClearError, match=r"REDS4 psnr: bicubic was scored on 2 frames but copy on 4 \(clips differing: \['011'\]\)"):
        build_leaderboard(partial)


def test_markdown_is_exact() -> None:
    text = leaderboard_markdown(build_leaderboard(results()), title="VSR x4 (BI)", command="seeclear-bench leaderboard runs/a/frames.parquet")
    assert text == (
        "# VSR x4 (BI)\n"
        "\n"
        f"Protocols: REDS4: `basicsr-reds4-rgb` ({REDS.hash}); Vid4: `basicsr-vid4-y` ({VID4.hash}).\n"
        "Command: `seeclear-bench leaderboard runs/a/frames.parquet`\n"
        "\n"
        "| Method | REDS4 (PSNR↑ / SSIM↑) | Vid4 (PSNR↑ / SSIM↑) |\n"
        "|:---|:---:|:---:|\n"
        "| copy | **100.00** / **1.0000** | – / – |\n"
        "| BasicVSR | <u>31.41</u> / <u>0.8904</u> | **27.25** / **0.8250** |\n"
        "| bicubic | 26.15 / 0.7300 | <u>23.75</u> / <u>0.6350</u> |\n"
        "\n"
        "Best per column in **bold**, second best <u>underlined</u>; ↑ higher is better, ↓ lower is better.\n"
        "- copy, REDS4 PSNR: 4 of 4 frames identical to the ground truth (inf), counted as 100 dB.\n"
    )
    board = build_leaderboard(results())
    assert leaderboard_markdown(board, title="t", command="c") == leaderboard_markdown(board.copy(), title="t", command="c")


def test_markdown_direction_ties_and_escaping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METRICS, "lpips", MetricSpec(name="lpips", higher_better=False, unit="", kind="frame",
                                                     description="test-only lower-is-better metric", decimals=3))
    frames = pd.concat(
        [
            rows("a|b", "D", REDS, {"c": {"lpips": [0.2004]}}),
            rows("tie", "D", REDS, {"c": {"lpips": [0.1996]}}),  # rounds to the same 0.200: shares the mark
            rows("worst", "D", REDS, {"c": {"lpips": [0.4]}}),
            rows("good", "D", REDS, {"c": {"lpips": [0.3]}}),
        ],
        ignore_index=True,
    )
    text = leaderboard_markdown(build_leaderboard(frames), title="t", command=None)
    assert "Command: not recorded." in text
    assert "| Method | D (LPIPS↓) |" in text
    assert "| a\\|b | **0.200** |" in text and "| tie | **0.200** |" in text
    assert "| good | <u>0.300</u> |" in text and "| worst | 0.400 |" in text


def test_single_method_gets_no_marks_and_bad_boards_are_refused() -> None:
    board = build_leaderboard(rows("only", "D", REDS, {"c": {"psnr": [30.0]}}))
    assert "| only | 30.00 |" in leaderboard_markdown(board, title="t", command=None)
    with pytest.raises(SeeClearError, match=r"\(dataset, metric\) columns"):
        leaderboard_markdown(pd.DataFrame({"x": [1.0]}), title="t", command=None)
