"""The pretrained CLIPSeg distiller's real loading path, on a folder the test makes (no download)."""
from __future__ import annotations

import pytest
import torch

from seeclear_bench.errors import SeeClearError

VOCAB = ("person", "bicycle", "car", "dog", "sky")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_clipseg():
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    config = CLIPSegConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 12, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=24, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    torch.manual_seed(0)
    return CLIPSegForImageSegmentation(config).eval()


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[BOS]", "[EOS]", "[UNK]", "a", "photo", "of", ".", *VOCAB]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[EOS]")


def test_load_from_a_save_pretrained_folder_matches_the_model_in_memory(tmp_path):
    from model.networks import ClipSegDistiller
    from seeclear_bench.distillers import load_clipseg_distiller

    clipseg, tokenizer = _tiny_clipseg(), _tiny_tokenizer()
    folder = tmp_path / "clipseg"
    clipseg.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    kwargs = {"vocabulary": VOCAB, "n_tokens": 4, "input_size": 64, "class_chunk": 2}
    loaded = load_clipseg_distiller(str(folder), **kwargs)
    direct = ClipSegDistiller.from_model(clipseg, tokenizer=tokenizer, **kwargs)
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
