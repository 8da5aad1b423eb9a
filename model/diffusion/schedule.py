"""Schedules of the blurring-ResShift process, computed once in float64.

Owns ResShift's "exponential" shifting schedule eta_t (SeeClear Sec. 3.1 "follow ResShift"; ResShift
``get_named_eta_schedule``), the IHDM-style blur schedule tau_t (SeeClear Sec. 4.1 "follow IHDM") and the per-frequency
dissipation factors d_t that replace D_t = exp(Lambda t) of Eq. 21. Depends on torch only; never imports
``seeclear_bench`` or ray.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from model.diffusion.config import DiffusionConfig
from model.diffusion.dct import laplacian_eigenvalues


def make_eta_schedule(cfg: DiffusionConfig) -> Tensor:
    """ResShift's exponential shifting schedule eta_1..eta_T (SEECLEAR.md Sec. 3.2).

    sqrt(eta_t) = sqrt(eta_1) * b0^(beta_t), beta_t = ((t - 1) / (T - 1))^p (T - 1),
    b0 = exp(log(sqrt(eta_T) / sqrt(eta_1)) / (T - 1)), with sqrt(eta_1) = ``cfg.sqrt_eta_1`` and
    sqrt(eta_T) = ``cfg.etas_end``. For T = 1 the single step has eta_1 = etas_end^2 (straight from the prior).

    Args:
        cfg: the diffusion config.

    Returns:
        (T,) float64, strictly increasing, entry t - 1 holding eta_t.
    """
    steps = cfg.steps
    if steps == 1:
        return torch.tensor([cfg.etas_end**2], dtype=torch.float64)
    start = cfg.sqrt_eta_1
    log_base = math.log(cfg.etas_end / start) / (steps - 1)
    beta = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) ** cfg.eta_power * (steps - 1)
    sqrt_eta = start * torch.exp(log_base * beta)
    return sqrt_eta**2


def make_blur_schedule(cfg: DiffusionConfig) -> Tensor:
    """Heat-dissipation times tau_0..tau_T (IHDM schedule shape, SEECLEAR.md Sec. 7).

    sigma_B,t is log-spaced from ``blur_sigma_min`` (t = 1) to ``blur_sigma_max`` (t = T), sigma_B,0 = 0 and
    tau_t = sigma_B,t^2 / 2 (a Gaussian blur of variance sigma_B,t^2, Eq. 22). With T = 1 the single step uses
    ``blur_sigma_max``. With ``cfg.blur`` False every tau is 0 (no blur).

    Args:
        cfg: the diffusion config.

    Returns:
        (T+1,) float64, entry t holding tau_t; entry 0 is 0.
    """
    taus = torch.zeros(cfg.steps + 1, dtype=torch.float64)
    if not cfg.blur:
        return taus
    if cfg.steps == 1:
        sigma = torch.tensor([cfg.blur_sigma_max], dtype=torch.float64)
    else:
        sigma = torch.exp(
            torch.linspace(math.log(cfg.blur_sigma_min), math.log(cfg.blur_sigma_max), cfg.steps, dtype=torch.float64)
        )
    taus[1:] = sigma**2 / 2
    return taus


def make_blur_factors(cfg: DiffusionConfig) -> Tensor:
    """Per-frequency dissipation factors d_t: the diagonal of D_t in the block-DCT domain (Eq. 21, generalized).

    d_t = (1 - d_min) exp(Lambda tau_t) + d_min (the floor of Blurring Diffusion / Relay Diffusion), computed as
    1 - (1 - d_min)(1 - exp(Lambda tau_t)) so that d is exactly 1 wherever Lambda tau_t = 0 (the DC term, t = 0, and
    everything when ``cfg.blur`` is False).

    Args:
        cfg: the diffusion config.

    Returns:
        (T+1, ky, kx) = (T+1, p, p) float64 in (0, 1], entry t holding d_t.
    """
    lam = laplacian_eigenvalues(cfg.patch_size)
    taus = make_blur_schedule(cfg)
    return 1.0 - (1.0 - cfg.blur_floor) * -torch.expm1(lam[None] * taus[:, None, None])
