"""Golden and Monte-Carlo tests of the blurring-ResShift process (model/diffusion/), as diffusers tests schedulers.

Closed forms are written out here independently of the library (SeeClear Eq. 25, 28, 34-35; ResShift's Eq. 24 and
schedule), and the library must reproduce them; Monte-Carlo checks confirm the closed forms themselves.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from model.diffusion import (
    BlurringResShift,
    DiffusionConfig,
    block_dct,
    block_idct,
    make_blur_factors,
    make_blur_schedule,
    make_eta_schedule,
    respaced_timesteps,
    sample_loop,
)

F64 = torch.float64
N_MC = 20_000

# SEECLEAR.md Sec. 3.2, "Computed eta_t for T = 15, p = 0.3", as printed.
ETA_TABLE = {
    2.0: "0.0004, 0.01373, 0.03108, 0.05458, 0.08502, 0.12321, 0.17004, 0.22644, 0.29341, 0.37199, 0.4633, 0.56849, "
    "0.68882, 0.82557, 0.9801",
    1.0: "0.001, 0.02266, 0.04661, 0.07662, 0.11328, 0.15718, 0.20886, 0.26895, 0.33804, 0.4168, 0.5059, 0.60604, "
    "0.71794, 0.84237, 0.9801",
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, dtype=F64, generator=_gen(seed))


def _resshift_etas(kappa: float, steps: int = 15, power: float = 0.3) -> np.ndarray:
    """ResShift's ``get_named_eta_schedule('exponential')``, written out again (SEECLEAR.md Sec. 3.2)."""
    start = min(0.04 / kappa, 0.04, math.sqrt(0.001))
    base = math.exp(math.log(0.99 / start) / (steps - 1))
    return (start * base ** (np.linspace(0, 1, steps) ** power * (steps - 1))) ** 2


def _test_d(cfg: DiffusionConfig) -> torch.Tensor:
    """d_t per frequency, from the formulas of SEECLEAR.md Sec. 7 / 3.3 (not from the library): (T+1, p, p)."""
    p, steps = cfg.patch_size, cfg.steps
    k = torch.arange(p, dtype=F64)
    lam = -(math.pi**2) * (k[:, None] ** 2 + k[None, :] ** 2) / p**2
    sigma = [0.0] + [
        math.exp(math.log(cfg.blur_sigma_min) + (math.log(cfg.blur_sigma_max / cfg.blur_sigma_min)) * i / (steps - 1))
        for i in range(steps)
    ]
    tau = torch.tensor([s**2 / 2 for s in sigma], dtype=F64)
    return (1 - cfg.blur_floor) * torch.exp(lam * tau[:, None, None]) + cfg.blur_floor


