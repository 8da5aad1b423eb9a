"""The local weight cache: where files are looked for, the missing-file error, fetch's checksum gate, list_weights."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch.hub

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import weights


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch home; returns torch's hub directory inside it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub"


def _payload(tmp_path: Path, content: bytes = b"test-made weights \x00\x01\x02" * 100) -> tuple[str, str]:
    source = tmp_path / "mirror" / "file.bin"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(content)
    return source.as_uri(), hashlib.sha256(content).hexdigest()


def _with_sha(monkeypatch: pytest.MonkeyPatch, name: str, sha256: str | None) -> None:
    monkeypatch.setitem(weights.WEIGHTS, name, dataclasses.replace(weights.WEIGHTS[name], sha256=sha256))


def test_backend_layout_is_honoured(hub: Path) -> None:
    assert weights.cache_roots() == [hub]
    assert weights.candidate_paths("vgg16") == [hub / "checkpoints" / "vgg16-397923af.pth"]
    assert weights.candidate_paths("dists") == [hub / "pyiqa" / "DISTS_weights-f5e65c96.pth"]
    assert weights.candidate_paths("clip-rn50") == [hub / "clip" / "RN50.pt"]
    heads = weights.candidate_paths("lpips-alex-v0.1")[0]
    assert heads.parts[-4:] == ("lpips", "weights", "v0.1", "alex.pth")


def test_seeclear_weights_comes_first_and_the_hub_still_counts(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "own"
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(own))
    assert weights.candidate_paths("alexnet") == [
        own / "checkpoints" / "alexnet-owt-7be5be79.pth",
        hub / "checkpoints" / "alexnet-owt-7be5be79.pth",
    ]
    existing = hub / "checkpoints" / "alexnet-owt-7be5be79.pth"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"x")
    assert weights.locate("alexnet") == existing  # a user's existing torch cache works
    preferred = own / "checkpoints" / "alexnet-owt-7be5be79.pth"
    preferred.parent.mkdir(parents=True)
    preferred.write_bytes(b"y")
    assert weights.locate("alexnet") == preferred


def test_missing_weights_name_metric_file_directory_and_command(hub: Path) -> None:
    with pytest.raises(SeeClearError) as info:
        weights.locate("vgg16")
    message = str(info.value)
    assert "\n" not in message
    for needle in ("lpips-vgg", "dists", "vgg16-397923af.pth", str(hub / "checkpoints"), "seeclear-bench weights fetch vgg16"):
        assert needle in message


def test_unknown_weights_suggest_the_closest(hub: Path) -> None:
    with pytest.raises(SeeClearError, match="did you mean 'alexnet'"):
        weights.locate("alexnett")


@pytest.mark.parametrize("name", ["alexnet", "dists", "clip-rn50"])
def test_fetch_verifies_installs_and_records(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    url, digest = _payload(tmp_path)
    _with_sha(monkeypatch, name, digest[:8] if name == "alexnet" else digest)  # a prefix as torchvision publishes
    path = weights.fetch(name, url=url)
    assert path == weights.candidate_paths(name)[0] and path.read_bytes() == Path(url.removeprefix("file://")).read_bytes()
    registry = json.loads((path.parent / weights.REGISTRY_NAME).read_text())
    assert registry[path.name]["sha256"] == digest and registry[path.name]["name"] == name
    assert weights.locate(name) == path
    assert sorted(os.listdir(path.parent)) == sorted([path.name, weights.REGISTRY_NAME])  # no temporary left behind


def test_fetch_refuses_a_checksum_mismatch_and_writes_nothing(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, digest = _payload(tmp_path)
    _with_sha(monkeypatch, "vgg16", "0" * 64)
    with pytest.raises(SeeClearError, match=f"sha256 {digest}, expected 0000") as info:
        weights.fetch("vgg16", url=url)
    assert "refusing" in str(info.value)
    target_dir = hub / "checkpoints"
    assert not target_dir.exists() or os.listdir(target_dir) == []
    with pytest.raises(SeeClearError, match="vgg16-397923af.pth"):
        weights.locate("vgg16")


def test_fetch_unknown_digest_still_records_and_keeps_existing_files(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, digest = _payload(tmp_path)
    _with_sha(monkeypatch, "dists", None)
    path = weights.fetch("dists", url=url)
    assert weights.recorded_sha256(path) == digest
    # Present and not forced: no download happens (the URL would fail).
    assert weights.fetch("dists", url=(tmp_path / "gone.bin").as_uri()) == path
    new_url, new_digest = _payload(tmp_path, b"second version")
    assert weights.fetch("dists", url=new_url, force=True).read_bytes() == b"second version"
    assert weights.recorded_sha256(path) == new_digest


def test_fetch_reports_an_unreachable_source(hub: Path, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere" / "x.pth").as_uri()
    with pytest.raises(SeeClearError, match="cannot download weights 'alexnet'") as info:
        weights.fetch("alexnet", url=missing)
    assert str(hub / "checkpoints" / "alexnet-owt-7be5be79.pth") in str(info.value)


def test_list_weights_reports_presence_and_verification(hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, digest = _payload(tmp_path)
    _with_sha(monkeypatch, "alexnet", digest[:8])
    _with_sha(monkeypatch, "dists", None)
    weights.fetch("alexnet", url=url)
    weights.fetch("dists", url=url)
    unrecorded = weights.candidate_paths("niqe")[0]  # copied in by hand: present, nothing to verify against
    unrecorded.write_bytes(b"hand-copied")
    rows = {row["name"]: row for row in weights.list_weights()}
    assert set(rows) == set(weights.WEIGHTS)
    assert rows["alexnet"]["present"] and rows["alexnet"]["verified"]
    assert rows["alexnet"]["sha256"] == digest and rows["alexnet"]["size"] == len(Path(url.removeprefix("file://")).read_bytes())
    assert rows["dists"]["present"] and rows["dists"]["verified"]  # against the digest fetch recorded
    assert rows["niqe"]["present"] and not rows["niqe"]["verified"]
    assert not rows["vgg16"]["present"] and rows["vgg16"]["path"] == str(hub / "checkpoints" / "vgg16-397923af.pth")
    assert rows["vgg16"]["sha256"] is None and not rows["vgg16"]["verified"]
    # The lpips package ships its v0.1 heads; they match the wheel's published digests.
    assert rows["lpips-alex-v0.1"]["present"] and rows["lpips-alex-v0.1"]["verified"]
    assert rows["lpips-vgg-v0.1"]["present"] and rows["lpips-vgg-v0.1"]["verified"]
    # A file changed after fetch no longer verifies.
    weights.candidate_paths("dists")[0].write_bytes(b"tampered")
    assert not {row["name"]: row for row in weights.list_weights()}["dists"]["verified"]


def test_a_corrupt_registry_is_reported(hub: Path) -> None:
    target = weights.candidate_paths("dists")[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"w")
    (target.parent / weights.REGISTRY_NAME).write_text("{not json")
    with pytest.raises(SeeClearError, match="seeclear-weights.json is not a readable JSON"):
        weights.list_weights()
