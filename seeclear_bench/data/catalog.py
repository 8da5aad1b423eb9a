"""The catalogue of the field's public VSR datasets: where each archive is published, what it holds, where it lands.

Each :class:`DatasetSpec` lists its archives (:class:`PartSpec`): the official URL(s), the expected size, a SHA-256
where one is published (none of these hosts publishes one today, so every entry says None and
:mod:`seeclear_bench.data.fetch` records the digest of the first verified download instead), the archive format, which
folder of the archive is installed and where under the output folder it lands, and the licence or terms. Landing
places are layouts :func:`seeclear_bench.data.sources.discover_clips` reads as they are (``reds``, ``vid4``,
``vimeo90k``, and ``GT/<clip>`` test sets). Named evaluation splits (REDS4, REDSofficial4, Vid4, Vimeo-90K-T) are
:data:`~seeclear_bench.data.sources.SPLITS`; :data:`SPLIT_PARTS` says which archives hold each one, so
``seeclear-bench data fetch REDS4`` fetches exactly those.

URLs were taken from the hosts' own pages (REDS: seungjunnah.github.io/Datasets/reds.html, Vimeo-90K:
toflow.csail.mit.edu, Vid4: the BasicSR/MMagic dataset documentation); a mirror is said to be one in its note. Sizes
marked "about" are the hosts' own rounded figures or estimates from frame counts, shown to the user, never checked;
what is checked is the size the server states and the size and digest recorded at the first download.

Imports only the standard library and :mod:`seeclear_bench.errors`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from seeclear_bench.errors import SeeClearError, did_you_mean

ArchiveFormat = Literal["zip", "tar"]


@dataclass(frozen=True)
class PartSpec:
    """One downloadable archive of a dataset.

    Attributes:
        name: The part's name (``train_sharp``), the value of ``data fetch --part``.
        filename: The archive's published file name.
        urls: Published locations, tried in order (empty: no stable public location; use ``--url``/``--archive``).
        format: ``zip`` or ``tar`` (any compression tarfile reads); the file's own signature decides at extraction.
        approx_size: The size as the host states it, or an estimate (shown to users, never checked).
        sha256: Published SHA-256 hex digest, or None where the host publishes none.
        content: Candidate folders inside the archive that hold the data, first existing one wins (``"."``: the
            archive's top level, or its single top folder).
        dest: Where that folder lands, relative to ``--out`` (POSIX separators).
        moves: ``(from, to)`` pairs, relative to the content folder and to ``dest``, when the archive's own layout
            is rearranged into one the sources read (a file may be placed twice); empty: the folder lands as it is.
        note: Anything the user should know (a mirror, what the LR frames are, what is left out).
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    format: ArchiveFormat
    approx_size: str
    content: tuple[str, ...]
    dest: str
    sha256: str | None = None
    moves: tuple[tuple[str, str], ...] = ()
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of the catalogue.

    Attributes:
        name: The name ``data fetch`` takes.
        title: One line on what it is.
        homepage: The page that publishes it.
        licence: Its licence or terms of use, as published.
        parts: Its archives.
        read_as: How the toolkit reads what lands (paths relative to ``--out``).
        splits: Named evaluation splits inside it (:data:`seeclear_bench.data.sources.SPLITS` names).
    """

    name: str
    title: str
    homepage: str
    licence: str
    parts: tuple[PartSpec, ...]
    read_as: str
    splits: tuple[str, ...] = ()

    def part(self, name: str) -> PartSpec:
        """The part called ``name``; unknown names are one line listing the parts."""
        for part in self.parts:
            if part.name == name:
                return part
        names = [p.name for p in self.parts]
        raise SeeClearError(f"dataset {self.name} has no part {name!r}{did_you_mean(name, names)}; its parts are "
                            f"{', '.join(names)}")


_REDS_URL: Final = "http://data.cv.snu.ac.kr:8008/webdav/dataset/REDS/"
_REDS_NOTE: Final = ("SNU CV lab server as linked from the REDS page; the page also links Google Drive copies, which "
                     "need a browser (download there and pass --archive)")


def _reds_part(name: str, approx_size: str, note: str = "") -> PartSpec:
    folder = name.split("_")[0]  # the zips hold train/train_sharp/... and val/val_sharp/...
    return PartSpec(
        name=name, filename=f"{name}.zip", urls=(_REDS_URL + f"{name}.zip",), format="zip", approx_size=approx_size,
        content=(f"{folder}/{name}", name), dest=f"REDS/{name}", note="; ".join(filter(None, (note, _REDS_NOTE))),
    )


_VIMEO_URL: Final = "http://data.csail.mit.edu/tofu/"
_VIMEO_TERMS: Final = ("Vimeo-90K (Xue et al., IJCV 2019): research use; the frames come from Vimeo videos whose "
                       "rights stay with their owners, so check the terms on toflow.csail.mit.edu before other uses")

DATASETS: Final[Mapping[str, DatasetSpec]] = MappingProxyType({spec.name: spec for spec in (
    DatasetSpec(
        name="REDS",
        title="REDS (NTIRE 2019): 720x1280, 100 frames per clip; 240 train + 30 val clips, sharp GT and bicubic x4 LR",
        homepage="https://seungjunnah.github.io/Datasets/reds.html",
        licence="CC BY 4.0 (Nah et al., CVPRW 2019)",
        parts=(
            _reds_part("train_sharp", "about 32 GB (24,000 PNG frames, estimated)", "GT of clips 000-239"),
            _reds_part("train_sharp_bicubic", "about 2 GB (24,000 PNG frames, estimated)",
                       "bicubic x4 LR of clips 000-239, in X4/<clip>/"),
            _reds_part("val_sharp", "about 4 GB (3,000 PNG frames, estimated)",
                       "GT of the official val clips, numbered 000-029 (read as 240-269, as BasicSR regroups them)"),
            _reds_part("val_sharp_bicubic", "about 0.3 GB (3,000 PNG frames, estimated)",
                       "bicubic x4 LR of the val clips, in X4/<clip>/ numbered 000-029"),
        ),
        read_as=("GT: REDS (layout reds; split REDS4 = clips 000, 011, 015, 020 of train_sharp; REDSofficial4 = 240, "
                 "241, 246, 257 = val_sharp 000, 001, 006, 017); LR: REDS/train_sharp_bicubic/X4, "
                 "REDS/val_sharp_bicubic/X4"),
        splits=("REDS4", "REDSofficial4"),
    ),
    DatasetSpec(
        name="Vid4",
        title="Vid4 (Liu & Sun): calendar 41, city 34, foliage 49, walk 47 frames; GT with BI and BD x4 LR",
        homepage="https://github.com/XPixelGroup/BasicSR/blob/master/docs/DatasetPreparation.md",
        licence="research use (Liu & Sun, CVPR 2011 / TPAMI 2014); no licence is published with the frames",
        parts=(PartSpec(
            name="all", filename="Vid4.zip",
            urls=("https://drive.google.com/uc?export=download&id=1ZuvNNLgR85TV_whJoHM7uVb-XW1y70DW",
                  "https://paddlegan.bj.bcebos.com/datasets/Vid4.zip"),
            format="zip", approx_size="about 0.1 GB (estimated)", content=("Vid4", "."), dest="Vid4",
            note=("the Google Drive file BasicSR and MMagic link (GT/, BIx4/, BDx4/); the second URL is PaddleGAN's "
                  "mirror (GT/ and BDx4/ only)"),
        ),),
        read_as="GT: Vid4 (its GT/ folder, layout vid4, split Vid4); LR: Vid4/BIx4, Vid4/BDx4",
        splits=("Vid4",),
    ),
    DatasetSpec(
        name="Vimeo-90K",
        title="Vimeo-90K septuplets (ToFlow): 448x256, 7 frames; 64,612 train + 7,824 test septuplets (Vimeo-90K-T)",
        homepage="http://toflow.csail.mit.edu/",
        licence=_VIMEO_TERMS,
        parts=(
            PartSpec(
                name="sr_test", filename="vimeo_super_resolution_test.zip",
                urls=(_VIMEO_URL + "testset/vimeo_super_resolution_test.zip",), format="zip",
                approx_size="about 6 GB (as the host states)", content=("vimeo_super_resolution_test", "."),
                dest="Vimeo-90K-T",
                moves=(("target", "sequences"), ("sep_testlist.txt", "sep_testlist.txt"),
                       ("low_resolution", "low_resolution/sequences"),
                       ("sep_testlist.txt", "low_resolution/sep_testlist.txt")),
                note=("Vimeo-90K-T: the 7,824 test septuplets (target/ lands as sequences/) with sep_testlist.txt, "
                      "and ToFlow's x4 low_resolution/ frames; its bicubic-upsampled input/ is left out"),
            ),
            PartSpec(
                name="septuplet", filename="vimeo_septuplet.zip",
                urls=(_VIMEO_URL + "dataset/vimeo_septuplet.zip",), format="zip",
                approx_size="about 82 GB (as the host states)", content=("vimeo_septuplet", "."), dest="Vimeo-90K",
                note="all 91,701 septuplets (train and test) with sep_trainlist.txt and sep_testlist.txt",
            ),
        ),
        read_as=("Vimeo-90K-T (layout vimeo90k, split Vimeo-90K-T); LR: Vimeo-90K-T/low_resolution; training: "
                 "Vimeo-90K"),
        splits=("Vimeo-90K-T",),
    ),
    DatasetSpec(
        name="UDM10",
        title="UDM10 (PFNL, Yi et al., ICCV 2019): 10 clips of 32 frames, GT with BD x4 LR",
        homepage="https://github.com/psychopa4/PFNL",
        licence="research use (Yi et al., ICCV 2019); no licence is published with the frames",
        parts=(PartSpec(
            name="all", filename="udm10_paddle.tar", urls=("https://paddlegan.bj.bcebos.com/datasets/udm10_paddle.tar",),
            format="tar", approx_size="about 0.4 GB (estimated)", content=("udm10", "UDM10", "."), dest="UDM10",
            note=("a mirror: PaddleGAN's copy (GT/ and BDx4/); the authors publish theirs on Google Drive and Baidu "
                  "Pan only (download in a browser and pass --archive)"),
        ),),
        read_as="GT: UDM10 (its GT/ folder, one folder per clip); LR: UDM10/BDx4",
    ),
    DatasetSpec(
        name="SPMCS",
        title="SPMCS (SPMC, Tao et al., ICCV 2017): 30 clips of 31 frames",
        homepage="https://github.com/jiangsutx/SPMC_VideoSR",
        licence="research use (Tao et al., ICCV 2017); no licence is published with the frames",
        parts=(PartSpec(
            name="all", filename="SPMCS.zip", urls=(), format="zip", approx_size="unknown",
            content=("SPMCS", "."), dest="SPMCS",
            note=("no stable public location is known: fetch a copy laid out as GT/<clip>/ (plus LR folders) with "
                  "--archive PATH or --url URL"),
        ),),
        read_as="GT: SPMCS (its GT/ folder, one folder per clip)",
    ),
)})

SPLIT_PARTS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = MappingProxyType({
    "REDS4": ("REDS", ("train_sharp", "train_sharp_bicubic")),
    "REDSofficial4": ("REDS", ("val_sharp", "val_sharp_bicubic")),
    "Vid4": ("Vid4", ("all",)),
    "Vimeo-90K-T": ("Vimeo-90K", ("sr_test",)),
})
"""Split name -> (dataset, the parts that hold its GT and LR frames)."""


def resolve(name: str, parts: tuple[str, ...] = ()) -> tuple[DatasetSpec, tuple[PartSpec, ...]]:
    """The dataset and the archives ``data fetch NAME [--part ...]`` means.

    Args:
        name: A dataset of :data:`DATASETS` or a split of :data:`SPLIT_PARTS` (case-insensitive).
        parts: Part names to keep (default: all parts of the dataset, or the split's parts).

    Raises:
        SeeClearError: Unknown dataset, split or part; the message lists the names and the closest match.
    """
    known = {**{n.casefold(): n for n in DATASETS}, **{n.casefold(): n for n in SPLIT_PARTS}}
    canonical = known.get(str(name).casefold())
    if canonical is None:
        choices = list(dict.fromkeys([*DATASETS, *SPLIT_PARTS]))
        raise SeeClearError(f"unknown dataset {name!r}{did_you_mean(str(name), choices)}; known: "
                            f"{', '.join(choices)} (see `seeclear-bench data list`)")
    if canonical in DATASETS:
        spec = DATASETS[canonical]
        names = parts or tuple(p.name for p in spec.parts)
    else:
        dataset, split_parts = SPLIT_PARTS[canonical]
        spec = DATASETS[dataset]
        names = parts or split_parts
    return spec, tuple(spec.part(n) for n in dict.fromkeys(names))
