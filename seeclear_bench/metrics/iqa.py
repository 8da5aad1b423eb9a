"""The adapter to the learned-metric backends: the ONLY module that imports ``lpips`` and ``pyiqa``.

Owns building each network offline from local weight files and the thin calls into it:

- LPIPS v0.1 (AlexNet or VGG16 trunk) from the ``lpips`` package: the trunk is built empty (``pnet_rand=True``) and
  loaded from torchvision's ImageNet file found by :func:`seeclear_bench.metrics.weights.locate`; the linear heads
  come from the package's own ``weights/v0.1`` files. pyiqa is not needed for LPIPS.
- DISTS through pyiqa's ``DISTS`` architecture class (so numbers match pyiqa's), its VGG16 trunk read from the local
  torchvision file and its alpha/beta from pyiqa's weight file.
- No-reference NIQE, MUSIQ (KonIQ-10k) and CLIP-IQA (RN50) through pyiqa's architecture classes, from local files.

pyiqa is licensed PolyForm Noncommercial 1.0.0: DISTS, NIQE, MUSIQ and CLIP-IQA need it; LPIPS and tLP do not.

Nothing here downloads: every file comes from :func:`~seeclear_bench.metrics.weights.locate`, which raises a
:class:`~seeclear_bench.errors.SeeClearError` naming the metric, file and directory when one is missing; networks are
never left with random weights (state-dict loads are checked key by key). Built networks are cached per process in a
small LRU keyed by (network, device, SHA-256 of its weight files).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, cast

import torch

from seeclear_bench.errors import SeeClearError
from seeclear_bench.metrics import weights

logger = logging.getLogger(__name__)

Network = Literal["lpips-alex", "lpips-vgg", "dists", "niqe", "musiq", "clipiqa"]

# Weight files each network reads, in load order.
NETWORK_WEIGHTS: Final[dict[str, tuple[str, ...]]] = {
    "lpips-alex": ("alexnet", "lpips-alex-v0.1"),
    "lpips-vgg": ("vgg16", "lpips-vgg-v0.1"),
    "dists": ("vgg16", "dists"),
    "niqe": ("niqe",),
    "musiq": ("musiq-koniq",),
    "clipiqa": ("clip-rn50",),
}
MODEL_CACHE_SIZE: Final = 4

_HUB_LOCK = threading.Lock()


def network_weights(network: str) -> dict[str, str]:
    """``{weight name: sha256}`` of the local files ``network`` loads (raises if one is missing).

    This is the "weights hash" a protocol records next to learned-metric numbers.
    """
    if network not in NETWORK_WEIGHTS:
        raise SeeClearError(f"unknown network {network!r}; expected one of {sorted(NETWORK_WEIGHTS)}")
    return weights.digests(NETWORK_WEIGHTS[network])


def load_network(network: Network, device: torch.device | str) -> torch.nn.Module:
    """The eval-mode network ``network`` on ``device``, built from local weights once per process.

    Args:
        network: One of :data:`NETWORK_WEIGHTS`.
        device: Where the network runs.

    Raises:
        SeeClearError: A weight file is missing (from :func:`~seeclear_bench.metrics.weights.locate`) or does not
            fit the architecture.
    """
    digests = network_weights(network)
    return _build_cached(network, str(torch.device(device)), tuple(sorted(digests.items())))


def clear_cache() -> None:
    """Drop every cached network (e.g. after replacing weight files in a long-lived process)."""
    _build_cached.cache_clear()


@functools.lru_cache(maxsize=MODEL_CACHE_SIZE)
def _build_cached(network: str, device: str, digests: tuple[tuple[str, str], ...]) -> torch.nn.Module:
    # The digests are part of the cache key so that a replaced file builds a new network.
    for name, digest in digests:
        if weights.matches_known(name, digest) is False:
            logger.warning(
                "weights %s (sha256 %s) differ from the published file (%s...); "
                "%s numbers will not match published ones",
                name, digest, weights.get_weight_spec(name).sha256, network,
            )
    match network:
        case "lpips-alex" | "lpips-vgg":
            model = _build_lpips(network.removeprefix("lpips-"))
        case "dists":
            model = _build_dists()
        case "niqe":
            model = _build_niqe()
        case "musiq":
            model = _build_musiq()
        case "clipiqa":
            model = _build_clipiqa()
        case _:
            raise AssertionError(network)  # unreachable: checked in network_weights
    model.requires_grad_(False)
    return model.to(device).eval()


# -- LPIPS (lpips package) ------------------------------------------------------------------------------------------
def _build_lpips(trunk: str) -> torch.nn.Module:
    import lpips

    backbone_name, heads_name = NETWORK_WEIGHTS[f"lpips-{trunk}"]
    with warnings.catch_warnings():
        # lpips calls torchvision's deprecated alexnet/vgg16(pretrained=False); the trunk is loaded below.
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        model = lpips.LPIPS(pretrained=False, net=trunk, version="0.1", lpips=True, pnet_rand=True, verbose=False)
    # lpips keeps torchvision's ``features`` modules under their original indices inside slice1..sliceN, so each
    # module takes the ``features.<index>.*`` entries of torchvision's file (the classifier is not used).
    imagenet = _torch_load(weights.locate(backbone_name))
    used: set[str] = set()
    for piece in model.net.children():
        for index, module in piece.named_children():
            prefix = f"features.{index}."
            part = {key.removeprefix(prefix): value for key, value in imagenet.items() if key.startswith(prefix)}
            _load_checked(module, part, backbone_name, strict=True)
            used.update(prefix + key for key in part)
    unused = sorted(key for key in imagenet if key.startswith("features.") and key not in used)
    if not used or unused:
        raise SeeClearError(
            f"weights {backbone_name!r} are not torchvision's {trunk} ImageNet state dict (feature keys unused: "
            f"{unused[:4]}); fetch the right file with `seeclear-bench weights fetch {backbone_name}`"
        )
    heads = _torch_load(weights.locate(heads_name))
    # The heads are lin0..linN (``lins`` is the same modules listed again, so its keys are never in the file).
    required = [k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")]
    _load_checked(model, heads, heads_name, strict=False, required=required)
    return model


def lpips_features(model: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Channel-normalised trunk features of LPIPS v0.1, as ``lpips.LPIPS.forward`` computes them.

    Args:
        model: A network from ``load_network("lpips-alex" | "lpips-vgg", ...)``.
        images: ``(n 3 h w)`` float32 RGB in [-1, 1].

    Returns:
        One ``(n c_l h_l w_l)`` tensor per trunk layer.
    """
    import lpips

    # nn.Module.__getattr__ is typed ``Tensor | Module``; on lpips.LPIPS these two are submodules.
    net, scaling_layer = cast(torch.nn.Module, model.net), cast(torch.nn.Module, model.scaling_layer)
    return [lpips.normalize_tensor(f) for f in net(scaling_layer(images))]