def _tile(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
    p = table.shape[-1]
    return table.repeat(h // p, w // p)


# -- config ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("steps", 2.0),
        ("steps", True),
        ("kappa", 0.0),
        ("kappa", float("nan")),
        ("eta_power", -1.0),
        ("min_noise_level", 0.0),
        ("etas_end", 1.0),
        ("etas_end", 0.01),
        ("patch_size", 0),
        ("blur", 1),
        ("blur_sigma_min", 0.0),
        ("blur_sigma_max", 0.1),
        ("blur_floor", 1.0),
        ("blur_floor", -0.1),
        ("scale_input", "yes"),
        ("posterior", "bogus"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"diffusion\.{field}\b"):
        DiffusionConfig(**{field: value})


def test_config_is_frozen_and_defaults_match_seeclear_md() -> None:
    cfg = DiffusionConfig()
    assert (cfg.steps, cfg.kappa, cfg.eta_power, cfg.min_noise_level, cfg.etas_end) == (15, 2.0, 0.3, 0.04, 0.99)
    assert (cfg.patch_size, cfg.blur, cfg.blur_floor, cfg.scale_input) == (4, True, 0.001, True)
    assert cfg.blur_sigma_max**2 == pytest.approx(2.0, rel=1e-15)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kappa = 1.0  # type: ignore[misc]


# -- schedules ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [2.0, 1.0])
def test_eta_schedule_reproduces_seeclear_md_table(kappa: float) -> None:
    etas = make_eta_schedule(DiffusionConfig(kappa=kappa))
    assert etas.dtype == F64 and etas.shape == (15,)
    for got, printed in zip(etas.tolist(), ETA_TABLE[kappa].split(", "), strict=True):
        decimals = len(printed.split(".")[1])
        assert abs(got - float(printed)) <= 0.5 * 10**-decimals, (got, printed)
    assert torch.all(etas[1:] > etas[:-1])
    np.testing.assert_allclose(etas.numpy(), _resshift_etas(kappa), rtol=1e-14)
    assert make_eta_schedule(DiffusionConfig(steps=1)).tolist() == [pytest.approx(0.9801)]


def test_blur_schedule_is_log_spaced_from_half_to_root_two() -> None:
    cfg = DiffusionConfig()
    taus = make_blur_schedule(cfg)
    assert taus.shape == (16,) and taus[0].item() == 0.0
    assert taus[1].item() == pytest.approx(0.125, rel=1e-14)  # sigma = 0.5
    assert taus[-1].item() == pytest.approx(1.0, rel=1e-14)  # sigma^2 = 2
    sigma = (2 * taus[1:]).sqrt()
    ratios = sigma[1:] / sigma[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12, atol=0)
    d = make_blur_factors(cfg)
    assert torch.allclose(d, _test_d(cfg), rtol=1e-13, atol=0)
    assert torch.all(d[0] == 1) and torch.all(d[:, 0, 0] == 1)  # no blur at t = 0; the DC term is never damped
    assert d[-1, 3, 3].item() == pytest.approx(0.999 * math.exp(-(math.pi**2) * 18 / 16) + 0.001, rel=1e-14)
    off = DiffusionConfig(blur=False)
    assert torch.all(make_blur_schedule(off) == 0) and torch.all(make_blur_factors(off) == 1)


# -- forward marginal --------------------------------------------------------------------------------------------------
def test_forward_marginal_matches_eq25_closed_form_and_monte_carlo() -> None:
    """Eq. 25: u_t = (1 - eta_t) d_t u_0 + eta_t u_l + kappa sqrt(eta_t) eps, checked exactly and by sampling."""
    cfg = DiffusionConfig()
    proc = BlurringResShift(cfg)
    t = 9
    x0, y = _randn(1, 1, 4, 8, seed=10), _randn(1, 1, 4, 8, seed=11)
    eta = proc.etas[t - 1].item()
    d = _tile(_test_d(cfg)[t], 4, 8)
    expected = block_idct((1 - eta) * d * block_dct(x0, 4) + eta * block_dct(y, 4), 4)
    mean, var = proc.q_mean_variance(x0, y, torch.tensor([t]))
    assert (mean - expected).abs().max().item() < 1e-12
    assert var.shape == (1, 1, 1, 1) and var.item() == pytest.approx(cfg.kappa**2 * eta, rel=1e-14)

    noise = _randn(N_MC, 1, 4, 8, seed=12)
    x_t = proc.q_sample(x0.expand(N_MC, -1, -1, -1), y.expand(N_MC, -1, -1, -1), t, noise)
    std = cfg.kappa * math.sqrt(eta)
    assert ((x_t.mean(0) - expected[0]).abs() / (std / math.sqrt(N_MC))).max().item() < 5
    assert ((x_t.var(0) / std**2) - 1).abs().max().item() < 0.06  # rel. s.e. of a variance: sqrt(2 / N) = 0.01
    # White per DCT coefficient too (the DCT is orthonormal): coefficient covariance ~ kappa^2 eta I.
    u = block_dct(x_t, 4).flatten(1)
    cov = torch.cov(u.T) / std**2
    assert (cov - torch.eye(32, dtype=F64)).abs().max().item() < 0.06


def test_q_sample_at_t_T_has_mean_close_to_y_and_prior_sample_has_mean_y() -> None:
    cfg = DiffusionConfig()
    proc = BlurringResShift(cfg)
    y = _randn(1, 1, 4, 4, seed=20)
    x_T = proc.prior_sample(y.expand(N_MC, -1, -1, -1), _gen(21))
    std = cfg.kappa * cfg.etas_end
    assert ((x_T.mean(0) - y[0]).abs().max() / (std / math.sqrt(N_MC))).item() < 5
    assert abs((x_T - y).std().item() / std - 1) < 0.02
    mean_T, _ = proc.q_mean_variance(torch.zeros_like(y), y, cfg.steps)  # x0 = 0: the mean is eta_T y
    assert torch.allclose(mean_T, 0.9801 * y, atol=1e-12)


# -- posterior ---------------------------------------------------------------------------------------------------------
def _pairs(cfg: DiffusionConfig, t: int, transition: str, seed: int):
    """Draw (u_{t-1}, u_t) in the DCT domain of one 4 x 4 patch: u_{t-1} ~ Eq. 25 marginal, u_t ~ a transition.

    "paper": the Eq. 28 transition u_t = lambda (u_{t-1} - eta_{t-1} u_l) + eta_t u_l + kappa sqrt(alpha_t) eps with
    lambda = (1 - eta_t) / (1 - eta_{t-1}) d_t / d_{t-1}; "consistent": u_t = u_{t-1} + (m_t - m_{t-1}) + kappa
    sqrt(alpha_t) eps.
    """
    eta = torch.cat([torch.zeros(1, dtype=F64), torch.from_numpy(_resshift_etas(cfg.kappa))])
    d = _test_d(cfg)
    e_t, e_s, alpha = eta[t].item(), eta[t - 1].item(), (eta[t] - eta[t - 1]).item()
    u0, ul = _randn(4, 4, seed=seed, scale=2.0), _randn(4, 4, seed=seed + 1, scale=2.0)
    m_s = (1 - e_s) * d[t - 1] * u0 + e_s * ul
    m_t = (1 - e_t) * d[t] * u0 + e_t * ul
    u_s = m_s + cfg.kappa * math.sqrt(e_s) * _randn(N_MC, 4, 4, seed=seed + 2)
    eps = cfg.kappa * math.sqrt(alpha) * _randn(N_MC, 4, 4, seed=seed + 3)
    lam = (1 - e_t) / (1 - e_s) * d[t] / d[t - 1]
    u_t = lam * (u_s - e_s * ul) + e_t * ul + eps if transition == "paper" else u_s + (m_t - m_s) + eps
    return dict(u0=u0, ul=ul, u_s=u_s, u_t=u_t, e_t=e_t, e_s=e_s, alpha=alpha, lam=lam, d=d, m_t=m_t)


def _eq34(s: dict, sign: float, kappa: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SeeClear Eq. 34-35 as printed, with ``sign`` in front of alpha_t eta_{t-1} in the u_l coefficient."""
    lam, e_t, e_s, alpha = s["lam"], s["e_t"], s["e_s"], s["alpha"]
    den = lam**2 * e_s + alpha
    ul_coef = lam**2 * e_s**2 - lam * e_s * e_t + sign * alpha * e_s
    mean = (lam * e_s * s["u_t"] + alpha * (1 - e_s) * s["d_s"] * s["u0"] + ul_coef * s["ul"]) / den
    return mean, kappa**2 * alpha * e_s / den


def _residual_checks(r: torch.Tensor, u_t: torch.Tensor, var: torch.Tensor) -> tuple[float, float, float]:
    """Max |mean| / s.e., max |slope of r on u_t| / s.e., max relative variance error, over the 16 coefficients."""
    n = r.shape[0]
    se_mean = (var / n).sqrt()
    centred = u_t - u_t.mean(0)
    slope = (r * centred).mean(0) / centred.square().mean(0)
    se_slope = var.sqrt() / (centred.std(0) * math.sqrt(n))
    return (
        (r.mean(0).abs() / se_mean).max().item(),
        (slope.abs() / se_slope).max().item(),
        (r.var(0) / var - 1).abs().max().item(),
    )


def test_paper_posterior_is_eq34_with_plus_sign_and_the_minus_sign_fails_monte_carlo() -> None:
    """The "+" form of Eq. 34 is the exact conditional E[u_{t-1} | u_t] of the pairs it was derived from.

    What is checked: pairs are drawn with u_{t-1} from the Eq. 25 marginal and u_t from the Eq. 28 transition, i.e.
    exactly the joint that Eq. 30-33 combine by Bayes' rule. That joint is Gaussian, so its conditional is exactly
    N(mu, sigma^2) of Eq. 34-35 iff the residuals u_{t-1} - mu(u_t) have mean 0, are uncorrelated with u_t and have
    variance sigma^2; with 20k pairs per coefficient these are tested at 5 standard errors. Why this is valid despite
    the transition/marginal inconsistency (SEECLEAR.md Sec. 3.1): we never assume that u_t of these pairs follows Eq. 25
    (it does not: its variance is kappa^2 (lambda^2 eta_{t-1} + alpha_t), asserted below), so nothing is fitted
    against a distribution the posterior was not derived from. The paper's printed "-" sign shifts the mean by
    2 alpha_t eta_{t-1} u_l / (lambda^2 eta_{t-1} + alpha_t), dozens of standard errors here.
    """
    cfg = DiffusionConfig(posterior="paper")
    t = 8
    s = _pairs(cfg, t, "paper", seed=30)
    s["d_s"] = s["d"][t - 1]
    mean_plus, var = _eq34(s, +1.0, cfg.kappa)
    mean_minus, _ = _eq34(s, -1.0, cfg.kappa)

    plus = _residual_checks(s["u_s"] - mean_plus, s["u_t"], var)
    minus = _residual_checks(s["u_s"] - mean_minus, s["u_t"], var)
    assert plus[0] < 5 and plus[1] < 5 and plus[2] < 0.06, plus
    assert minus[0] > 30, minus

    # The library's posterior_mean_variance is the "+" form (a few pairs suffice: it is a closed form).
    proc = BlurringResShift(cfg)
    x_t = block_idct(s["u_t"][:5, None], 4)
    x0 = block_idct(s["u0"][None, None], 4).expand(5, -1, -1, -1)
    y = block_idct(s["ul"][None, None], 4).expand(5, -1, -1, -1)
    mean, variance = proc.posterior_mean_variance(x_t, x0, y, t)
    assert (block_dct(mean, 4)[:, 0] - mean_plus[:5]).abs().max().item() < 1e-12
    assert variance.shape == (5, 1, 4, 4) and (variance[:, 0] - var).abs().max().item() < 1e-12

    # The inconsistency the docstring refers to: the Eq. 28 chain does not reproduce the Eq. 25 variance.
    chain_var = cfg.kappa**2 * (s["lam"] ** 2 * s["e_s"] + s["alpha"])
    assert torch.allclose(s["u_t"].var(0) / chain_var, torch.ones(4, 4, dtype=F64), atol=0.06)
    ratio = chain_var / (cfg.kappa**2 * s["e_t"])
    assert ratio.max().item() < 0.95 and ratio.min().item() < 0.5


def test_consistent_posterior_passes_monte_carlo_and_its_chain_keeps_the_eq25_marginal() -> None:
    """Default posterior: Bayes on (Eq. 25 marginal at t-1) x (u_t = u_{t-1} + m_t - m_{t-1} + kappa sqrt(alpha_t) eps).

    Same residual test as above; in addition the u_t of these pairs follows Eq. 25 exactly (mean m_t, variance
    kappa^2 eta_t), so training on Eq. 25 and sampling with this posterior describe one process.
    """
    cfg = DiffusionConfig()
    proc = BlurringResShift(cfg)
    t = 12
    s = _pairs(cfg, t, "consistent", seed=40)
    x_t = block_idct(s["u_t"][:, None], 4)
    x0 = block_idct(s["u0"][None, None], 4).expand(N_MC, -1, -1, -1)
    y = block_idct(s["ul"][None, None], 4).expand(N_MC, -1, -1, -1)
    mean, variance = proc.posterior_mean_variance(x_t, x0, y, t)
    assert variance.shape == (N_MC, 1, 1, 1)
    var = variance[0, 0, 0, 0].item()
    assert var == pytest.approx(cfg.kappa**2 * s["e_s"] * s["alpha"] / s["e_t"], rel=1e-13)
    checks = _residual_checks(s["u_s"] - block_dct(mean, 4)[:, 0], s["u_t"], torch.full((4, 4), var, dtype=F64))
    assert checks[0] < 5 and checks[1] < 5 and checks[2] < 0.06, checks
    std_t = cfg.kappa * math.sqrt(s["e_t"])
    assert ((s["u_t"].mean(0) - s["m_t"]).abs() / (std_t / math.sqrt(N_MC))).max().item() < 5
    assert ((s["u_t"].var(0) / std_t**2) - 1).abs().max().item() < 0.06


def test_p_sample_noise_is_coloured_per_frequency_for_the_paper_posterior() -> None:
    """p_sample draws x_{t-1} ~ N(mean, V diag(var) V^T): checked per DCT coefficient by sampling."""
    cfg = DiffusionConfig(posterior="paper")
    proc = BlurringResShift(cfg)
    x0, y, x_t = _randn(1, 1, 4, 4, seed=50), _randn(1, 1, 4, 4, seed=51), _randn(1, 1, 4, 4, seed=52, scale=2.0)
    big = lambda z: z.expand(N_MC, -1, -1, -1)  # noqa: E731
    x_prev, x0_pred = proc.p_sample(lambda *a, **k: big(x0), big(x_t), big(y), 6, generator=_gen(53))
    mean, var = proc.posterior_mean_variance(x_t, x0, y, 6)
    u = block_dct(x_prev, 4)[:, 0]
    assert torch.equal(x0_pred, big(x0))
    assert ((u.mean(0) - block_dct(mean, 4)[0, 0]).abs() / (var[0, 0] / N_MC).sqrt()).max().item() < 5
    assert (u.var(0) / var[0, 0] - 1).abs().max().item() < 0.06
    assert var.max() / var.min() > 1.5  # the variance really depends on frequency here


# -- blur off = ResShift -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kappa", [2.0, 1.0])
def test_blur_off_is_resshift(kappa: float) -> None:
    """ResShift's closed forms (SEECLEAR.md Sec. 3.2), written here, for every t and a respaced jump."""
    cfg = DiffusionConfig(kappa=kappa, blur=False)
    proc = BlurringResShift(cfg)
    eta = np.concatenate([[0.0], _resshift_etas(kappa)])
    x0, y, x_t, noise = (_randn(2, 3, 8, 8, seed=60 + i) for i in range(4))
    for t in range(1, 16):
        e_t, e_s = eta[t], eta[t - 1]
        alpha = e_t - e_s
        mean, var = proc.q_mean_variance(x0, y, t)
        assert (mean - (x0 + e_t * (y - x0))).abs().max().item() < 1e-12
        assert var.flatten().tolist() == pytest.approx([kappa**2 * e_t] * 2, rel=1e-13)
        sample = proc.q_sample(x0, y, torch.tensor([t, t]), noise)
        assert (sample - (x0 + e_t * (y - x0) + kappa * math.sqrt(e_t) * noise)).abs().max().item() < 1e-12
        mean, var = proc.posterior_mean_variance(x_t, x0, y, t)
        assert (mean - (e_s / e_t * x_t + alpha / e_t * x0)).abs().max().item() < 1e-12
        assert var.flatten().tolist() == pytest.approx([kappa**2 * e_s / e_t * alpha] * 2, rel=1e-12, abs=1e-300)
        scaled = proc.scale_input(x_t, t)
        assert (scaled - x_t / math.sqrt(kappa**2 * e_t + 1)).abs().max().item() < 1e-13
    mean, var = proc.posterior_mean_variance(x_t, x0, y, 12, t_prev=5)  # ResShift's respacing: same form on (12, 5)
    assert (mean - (eta[5] / eta[12] * x_t + (eta[12] - eta[5]) / eta[12] * x0)).abs().max().item() < 1e-12
    assert var[0].item() == pytest.approx(kappa**2 * eta[5] * (eta[12] - eta[5]) / eta[12], rel=1e-12)
    prior = proc.prior_sample(y, _gen(7))
    expected = y + kappa * math.sqrt(eta[15]) * torch.randn(y.shape, generator=_gen(7), dtype=F64)
    assert (prior - expected).abs().max().item() < 1e-13
    # The printed Eq. 28/34 posterior does NOT reduce to ResShift (lambda != 1 even without blur): why it is opt-in.
    paper = BlurringResShift(dataclasses.replace(cfg, posterior="paper"))
    _, var_paper = paper.posterior_mean_variance(x_t, x0, y, 15)
    assert var_paper[0].item() > 5 * kappa**2 * eta[14] * (eta[15] - eta[14]) / eta[15]


# -- sampling ----------------------------------------------------------------------------------------------------------
class _Recorder:
    """A deterministic stand-in network: records its calls, predicts x0 = 0.5 * y + 0.1 * tanh(x_t)."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, dict]] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **cond: object) -> torch.Tensor:
        self.calls.append((x_t.clone(), t.clone(), cond))
        return 0.5 * y + 0.1 * torch.tanh(x_t)


def test_sample_loop_contract_last_step_is_x0_pred_and_input_is_scaled() -> None:
    cfg = DiffusionConfig()
    proc = BlurringResShift(cfg)
    y = _randn(2, 3, 8, 8, seed=70)
    net = _Recorder()
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    out = sample_loop(proc, net, y, generator=_gen(71), callback=lambda t, x, x0: seen.append((t, x, x0)), tokens="T")
    assert [int(c[1][0]) for c in net.calls] == list(range(15, 0, -1))
    assert all(c[1].dtype == torch.long and c[1].shape == (2,) for c in net.calls)
    assert all(c[2] == {"tokens": "T"} for c in net.calls)
    x_T = proc.prior_sample(y, _gen(71))
    assert torch.allclose(net.calls[0][0], x_T / math.sqrt(4 * 0.9801 + 1), atol=1e-14, rtol=0)
    assert [t for t, _, _ in seen] == list(range(15, 0, -1))
    last_t, last_x, last_x0 = seen[-1]
    assert torch.equal(out, last_x0) and torch.equal(last_x, last_x0)
    state_at_1 = seen[-2][1]
    assert torch.equal(out, 0.5 * y + 0.1 * torch.tanh(proc.scale_input(state_at_1, 1)))  # exactly the prediction


def test_p_sample_at_t1_returns_the_prediction_bit_for_bit() -> None:
    proc = BlurringResShift(DiffusionConfig(posterior="paper"))
    x_t, y = _randn(1, 3, 8, 8, seed=80), _randn(1, 3, 8, 8, seed=81)
    pred = _randn(1, 3, 8, 8, seed=82)
    x_prev, x0_pred = proc.p_sample(lambda *a, **k: pred, x_t, y, 1, generator=_gen(0))
    assert torch.equal(x_prev, pred) and torch.equal(x0_pred, pred)
    mean, var = proc.posterior_mean_variance(x_t, pred, y, 1)  # the closed form agrees (through the DCT round trip)
    assert (mean - pred).abs().max().item() < 1e-13 and torch.all(var == 0)


def test_same_seed_same_sample_different_seed_different_sample() -> None:
    proc = BlurringResShift(DiffusionConfig())
    y = _randn(1, 3, 8, 8, seed=90)
    net = _Recorder()
    a = sample_loop(proc, net, y, generator=_gen(1))
    b = sample_loop(proc, net, y, generator=_gen(1))
    c = sample_loop(proc, net, y, generator=_gen(2))
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3


def test_respacing_visits_an_even_subset_and_full_steps_equal_the_default() -> None:
    assert respaced_timesteps(15, 5) == [15, 12, 8, 5, 1]
    assert respaced_timesteps(15, 15) == list(range(15, 0, -1))
    assert respaced_timesteps(15, 1) == [15]
    for bad in (0, 16, 2.0):
        with pytest.raises(ValueError, match="steps"):
            respaced_timesteps(15, bad)  # type: ignore[arg-type]
    proc = BlurringResShift(DiffusionConfig())
    y = _randn(2, 5, 3, 8, 8, seed=100)  # (b f c h w): the frames share the clip's timestep
    net = _Recorder()
    out = sample_loop(proc, net, y, generator=_gen(3), steps=5)
    assert [int(c[1][0]) for c in net.calls] == [15, 12, 8, 5, 1] and net.calls[0][1].shape == (2,)
    assert out.shape == y.shape
    full = sample_loop(proc, net, y, generator=_gen(4), steps=15)
    assert torch.equal(full, sample_loop(proc, net, y, generator=_gen(4)))
    one = _Recorder()
    out = sample_loop(proc, one, y, generator=_gen(5), steps=1)
    assert len(one.calls) == 1 and torch.equal(out, 0.5 * y + 0.1 * torch.tanh(one.calls[0][0]))
    with pytest.raises(ValueError, match="steps"):
        sample_loop(proc, net, y, generator=_gen(5), steps=0)


def test_float32_follows_float64() -> None:
    proc = BlurringResShift(DiffusionConfig(posterior="paper"))
    x0, y, x_t = (_randn(2, 3, 8, 8, seed=110 + i) for i in range(3))
    m64, v64 = proc.posterior_mean_variance(x_t, x0, y, 7)
    m32, v32 = proc.posterior_mean_variance(x_t.float(), x0.float(), y.float(), 7)
    assert m32.dtype == torch.float32 and torch.allclose(m32.double(), m64, atol=1e-5)
    assert torch.allclose(v32.double(), v64, atol=1e-6)


# -- training loss -----------------------------------------------------------------------------------------------------
def test_training_loss_values_and_the_network_sees_the_scaled_forward_sample() -> None:
    cfg = DiffusionConfig()
    proc = BlurringResShift(cfg)
    x0, y, noise = (_randn(2, 3, 8, 8, seed=120 + i) for i in range(3))
    t = torch.tensor([3, 15])
    seen = {}

    def net(x_t: torch.Tensor, tt: torch.Tensor, yy: torch.Tensor, **cond: object) -> torch.Tensor:
        seen.update(x_t=x_t, t=tt, cond=cond)
        return x0 + 0.1

    loss = proc.training_loss(net, x0, y, t=t, noise=noise, extra=1)
    assert loss.item() == pytest.approx(math.sqrt(0.01 + 1e-6), rel=1e-12)
    assert torch.equal(seen["t"], t) and seen["cond"] == {"extra": 1}
    assert torch.allclose(seen["x_t"], proc.scale_input(proc.q_sample(x0, y, t, noise), t), atol=1e-14, rtol=0)
    assert proc.training_loss(net, x0, y, t=t, noise=noise, loss="mse").item() == pytest.approx(0.01, rel=1e-12)
    assert proc.training_loss(net, x0, y, t=t, noise=noise, loss="l1").item() == pytest.approx(0.1, rel=1e-12)
    with pytest.raises(ValueError, match="loss"):
        proc.training_loss(net, x0, y, t=t, noise=noise, loss="huber")  # type: ignore[arg-type]


def test_training_loss_backpropagates_into_a_network() -> None:
    proc = BlurringResShift(DiffusionConfig())
    conv = torch.nn.Conv2d(6, 3, 3, padding=1)
    net = lambda x_t, t, y, **c: y + conv(torch.cat([x_t, y], 1))  # noqa: E731
    x0, y = torch.randn(2, 3, 8, 8, generator=_gen(130)), torch.randn(2, 3, 8, 8, generator=_gen(131))
    loss = proc.training_loss(net, x0, y, t=torch.tensor([1, 9]), noise=torch.randn(2, 3, 8, 8, generator=_gen(132)))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


# -- errors ------------------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_value_error() -> None:
    proc = BlurringResShift(DiffusionConfig())
    x = _randn(2, 3, 8, 8, seed=140)
    with pytest.raises(ValueError, match="divisible by the patch size 4"):
        proc.q_sample(x[..., :6], x[..., :6], 1, x[..., :6])
    with pytest.raises(ValueError, match=r"t must lie in 1\.\.15"):
        proc.scale_input(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.15"):
        proc.q_sample(x, x, torch.tensor([16, 3]), x)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        proc.q_sample(x, x, torch.tensor([1, 2, 3]), x)
    with pytest.raises(ValueError, match="must have the shape of x0"):
        proc.q_sample(x, x[:1], 1, x)
    with pytest.raises(ValueError, match="t_prev"):
        proc.posterior_mean_variance(x, x, x, 3, t_prev=3)
    with pytest.raises(ValueError, match="denoiser must return"):
        proc.p_sample(lambda *a, **k: x[:, :1], x, x, 2, generator=None)
