"""Protocols: presets pinned field by field and by hash, validation, lookup and frame selection."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics.protocols import PROTOCOLS, Protocol, get_protocol, resolve_protocol

# Golden hashes: a change here relabels every stored result, so it must be deliberate.
GOLDEN_HASHES = {
    "basicsr-reds4-rgb": "4901837f1d35",
    "basicsr-vid4-y": "61716dfe32fe",
    "vimeo90k-t-center-y": "403cb7f49c4e",
    "image-sr-y-crop4": "e0e517d93563",
    "teco-vid4": "83d2e43cfc96",
    "teco-vid4-framemean": "a4433300c3d5",
}


def test_presets_fix_the_conventions() -> None:
    assert set(PROTOCOLS) == set(GOLDEN_HASHES)
    reds, vid4 = PROTOCOLS["basicsr-reds4-rgb"], PROTOCOLS["basicsr-vid4-y"]
    vimeo, image = PROTOCOLS["vimeo90k-t-center-y"], PROTOCOLS["image-sr-y-crop4"]
    assert (reds.channel, reds.crop_border, reds.frame_selection) == ("rgb", 0, "all")
    assert (vid4.channel, vid4.crop_border, vid4.frame_selection) == ("y", 0, "all")
    assert (vimeo.channel, vimeo.crop_border, vimeo.frame_selection) == ("y", 0, "center")
    assert (image.channel, image.crop_border, image.frame_selection) == ("y", 4, "all")
    teco, teco_frames = PROTOCOLS["teco-vid4"], PROTOCOLS["teco-vid4-framemean"]
    assert (teco.channel, teco.crop, teco.aggregation) == ("y", "teco-32", "clip-mean")
    assert (teco_frames.crop, teco_frames.aggregation) == ("teco-32", "frame-mean")
    for proto in PROTOCOLS.values():
        assert proto.rounding == "uint8" and proto.data_range == 255
        assert proto.inf_policy == "cap" and proto.psnr_cap == 100.0
        assert proto.aggregation == ("frame-mean" if proto.name.endswith("framemean") else "clip-mean")


def test_hash_is_short_sha256_of_canonical_json() -> None:
    for name, proto in PROTOCOLS.items():
        fields = {k: v for k, v in proto.to_dict().items() if not (k == "crop" and v == "border")}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        assert proto.hash == hashlib.sha256(canonical.encode()).hexdigest()[:12] == GOLDEN_HASHES[name]
    assert len({p.hash for p in PROTOCOLS.values()}) == len(PROTOCOLS)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "other"}, {"channel": "y"}, {"crop_border": 2}, {"frame_selection": "center"},
        {"aggregation": "frame-mean"}, {"inf_policy": "exclude"}, {"psnr_cap": 80.0}, {"crop": "teco-32"},
    ],
)
def test_every_field_changes_the_hash(change: dict) -> None:
    base = get_protocol("basicsr-reds4-rgb")
    assert dataclasses.replace(base, **change).hash != base.hash


def test_equal_values_hash_equally_and_round_trip() -> None:
    a = Protocol(name="x", channel="y", psnr_cap=100)
    b = Protocol(name="x", channel="y", psnr_cap=100.0)
    assert a == b and a.hash == b.hash and isinstance(a.psnr_cap, float)
    for proto in PROTOCOLS.values():
        assert Protocol.from_dict(proto.to_dict()) == proto
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.channel = "rgb"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channel": "ycbcr"}, r"channel must be one of \['rgb', 'y'\], got 'ycbcr'"),
        ({"channel": "rgb", "frame_selection": "centre"}, r"did you mean 'center'"),
        ({"channel": "rgb", "aggregation": "mean"}, r"aggregation must be one of"),
        ({"channel": "rgb", "inf_policy": "drop"}, r"inf_policy must be one of"),
        ({"channel": "rgb", "rounding": "none"}, r"rounding must be one of \['uint8'\]"),
        ({"channel": "rgb", "crop_border": -1}, r"crop_border must be an int >= 0, got -1"),
        ({"channel": "rgb", "crop_border": 2.0}, r"crop_border must be an int"),
        ({"channel": "rgb", "data_range": 1}, r"data_range must be 255"),
        ({"channel": "rgb", "psnr_cap": float("inf")}, r"psnr_cap must be a finite number > 0"),
        ({"channel": "rgb", "psnr_cap": 0}, r"psnr_cap must be a finite number > 0"),
    ],
)
def test_invalid_fields_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(SeeClearError, match=match):
        Protocol(name="bad", **kwargs)


def test_lookup_errors_suggest_close_names() -> None:
    assert get_protocol("basicsr-vid4-y") is PROTOCOLS["basicsr-vid4-y"]
    with pytest.raises(SeeClearError, match=r"unknown protocol 'basicsr-vid4-Y'.*did you mean 'basicsr-vid4-y'"):
        get_protocol("basicsr-vid4-Y")
    with pytest.raises(SeeClearError, match=r"unknown protocol field 'chanel'.*did you mean 'channel'"):
        Protocol.from_dict({"name": "x", "chanel": "y"})


def test_frame_selection() -> None:
    assert get_protocol("basicsr-reds4-rgb").frame_indices(4) == [0, 1, 2, 3]
    assert get_protocol("vimeo90k-t-center-y").frame_indices(7) == [3]  # the 4th frame of a septuplet
    assert get_protocol("vimeo90k-t-center-y").frame_indices(14) == [7]  # flipped 14-frame sequences
    with pytest.raises(SeeClearError, match="at least one frame"):
        get_protocol("basicsr-vid4-y").frame_indices(0)


def test_resolve_protocol_checks_name_and_hash() -> None:
    reds = get_protocol("basicsr-reds4-rgb")
    assert resolve_protocol(reds.name, reds.hash) is reds
    custom = Protocol(name="teco-y-frame-mean", channel="y", aggregation="frame-mean")
    assert resolve_protocol(custom.name, custom.hash, [custom]) is custom
    with pytest.raises(SeeClearError, match=r"no known protocol has.*pass the custom Protocol"):
        resolve_protocol(custom.name, custom.hash)
    with pytest.raises(SeeClearError, match=r"preset 'basicsr-reds4-rgb' now hashes to 4901837f1d35"):
        resolve_protocol("basicsr-reds4-rgb", "000000000000")
    with pytest.raises(SeeClearError, match=r"belongs to protocol 'basicsr-reds4-rgb'"):
        resolve_protocol("basicsr-vid4-y", reds.hash)


def test_teco_crop_is_applied_before_psnr() -> None:
    import numpy as np

    from seeclear_bench.metrics.protocols import teco_crop_box
    from seeclear_bench.metrics.registry import compute_frame_metrics

    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[:, :8] = 0  # damage only the border TecoGAN's box leaves out
    assert teco_crop_box(64, 96) == (16, 16, 32, 64)
    values = compute_frame_metrics(pred, gt, metrics=["psnr"], protocol=get_protocol("teco-vid4"))["psnr"]
    assert np.isinf(values).all()
    border = compute_frame_metrics(pred, gt, metrics=["psnr"], protocol=get_protocol("basicsr-vid4-y"))["psnr"]
    assert np.isfinite(border).all()
