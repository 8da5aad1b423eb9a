"""The pretrained CLIPSeg distiller's real loading path, on a folder the test makes (no download)."""
from __future__ import annotations

import pytest
import torch

from seeclear_bench.errors import SeeClearError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_load_from_a_save_pretrained_folder_matches_the_model_in_memory(tiny_clipseg):
    from model.networks import ClipSegDistiller
    from seeclear_bench.distillers import load_clipseg_distiller

    VOCAB = tiny_clipseg.vocabulary
    kwargs = {"vocabulary": VOCAB, "n_tokens": 4, "input_size": 64, "class_chunk": 2}
    loaded = load_clipseg_distiller(tiny_clipseg.folder, **kwargs)
    direct = ClipSegDistiller.from_model(tiny_clipseg.model, tokenizer=tiny_clipseg.tokenizer, **kwargs)
    frames = torch.rand(1, 2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        a, b = loaded(frames), direct(frames)
    assert a.tokens.shape == (1, 2, 4, 24) and a.seg.shape == (1, 2, len(VOCAB), 8, 10)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.seg, b.seg)
    assert not any(p.requires_grad for p in loaded.parameters())  # frozen


def test_missing_model_is_one_line_naming_it_and_where(tmp_path, monkeypatch):
    from seeclear_bench.distillers import load_clipseg_distiller

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeeClearError, match=r"CLIPSeg distiller .*absent. not found in the folder .*absent .*huggingface-cli download CIDAS"):
        load_clipseg_distiller(str(tmp_path / "absent"))
    with pytest.raises(SeeClearError, match=r"'nobody/no-such-clipseg' not found in the Hugging Face cache"):
        load_clipseg_distiller("nobody/no-such-clipseg")
