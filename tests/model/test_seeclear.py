"""model.seeclear: config round trip, video sampling (clips, padding, memory carry, reproducibility), tiling."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model.config import NetworkConfig
from model.diffusion import DiffusionConfig
from model.networks import MemoryState, Semantics
from model.seeclear import SeeClear, SeeClearConfig, tile_starts
from model.upsample import upsample_bicubic

STEPS = 2  # respaced reverse steps: enough to exercise the chain, cheap on a shared CPU


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _video(n: int, h: int = 8, w: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, n, 3, h, w, generator=_gen(seed))


def _model(**overrides) -> SeeClear:
    """Tiny SeeClear whose zero-initialised head is given small weights, so the output depends on the network."""
    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny(**overrides))
    with torch.no_grad():
        model.condenser.head.weight.copy_(torch.randn(model.condenser.head.weight.shape, generator=_gen(5)) * 0.05)
    return model


# -- config ------------------------------------------------------------------------------------------------------
def test_config_round_trip_presets_and_validation() -> None:
    for cfg in (SeeClearConfig.tiny(), SeeClearConfig.small(tile=256, tile_overlap=32), SeeClearConfig.paper()):
        assert SeeClearConfig.from_dict(cfg.to_dict()) == cfg
    data = SeeClearConfig.tiny().to_dict()
    assert isinstance(data["network"]["channel_mult"], list)  # JSON-able
    with pytest.raises(ValueError, match="did you mean 'clip_frames'"):
        SeeClearConfig.from_dict({**data, "clip_frame": 5})
    with pytest.raises(ValueError, match="network: unknown key 'base_channel'"):
        SeeClearConfig.from_dict({**data, "network": {**data["network"], "base_channel": 8}})
    with pytest.raises(ValueError, match="tile must be None or a positive multiple of 32"):
        SeeClearConfig.tiny(tile=48)
    with pytest.raises(ValueError, match="smaller than tile"):
        SeeClearConfig.tiny(tile=64, tile_overlap=64)
    with pytest.raises(ValueError, match="clip_frames"):
        SeeClearConfig.tiny(clip_frames=6)  # the tiny network's frame embedding holds 5
    assert SeeClearConfig.preset("tiny") == SeeClearConfig.tiny()
    with pytest.raises(ValueError, match="did you mean 'small'"):
        SeeClearConfig.preset("smal")


def test_clipseg_config_needs_a_built_distiller() -> None:
    cfg = SeeClearConfig(network=NetworkConfig.tiny(distiller="clipseg"), diffusion=DiffusionConfig())
    with pytest.raises(ValueError, match="pass the built distiller"):
        SeeClear(cfg)


# -- sampling ----------------------------------------------------------------------------------------------------
def test_untrained_model_samples_exactly_the_bicubic_base() -> None:
    """The head starts at zero, so x0_pred = y = Up(LR) at every step and the last step returns it."""
    torch.manual_seed(0)
    model = SeeClear(SeeClearConfig.tiny())
    lr = _video(3)
    out = model.sample(lr, generator=_gen(0), steps=STEPS)
    torch.testing.assert_close(out, upsample_bicubic(lr, 4).clamp(0, 1), rtol=0, atol=1e-6)


def test_sample_splits_pads_and_calls_the_distiller_once_per_clip() -> None:
    model = _model()
    calls = []
    model.distiller.register_forward_hook(lambda _m, args, _out: calls.append(tuple(args[0].shape)))
    lr = _video(7)
    out = model.sample(lr, generator=_gen(0), steps=STEPS)
    assert out.shape == (1, 7, 3, 32, 48)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    # 7 frames = 2 clips of 5 (the second padded with 3 repeats of frame 6); once per clip, on y at HR size
    # replicate-padded to the size multiple 32 (48 -> 64; the condenser would pad to that size anyway)
    assert calls == [(1, 5, 3, 32, 64), (1, 5, 3, 32, 64)]
    assert not torch.allclose(out, upsample_bicubic(lr, 4).clamp(0, 1), atol=1e-3)  # the network acts


def test_memory_is_carried_from_clip_to_clip() -> None:
    model = _model()
    lr = _video(10)
    full = model.sample(lr, generator=_gen(3), steps=STEPS)

    model.eval()  # as sample() does: attention's eval fast path differs from the train path at round-off level
    gen = _gen(3)
    initial = model.initial_memory(1).detach()
    first, memory = model.sample_clip(lr[:, :5], memory=initial, generator=gen, steps=STEPS)
    second, _ = model.sample_clip(lr[:, 5:], memory=memory, generator=gen, steps=STEPS)
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=0, atol=0)  # sample = this chain

    assert not torch.equal(memory.textures, initial.textures)  # the update after clip 1 changed the memory
    gen = _gen(3)
    model.sample_clip(lr[:, :5], memory=initial, generator=gen, steps=STEPS)  # same noise draws as above
    second_without, _ = model.sample_clip(lr[:, 5:], memory=initial, generator=gen, steps=STEPS)
    assert (second_without - second).abs().max() > 1e-4  # clip 2 reads the memory clip 1 wrote


def test_same_generator_same_sample_other_seed_other_sample() -> None:
    model = _model()
    lr = _video(5)
    a = model.sample(lr, generator=_gen(11), steps=STEPS)
    b = model.sample(lr, generator=_gen(11), steps=STEPS)
    c = model.sample(lr, generator=_gen(12), steps=STEPS)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4


def test_sample_rejects_bad_input() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.sample(_video(5) * 255, generator=_gen(0))
    with pytest.raises(ValueError, match="b n 3 h w"):
        model.sample(torch.rand(5, 3, 8, 8), generator=_gen(0))
    with pytest.raises(ValueError, match="steps"):
        model.sample(_video(5), generator=_gen(0), steps=99)


# -- tiling ------------------------------------------------------------------------------------------------------
class PointwiseCondenser(nn.Module):
    """A position-independent, pixel-local denoiser with the condenser's interface.

    x0 = y + 0.1 tanh(W [x_t, y]) + mean memory texture; decoder features = x_t average-pooled at the condenser's
    strides (32, 16, 8, 4); the memory update adds each level's mean feature. With tiles aligned to 32 pixels, every
    tile computes exactly what the whole frame computes on that region, so tiled and untiled must agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(6, 3)

    def forward(self, x_t, t, y, *, semantics, memory, read_memory=True):
        b, f = y.shape[:2]
        h = self.mix(torch.cat([x_t, y], dim=2).movedim(2, -1)).movedim(-1, 2)
        x0 = y + 0.1 * torch.tanh(h) + memory.textures.mean(dim=(1, 2)).view(b, 1, 1, 1, 1)
        feats = [F.avg_pool2d(x_t.flatten(0, 1), r).unflatten(0, (b, f)) for r in (32, 16, 8, 4)]
        return x0, feats

    def initial_memory(self, b):
        return MemoryState(torch.zeros(b, 2, 3), torch.zeros(b, 2, 4))

    def update_memory(self, memory, feats, semantics):
        level_means = torch.stack([f.mean(dim=(1, 2, 3, 4)) for f in feats], dim=-1)  # (b 4)
        return MemoryState(memory.semantics, memory.textures + level_means[:, None, :])


