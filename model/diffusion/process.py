"""The blurring-ResShift diffusion process of SeeClear (Sec. 3.1, App. A): forward marginal, posterior, loss.

Owns `BlurringResShift` (a plain class built from `DiffusionConfig`; the network is an argument, typed by the
`Denoiser` protocol) and nothing else: no network, no wavelet transform, no upsampling, no device moves (tensors
follow their inputs). Depends on torch and einops only; never imports ``seeclear_bench`` or ray.

Notation (all per block-DCT coefficient, u = block_dct(x, p); the DCT is orthonormal, so white noise is white in both
domains and only the blur needs the transform):

- d_t = (1 - d_min) exp(Lambda tau_t) + d_min, the diagonal of D_t (Eq. 21-23 with tau_t for t; d_0 = 1).
- m_t = (1 - eta_t) d_t u_0 + eta_t u_l, the mean of the forward marginal (Eq. 25/29);
  q(u_t | u_0, u_l) = N(m_t, kappa^2 eta_t).
- Reverse step from t to s < t (s = t - 1 unless respaced), with alpha = eta_t - eta_s, from a Gaussian transition
  u_t = c u_s + (m_t - c m_s) + sqrt(v) eps whose mean agrees with Eq. 25:

  gain a = c eta_s / (c^2 eta_s + v / kappa^2),   variance = kappa^2 eta_s (v / kappa^2) / (c^2 eta_s + v / kappa^2),
  mean   = m_s + a (u_t - m_t).

  ``posterior="paper"``: c = lambda = (1 - eta_t)/(1 - eta_s) d_t / d_s and v = kappa^2 alpha, the transition of
  Eq. 28; the mean expands to Eq. 34 with the corrected "+ alpha_t eta_{t-1}" in the u_l coefficient, the variance is
  Eq. 35. ``posterior="consistent"`` (default): c = 1 and v = kappa^2 alpha, which reproduces the marginal Eq. 25
  exactly (Var = kappa^2 eta_s + kappa^2 alpha = kappa^2 eta_t) and is ResShift's posterior (eta_s/eta_t x_t +
  alpha/eta_t x_0, variance kappa^2 eta_s alpha / eta_t) when the blur is off. At s = 0 (eta_0 = 0) both give
  mean = x0 and variance 0.
"""
from __future__ import annotations

from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from model.diffusion.config import DiffusionConfig
from model.diffusion.dct import block_dct, block_idct
from model.diffusion.schedule import make_blur_factors, make_blur_schedule, make_eta_schedule

Loss = Literal["charbonnier", "mse", "l1"]


class Denoiser(Protocol):
    """What the process needs from the network: an x0 prediction.

    Args:
        x_t: the state at step t, already divided by sqrt(kappa^2 eta_t + 1) when ``cfg.scale_input`` is set;
            (n c h w) or (b f c h w), pixel space.
        t: (n,) long timesteps in 1..T (n = the first axis of x_t).
        y: the upsampled LR (the residual base and diffusion end state), same shape as x_t.
        **cond: further conditioning (semantic tokens, memory, ...), passed through untouched.

    Returns:
        The prediction of x0 in pixel space, same shape as y.
    """

    def __call__(self, x_t: Tensor, t: Tensor, y: Tensor, **cond: Any) -> Tensor: ...


def _frequency_constant(table: Tensor) -> bool:
    return bool((table == table[..., :1, :1]).all())


