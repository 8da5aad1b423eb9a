"""Bootstrap intervals against a reference computation written out loop by loop, and the paired comparison."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.intervals import bootstrap_mean_ci, dataset_intervals, paired_comparison


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
