"""What the leaderboard adds: ranks and marks against a reference computation (and the Markdown's bold/underline),
intervals plumbed from the bootstrap, paired verdicts in each metric's direction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.leaderboard import build_leaderboard, leaderboard_markdown
from seeclear_bench.metrics.intervals import (
    bootstrap_mean_ci,
    dataset_intervals,
    interval_rng,
    paired_comparison,
)
from seeclear_bench.metrics.scoring import GT_METHOD
from seeclear_bench.metrics.tables import clip_table, dataset_table
from seeclear_bench.report.ranking import paired_verdicts, rank_values, score_table


def reference_ranks(values, higher_better, decimals, ranked):
    """Independent loop: rank = 1 + number of distinct better displayed values among ranked rows."""
    shown = [round(v, decimals) if ok and np.isfinite(v) else None for v, ok in zip(values, ranked)]
    pool = sorted({v for v in shown if v is not None})
    out = []
    for v in shown:
        if v is None:
            out.append(None)
        else:
            out.append(1 + sum(1 for u in pool if (u > v if higher_better else u < v)))
    return out


@pytest.mark.parametrize("higher_better", [True, False])
def test_rank_values_match_a_reference_loop(higher_better):
    rng = np.random.default_rng(7)
    for _ in range(50):
        values = rng.choice([26.004, 26.001, 25.5, 27.0, 24.123, np.nan], size=rng.integers(1, 8))
        ranked = rng.random(len(values)) > 0.2
        ranks, marks = rank_values(values, higher_better=higher_better, decimals=2, ranked=ranked)
        expected = reference_ranks(values, higher_better, 2, ranked)
        assert [None if np.isnan(r) else int(r) for r in ranks] == expected
        distinct = len({round(v, 2) for v, ok in zip(values, ranked) if ok and np.isfinite(v)})
        for rank, mark in zip(expected, marks):
            want = "" if rank is None or distinct < 2 or rank > 2 else ("best" if rank == 1 else "second")
            assert mark == want


def test_rank_values_examples():
    ranks, marks = rank_values(np.array([30.004, 30.001, 29.0, np.nan]), higher_better=True, decimals=2)
    assert ranks[:3].tolist() == [1, 1, 2] and np.isnan(ranks[3])  # 30.00 twice: a tie as displayed
    assert marks == ["best", "best", "second", ""]
    ranks, marks = rank_values(np.array([0.3, 0.1, 0.2]), higher_better=False, decimals=4,
                               ranked=np.array([True, False, True]))
    assert np.isnan(ranks[1]) and ranks[[0, 2]].tolist() == [2, 1] and marks == ["second", "", "best"]
    ranks, marks = rank_values(np.array([12.0]), higher_better=True, decimals=2)
    assert ranks.tolist() == [1] and marks == [""]  # a single method has nobody to beat


def _results(make_table):
    return pd.concat([
        make_table("bicubic", "REDS4", {"000": {"psnr": [26.0, 26.2], "ssim": [0.72, 0.74]},
                                        "011": {"psnr": [24.1, 24.3], "ssim": [0.70, 0.71]},
                                        "015": {"psnr": [28.0, 28.4], "ssim": [0.80, 0.82]}}),
        make_table("BasicVSR", "REDS4", {"000": {"psnr": [31.4, 31.5], "ssim": [0.89, 0.891]},
                                         "011": {"psnr": [29.3, 29.45], "ssim": [0.87, 0.86]},
                                         "015": {"psnr": [33.0, 33.2], "ssim": [0.93, 0.94]}}),
        make_table("lanczos", "REDS4", {"000": {"psnr": [26.3, 26.5], "ssim": [0.73, 0.745]},
                                        "011": {"psnr": [24.3, 24.5], "ssim": [0.705, 0.72]},
                                        "015": {"psnr": [28.2, 28.6], "ssim": [0.81, 0.83]}}),
        make_table(GT_METHOD, "REDS4", {"000": {"psnr": [40.0, 40.0], "ssim": [1.0, 1.0]},
                                        "011": {"psnr": [40.0, 40.0], "ssim": [1.0, 1.0]},
                                        "015": {"psnr": [40.0, 40.0], "ssim": [1.0, 1.0]}}),
    ], ignore_index=True)


def test_score_table_values_intervals_ranks_and_markdown_agree(make_table):
    frames = _results(make_table)
    clips = clip_table(frames)
    datasets = dataset_table(clips, frames)
    intervals = dataset_intervals(clips, seed=3)
    scores = score_table(datasets, intervals, unranked=[GT_METHOD]).set_index(["metric", "method"])
    assert scores.loc[("psnr", "BasicVSR"), "value"] == pytest.approx(np.mean([31.45, 29.375, 33.1]), abs=1e-12)
    assert scores.loc[("psnr", "BasicVSR"), ["rank", "mark"]].tolist() == [1, "best"]
    assert scores.loc[("psnr", "lanczos"), ["rank", "mark"]].tolist() == [2, "second"]
    assert scores.loc[("psnr", "bicubic"), ["rank", "mark"]].tolist() == [3, ""]
    assert np.isnan(scores.loc[("psnr", GT_METHOD), "rank"]) and scores.loc[("psnr", GT_METHOD), "mark"] == ""
    # the interval is the bootstrap of the clip means, seeded by the group's names (method, dataset, metric, protocol)
    lanczos_ssim = clips[(clips["method"] == "lanczos") & (clips["metric"] == "ssim")].sort_values("clip")
    names = ("lanczos", "REDS4", "ssim", "basicsr-reds4-rgb", lanczos_ssim["protocol_hash"].iloc[0])
    low, high = bootstrap_mean_ci(lanczos_ssim["value"].to_numpy(), rng=interval_rng(3, "interval", *names))
    assert scores.loc[("ssim", "lanczos"), ["ci_low", "ci_high"]].tolist() == [low, high]
    assert low <= scores.loc[("ssim", "lanczos"), "value"] <= high
    # the Markdown leaderboard bolds exactly the "best" cells and underlines the "second" ones
    text = leaderboard_markdown(build_leaderboard(frames), title="t", command=None)
    for method in ("bicubic", "BasicVSR", "lanczos", GT_METHOD):
        line = next(row for row in text.splitlines() if row.startswith(f"| {method} |"))
        cells = line.split("|")[2].split(" / ")
        for cell, metric in zip(cells, ("psnr", "ssim")):
            mark = scores.loc[(metric, method), "mark"]
            assert cell.strip().startswith("**") == (mark == "best")
            assert cell.strip().startswith("<u>") == (mark == "second")
    assert list(scores.index.get_level_values("metric")) == ["psnr"] * 4 + ["ssim"] * 4  # registry order


def test_paired_verdicts_follow_each_metrics_direction():
    paired = pd.DataFrame({
        "dataset": ["D"] * 4, "metric": ["psnr", "psnr", "tof", "tof"], "method": ["a", "b", "a", "b"],
        "reference": ["r"] * 4, "difference": [0.5, -0.5, -0.1, 0.1], "ci_low": [0.1, -0.9, -0.2, -0.05],
        "ci_high": [0.9, -0.1, -0.05, 0.3], "n_clips": [4] * 4, "significant": [True, True, True, False],
        "level": [0.95] * 4,
    })
    assert paired_verdicts(paired)["verdict"].tolist() == ["better", "worse", "better", "no significant difference"]


def test_paired_comparison_and_verdict_on_real_clips(make_table):
    clips = clip_table(_results(make_table))
    paired = paired_verdicts(paired_comparison(clips[clips["method"] != GT_METHOD], reference="bicubic", seed=0))
    row = paired[(paired["method"] == "BasicVSR") & (paired["metric"] == "psnr")].iloc[0]
    assert row["difference"] == pytest.approx(np.mean([31.45 - 26.1, 29.375 - 24.2, 33.1 - 28.2]), abs=1e-12)
    assert row["verdict"] == "better"
    assert set(paired["verdict"]) <= {"better", "worse", "no significant difference"}