def test_tiled_sample_equals_untiled_for_a_position_independent_denoiser() -> None:
    lr = _video(7, h=24, w=40)  # HR 96 x 160: 2 x 4 tiles of 64 with overlap 32
    torch.manual_seed(0)
    whole = SeeClear(SeeClearConfig.tiny(), condenser=PointwiseCondenser())
    tiled = SeeClear(SeeClearConfig.tiny(tile=64, tile_overlap=32), condenser=PointwiseCondenser())
    tiled.load_state_dict(whole.state_dict())
    calls = []
    tiled.condenser.register_forward_hook(lambda _m, args, _out: calls.append(tuple(args[0].shape[-2:])))
    a = whole.sample(lr, generator=_gen(0), steps=STEPS)
    b = tiled.sample(lr, generator=_gen(0), steps=STEPS)
    assert set(calls) == {(64, 64)} and len(calls) == 2 * STEPS * 2 * 4  # 2 clips x steps x 8 tiles
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)  # blended x0 and stitched memory features are exact


def test_tiling_with_the_real_network() -> None:
    lr = _video(5, h=16, w=24)  # HR 64 x 96
    a = _model().sample(lr, generator=_gen(0), steps=STEPS)
    fits = _model(tile=128, tile_overlap=32)  # the frame fits one tile: the untiled path, bit for bit
    assert torch.equal(fits.sample(lr, generator=_gen(0), steps=STEPS), a)
    b = _model(tile=64, tile_overlap=32).sample(lr, generator=_gen(0), steps=STEPS)  # 1 x 2 tiles
    assert b.shape == a.shape and torch.isfinite(b).all() and 0 <= b.min() and b.max() <= 1


