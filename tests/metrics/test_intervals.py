"""Bootstrap intervals against a reference computation written out loop by loop, and the paired comparison."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.intervals import bootstrap_mean_ci, dataset_intervals, interval_rng, paired_comparison


def _reference_ci(values, n_boot, level, rng):
    means = []
    index = rng.integers(0, len(values), size=(n_boot, len(values)))
    for row in index:
        means.append(sum(values[j] for j in row) / len(values))
    means.sort()
    # numpy's default quantile: linear interpolation between order statistics
    def q(p):
        pos = p * (len(means) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)
    alpha = (1 - level) / 2
    return q(alpha), q(1 - alpha)


def test_bootstrap_matches_loop_reference():
    values = np.array([26.1, 27.9, 24.3, 29.0, 25.5])
    got = bootstrap_mean_ci(values, n_boot=500, level=0.9, rng=np.random.default_rng(4))
    want = _reference_ci(list(values), 500, 0.9, np.random.default_rng(4))
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] < values.mean() < got[1]


def test_bootstrap_edge_cases():
    assert bootstrap_mean_ci(np.array([3.0]), rng=np.random.default_rng(0)) == (3.0, 3.0)
    with pytest.raises(SeeClearError, match="finite"):
        bootstrap_mean_ci(np.array([1.0, np.inf]), rng=np.random.default_rng(0))


def _clips(values_by_method):
    rows = []
    for method, values in values_by_method.items():
        for i, v in enumerate(values):
            rows.append({"method": method, "dataset": "d", "clip": f"{i:03d}", "metric": "psnr", "value": v,
                         "protocol": "basicsr-reds4-rgb", "protocol_hash": "4901837f1d35"})
    return pd.DataFrame(rows)


def test_dataset_intervals_cover_the_mean_and_are_reproducible():
    table = _clips({"a": [25.0, 26.0, 27.0, 28.0], "b": [24.0, 24.5, 25.0, 25.5]})
    first, again = dataset_intervals(table, seed=1), dataset_intervals(table, seed=1)
    pd.testing.assert_frame_equal(first, again)
    row = first[first["method"] == "a"].iloc[0]
    assert row["mean"] == pytest.approx(26.5) and row["ci_low"] <= 26.5 <= row["ci_high"] and row["n_clips"] == 4


def test_paired_comparison_sees_a_consistent_gain():
    table = _clips({"ref": [25.0, 27.0, 23.0, 29.0], "better": [25.3, 27.4, 23.2, 29.5], "same": [25.1, 26.9, 23.1, 28.9]})
    out = paired_comparison(table, reference="ref", n_boot=1000).set_index("method")
    assert out.loc["better", "difference"] == pytest.approx(0.35)
    assert bool(out.loc["better", "significant"]) and out.loc["better", "ci_low"] > 0
    assert not bool(out.loc["same", "significant"])  # +0.1, -0.1, +0.1, -0.1: no consistent gain


def test_paired_comparison_refuses_different_clips():
    table = _clips({"ref": [25.0, 27.0, 23.0], "other": [25.0, 27.0]})
    with pytest.raises(SeeClearError, match="same clips"):
        paired_comparison(table, reference="ref")
    with pytest.raises(SeeClearError, match="reference method 'nope'"):
        paired_comparison(table, reference="nope")


def _long(method, dataset, metric, values, protocol=("basicsr-reds4-rgb", "4901837f1d35")):
    return pd.DataFrame([{"method": method, "dataset": dataset, "clip": f"{i:03d}", "metric": metric, "value": v,
                          "protocol": protocol[0], "protocol_hash": protocol[1]} for i, v in enumerate(values)])


LANCZOS_SSIM = [0.68, 0.94, 0.81, 0.77, 0.88, 0.71, 0.9, 0.62]  # 8 clips: few ties among bootstrap means


def test_interval_depends_on_names_not_on_position_in_the_table():
    """A run's report and a merged leaderboard with more rows give a group the same interval (issue 11, 3)."""
    alone = _long("lanczos", "REDS4", "ssim", LANCZOS_SSIM)
    merged = pd.concat([
        _long("bicubic", "REDS4", "ssim", [0.6, 0.9, 0.7, 0.75]),  # sorts before lanczos
        _long("lanczos", "REDS4", "psnr", [26.0, 29.0, 27.0, 28.0]),  # same method and dataset, other metric
        _long("lanczos", "REDS", "ssim", [0.5, 0.6, 0.7, 0.8]),  # same method and metric, another dataset
        _long("EDVR", "Vid4", "ssim", [0.7, 0.8, 0.9]),
        alone,
    ], ignore_index=True)
    for seed in (0, 7):
        one = dataset_intervals(alone, seed=seed).iloc[0]
        many = dataset_intervals(merged, seed=seed).set_index(["method", "dataset", "metric"]).loc[
            ("lanczos", "REDS4", "ssim")]
        assert (one["ci_low"], one["ci_high"]) == (many["ci_low"], many["ci_high"])
        want = bootstrap_mean_ci(np.array(LANCZOS_SSIM), rng=interval_rng(
            seed, "interval", "lanczos", "REDS4", "ssim", "basicsr-reds4-rgb", "4901837f1d35"))
        assert (one["ci_low"], one["ci_high"]) == want
    shuffled = merged.sample(frac=1.0, random_state=np.random.RandomState(1)).reset_index(drop=True)
    pd.testing.assert_frame_equal(dataset_intervals(shuffled, seed=3), dataset_intervals(merged, seed=3))