class BlurringResShift:
    """SeeClear's "Blurring ResShift": patch-level heat dissipation + ResShift residual shifting + noise.

    All tables are computed once here in float64 and cast to the inputs' dtype and device when used.

    Attributes:
        cfg: the config it was built from.
        T: number of steps.
        etas: (T,) float64, entry t - 1 holding eta_t.
        taus: (T+1,) float64 blur times, entry t holding tau_t (tau_0 = 0).
        blur_factors: (T+1, p, p) float64, entry t holding d_t per block-DCT frequency (d_0 = 1).
    """

    def __init__(self, cfg: DiffusionConfig) -> None:
        self.cfg = cfg
        self.T: int = cfg.steps
        self.p: int = cfg.patch_size
        self.etas: Tensor = make_eta_schedule(cfg)
        self.taus: Tensor = make_blur_schedule(cfg)
        self.blur_factors: Tensor = make_blur_factors(cfg)
        kappa2 = cfg.kappa**2
        eta = torch.cat([torch.zeros(1, dtype=torch.float64), self.etas])  # (T+1,), eta_0 = 0
        ones = torch.ones(self.p, self.p, dtype=torch.float64)
        d = self.blur_factors

        # Forward marginal, Eq. 25/29, indexed by t.
        self._scalars: dict[str, Tensor] = {
            "noise_std": cfg.kappa * eta.sqrt(),
            "input_scale": (kappa2 * eta + 1).rsqrt() if cfg.scale_input else torch.ones_like(eta),
        }
        tables: dict[str, Tensor] = {
            "mean_x0": (1 - eta)[:, None, None] * d,
            "mean_y": eta[:, None, None] * ones,
        }

        # Reverse step for every pair (t, s), s < t, indexed [t, s].
        eta_t, eta_s = eta[:, None, None, None], eta[None, :, None, None]
        d_t, d_s = d[:, None], d[None, :]
        alpha = eta_t - eta_s
        if cfg.posterior == "paper":
            # lambda of Eq. 28 in the d-ratio form (see README); a factor that underflowed to 0 stays 0.
            ratio = torch.where(d_s > 0, d_t / d_s.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
            slope = (1 - eta_t) / (1 - eta_s) * ratio
        else:
            slope = torch.ones_like(d_t * d_s)
        den = slope**2 * eta_s + alpha
        valid = (torch.arange(self.T + 1)[:, None] > torch.arange(self.T + 1)[None, :])[..., None, None]
        den = torch.where(valid, den, torch.ones_like(den))  # pairs with s >= t are never used
        gain = torch.where(valid, slope * eta_s / den, 0.0)
        tables["post_xt"] = gain
        tables["post_x0"] = torch.where(valid, (1 - eta_s) * d_s - gain * (1 - eta_t) * d_t, 0.0)
        # eta_s - gain * eta_t, arranged so that it is exactly 0 for slope = 1 (no u_l term in ResShift's posterior).
        tables["post_y"] = torch.where(valid, eta_s * (slope * (slope * eta_s - eta_t) + alpha) / den, 0.0)
        tables["post_var"] = torch.where(valid, kappa2 * eta_s * alpha / den, 0.0)
        tables["post_std"] = tables["post_var"].sqrt()
        self._tables = tables
        self._constant = {k: _frequency_constant(v) for k, v in tables.items()}
        self._zero = {k: bool((v == 0).all()) for k, v in tables.items()}
        self._cast: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _table(self, name: str, like: Tensor) -> Tensor:
        key = (name, like.device, like.dtype)
        if key not in self._cast:
            source = self._scalars[name] if name in self._scalars else self._tables[name]
            self._cast[key] = source.to(device=like.device, dtype=like.dtype)
        return self._cast[key]

    def _timesteps(self, t: int | Tensor, like: Tensor, *, name: str = "t", low: int = 1) -> Tensor:
        """(n,) long timesteps on like's device, checked to lie in low..T."""
        n = like.shape[0]
        if isinstance(t, Tensor):
            if t.dim() == 0:
                t = t.expand(n)
            if t.shape != (n,) or t.dtype.is_floating_point or t.dtype == torch.bool:
                raise ValueError(
                    f"{name} must be an int or an integer tensor of shape ({n},) (one per sample), "
                    f"got {t.dtype} of shape {tuple(t.shape)}"
                )
            t = t.to(device=like.device, dtype=torch.long)
        elif isinstance(t, int) and not isinstance(t, bool):
            t = torch.full((n,), t, dtype=torch.long, device=like.device)
        else:
            raise ValueError(f"{name} must be an int or an integer tensor, got {type(t).__name__}")
        if bool((t < low).any()) or bool((t > self.T).any()):
            raise ValueError(f"{name} must lie in {low}..{self.T}, got values in {int(t.min())}..{int(t.max())}")
        return t

    def _check_shapes(self, **tensors: Tensor) -> Tensor:
        first_name, first = next(iter(tensors.items()))
        if first.dim() < 3 or not first.is_floating_point():
            raise ValueError(
                f"{first_name} must be a floating tensor (n ... h w) such as (n c h w) or (b f c h w), "
                f"got {first.dtype} of shape {tuple(first.shape)}"
            )
        h, w = first.shape[-2:]
        if h % self.p or w % self.p:
            raise ValueError(
                f"{first_name} height and width must be divisible by the patch size {self.p}, got h={h}, w={w}; "
                f"pad or crop the frames"
            )
        for name, x in tensors.items():
            if x.shape != first.shape:
                raise ValueError(
                    f"{name} must have the shape of {first_name} {tuple(first.shape)}, got {tuple(x.shape)}"
                )
        return first

    def _per_sample(self, name: str, index: Tensor, like: Tensor) -> Tensor:
        return self._table(name, like)[index].view(-1, *([1] * (like.dim() - 1)))

    def _linear(self, terms: list[tuple[str, Tensor]], index: tuple[Tensor, ...], like: Tensor) -> Tensor:
        """sum_k V diag(table_k[index]) V^T x_k: per-frequency coefficients, applied in pixel space if constant."""
        out: Tensor | None = None
        spectrum: Tensor | None = None
        h, w = like.shape[-2:]
        for name, x in terms:
            if self._zero[name]:
                continue
            rows = self._table(name, like)[index]  # (n p p)
            if self._constant[name]:
                term = x * rows[:, 0, 0].view(-1, *([1] * (x.dim() - 1)))
                out = term if out is None else out + term
            else:
                tiled = rows.repeat(1, h // self.p, w // self.p).view(-1, *([1] * (x.dim() - 3)), h, w)
                term = block_dct(x, self.p) * tiled
                spectrum = term if spectrum is None else spectrum + term
        if spectrum is not None:
            spatial = block_idct(spectrum, self.p)
            out = spatial if out is None else out + spatial
        return torch.zeros_like(like) if out is None else out

    def _variance(self, name: str, index: tuple[Tensor, ...], like: Tensor) -> Tensor:
        rows = self._table(name, like)[index]  # (n p p)
        if self._constant[name]:
            return rows[:, 0, 0].view(-1, *([1] * (like.dim() - 1)))
        h, w = like.shape[-2:]
        return rows.repeat(1, h // self.p, w // self.p).view(-1, *([1] * (like.dim() - 3)), h, w)

    # -- forward process ---------------------------------------------------------------------------------------------
    def q_mean_variance(self, x0: Tensor, y: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of the forward marginal q(x_t | x0, y), SeeClear Eq. 25/29.

        mean = V[(1 - eta_t) d_t V^T x0] + eta_t y (= x0 + eta_t (y - x0) without blur, ResShift Eq. 24),
        variance = kappa^2 eta_t, the same for every pixel and every DCT coefficient.

        Args:
            x0: (n ... h w) HR frames, pixel space; h, w divisible by the patch size.
            y: (n ... h w) upsampled LR frames.
            t: int or (n,) long in 1..T (0 is allowed and gives mean x0, variance 0).

        Returns:
            mean (n ... h w) and variance (n 1 ... 1).
        """
        self._check_shapes(x0=x0, y=y)
        t = self._timesteps(t, x0, low=0)
        mean = self._linear([("mean_x0", x0), ("mean_y", y)], (t,), x0)
        return mean, self._per_sample("noise_std", t, x0) ** 2

    def q_sample(self, x0: Tensor, y: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """Draw x_t from the forward marginal: u_t = (1-eta_t) D_t u_0 + eta_t u_l + kappa sqrt(eta_t) eps (Eq. 25).

        Args:
            x0: (n ... h w) HR frames.
            y: (n ... h w) upsampled LR frames.
            t: int or (n,) long in 1..T (0 is allowed and returns x0 up to the blur's round-off).
            noise: (n ... h w) standard normal noise, pixel space (white, so also white per DCT coefficient).

        Returns:
            x_t, (n ... h w).
        """
        self._check_shapes(x0=x0, y=y, noise=noise)
        t = self._timesteps(t, x0, low=0)
        mean = self._linear([("mean_x0", x0), ("mean_y", y)], (t,), x0)
        return mean + self._per_sample("noise_std", t, x0) * noise

    def prior_sample(self, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """x_T = y + kappa sqrt(eta_T) eps: the start of sampling, p(u_T | u_l) of Eq. 6 (ResShift's prior).

        Args:
            y: (n ... h w) upsampled LR frames.
            generator: torch.Generator on y's device (None uses torch's global generator).

        Returns:
            x_T, (n ... h w).
        """
        self._check_shapes(y=y)
        eps = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y + float(self._scalars["noise_std"][self.T]) * eps

    def scale_input(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """x_t / sqrt(kappa^2 eta_t + 1) when ``cfg.scale_input`` (ResShift ``_scale_input``), else x_t unchanged.

        Args:
            x_t: (n ... h w) state.
            t: int or (n,) long in 1..T.

        Returns:
            (n ... h w) network input.
        """
        t = self._timesteps(t, x_t)
        return x_t * self._per_sample("input_scale", t, x_t)

    # -- reverse process ---------------------------------------------------------------------------------------------
    def posterior_mean_variance(
        self, x_t: Tensor, x0: Tensor, y: Tensor, t: int | Tensor, *, t_prev: int | Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_s | x_t, x0, y) with s = t_prev (default t - 1); Eq. 30, 33-36 of SeeClear.

        See the module docstring for the two posteriors (``cfg.posterior``); "paper" is Eq. 34 with the corrected
        "+ alpha_t eta_{t-1}" sign. With s = 0 the mean is x0 and the variance 0.

        Args:
            x_t: (n ... h w) state at t.
            x0: (n ... h w) x0 (or its prediction).
            y: (n ... h w) upsampled LR frames.
            t: int or (n,) long in 1..T.
            t_prev: int or (n,) long in 0..t-1 (respaced sampling); None means t - 1.

        Returns:
            mean (n ... h w), pixel space, and the variance of every block-DCT coefficient, broadcastable to x_t:
            (n 1 ... 1) when it does not depend on frequency (then it is also the per-pixel variance), else
            (n 1 ... h w) in the in-place block-DCT layout (pixel covariance V diag(variance) V^T).
        """
        self._check_shapes(x_t=x_t, x0=x0, y=y)
        t = self._timesteps(t, x_t)
        s = t - 1 if t_prev is None else self._timesteps(t_prev, x_t, name="t_prev", low=0)
        if bool((s >= t).any()):
            raise ValueError("t_prev must be smaller than t for every sample")
        index = (t, s)
        mean = self._linear([("post_xt", x_t), ("post_x0", x0), ("post_y", y)], index, x_t)
        return mean, self._variance("post_var", index, x_t)

    def p_sample(
        self,
        denoiser: Denoiser,
        x_t: Tensor,
        y: Tensor,
        t: int,
        *,
        generator: torch.Generator | None,
        t_prev: int | None = None,
        **cond: Any,
    ) -> tuple[Tensor, Tensor]:
        """One reverse step p_theta(x_s | x_t, y): the posterior with x0 replaced by the network's prediction (Eq. 5).

        At s = 0 (the last step) the returned state is the x0 prediction itself, bit for bit (variance 0).

        Args:
            denoiser: the network (see `Denoiser`); called once with the scaled x_t and t as an (n,) long tensor.
            x_t: (n ... h w) state at t.
            y: (n ... h w) upsampled LR frames.
            t: current step, 1..T.
            generator: torch.Generator on x_t's device for the step's noise (None: torch's global generator).
            t_prev: the step to move to, 0..t-1 (respaced sampling); None means t - 1.
            **cond: passed to the denoiser.

        Returns:
            (x_s, x0_pred), both (n ... h w).

        Raises:
            ValueError: on bad shapes or steps, or a denoiser output of the wrong shape.
        """
        self._check_shapes(x_t=x_t, y=y)
        if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= self.T:
            raise ValueError(f"t must be an int in 1..{self.T}, got {t!r}")
        s = t - 1 if t_prev is None else t_prev
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < t:
            raise ValueError(f"t_prev must be an int in 0..{t - 1}, got {t_prev!r}")
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        x0_pred = denoiser(self.scale_input(x_t, t_batch), t_batch, y, **cond)
        if x0_pred.shape != y.shape:
            raise ValueError(f"the denoiser must return the shape of y {tuple(y.shape)}, got {tuple(x0_pred.shape)}")
        if s == 0:
            return x0_pred, x0_pred
        s_batch = torch.full_like(t_batch, s)
        mean, _ = self.posterior_mean_variance(x_t, x0_pred, y, t_batch, t_prev=s_batch)
        # White noise, coloured per DCT coefficient by the posterior standard deviation (Eq. 35).
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + self._linear([("post_std", noise)], (t_batch, s_batch), x_t), x0_pred

    # -- training ------------------------------------------------------------------------------------------------------
    def training_loss(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        y: Tensor,
        *,
        t: Tensor,
        noise: Tensor,
        loss: Loss = "charbonnier",
        eps: float = 1e-3,
        **cond: Any,
    ) -> Tensor:
        """The x0-prediction loss on a forward sample (SeeClear Sec. 4.1: Charbonnier on whole frames).

        x_t = q_sample(x0, y, t, noise); x0_pred = denoiser(scale_input(x_t, t), t, y); the loss is the mean over
        all elements of sqrt((x0_pred - x0)^2 + eps^2) ("charbonnier"), (x0_pred - x0)^2 ("mse", ResShift) or
        |x0_pred - x0| ("l1").

        Args:
            denoiser: the network.
            x0: (n ... h w) HR frames.
            y: (n ... h w) upsampled LR frames.
            t: (n,) long in 1..T, drawn by the caller (uniformly, SEECLEAR.md Sec. 7).
            noise: (n ... h w) standard normal noise drawn by the caller.
            loss: which penalty.
            eps: Charbonnier epsilon, in the units of the data (1e-3 on [0, 1] frames is 2e-3 on [-1, 1]).
            **cond: passed to the denoiser.

        Returns:
            The scalar loss.
        """
        x_t = self.q_sample(x0, y, t, noise)
        t = self._timesteps(t, x0)
        x0_pred = denoiser(self.scale_input(x_t, t), t, y, **cond)
        if x0_pred.shape != x0.shape:
            raise ValueError(f"the denoiser must return the shape of x0 {tuple(x0.shape)}, got {tuple(x0_pred.shape)}")
        diff = x0_pred - x0
        match loss:
            case "charbonnier":
                return torch.sqrt(diff.square() + eps**2).mean()
            case "mse":
                return diff.square().mean()
            case "l1":
                return diff.abs().mean()
            case _:
                raise ValueError(f"loss must be 'charbonnier', 'mse' or 'l1', got {loss!r}")
