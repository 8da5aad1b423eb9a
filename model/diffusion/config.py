"""The frozen configuration of the blurring-ResShift diffusion process (SeeClear Sec. 3.1, App. A).

Owns `DiffusionConfig` and its validation only. Imports nothing beyond the standard library; must never import
``seeclear_bench`` or ray. Defaults are SEECLEAR.md Sec. 7 (ResShift NeurIPS schedule, sigma_B^2 = 2, patch 4).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

#: ResShift caps sqrt(eta_1) at sqrt(0.001) (``get_named_eta_schedule``).
SQRT_ETA_1_CAP = math.sqrt(0.001)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """Hyper-parameters of the blurring-ResShift process.

    Attributes:
        steps: number of diffusion steps T (the model is trained and sampled on t = 1..T).
        kappa: noise scale kappa of ResShift (Eq. 3 of SeeClear); 2.0 as ResShift's main setting, 1.0 its bicubic one.
        eta_power: power p of ResShift's "exponential" eta schedule.
        min_noise_level: ResShift's ``min_noise_level``; sqrt(eta_1) = min(min_noise_level / kappa,
            min_noise_level, sqrt(0.001)).
        etas_end: sqrt(eta_T); must lie strictly between sqrt(eta_1) and 1.
        patch_size: side p of the block-DCT patches inside which heat dissipation acts (Eq. 21-23).
        blur: False turns the blur off (D_t = 1): plain ResShift, the sigma_B^2 = 0 row of Table 4.
        blur_sigma_min: sigma_B at t = 1 (pixels); sigma_B,t is log-spaced up to ``blur_sigma_max`` at t = T.
        blur_sigma_max: sigma_B at t = T; sqrt(2) gives the final model's sigma_B^2 = 2 (Table 4).
        blur_floor: d_min of the dissipation factor d = (1 - d_min) exp(Lambda tau) + d_min (Blurring Diffusion).
        scale_input: divide x_t by sqrt(kappa^2 eta_t + 1) before the network (ResShift ``normalize_input``).
        posterior: which reverse step to sample with. "consistent" (default): the Gaussian posterior of the
            transition u_t = u_{t-1} + (m_t - m_{t-1}) + kappa sqrt(alpha_t) eps, which reproduces the marginal of
            Eq. 25 exactly and is ResShift's posterior when blur is off. "paper": Eq. 33-36 of SeeClear (with the
            corrected "+" sign), the posterior of the Eq. 28 transition, whose chain does not reproduce Eq. 25.
            See model/README.md, "Diffusion: choices and departures".

    Raises:
        ValueError: naming the field, when a value is out of range or of the wrong type.
    """

    steps: int = 15
    kappa: float = 2.0
    eta_power: float = 0.3
    min_noise_level: float = 0.04
    etas_end: float = 0.99
    patch_size: int = 4
    blur: bool = True
    blur_sigma_min: float = 0.5
    blur_sigma_max: float = 2**0.5
    blur_floor: float = 0.001
    scale_input: bool = True
    posterior: Literal["consistent", "paper"] = "consistent"

    def __post_init__(self) -> None:
        if not _is_int(self.steps) or self.steps < 1:
            raise ValueError(f"diffusion.steps must be an int >= 1, got {self.steps!r}")
        for name in ("kappa", "eta_power", "min_noise_level"):
            value = getattr(self, name)
            if not _is_real(value) or value <= 0:
                raise ValueError(f"diffusion.{name} must be a finite number > 0, got {value!r}")
        if not _is_real(self.etas_end) or not self.sqrt_eta_1 < self.etas_end < 1:
            raise ValueError(
                f"diffusion.etas_end (sqrt(eta_T)) must lie in ({self.sqrt_eta_1:.6g}, 1) so that eta increases "
                f"from eta_1 and stays below 1, got {self.etas_end!r}"
            )
        if not _is_int(self.patch_size) or self.patch_size < 1:
            raise ValueError(f"diffusion.patch_size must be an int >= 1, got {self.patch_size!r}")
        for name in ("blur", "scale_input"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"diffusion.{name} must be a bool, got {getattr(self, name)!r}")
        if not _is_real(self.blur_sigma_min) or self.blur_sigma_min <= 0:
            raise ValueError(f"diffusion.blur_sigma_min must be a finite number > 0, got {self.blur_sigma_min!r}")
        if not _is_real(self.blur_sigma_max) or self.blur_sigma_max < self.blur_sigma_min:
            raise ValueError(
                f"diffusion.blur_sigma_max must be a finite number >= blur_sigma_min ({self.blur_sigma_min!r}), "
                f"got {self.blur_sigma_max!r}"
            )
        if not _is_real(self.blur_floor) or not 0 <= self.blur_floor < 1:
            raise ValueError(f"diffusion.blur_floor must lie in [0, 1), got {self.blur_floor!r}")
        if self.posterior not in ("consistent", "paper"):
            raise ValueError(f"diffusion.posterior must be 'consistent' or 'paper', got {self.posterior!r}")

    @property
    def sqrt_eta_1(self) -> float:
        """sqrt(eta_1) as ResShift computes it: min(min_noise_level / kappa, min_noise_level, sqrt(0.001))."""
        return min(self.min_noise_level / self.kappa, self.min_noise_level, SQRT_ETA_1_CAP)
