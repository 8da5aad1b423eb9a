"""The pretrained distillers' real loading path on folders the tests make (no download): CLIPSeg and Mask2Former via
seeclear_bench.distillers, one-line errors for what is missing, and CLIPSeg fed at the frames' own aspect ratio."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from seeclear_bench.errors import SeeClearError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frames(b: int, f: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, f, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- CLIPSeg -------------------------------------------------------------------------------------------------------
def test_load_from_a_save_pretrained_folder_matches_the_model_in_memory(tiny_clipseg):
    from model.networks import ClipSegDistiller
    from seeclear_bench.distillers import load_clipseg_distiller

    VOCAB = tiny_clipseg.vocabulary
    kwargs = {"vocabulary": VOCAB, "n_tokens": 4, "class_chunk": 2}
    loaded = load_clipseg_distiller(tiny_clipseg.folder, **kwargs)
    direct = ClipSegDistiller.from_model(tiny_clipseg.model, tokenizer=tiny_clipseg.tokenizer, **kwargs)
    frames = _frames(1, 2, 32, 40)
    with torch.no_grad():
        a, b = loaded(frames), direct(frames)
    assert a.tokens.shape == (1, 2, 4, 24) and a.seg.shape == (1, 2, len(VOCAB), 8, 10)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.seg, b.seg)
    assert not any(p.requires_grad for p in loaded.parameters())  # frozen
    assert loaded.frozen


def test_missing_model_is_one_line_naming_it_and_where(tmp_path, monkeypatch):
    from seeclear_bench.distillers import load_clipseg_distiller

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SeeClearError, match=r"CLIPSeg distiller .*absent. not found in the folder .*absent .*huggingface-cli download CIDAS"):
        load_clipseg_distiller(str(tmp_path / "absent"))
    with pytest.raises(SeeClearError, match=r"'nobody/no-such-clipseg' not found in the Hugging Face cache"):
        load_clipseg_distiller("nobody/no-such-clipseg")


@torch.no_grad()
def test_clipseg_sees_the_frames_at_their_own_aspect_and_scale(tiny_clipseg):
    """No squash: 32 x 40 frames are padded to 32 x 48 (a 2 x 3 patch grid, position embeddings interpolated), the
    top-k patches are ranked on that grid, and the masks are cropped back to the frame before the 1/4 resize."""
    from model.networks import ClipSegDistiller

    vocab = tiny_clipseg.vocabulary
    distiller = ClipSegDistiller.from_model(tiny_clipseg.model, tokenizer=tiny_clipseg.tokenizer, vocabulary=vocab,
                                            n_tokens=4, class_chunk=2)
    frames = _frames(1, 2, 32, 40, seed=3)
    pixels, content = distiller.canvas(frames)
    assert pixels.shape == (2, 3, 32, 48) and content == (32, 40) and pixels[..., 40:].abs().max() == 0
    sem = distiller(frames)
    assert sem.seg.shape == (1, 2, len(vocab), 8, 10) and 0 <= sem.seg.min() and sem.seg.max() <= 1

    patches, sim, acts = distiller.image_features(pixels)
    assert patches.shape[1] == 6  # 2 x 3 patches
    score = sim.amax(-1)
    for i in range(2):
        order = score[i].argsort(descending=True)
        torch.testing.assert_close(sem.tokens[0, i], patches[i, order[:4]], rtol=0, atol=1e-6)
    c = 3
    cond = distiller.text_embeds[c].expand(2, -1)
    logits = distiller.decode(acts, cond, (2, 3))
    assert logits.shape == (2, 32, 48)
    ref = F.interpolate(torch.sigmoid(logits[:, None, :, :40]), size=(8, 10), mode="bilinear", antialias=True)
    torch.testing.assert_close(sem.seg[0, :, c], ref[:, 0], rtol=0, atol=1e-5)

    # on a square grid, `decode` is transformers' own CLIPSeg decoder
    square, _ = distiller.canvas(_frames(1, 1, 64, 64, seed=5))
    _, _, acts = distiller.image_features(square)
    stock = distiller.clipseg.decoder(acts, distiller.text_embeds[:1]).logits
    torch.testing.assert_close(distiller.decode(acts, distiller.text_embeds[:1], (4, 4)), stock, rtol=0, atol=1e-6)

    with pytest.raises(ValueError, match="fewer than n_tokens = 4"):
        distiller(_frames(1, 1, 16, 16))  # one patch


# -- Mask2Former ---------------------------------------------------------------------------------------------------
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not ImageNet's: shows the folder's own normalisation is read


@pytest.fixture(scope="module")
def tiny_mask2former(tmp_path_factory):
    """A randomly initialised Mask2Former (6 queries, 32 wide) saved with save_pretrained, with a
    preprocessor_config.json carrying its normalisation. Returns (folder, model)."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    swin = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                      drop_path_rate=0.0, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                               dim_feedforward=32, num_queries=6, num_labels=5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Mask2FormerForUniversalSegmentation(config).eval()
    folder = tmp_path_factory.mktemp("mask2former") / "tiny-mask2former"
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "Mask2FormerImageProcessor", "image_mean": list(MEAN), "image_std": list(STD),
         "size_divisor": 32}))
    return str(folder), model


