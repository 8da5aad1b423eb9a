"""Spec parsing: types, unknown keys with suggestions, hashing, the embedded demo spec."""
from __future__ import annotations

import dataclasses

import pytest

from seeclear_bench.config import RunConfig, spec_hash
from seeclear_bench.errors import SeeClearError

MINIMAL = """
name = "t"
seed = 3
[[data.sources]]
name = "clips"
url = "/tmp/nowhere"
"""


def test_minimal_spec_defaults():
    cfg = RunConfig.from_toml(MINIMAL)
    assert cfg.seed == 3
    assert cfg.data.sources[0].name == "clips"
    assert cfg.degrade.kind == "bicubic" and cfg.degrade.scale == 4
    assert cfg.stages == ("prepare", "upscale", "evaluate", "report")
    assert cfg.methods.names == ("bicubic", "lanczos")


def test_unknown_key_suggests_closest():
    with pytest.raises(SeeClearError, match=r"unknown key 'degrade.scal' \(did you mean 'scale'\?\)"):
        RunConfig.from_toml(MINIMAL + "[degrade]\nscal = 4\n")


def test_unknown_top_level_table():
    with pytest.raises(SeeClearError, match=r"unknown key 'shard' \(did you mean 'shards'\?\)"):
        RunConfig.from_toml(MINIMAL + "[shard]\nwindow = 5\n")


def test_wrong_type_names_key():
    with pytest.raises(SeeClearError, match=r"shards.window must be int, got str '5'"):
        RunConfig.from_toml(MINIMAL + "[shards]\nwindow = \"5\"\n")


def test_bad_literal_suggests():
    with pytest.raises(SeeClearError, match=r"degrade.kind must be one of .* got 'bicubc' \(did you mean 'bicubic'\?\)"):
        RunConfig.from_toml(MINIMAL + "[degrade]\nkind = \"bicubc\"\n")


def test_unknown_method_and_metric():
    with pytest.raises(SeeClearError, match=r"unknown method 'lanczoz'.*did you mean 'lanczos'"):
        RunConfig.from_toml(MINIMAL + "[methods]\nnames = [\"lanczoz\"]\n")
    with pytest.raises(SeeClearError, match=r"unknown metric 'psnrr'.*did you mean 'psnr'"):
        RunConfig.from_toml(MINIMAL + "[evaluate]\nmetrics = [\"psnrr\"]\n")


def test_unknown_protocol_suggests():
    with pytest.raises(SeeClearError, match=r"basicsr-vid4-y"):
        RunConfig.from_toml(MINIMAL + "[evaluate]\nprotocol = \"basicsr-vid4\"\n")


def test_stages_must_be_in_order_and_valid():
    with pytest.raises(SeeClearError, match="pipeline order"):
        RunConfig.from_toml('stages = ["evaluate", "prepare"]\n' + MINIMAL.replace('name = "t"\n', ""))
    with pytest.raises(SeeClearError, match=r"stages\[0\] must be one of"):
        RunConfig.from_toml('stages = ["prep"]\n' + MINIMAL.replace('name = "t"\n', ""))


def test_infer_is_the_one_predict_stage_upscale():
    """``infer`` (SeeClear's old whole-video stage) now names the one predict stage: read as ``upscale``, once."""
    body = MINIMAL.replace('name = "t"\n', "") + '[methods]\nnames = ["bicubic", "seeclear"]\n' \
        '[methods.seeclear]\ncheckpoint = "builtin:seeclear-tiny-demo"\n'
    both = RunConfig.from_toml('stages = ["prepare", "upscale", "infer", "evaluate"]\n' + body)
    alone = RunConfig.from_toml('stages = ["prepare", "infer", "evaluate"]\n' + body)
    assert both.stages == alone.stages == ("prepare", "upscale", "evaluate")
    assert both.methods.seeclear.steps == 0  # the checkpoint's own steps unless the spec says otherwise
    with pytest.raises(SeeClearError, match=r"^stages lists 'infer', which is the 'upscale' stage: .* lack "
                                            r"'seeclear'; add 'seeclear' to methods.names"):
        RunConfig.from_toml('stages = ["prepare", "infer"]\n' + MINIMAL.replace('name = "t"\n', ""))


def test_predicted_datasets_leave_out_training_data():
    spec = {"stages": ["prepare", "train", "upscale", "evaluate"], "train": {"datasets": ["a"]},
            "data": {"sources": [{"name": "a", "url": "demo"}, {"name": "b", "url": "demo"}]}}
    assert RunConfig.from_dict(spec).predicted_datasets() == ("b",)
    assert RunConfig.from_dict({**spec, "infer": {"datasets": ["a", "b"]}}).predicted_datasets() == ("a", "b")
    assert RunConfig.from_dict({**spec, "stages": ["prepare", "upscale"]}).predicted_datasets() == ("a", "b")


def test_missing_required_key():
    with pytest.raises(SeeClearError, match="missing required key.*url"):
        RunConfig.from_toml('[[data.sources]]\nname = "x"\n')


def test_invalid_toml_is_one_line():
    with pytest.raises(SeeClearError, match="not valid TOML"):
        RunConfig.from_toml("name = \n")


def test_realistic_overrides_validated():
    with pytest.raises(SeeClearError, match=r"unknown key degrade.realistic.nosie"):
        RunConfig.from_toml(MINIMAL + "[degrade]\nkind = \"realistic\"\n[degrade.realistic]\nnosie = 1\n")


def test_hash_is_stable_and_sensitive():
    a = RunConfig.from_toml(MINIMAL)
    b = RunConfig.from_toml(MINIMAL)
    assert spec_hash(a) == spec_hash(b) and len(spec_hash(a)) == 16
    c = dataclasses.replace(a, seed=4)
    assert spec_hash(c) != spec_hash(a)


def test_round_trip_through_dict():
    cfg = RunConfig.demo()
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg and spec_hash(again) == spec_hash(cfg)


def test_demo_spec_ships_in_package():
    cfg = RunConfig.demo()
    assert cfg.data.sources and all(s.url == "demo" for s in cfg.data.sources)
    assert set(cfg.methods.names) >= {"bicubic", "lanczos"}