def lpips_from_features(
    model: torch.nn.Module, feats0: Sequence[torch.Tensor], feats1: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LPIPS distance between two images given their :func:`lpips_features` (``(n,)`` float32).

    Splitting the forward pass lets a clip's frames go through the trunk once for all consecutive pairs (tLP).
    """
    import lpips

    total: Any = 0  # 0 + the first layer's (n 1 1 1) tensor: a tensor from then on
    for lin, f0, f1 in zip(cast(torch.nn.ModuleList, model.lins), feats0, feats1, strict=True):
        total = total + lpips.spatial_average(lin((f0 - f1) ** 2), keepdim=True)
    return total.reshape(-1)


def lpips_distance(model: torch.nn.Module, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 between ``(n 3 h w)`` float32 images in [-1, 1] (``lpips.LPIPS.forward``), ``(n,)`` float32."""
    return model(images0, images1).reshape(-1)


# -- DISTS (pyiqa architecture) -------------------------------------------------------------------------------------
def _build_dists() -> torch.nn.Module:
    from pyiqa.archs.dists_arch import DISTS

    vgg_path = weights.locate("vgg16")
    # pyiqa's DISTS builds torchvision's vgg16(weights="IMAGENET1K_V1") itself, which reads
    # <hub>/checkpoints/vgg16-397923af.pth; point torch's hub at the cache root holding our located file.
    with _torch_hub_dir(vgg_path.parent.parent):
        model = DISTS(pretrained=False)
    dists_state = _torch_load(weights.locate("dists"))
    _load_checked(model, dists_state, "dists", strict=False, required=["alpha", "beta"])
    return model


def dists_distance(model: torch.nn.Module, images0: torch.Tensor, images1: torch.Tensor) -> torch.Tensor:
    """DISTS between ``(n 3 h w)`` float32 images in [0, 1] (pyiqa ``DISTS.forward``), ``(n,)`` float32."""
    return model(images0, images1).reshape(-1)


# -- no-reference IQA (pyiqa architectures) -------------------------------------------------------------------------
def _build_niqe() -> torch.nn.Module:
    from pyiqa.archs.niqe_arch import NIQE

    # pyiqa's "niqe" preset: Y of YIQ, no crop, original parameters.
    return NIQE(test_y_channel=True, pretrained_model_path=str(weights.locate("niqe")))


def _build_musiq() -> torch.nn.Module:
    from pyiqa.archs.musiq_arch import MUSIQ

    model = MUSIQ(pretrained=False)  # pyiqa's "musiq" preset is the KonIQ-10k head (num_class=1)
    _load_checked(model, _torch_load(weights.locate("musiq-koniq")), "musiq-koniq", strict=True)
    return model


def _build_clipiqa() -> torch.nn.Module:
    from pyiqa.archs.clipiqa_arch import CLIPIQA

    # A file path as backbone makes pyiqa's CLIP loader read it instead of resolving (and fetching) "RN50".
    return CLIPIQA(model_type="clipiqa", backbone=str(weights.locate("clip-rn50")), pretrained=False)


def no_reference_score(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Score ``(n 3 h w)`` float32 RGB images in [0, 1] with a pyiqa no-reference network, ``(n,)``."""
    return model(images).reshape(images.shape[0], -1)[:, 0]


# -- loading helpers --------------------------------------------------------------------------------------------------
def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on a bad file
        raise SeeClearError(f"cannot read weight file {path}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(state, dict):
        raise SeeClearError(f"weight file {path} holds a {type(state).__name__}, expected a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_checked(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    name: str,
    *,
    strict: bool,
    required: Sequence[str] = (),
) -> None:
    """Load ``state`` and fail loudly if any parameter would stay randomly initialised."""
    try:
        result = model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise SeeClearError(
            f"weights {name!r} do not fit {type(model).__name__}: {str(exc).splitlines()[0]}; fetch the right file "
            f"with `seeclear-bench weights fetch {name}`"
        ) from exc
    missing = sorted(set(required) & set(result.missing_keys))
    if missing:
        raise SeeClearError(
            f"weights {name!r} lack {missing[:4]}{'...' if len(missing) > 4 else ''} for {type(model).__name__}; "
            f"the file is not the one this metric needs, fetch it with `seeclear-bench weights fetch {name}`"
        )


@contextlib.contextmanager
def _torch_hub_dir(root: Path) -> Iterator[None]:
    """Temporarily make ``root`` torch's hub directory so that a backend builds from files already there."""
    import torch.hub

    with _HUB_LOCK:
        previous = torch.hub._hub_dir  # set_dir has no public getter for "unset"; restore exactly what was there
        torch.hub.set_dir(str(root))
        try:
            yield
        finally:
            torch.hub._hub_dir = previous
