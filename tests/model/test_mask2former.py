"""model.networks.Mask2FormerDistiller on a tiny randomly initialised Mask2Former (no download): top-k queries,
mask features over the whole frame, frozen, aspect ratio and pixel scale kept, and SeeClear sampling with it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from model.config import NetworkConfig
from model.networks import Mask2FormerDistiller, SemanticDistiller, check_distiller
from model.seeclear import SeeClear, SeeClearConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUERIES, CLASSES, WIDTH = 6, 5, 32


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _frames(b: int, f: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, f, 3, h, w, generator=_gen(seed)) * 2 - 1


def _tiny(**kwargs) -> Mask2FormerDistiller:
    """Swin (embed 16, one block per stage, window 4) + 1 pixel-decoder layer + 2 query-decoder layers, 32 wide."""
    from transformers import Mask2FormerConfig, SwinConfig

    swin = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
                      drop_path_rate=0.0, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, feature_size=WIDTH, mask_feature_size=WIDTH, hidden_dim=WIDTH,
                               encoder_feedforward_dim=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                               dim_feedforward=32, num_queries=QUERIES, num_labels=CLASSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Mask2FormerDistiller.from_config(config, **{"n_tokens": 4, **kwargs})


@torch.no_grad()
def test_tokens_are_the_best_scoring_queries_and_seg_the_stride_4_mask_features() -> None:
    distiller = _tiny()
    assert (distiller.n_tokens, distiller.token_dim, distiller.seg_channels, distiller.multiple) == (4, WIDTH, WIDTH, 32)
    frames = _frames(1, 2, 64, 96)
    sem = distiller(frames)
    assert sem.tokens.shape == (1, 2, 4, WIDTH) and sem.seg.shape == (1, 2, WIDTH, 16, 24)

    # by hand from transformers' own outputs: the normed last decoder states and the final class logits
    pixels, _ = distiller.canvas(frames)
    model = distiller.mask2former
    inner = model.model(pixel_values=pixels, output_hidden_states=True)
    states = inner.transformer_decoder_intermediate_states[-1].transpose(0, 1)  # (n q d), after the decoder's LN
    logits = model(pixel_values=pixels).class_queries_logits  # (n q C+1)
    score = logits.softmax(-1)[..., :-1].amax(-1)
    for i in range(2):
        order = score[i].argsort(descending=True)
        torch.testing.assert_close(sem.tokens[0, i], states[i, order[:4]], rtol=0, atol=1e-6)
        assert score[i, order[:4]].min() >= score[i, order[4:]].max()
    torch.testing.assert_close(sem.seg[0], inner.pixel_decoder_last_hidden_state, rtol=0, atol=0)


class _PlantedClasses(nn.Module):
    """Stands in for the class head: returns fixed logits (q C+1), whatever the queries."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1), requires_grad=False)  # the distiller reads its dtype
        self.register_buffer("logits", logits)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(queries.shape[0], -1, -1)


@torch.no_grad()
def test_ranking_uses_real_classes_only_descending_with_ties_by_query_index() -> None:
    distiller = _tiny()
    logits = torch.zeros(QUERIES, CLASSES + 1)
    logits[0, -1] = 9.0  # "no object" dominates: the lowest real-class probability although its row max is highest
    logits[1, 1] = 2.0
    logits[3, 2] = 4.0  # the best
    logits[5, 0] = 3.0
    # queries 2 and 4 tie (uniform rows): query 2 comes first
    distiller.mask2former.class_predictor = _PlantedClasses(logits)
    frames = _frames(1, 1, 64, 64)  # the tiny GroupNorms need > 1 value per group at stride 32
    queries, score, _ = distiller.queries(distiller.canvas(frames)[0])
    assert torch.equal(score[0, 2], score[0, 4])
    sem = distiller(frames)
    want = [3, 5, 1, 2]
    torch.testing.assert_close(sem.tokens[0, 0], queries[0, want], rtol=0, atol=0)

    distiller.mask2former.class_predictor = _PlantedClasses(torch.zeros(QUERIES, CLASSES + 1))  # all tie
    queries, _, _ = distiller.queries(distiller.canvas(frames)[0])
    torch.testing.assert_close(distiller(frames).tokens[0, 0], queries[0, :4], rtol=0, atol=0)


def test_frozen_eval_and_no_gradients() -> None:
    distiller = _tiny().train()
    assert distiller.frozen and not SemanticDistiller.frozen
    assert not distiller.mask2former.training
    assert not any(p.requires_grad for p in distiller.parameters())
    sem = distiller(_frames(1, 1, 64, 64).requires_grad_())
    assert not sem.tokens.requires_grad and not sem.seg.requires_grad
    assert "mean" not in distiller.state_dict()  # the normalisation is not saved with it


