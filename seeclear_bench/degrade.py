"""``seeclear-bench degrade``: LR clips from HR clips, on this machine, no Ray.

Output layout (the ``clips`` layout, so it reads back as a source)::

    OUT/<clip>/00000000.png ...     LR frames (lossless PNG)
    OUT/<clip>/degradation.json     every parameter and random choice used for this clip
    OUT/degradation.json            the run's record (written last: its presence means the folder is complete)
"""
from __future__ import annotations

import logging
from typing import Any

from seeclear_bench import io
from seeclear_bench.config import DegradeConfig, SourceConfig

log = logging.getLogger(__name__)


def degrade_folder(source: SourceConfig, cfg: DegradeConfig, out_url: str, *, seed: int, progress: bool = True) -> dict[str, Any]:
    """Degrade every clip of ``source`` into ``out_url``; returns a summary (clips, frames, cropped clips)."""
    from tqdm.auto import tqdm

    from seeclear_bench.data.degradations import degrade_clip
    from seeclear_bench.data.frames import encode_png
    from seeclear_bench.data.sources import discover_clips, read_clip
    from seeclear_bench.provenance import record

    refs = discover_clips(source.url, layout=source.layout, split=source.split or None,
                          clips=list(source.clips) or None, dataset=source.name)
    io.check_writable(out_url)
    realistic = cfg.realistic_params() if cfg.kind == "realistic" else None
    n_frames, cropped = 0, []
    for ref in tqdm(refs, desc="degrade", unit="clip", disable=None if progress else True):
        hr = read_clip(ref, max_frames=source.max_frames or None, start=source.start_frame)
        deg = degrade_clip(hr, kind=cfg.kind, scale=cfg.scale, seed=seed, clip_id=ref.clip_id,
                           on_indivisible=cfg.on_indivisible, realistic=realistic, dataset=ref.dataset)
        if deg.hr.shape != hr.shape:
            cropped.append(ref.clip_id)
            log.warning("dataset %s, clip %s: HR %dx%d is not divisible by %d, cropped to %dx%d", ref.dataset,
                        ref.clip_id, hr.shape[1], hr.shape[2], cfg.scale, deg.hr.shape[1], deg.hr.shape[2])
        clip_url = io.join(out_url, ref.clip_id)
        for i, frame in enumerate(deg.lr):
            io.write_bytes(io.join(clip_url, f"{source.start_frame + i:08d}.png"), encode_png(frame))
        io.write_json(io.join(clip_url, "degradation.json"), {"clip": ref.clip_id, "source": ref.url, **deg.params})
        n_frames += len(deg.lr)
    summary = {"clips": len(refs), "frames": n_frames, "cropped": cropped}
    io.write_json(io.join(out_url, "degradation.json"),
                  record(source=source.url, degrade=cfg.__dict__ | {}, seed=seed, **summary))
    return summary
