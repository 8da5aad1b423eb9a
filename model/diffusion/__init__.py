"""The blurring-ResShift diffusion process of SeeClear: schedules, block DCT, forward marginal, posterior, sampler.

Depends on torch and einops only; never imports ``seeclear_bench`` or ray, does no file I/O and no device moves.
"""
from __future__ import annotations

from model.diffusion.config import DiffusionConfig
from model.diffusion.dct import block_dct, block_idct
from model.diffusion.process import BlurringResShift, Denoiser
from model.diffusion.sampler import respaced_timesteps, sample_loop
from model.diffusion.schedule import make_blur_factors, make_blur_schedule, make_eta_schedule

__all__ = [
    "BlurringResShift",
    "Denoiser",
    "DiffusionConfig",
    "block_dct",
    "block_idct",
    "make_blur_factors",
    "make_blur_schedule",
    "make_eta_schedule",
    "respaced_timesteps",
    "sample_loop",
]
