"""Local weight files of the learned metrics: where each one is looked for, fetching it once, checking its SHA-256.

Metrics never download anything. A learned metric asks :func:`locate` for its files and gets a local path or a
:class:`~seeclear_bench.errors.SeeClearError` naming the metric, the file and the directory to put it in. Only
:func:`fetch` (the ``seeclear-bench weights fetch NAME`` command) touches the network.

Where files are looked for, in this order (the first directory is where :func:`fetch` writes):

1. ``$SEECLEAR_WEIGHTS`` when set. It is laid out like torch's hub directory: ``checkpoints/`` for torchvision
   backbones, ``pyiqa/`` for pyiqa's files, ``clip/`` for the OpenAI CLIP checkpoints pyiqa's CLIP-IQA uses.
2. torch's hub directory, :func:`torch.hub.get_dir` (``$TORCH_HOME/hub``, default ``~/.cache/torch/hub``), with the
   same sub-directories. This is exactly where torchvision (``<hub>/checkpoints``, ``load_state_dict_from_url``),
   pyiqa (``DEFAULT_CACHE_DIR = <hub>/pyiqa``, ``load_file_from_url``) and pyiqa's CLIP loader (``<hub>/clip``) keep
   their downloads, so an existing cache is used as it is.

The LPIPS linear heads ship inside the ``lpips`` pip package (``lpips/weights/v0.1/{alex,vgg}.pth``) and are read
from there.

Every directory :func:`fetch` writes to gets a ``seeclear-weights.json`` registry recording the SHA-256 of each file
it downloaded; :func:`list_weights` checks files against it and against the published digests.

This module imports the standard library, ``seeclear_bench.io`` and ``seeclear_bench.download``; torch only inside :func:`hub_dir`.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from seeclear_bench.download import digest_matches, download, file_sha256, read_downloads, record_download
from seeclear_bench.errors import SeeClearError, did_you_mean

logger = logging.getLogger(__name__)

Location = Literal["torch-hub", "pyiqa", "clip", "lpips-package"]

ENV_WEIGHTS: Final = "SEECLEAR_WEIGHTS"
REGISTRY_NAME: Final = "seeclear-weights.json"
# Sub-directory of a hub-style cache root holding each location's files (the backends' own layout).
HUB_SUBDIRS: Final[dict[str, str]] = {"torch-hub": "checkpoints", "pyiqa": "pyiqa", "clip": "clip"}
LPIPS_SUBDIR: Final = "weights/v0.1"

_TORCHVISION_URL: Final = "https://download.pytorch.org/models/"
_PYIQA_URL: Final = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
_LPIPS_URL: Final = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/"
_CLIP_RN50_SHA256: Final = "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"


@dataclass(frozen=True)
class WeightSpec:
    """One weight file a metric needs.

    Attributes:
        name: Key in :data:`WEIGHTS` and the argument of ``seeclear-bench weights fetch``.
        filename: The file name the backend itself uses (torchvision's ``alexnet-owt-7be5be79.pth``, ...).
        url: Where :func:`fetch` downloads it from.
        sha256: The published SHA-256 hex digest, or its leading digits where only those are published (torchvision
            file names end in the first 8 hex digits, which is what ``torch.hub`` checks); None when unknown.
        used_by: Names of the metrics that need this file.
        location: Which backend layout the file lives in (see the module docstring).
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    used_by: tuple[str, ...]
    location: Location


WEIGHTS: Final[dict[str, WeightSpec]] = {
    spec.name: spec
    for spec in (
        # torchvision ImageNet backbones (AlexNet_Weights.IMAGENET1K_V1, VGG16_Weights.IMAGENET1K_V1).
        WeightSpec(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            url=_TORCHVISION_URL + "alexnet-owt-7be5be79.pth",
            sha256="7be5be79",
            used_by=("lpips", "tlp", "tlp-stablevsr"),
            location="torch-hub",
        ),
        WeightSpec(
            name="vgg16",
            filename="vgg16-397923af.pth",
            url=_TORCHVISION_URL + "vgg16-397923af.pth",
            sha256="397923af",
            used_by=("lpips-vgg", "dists"),
            location="torch-hub",
        ),
        # LPIPS v0.1 linear heads, shipped in the lpips wheel (digests from lpips 0.1.4's RECORD).
        WeightSpec(
            name="lpips-alex-v0.1",
            filename="alex.pth",
            url=_LPIPS_URL + "alex.pth",
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            used_by=("lpips", "tlp", "tlp-stablevsr"),
            location="lpips-package",
        ),
        WeightSpec(
            name="lpips-vgg-v0.1",
            filename="vgg.pth",
            url=_LPIPS_URL + "vgg.pth",
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            used_by=("lpips-vgg",),
            location="lpips-package",
        ),
        # DISTS alpha/beta as pyiqa distributes them (pyiqa.archs.dists_arch.default_model_urls).
        WeightSpec(
            name="dists",
            filename="DISTS_weights-f5e65c96.pth",
            url=_PYIQA_URL + "DISTS_weights-f5e65c96.pth",
            sha256=None,
            used_by=("dists",),
            location="pyiqa",
        ),
        # torchvision raft_large: Raft_Large_Weights.C_T_SKHT_V2 (= DEFAULT, StableVSR's tOF) and C_T_V1 (the port
        # of princeton-vl raft-things, EvalCrafter's E*warp). Names as seeclear_bench.metrics.flow.RAFT_WEIGHT_FILES.
        WeightSpec(
            name="raft-large-c-t-skht-v2",
            filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            url=_TORCHVISION_URL + "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            sha256="ff5fadd5",
            used_by=("tof-stablevsr", "ewarp", "ewarp-stablevsr"),
            location="torch-hub",
        ),
        WeightSpec(
            name="raft-large-c-t-v1",
            filename="raft_large_C_T_V1-22a6c225.pth",
            url=_TORCHVISION_URL + "raft_large_C_T_V1-22a6c225.pth",
            sha256="22a6c225",
            used_by=("ewarp-evalcrafter",),
            location="torch-hub",
        ),
        # No-reference extras through pyiqa (niqe_arch, musiq_arch 'koniq10k', clipiqa_arch on CLIP RN50).
        WeightSpec(
            name="niqe",
            filename="niqe_modelparameters.mat",
            url=_PYIQA_URL + "niqe_modelparameters.mat",
            sha256=None,
            used_by=("niqe",),
            location="pyiqa",
        ),
        WeightSpec(
            name="musiq-koniq",
            filename="musiq_koniq_ckpt-e95806b9.pth",
            url=_PYIQA_URL + "musiq_koniq_ckpt-e95806b9.pth",
            sha256=None,
            used_by=("musiq",),
            location="pyiqa",
        ),
        WeightSpec(
            name="clip-rn50",
            filename="RN50.pt",
            url=f"https://openaipublic.azureedge.net/clip/models/{_CLIP_RN50_SHA256}/RN50.pt",
            sha256=_CLIP_RN50_SHA256,
            used_by=("clipiqa",),
            location="clip",
        ),
    )
}


def get_weight_spec(name: str) -> WeightSpec:
    """Return the spec of weight file ``name``.

    Raises:
        SeeClearError: Unknown name; the message lists the names and the closest match.
    """
    try:
        return WEIGHTS[name]
    except KeyError:
        raise SeeClearError(
            f"unknown weights {name!r}; expected one of {sorted(WEIGHTS)}{did_you_mean(str(name), WEIGHTS)}"
        ) from None


def hub_dir() -> Path:
    """torch's hub directory as torch resolves it now (``torch.hub.get_dir()``: ``$TORCH_HOME/hub`` by default)."""
    import torch.hub

    return Path(torch.hub.get_dir()).expanduser()


def cache_roots() -> list[Path]:
    """Hub-style roots searched for torchvision/pyiqa/CLIP files: ``$SEECLEAR_WEIGHTS`` (if set), then torch's hub."""
    roots: list[Path] = []
    override = os.environ.get(ENV_WEIGHTS, "").strip()
    if override:
        roots.append(Path(override).expanduser())
    hub = hub_dir()
    if hub not in roots:
        roots.append(hub)
    return roots


def candidate_paths(name: str) -> list[Path]:
    """Every path :func:`locate` tries for weights ``name``, in order; the first is where :func:`fetch` writes."""
    spec = get_weight_spec(name)
    if spec.location == "lpips-package":
        return [_lpips_package_dir() / LPIPS_SUBDIR / spec.filename]
    return [root / HUB_SUBDIRS[spec.location] / spec.filename for root in cache_roots()]


def locate(name: str) -> Path:
    """Path of the local file of weights ``name``; never downloads.

    Returns:
        The first existing file of :func:`candidate_paths`.

    Raises:
        SeeClearError: The file is in none of the searched directories; the message names the metrics that need it,
            the file, the directory to put it in and the ``seeclear-bench weights fetch`` command.
    """
    spec = get_weight_spec(name)
    candidates = candidate_paths(name)
    for path in candidates:
        if path.is_file():
            return path
    searched = ", ".join(str(p.parent) for p in candidates)
    raise SeeClearError(
        f"metric(s) {', '.join(spec.used_by)} need weights {spec.name!r} (file {spec.filename}) but it is not in "
        f"{searched}; put {spec.filename} in {candidates[0].parent} (or set ${ENV_WEIGHTS}), or run "
        f"`seeclear-bench weights fetch {spec.name}` on a machine with network access ({spec.url})"
    )


def digests(names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` of the local files of weights ``names`` (raises as :func:`locate` when one is missing).

    Record this next to learned-metric results: it pins the exact weights a number was computed with.
    """
    return {name: file_sha256(locate(name)) for name in names}


def matches_known(name: str, digest: str) -> bool | None:
    """Whether ``digest`` agrees with the published digest (or prefix) of weights ``name``; None when none is known."""
    return digest_matches(digest, get_weight_spec(name).sha256)


def fetch(name: str, *, force: bool = False, url: str | None = None) -> Path:
    """Download weights ``name`` into the first cache directory, verified and recorded.

    :func:`seeclear_bench.download.download` streams the bytes to ``NAME.part`` beside the target (an interrupted
    download resumes from there) and renames the file into place only when its SHA-256 agrees with the published
    digest (when one is known). The digest is then recorded in
    ``seeclear-weights.json`` in the same directory.

    Args:
        name: A key of :data:`WEIGHTS`.
        force: Download again even if the file is already present.
        url: Download from this URL instead of the spec's (a mirror; any scheme urllib opens, e.g. ``file://``).

    Returns:
        The local path of the file.

    Raises:
        SeeClearError: Unknown name, an unreachable URL, a checksum mismatch (nothing is written) or an unwritable
            directory.
    """
    spec = get_weight_spec(name)
    target = candidate_paths(name)[0]
    if target.is_file() and not force:
        logger.info("weights %s already present at %s", name, target)
        return target
    source = url or spec.url
    got = download(source, target, what=f"weights {name!r}", sha256=spec.sha256,
                   if_unreachable=f"check the network, or download the file by hand and put it at {target}")
    _record(target, name=name, digest=got.sha256, size=got.size, source=source)
    logger.info("fetched weights %s (%d bytes, sha256 %s) to %s", name, got.size, got.sha256, target)
    return target


def recorded_sha256(path: Path) -> str | None:
    """The digest :func:`fetch` recorded for ``path`` in its directory's ``seeclear-weights.json``, if any."""
    entry = _read_registry(path.parent).get(path.name)
    return entry.get("sha256") if isinstance(entry, dict) else None


def list_weights() -> list[dict[str, Any]]:
    """Every known weight file: where it is (or would go), whether it is present and whether its checksum verifies.

    Returns:
        One dict per :data:`WEIGHTS` entry with keys ``name``, ``filename``, ``location``, ``used_by``, ``path`` (the
        file found, else where :func:`fetch` would put it), ``present``, ``size`` (bytes or None), ``sha256`` (of the
        present file or None) and ``verified``: True when the file's digest matches every reference that exists (the
        digest recorded by :func:`fetch` and the published one), False when one differs or there is no reference.
    """
    rows = []
    for name, spec in WEIGHTS.items():
        candidates = candidate_paths(name)
        path = next((p for p in candidates if p.is_file()), None)
        row: dict[str, Any] = {
            "name": name,
            "filename": spec.filename,
            "location": spec.location,
            "used_by": list(spec.used_by),
            "path": str(path or candidates[0]),
            "present": path is not None,
            "size": None,
            "sha256": None,
            "verified": False,
        }
        if path is not None:
            digest = file_sha256(path)
            checks = [digest == rec for rec in (recorded_sha256(path),) if rec] + [
                ok for ok in (matches_known(name, digest),) if ok is not None
            ]
            row.update(size=path.stat().st_size, sha256=digest, verified=bool(checks) and all(checks))
        rows.append(row)
    return rows


def _record(path: Path, *, name: str, digest: str, size: int, source: str) -> None:
    record_download(path.parent / REGISTRY_NAME, "weights", path.name,
                    {"name": name, "sha256": digest, "size": size, "url": source})


def _read_registry(directory: Path) -> dict[str, Any]:
    return read_downloads(directory / REGISTRY_NAME, "weights")


def _lpips_package_dir() -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise SeeClearError("LPIPS metrics need the lpips package, which is not installed; pip install lpips")
    return Path(next(iter(spec.submodule_search_locations)))