def _network(**overrides):
    from model.config import NetworkConfig

    return NetworkConfig.tiny(**{"distiller": "mask2former", "token_dim": 32, "seg_channels": 32, "n_tokens": 4,
                                 **overrides})


def test_mask2former_loads_from_its_folder_and_matches_the_model_in_memory(tiny_mask2former):
    from model.networks import Mask2FormerDistiller
    from seeclear_bench.distillers import distiller_for, distiller_missing

    folder, model = tiny_mask2former
    assert distiller_missing(folder, kind="mask2former") is None
    loaded = distiller_for(_network(), folder)
    assert isinstance(loaded, Mask2FormerDistiller) and loaded.frozen
    assert torch.allclose(loaded.mean.flatten(), torch.tensor(MEAN)) and torch.allclose(loaded.std.flatten(),
                                                                                       torch.tensor(STD))
    direct = Mask2FormerDistiller.from_model(model, n_tokens=4, mean=MEAN, std=STD)
    frames = _frames(1, 2, 64, 96)
    with torch.no_grad():
        a, b = loaded(frames), direct(frames)
    assert a.tokens.shape == (1, 2, 4, 32) and a.seg.shape == (1, 2, 32, 16, 24)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.seg, b.seg)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.mask2former.training
    assert distiller_for(_network(distiller_scale=0.5), folder).scale == 0.5  # sized by the config


def test_mask2former_that_does_not_fit_the_network_is_one_line(tiny_mask2former):
    from seeclear_bench.distillers import distiller_for

    folder, _ = tiny_mask2former
    with pytest.raises(SeeClearError, match=r"Mask2Former distiller .*: network.token_dim is 256 but the "
                                            r"Mask2FormerDistiller gives 32; set network.token_dim=32"):
        distiller_for(_network(token_dim=256), folder)
    with pytest.raises(SeeClearError, match=r"n_tokens must lie in \[1, 6\]"):
        distiller_for(_network(n_tokens=8), folder)
    assert distiller_for(_network(distiller="learned"), folder) is None  # built inside the model


def test_missing_mask2former_is_one_line_naming_it_and_where(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from seeclear_bench.distillers import distiller_for, distiller_missing, load_mask2former_distiller

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # even where the real one is cached
    absent = str(tmp_path / "absent")
    with pytest.raises(SeeClearError, match=r"^Mask2Former distiller .*absent. not found in the folder .*absent "
                                            r".*huggingface-cli download facebook/mask2former-swin-tiny-coco-panoptic"
                                            r".*save_pretrained") as err:
        distiller_for(_network(), absent)
    assert "\n" not in str(err.value)
    with pytest.raises(SeeClearError, match=r"'nobody/no-such-mask2former' not found in the Hugging Face cache"):
        load_mask2former_distiller("nobody/no-such-mask2former")
    assert "holds no config.json" in distiller_missing(absent, kind="mask2former")
    why = distiller_missing("nobody/no-such-mask2former", kind="mask2former")
    assert why.startswith("Mask2Former distiller 'nobody/no-such-mask2former' is not in the Hugging Face cache")
    assert "facebook/mask2former-swin-tiny-coco-panoptic" in distiller_missing(kind="mask2former")  # the default
