"""The reverse loop of the blurring-ResShift process (SeeClear Eq. 5-6, Alg. 1 lines 2-41).

Owns `sample_loop` and the respacing rule `respaced_timesteps`. The process and the network are arguments;
randomness comes only from the torch.Generator passed in. Depends on torch only; never imports ``seeclear_bench`` or
ray.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from model.diffusion.process import BlurringResShift, Denoiser

Callback = Callable[[int, Tensor, Tensor], None]


def respaced_timesteps(total: int, steps: int) -> list[int]:
    """The evenly spaced subset of 1..total that a ``steps``-step sampler visits, in reverse order.

    t_k = floor(1 + (total - 1) k / (steps - 1) + 1/2) for k = steps-1 .. 0: always starts at ``total`` (the prior
    x_T = y + kappa sqrt(eta_T) eps is defined there) and ends at 1; ``steps = 1`` visits only ``total``. The values are
    distinct because the spacing is >= 1. Each visited t feeds the network its trained timestep; the posterior jumps
    from t_k straight to t_{k-1} (the exact two-time posterior, see ``BlurringResShift.posterior_mean_variance``).

    Args:
        total: T, the trained number of steps.
        steps: 1..T.

    Returns:
        The visited timesteps, descending, ``steps`` long.

    Raises:
        ValueError: if steps is not in 1..total.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= total:
        raise ValueError(f"steps must be an int in 1..{total} (the trained T), got {steps!r}")
    if steps == 1:
        return [total]
    return [math.floor(1 + (total - 1) * k / (steps - 1) + 0.5) for k in range(steps - 1, -1, -1)]


@torch.no_grad()
def sample_loop(
    process: BlurringResShift,
    denoiser: Denoiser,
    y: Tensor,
    *,
    generator: torch.Generator | None,
    steps: int | None = None,
    callback: Callback | None = None,
    **cond: Any,
) -> Tensor:
    """Sample x0 given the upsampled LR: x_T = y + kappa sqrt(eta_T) eps, then reverse steps T..1.

    Every step calls the denoiser once; the last step (to t = 0, variance 0) returns the x0 prediction itself.
    Runs under ``torch.no_grad``.

    Args:
        process: the diffusion process.
        denoiser: the network (see `Denoiser`).
        y: (n c h w) or (b f c h w) upsampled LR frames; h, w divisible by the patch size.
        generator: torch.Generator on y's device; the same seed gives the same sample.
        steps: None for all T steps, else 1..T network calls on the evenly spaced subset of `respaced_timesteps`.
        callback: called as callback(t, x_s, x0_pred) after the step at t (x_s is the new state; at the last step
            it equals x0_pred), e.g. to take the last step's decoder features for the CaTeGory memory update.
        **cond: passed to the denoiser at every step.

    Returns:
        The sample, same shape as y.

    Raises:
        ValueError: if steps is not in 1..T, or on bad shapes.
    """
    timesteps = respaced_timesteps(process.T, process.T if steps is None else steps)
    x = process.prior_sample(y, generator)
    for k, t in enumerate(timesteps):
        t_prev = timesteps[k + 1] if k + 1 < len(timesteps) else 0
        x, x0_pred = process.p_sample(denoiser, x, y, t, generator=generator, t_prev=t_prev, **cond)
        if callback is not None:
            callback(t, x, x0_pred)
    return x