def test_paired_interval_depends_on_names_not_on_position_in_the_table():
    ref = [25.0, 27.0, 23.0, 29.0, 26.0, 24.5, 28.0, 22.0]
    gain = [25.4, 27.1, 23.6, 29.2, 26.05, 24.9, 28.3, 22.1]
    alone = pd.concat([_long("bicubic", "REDS4", "psnr", ref), _long("lanczos", "REDS4", "psnr", gain)],
                      ignore_index=True)
    merged = pd.concat([
        _long("bicubic", "DAVIS", "psnr", [20.0, 21.0]),  # a (dataset, metric) group that sorts first
        _long("EDVR", "DAVIS", "psnr", [22.0, 23.5]),
        _long("BasicVSR", "REDS4", "psnr", [26.0, 28.5, 24.0, 30.0, 27.0, 25.0, 29.0, 23.0]),  # listed before lanczos
        alone,
        _long("bicubic", "REDS4", "ssim", [0.7, 0.8, 0.6, 0.9, 0.7, 0.8, 0.6, 0.9]),
        _long("lanczos", "REDS4", "ssim", [0.72, 0.81, 0.62, 0.9, 0.71, 0.8, 0.63, 0.92]),
    ], ignore_index=True)
    key = ["dataset", "metric", "method"]
    one = paired_comparison(alone, reference="bicubic", seed=5).set_index(key).loc[("REDS4", "psnr", "lanczos")]
    many = paired_comparison(merged, reference="bicubic", seed=5).set_index(key).loc[("REDS4", "psnr", "lanczos")]
    assert (one["ci_low"], one["ci_high"]) == (many["ci_low"], many["ci_high"])
    diff = np.array(gain) - np.array(ref)
    assert (one["ci_low"], one["ci_high"]) == bootstrap_mean_ci(
        diff, rng=interval_rng(5, "paired", "REDS4", "psnr", "lanczos", "bicubic"))


def test_interval_rng_streams():
    draw = lambda seed, *names: interval_rng(seed, *names).integers(0, 1 << 30, 4).tolist()  # noqa: E731
    assert draw(0, "a", "b") == draw(0, "a", "b")
    assert draw(0, "a", "b") != draw(1, "a", "b")
    assert draw(0, "ab", "c") != draw(0, "a", "bc")  # names are not simply concatenated
    assert draw(0, "a", "b") != draw(0, "b", "a")
    with pytest.raises(SeeClearError, match="non-negative integer"):
        interval_rng(-1, "a")
