"""Several protocols per dataset: the spec forms, each frame scored once per protocol, protocol-free metrics once,
no conflict when the protocols were asked for together, and the terminal summary's width."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seeclear_bench.config import RunConfig
from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import get_protocol
from seeclear_bench.metrics.registry import same_values_under
from seeclear_bench.metrics.scoring import score_clip
from seeclear_bench.metrics.tables import clip_table, dataset_table, frame_rows, summary_text
from seeclear_bench.report.merge import merge_results
from seeclear_bench.stages import score_with_reuse

RGB, Y = "basicsr-reds4-rgb", "basicsr-vid4-y"
SPEC = """
name = "t"
[data]
sources = [{ name = "REDS4", url = "/data/reds", layout = "reds" }, { name = "Vid4", url = "/data/vid4", layout = "vid4" }]
"""


def test_a_spec_gives_a_dataset_one_protocol_or_a_list():
    cfg = RunConfig.from_toml(SPEC + f'[evaluate]\nprotocol = ["{RGB}", "{Y}"]\nprotocols = {{ Vid4 = "{Y}" }}\n')
    assert cfg.evaluate.protocols_for("REDS4") == (RGB, Y) and cfg.evaluate.protocols_for("Vid4") == (Y,)
    one = RunConfig.from_toml(SPEC + f'[evaluate]\nprotocols = {{ Vid4 = ["{Y}", "{RGB}"] }}\n')
    assert one.evaluate.protocols_for("REDS4") == (RGB,) and one.evaluate.protocols_for("Vid4") == (Y, RGB)
    for bad, message in ((f'protocols = {{ Vid4 = ["{Y}", "{Y}"] }}', "evaluate.protocols.Vid4 lists a protocol twice"),
                         ("protocol = []", "evaluate.protocol names no protocol"),
                         ("protocol = 3", "evaluate.protocol must be str or a list, got int 3"),
                         ('protocol = ["basicsr-vid4"]', "unknown protocol 'basicsr-vid4'")):
        with pytest.raises(SeeClearError, match=message):
            RunConfig.from_toml(SPEC + f"[evaluate]\n{bad}\n")


def test_which_metrics_one_protocol_gives_for_another():
    rgb, y = get_protocol(RGB), get_protocol(Y)
    assert same_values_under("psnr", rgb) != same_values_under("psnr", y)  # the colour channel changes PSNR
    assert same_values_under("tof", rgb) == same_values_under("tof", y)  # tOF fixes its own colour and crop
    assert same_values_under("tof", rgb) != same_values_under("psnr", rgb)
    clip_mean, frame_mean = get_protocol("teco-vid4"), get_protocol("teco-vid4-framemean")
    assert clip_mean.aggregation != frame_mean.aggregation  # a dataset mean taken another way is another number
    assert same_values_under("tof", clip_mean) != same_values_under("tof", frame_mean)


def test_one_clip_under_two_protocols_decodes_once_and_scores_tof_once(tmp_path):
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-12, 13, gt.shape), 0, 255).astype(np.uint8)
    loads = []

    def load():
        loads.append(1)
        return pred

    rows = score_with_reuse(None, dataset="d", clip="c", gt=("g", lambda: gt), preds={"m": ("p", load)},
                            metrics=["psnr", "ssim", "tof"], protocols=[RGB, Y])
    assert len(loads) == 1
    by = rows.groupby("protocol")["metric"].unique().map(sorted).to_dict()
    assert by == {RGB: ["psnr", "ssim", "tof"], Y: ["psnr", "ssim"]}
    for name in (RGB, Y):  # each protocol's rows are what scoring under it alone gives
        alone = score_clip({"m": pred}, gt, dataset="d", clip="c", metrics=["psnr", "ssim"], protocol=get_protocol(name))
        mine = rows[(rows["protocol"] == name) & rows["metric"].isin(["psnr", "ssim"])]
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), alone.reset_index(drop=True))
    # the order of the list decides where tOF goes
    flipped = score_with_reuse(None, dataset="d", clip="c", gt=("g", lambda: gt), preds={"m": ("p", lambda: pred)},
                               metrics=["tof"], protocols=[Y, RGB])
    assert set(flipped["protocol"]) == {Y}


def _rows(method: str, protocol: str, value: float) -> pd.DataFrame:
    return frame_rows(method=method, dataset="Vid4", clip="calendar", values={"psnr": np.array([value, value])},
                      protocol=get_protocol(protocol))


def test_protocols_asked_for_together_are_two_column_groups_without_a_conflict():
    together = pd.concat([_rows("a", RGB, 25.0), _rows("a", Y, 26.5)], ignore_index=True)
    merged = merge_results([("run.parquet", together)])
    assert len(merged.groups) == 2 and merged.conflicts == ()
    # the same two protocols from two evaluations that each chose one: a conflict, reported
    apart = merge_results([("rgb.parquet", _rows("b", RGB, 25.0)), ("y.parquet", _rows("b", Y, 26.5))])
    assert len(apart.groups) == 2 and len(apart.conflicts) == 1 and "2 protocols" in apart.conflicts[0]


def test_the_evaluate_summary_fits_100_columns():
    metrics = ["psnr", "ssim", "lpips", "lpips-vgg", "dists", "tof", "tlp", "niqe", "musiq", "clipiqa"]
    values = {m: np.linspace(0.1, 0.9, 4) for m in metrics}
    frames = pd.concat([frame_rows(method="a-rather-long-method-name", dataset="REDS4", clip=f"{c:03d}",
                                   values=values, protocol=get_protocol(p)) for c in range(3) for p in (RGB, Y)],
                       ignore_index=True)
    text = summary_text(dataset_table(clip_table(frames), frames))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert RGB in text and Y in text and "PSNR↑" in text and "0.5000" in text
