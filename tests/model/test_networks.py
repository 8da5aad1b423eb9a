"""SeeClear networks: InCAM, CaTeGory, the distillers (CLIPSeg built from a tiny config, no download), the Pixel
Condenser, and the presets' parameter counts."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.config import NetworkConfig
from model.networks import (
    COCO_PANOPTIC_CLASSES,
    ChannelTextureMemory,
    ClipSegDistiller,
    InstanceCentricAlignment,
    InstanceEncoderDecoder,
    MemoryState,
    PixelCondenser,
    Semantics,
    check_distiller,
    make_learned_distiller,
)

CFG = NetworkConfig.tiny()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed))


def _assert_grads(module: nn.Module, allow_zero: tuple[str, ...] = ()) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        if not name.startswith(allow_zero):
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def _perturb_zero_inits(module: nn.Module) -> None:
    """Give zero-initialised convs/heads small random weights, so gradients reach the layers before them."""
    gen = _gen(99)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d) and m.weight.abs().sum() == 0:
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)


# -- InCAM -------------------------------------------------------------------------------------------------------
def _incam() -> InstanceCentricAlignment:
    torch.manual_seed(0)
    return InstanceCentricAlignment(
        dim=16, seg_channels=4, token_dim=12, clip_dim=10, head_dim=8, window=4, frames=5, shift=True, mlp_ratio=1.0
    )


def _incam_inputs() -> tuple[torch.Tensor, ...]:
    return _randn(2, 5, 16, 8, 8), _randn(2, 5, 4, 8, 8, seed=1), _randn(2, 5, 6, 12, seed=2), _randn(2, 7, 10, seed=3)


def test_incam_shape_backward_and_zero_init_modulation() -> None:
    incam = _incam()
    x, seg, tokens, clip = _incam_inputs()
    assert torch.equal(incam.modulate(x, seg), x)  # G's last conv starts at zero: SFT is the identity at init
    _perturb_zero_inits(incam)
    out = incam(x, seg, tokens, clip)
    assert out.shape == x.shape
    out.square().mean().backward()
    _assert_grads(incam)


@torch.no_grad()
def test_incam_mixes_frames_while_sft_and_cross_attention_stay_per_frame() -> None:
    incam = _incam()
    _perturb_zero_inits(incam)
    x, seg, tokens, clip = _incam_inputs()
    x2, seg2, tokens2 = x.clone(), seg.clone(), tokens.clone()
    x2[:, 0] += _randn(2, 16, 8, 8, seed=4)
    seg2[:, 0] += 1.0
    tokens2[:, 0] += _randn(2, 6, 12, seed=5)

    full, full2 = incam(x, seg, tokens, clip), incam(x2, seg2, tokens2, clip)
    assert (full2[:, 1:] - full[:, 1:]).abs().amax() > 1e-4  # the other frames see frame 0 (MFSA)

    local = incam.embed_semantics(incam.modulate(x, seg), tokens)
    local2 = incam.embed_semantics(incam.modulate(x2, seg2), tokens2)
    assert torch.equal(local2[:, 1:], local[:, 1:])  # SFT + CA alone: frames 1..4 are untouched
    assert (local2[:, 0] - local[:, 0]).abs().amax() > 1e-4


@torch.no_grad()
def test_instance_encoder_decoder_makes_clip_tokens_from_all_frames() -> None:
    torch.manual_seed(0)
    enc_dec = InstanceEncoderDecoder(
        token_dim=12, dim=16, heads=2, ffn_dim=32, enc_layers=1, dec_layers=2, n_queries=7, max_frames=5
    )
    tokens = _randn(2, 5, 6, 12)
    clip = enc_dec(tokens)
    assert clip.shape == (2, 7, 16)
    tokens2 = tokens.clone()
    tokens2[1, 4] += _randn(6, 12, seed=1)  # not a constant: the input LayerNorm would remove it
    clip2 = enc_dec(tokens2)
    assert torch.equal(clip2[0], clip[0]) and (clip2[1] - clip[1]).abs().amax() > 1e-4
    with pytest.raises(ValueError, match="at most 5 frames"):
        enc_dec(_randn(1, 6, 6, 12))


# -- CaTeGory ----------------------------------------------------------------------------------------------------
def _memory() -> ChannelTextureMemory:
    torch.manual_seed(0)
    return ChannelTextureMemory(
        level_dims=[32, 16], clip_dim=10, n_queries=7, groups=4, memory_dim=12, head_dim=8, pool=4
    )


def test_memory_reads_exactly_nothing_at_first_then_an_update_changes_reads() -> None:
    memory = _memory()
    params_before = {k: v.clone() for k, v in memory.state_dict().items()}
    clip = _randn(2, 7, 10)
    feats = [_randn(2, 5, 32, 4, 4, seed=1), _randn(2, 5, 16, 8, 8, seed=2)]
    state = memory.initial_state(2)
    assert torch.equal(state.semantics, torch.zeros(2, 4, 7)) and torch.equal(state.textures, torch.zeros(2, 4, 12))
    assert torch.equal(memory.read(0, feats[0], clip, state), feats[0])  # zero memory: features unchanged, exactly
    assert torch.equal(memory.read(1, feats[1], clip, state), feats[1])

    new = memory.update(state, feats, clip)
    assert isinstance(new, MemoryState)
    assert new.textures.shape == (2, 4, 12) and new.semantics.shape == (2, 4, 7)
    assert new.textures.abs().amin() > 0 and new.semantics.abs().amax() > 0
    read = memory.read(1, feats[1], clip, new)
    assert (read - feats[1]).abs().amax() > 1e-4
    # the state lives outside the module: updating and reading changed none of its parameters
    assert all(torch.equal(v, params_before[k]) for k, v in memory.state_dict().items())
    # videos of the batch are independent: video 1's features do not move video 0's memory
    feats2 = [f.clone() for f in feats]
    feats2[0][1] += 1.0
    new2 = memory.update(state, feats2, clip)
    assert torch.equal(new2.textures[0], new.textures[0]) and not torch.equal(new2.textures[1], new.textures[1])


def test_memory_read_grows_in_proportion_to_a_small_memory() -> None:
    """The read's change is linear in the memory while it is small (no 1/sqrt(eps) gain at zero) and bounded when it
    is large: a memory 10x smaller changes the features 10x less, not the same."""
    memory = _memory()
    clip = _randn(2, 7, 10)
    feats = _randn(2, 5, 16, 8, 8, seed=2)
    texture = _randn(2, 4, 12, seed=3)
    semantics = _randn(2, 4, 7, seed=4)

    def change(scale: float) -> float:
        state = MemoryState(semantics, texture * scale)
        with torch.no_grad():
            return float((memory.read(1, feats, clip, state) - feats).norm())

    small, smaller = change(1e-3), change(1e-4)
    assert small > 0 and smaller / small == pytest.approx(0.1, rel=0.02)
    big, bigger = change(1e3), change(1e4)
    assert bigger / big == pytest.approx(1.0, rel=0.02)  # normalised once large
    assert small < 0.01 * big  # a near-zero memory has a near-zero effect (an RMSNorm gave it the full one)


def test_memory_backward_reaches_parameters_through_update_and_read() -> None:
    memory = _memory()
    clip = _randn(1, 7, 10)
    feats = [_randn(1, 5, 32, 4, 4, seed=1), _randn(1, 5, 16, 8, 8, seed=2)]
    state = memory.update(memory.initial_state(1), feats, clip)
    loss = sum(memory.read(k, f, clip, state).square().mean() for k, f in enumerate(feats))
    loss.backward()
    _assert_grads(memory)
    with pytest.raises(ValueError, match="holds 1 videos"):
        memory.read(0, _randn(2, 5, 32, 4, 4), _randn(2, 7, 10), state)


# -- distillers --------------------------------------------------------------------------------------------------
def test_learned_distiller_shapes_and_backward() -> None:
    torch.manual_seed(0)
    distiller = make_learned_distiller(CFG)
    sem = distiller(_randn(2, 5, 3, 64, 48).tanh())
    assert isinstance(sem, Semantics)
    assert sem.tokens.shape == (2, 5, CFG.n_tokens, CFG.token_dim)
    assert sem.seg.shape == (2, 5, CFG.seg_channels, 16, 12)
    (sem.tokens.square().mean() + sem.seg.square().mean()).backward()
    _assert_grads(distiller)
    check_distiller(CFG, distiller)
    with pytest.raises(ValueError, match="seg_channels"):
        check_distiller(CFG.with_overrides(seg_channels=9), distiller)


VOCAB = ("person", "car", "tree", "sky", "road", "building", "dog")


def _tiny_clipseg_distiller() -> ClipSegDistiller:
    from transformers import CLIPSegConfig

    config = CLIPSegConfig(
        text_config={
            "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 8, "bos_token_id": 0, "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": 64, "patch_size": 16,
        },
        projection_dim=24, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )  # fmt: skip
    words = torch.randint(2, 50, (len(VOCAB), 3), generator=_gen(7))
    ids = torch.cat(
        [torch.zeros(len(VOCAB), 1, dtype=torch.long), words, torch.ones(len(VOCAB), 1, dtype=torch.long)], 1
    )
    torch.manual_seed(0)
    return ClipSegDistiller.from_config(
        config, input_ids=ids, vocabulary=VOCAB, n_tokens=5, class_chunk=3
    )


@torch.no_grad()
def test_clipseg_distiller_is_frozen_and_picks_the_top_k_most_class_similar_patches() -> None:
    distiller = _tiny_clipseg_distiller().train()
    assert not distiller.clipseg.training and not any(p.requires_grad for p in distiller.parameters())
    assert (distiller.token_dim, distiller.seg_channels) == (24, len(VOCAB))
    frames = _randn(1, 2, 3, 32, 40, seed=3).tanh()
    sem = distiller(frames)
    assert sem.tokens.shape == (1, 2, 5, 24) and sem.seg.shape == (1, 2, len(VOCAB), 8, 10)
    assert sem.seg.min() >= 0 and sem.seg.max() <= 1

    # recompute Eq. 8-9 from the CLIPSeg parts by hand (32 x 40 frames: no squash, padded to 32 x 48 = 2 x 3 patches)
    clip = distiller.clipseg.clip
    pixels, content = distiller.canvas(frames)
    assert pixels.shape == (2, 3, 32, 48) and content == (32, 40)
    vision = clip.vision_model(pixel_values=pixels, output_hidden_states=True)
    hidden = vision.last_hidden_state[:, 1:]
    patches = clip.visual_projection(clip.vision_model.post_layernorm(hidden))  # (2 frames, 6 patches, 24)
    text = clip.get_text_features(input_ids=_tiny_clipseg_ids()).pooler_output
    score = (F.normalize(patches, dim=-1) @ F.normalize(text, dim=-1).T).amax(-1)
    for i in range(2):
        order = score[i].argsort(descending=True)
        assert torch.allclose(sem.tokens[0, i], patches[i, order[:5]], atol=1e-6)
        kept = score[i, order[:5]]
        assert kept.min() >= score[i, order[5:]].max()

    # P_i channel c is CLIPSeg's mask for class c (checks the chunked decoding keeps class order), cropped to the frame
    acts = [vision.hidden_states[i + 1] for i in distiller.clipseg.extract_layers]
    for c in (0, 4, 6):
        logits = distiller.decode(acts, text[c].expand(2, -1), (2, 3))[..., :40]
        ref = F.interpolate(torch.sigmoid(logits)[:, None], size=(8, 10), mode="bilinear", antialias=True)
        assert torch.allclose(sem.seg[0, :, c], ref[:, 0], atol=1e-5)


def _tiny_clipseg_ids() -> torch.Tensor:
    words = torch.randint(2, 50, (len(VOCAB), 3), generator=_gen(7))
    return torch.cat(
        [torch.zeros(len(VOCAB), 1, dtype=torch.long), words, torch.ones(len(VOCAB), 1, dtype=torch.long)], 1
    )


def test_clipseg_distiller_rejects_bad_arguments() -> None:
    assert len(COCO_PANOPTIC_CLASSES) == 133 and len(set(COCO_PANOPTIC_CLASSES)) == 133
    distiller = _tiny_clipseg_distiller()
    with pytest.raises(ValueError, match="exactly one of"):
        ClipSegDistiller.from_model(distiller.clipseg)
    with pytest.raises(ValueError, match="n_tokens"):
        ClipSegDistiller(distiller.clipseg, input_ids=_tiny_clipseg_ids(), vocabulary=VOCAB, n_tokens=0)
    with pytest.raises(ValueError, match="fewer than n_tokens"):
        distiller(_randn(1, 1, 3, 32, 32).tanh())  # 2 x 2 patches < 5 tokens
    with pytest.raises(ValueError, match="V = 133"):
        ClipSegDistiller(distiller.clipseg, input_ids=_tiny_clipseg_ids(), n_tokens=4)


# -- Pixel Condenser ---------------------------------------------------------------------------------------------
def _condenser_inputs(b: int = 1, f: int = 5, h: int = 64, w: int = 64):
    y = _randn(b, f, 3, h, w, seed=1).tanh()
    x_t = _randn(b, f, 3, h, w, seed=2)
    sem = Semantics(
        _randn(b, f, CFG.n_tokens, CFG.token_dim, seed=3),
        _randn(b, f, CFG.seg_channels, h // 4, w // 4, seed=4).sigmoid(),
    )
    return x_t, torch.tensor([7] * b), y, sem


@torch.no_grad()
def test_condenser_with_zero_init_head_returns_y_exactly_at_any_size() -> None:
    torch.manual_seed(0)
    net = PixelCondenser(CFG)
    x_t, t, y, sem = _condenser_inputs()
    x0, feats = net(x_t, t, y, semantics=sem)
    assert torch.equal(x0, y)  # the head starts at zero, so x0 = IDWT(0) + y
    assert [tuple(f.shape) for f in feats] == [(1, 5, 32, 2, 2), (1, 5, 32, 4, 4), (1, 5, 32, 8, 8), (1, 5, 16, 16, 16)]
    x_t, t, y, sem = _condenser_inputs(h=40, w=56)  # not a multiple of 32: padded inside, cropped back
    x0, feats = net(x_t, t, y, semantics=sem)
    assert torch.equal(x0, y) and feats[-1].shape[-2:] == (16, 16)


def test_condenser_backward_reaches_every_parameter_and_memory_changes_the_output() -> None:
    torch.manual_seed(0)
    net = PixelCondenser(CFG)
    _perturb_zero_inits(net)
    x_t, t, y, sem = _condenser_inputs()
    x0, feats = net(x_t, t, y, semantics=sem)
    assert x0.shape == y.shape and not torch.equal(x0, y)
    memory = net.update_memory(net.initial_memory(1), feats, sem)
    x0_next, _ = net(x_t, t, y, semantics=sem, memory=memory)
    assert (x0_next - x0).abs().amax() > 1e-6  # the updated memory is read by the decoder
    (x0.square().mean() + x0_next.square().mean()).backward()
    _assert_grads(net)


@torch.no_grad()
def test_condenser_frames_interact_and_the_step_matters() -> None:
    torch.manual_seed(0)
    net = PixelCondenser(CFG)
    _perturb_zero_inits(net)
    x_t, t, y, sem = _condenser_inputs()
    base, _ = net(x_t, t, y, semantics=sem)
    x_t2 = x_t.clone()
    x_t2[:, 0] += 0.5
    other, _ = net(x_t2, t, y, semantics=sem)
    assert (other[:, 1:] - base[:, 1:]).abs().amax() > 1e-6
    later, _ = net(x_t, t + 5, y, semantics=sem)
    assert (later - base).abs().amax() > 1e-6
    with pytest.raises(ValueError, match="segmentation features"):
        net(x_t, t, y, semantics=Semantics(sem.tokens, sem.seg[:, :, :3]))
    with pytest.raises(ValueError, match="t must be"):
        net(x_t, torch.tensor([1, 2]), y, semantics=sem)


# -- presets -----------------------------------------------------------------------------------------------------
def _count(cfg: NetworkConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in PixelCondenser(cfg).parameters())


def test_preset_parameter_counts() -> None:
    assert _count(NetworkConfig.tiny()) == 1_038_840
    assert _count(NetworkConfig.small()) == 41_352_594
    paper = _count(NetworkConfig.paper())
    assert abs(paper / 229.23e6 - 1) < 0.03  # Table 5: 229.23 M (frozen distiller not counted)
    assert NetworkConfig.paper().distiller == "mask2former" and NetworkConfig.paper().token_dim == 256


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="network.base_channels"):
        NetworkConfig(base_channels=0)
    with pytest.raises(ValueError, match="network.channel_mult"):
        NetworkConfig(channel_mult=(1, 2, 4))
    with pytest.raises(ValueError, match="network.clip_dim"):
        NetworkConfig(clip_dim=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.base_channels = 3  # type: ignore[misc]
