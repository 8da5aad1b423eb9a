"""SeeClear sampling cost: seconds per frame and peak memory for the tiny and small presets, and parameter counts.

    python benchmarks/bench_model.py [--presets tiny small] [--lr 32x48] [--frames 5] [--steps 15] [--device cpu]

Times ``SeeClear.sample`` on one LR clip (after one untimed warm-up call), reports seconds per HR frame, the peak
memory (CUDA: torch.cuda.max_memory_allocated; CPU: the growth of the process's peak RSS), and the parameter count of
each preset including the ``paper`` preset (documented against the paper's 229.23 M). Random weights: the cost of a
forward pass does not depend on their values.
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import torch

from model.seeclear import SeeClear, SeeClearConfig


class RssPeak:
    """Samples the process's resident memory every 5 ms while the block runs (CPU peak memory)."""

    def __enter__(self) -> RssPeak:
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--lr", default="32x48", help="LR frame size HxW")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    h, w = (int(v) for v in args.lr.split("x"))
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu x{os.cpu_count()} ({platform.machine()})"
    print(f"device: {name}; torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"clip: {args.frames} LR frames of {h}x{w} -> x4, {args.steps} reverse steps")
    for preset in args.presets:
        torch.manual_seed(0)
        model = SeeClear(SeeClearConfig.preset(preset)).to(device).eval()
        lr = torch.rand(1, args.frames, 3, h, w, device=device)
        gen = torch.Generator(device=device)
        gen.manual_seed(0)
        with torch.no_grad():
            model.sample(lr[:, :1], generator=gen, steps=1)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            with RssPeak() as rss:
                start = time.perf_counter()
                model.sample(lr, generator=gen, steps=args.steps)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
        if device.type == "cuda":
            peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU"
        else:
            peak = f"{rss.peak / 2**20:.0f} MiB peak RSS (+{(rss.peak - rss.start) / 2**20:.0f} MiB while sampling)"
        print(f"{preset:<6} {count(model) / 1e6:8.2f} M params  {seconds / args.frames:7.3f} s/frame  {peak}")
    from model.networks import PixelCondenser

    paper = PixelCondenser(SeeClearConfig.paper().network)
    print(f"paper  {count(paper) / 1e6:8.2f} M params in the trainable Pixel Condenser (the paper reports 229.23 M; "
          "the frozen CLIPSeg distiller adds about 150.7 M, see model/README.md)")


if __name__ == "__main__":
    main()