def test_tile_starts_cover_the_frame() -> None:
    assert tile_starts(64, 128, 32) == [0]
    assert tile_starts(96, 64, 32) == [0, 32]
    assert tile_starts(160, 64, 32) == [0, 32, 64, 96]
    assert tile_starts(192, 64, 0) == [0, 64, 128]
    for length in (96, 160, 224, 256):
        starts = tile_starts(length, 64, 32)
        assert starts[-1] + 64 == length and all(s % 32 == 0 for s in starts)
        assert all(b - a <= 32 for a, b in itertools.pairwise(starts))  # neighbours overlap by >= 32


def test_tiled_denoise_blends_the_tiles_linearly_and_stitches_features() -> None:
    """HR 64 x 96 with tile 64, overlap 32: tiles at columns 0 and 32. Columns 0-31 come from tile 1 alone,
    64-95 from tile 2 alone, and 32-63 are the ramp-weighted mean (w = min(1, (i+1)/33, (64-i)/33), i tile-local)."""
    model = _model(tile=64, tile_overlap=32).eval()
    y = torch.rand(1, 5, 3, 64, 96, generator=_gen(2)) * 2 - 1
    x_t = torch.rand(1, 5, 3, 64, 96, generator=_gen(3)) * 2 - 1
    t = torch.tensor([3])
    with torch.no_grad():
        semantics = model.distill(y)
        x0, feats = model.denoise(x_t, t, y, semantics=semantics)
        tiles = []
        for left in (0, 32):
            seg = semantics.seg[..., left // 4 : left // 4 + 16]
            tiles.append(model.condenser(x_t[..., left : left + 64], t, y[..., left : left + 64],
                                         semantics=Semantics(semantics.tokens, seg))[0])
    i = torch.arange(64.0)
    ramp = torch.minimum((i + 1) / 33, (64 - i) / 33).clamp(max=1)
    w1, w2 = ramp[32:], ramp[:32]
    want_mid = (w1 * tiles[0][..., 32:] + w2 * tiles[1][..., :32]) / (w1 + w2)
    torch.testing.assert_close(x0[..., :32], tiles[0][..., :32], rtol=0, atol=1e-6)
    torch.testing.assert_close(x0[..., 64:], tiles[1][..., 32:], rtol=0, atol=1e-6)
    torch.testing.assert_close(x0[..., 32:64], want_mid, rtol=0, atol=1e-6)
    assert (tiles[0][..., 32:] - tiles[1][..., :32]).abs().max() > 1e-3  # the tiles disagree: blending matters
    assert [tuple(f.shape[-2:]) for f in feats] == [(2, 3), (4, 6), (8, 12), (16, 24)]  # whole-frame grids