@torch.no_grad()
def test_aspect_ratio_is_kept_and_seg_covers_exactly_the_frame() -> None:
    distiller = _tiny()
    frames = _frames(1, 1, 40, 72)  # not multiples of 32: padded to 64 x 96, cropped back
    pixels, content = distiller.canvas(frames)
    assert pixels.shape == (1, 3, 64, 96) and content == (40, 72)
    assert pixels[..., 40:, :].abs().max() == 0 and pixels[..., 72:].abs().max() == 0  # zero pad = the mean colour
    want = ((frames[0] + 1) / 2 - distiller.mean) / distiller.std
    torch.testing.assert_close(pixels[..., :40, :72], want, rtol=0, atol=1e-6)  # no resize, no squash
    sem = distiller(frames)
    assert sem.seg.shape == (1, 1, WIDTH, 10, 18)
    _, _, features = distiller.queries(pixels)
    torch.testing.assert_close(sem.seg[0], features[..., :10, :18], rtol=0, atol=0)

    tall = distiller(_frames(1, 1, 96, 64))
    assert tall.seg.shape == (1, 1, WIDTH, 24, 16)


@torch.no_grad()
def test_crops_and_whole_frames_are_seen_at_the_same_pixel_scale() -> None:
    """The resize factor depends on the config alone: a crop's pixels equal the matching region of the whole
    frame's (exactly at scale 1; away from the crop's borders at 0.5), and the seg maps are always H/4 x W/4."""
    frame = _frames(1, 1, 192, 256, seed=4)
    top, left, size = 32, 64, 128
    crop = frame[..., top : top + size, left : left + size]
    for scale in (1.0, 0.5):
        distiller = _tiny(scale=scale)
        whole, whole_content = distiller.canvas(frame)
        part, part_content = distiller.canvas(crop)
        assert whole_content == (int(192 * scale), int(256 * scale))
        assert part_content == (int(size * scale), int(size * scale))
        t, lft, s = int(top * scale), int(left * scale), int(size * scale)
        margin = 0 if scale == 1 else 2
        inner = slice(margin, s - margin)
        torch.testing.assert_close(part[..., inner, inner],
                                   whole[..., t : t + s, lft : lft + s][..., inner, inner], rtol=0, atol=1e-5)
        assert distiller(crop).seg.shape[-2:] == (size // 4, size // 4)
        assert distiller(frame).seg.shape[-2:] == (192 // 4, 256 // 4)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"n_tokens must lie in \[1, 6\]"):
        _tiny(n_tokens=7)
    with pytest.raises(ValueError, match="scale must be a number > 0"):
        _tiny(scale=0)
    distiller = _tiny()
    with pytest.raises(ValueError, match="mean and std"):
        Mask2FormerDistiller(distiller.mask2former, n_tokens=4, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="divisible by 4"):
        distiller(_frames(1, 1, 30, 32))
    with pytest.raises(ValueError, match="network.distiller_scale"):
        NetworkConfig.tiny(distiller_scale=0)
    with pytest.raises(ValueError, match="'learned', 'clipseg' or 'mask2former'"):
        NetworkConfig.tiny(distiller="openseed")


def test_paper_preset_uses_mask2former_sizes() -> None:
    paper = NetworkConfig.paper()
    assert (paper.distiller, paper.token_dim, paper.seg_channels, paper.n_tokens) == ("mask2former", 256, 256, 100)
    assert NetworkConfig.tiny().distiller == NetworkConfig.small().distiller == "learned"
    clipseg = NetworkConfig.paper(distiller="clipseg", token_dim=512, seg_channels=133)
    assert clipseg.distiller == "clipseg"


def test_seeclear_samples_with_the_mask2former_distiller() -> None:
    distiller = _tiny()
    network = NetworkConfig.tiny(distiller="mask2former", token_dim=WIDTH, seg_channels=WIDTH, n_tokens=4)
    config = dataclasses.replace(SeeClearConfig.tiny(), network=network)
    check_distiller(network, distiller)
    with pytest.raises(ValueError, match="network.seg_channels"):
        check_distiller(network.with_overrides(seg_channels=8), distiller)
    torch.manual_seed(0)
    model = SeeClear(config, distiller=distiller)
    with torch.no_grad():
        head = model.condenser.head.weight
        head.copy_(torch.randn(head.shape, generator=_gen(5)) * 0.05)  # the zero-initialised head would hide P_i
    calls = []
    model.distiller.register_forward_hook(lambda _m, args, out: calls.append((tuple(args[0].shape), out.seg.shape)))
    lr = torch.rand(1, 6, 3, 8, 12, generator=_gen(1))
    out = model.sample(lr, generator=_gen(0), steps=2)
    assert out.shape == (1, 6, 3, 32, 48) and torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # once per clip, on y (32 x 48, replicate-padded to 32 x 64): seg at 1/4 of that, the whole frame
    assert calls == [((1, 5, 3, 32, 64), (1, 5, WIDTH, 8, 16))] * 2
    assert not distiller.mask2former.training
    assert model.pretrained_distiller and not any(k.startswith("distiller.") for k in model.trainable_state_dict())
