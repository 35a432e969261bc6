"""Certificate of the competing-buyers equilibrium (Westenbroek et al.): residuals vs independent brute force.

Oracles, each independent of the certificate's own path:

* sources and the social optimum: the exact best response in closed form (17)/(28) against the
  certificate's bounded Brent search. Stated bound: Brent (``method="bounded"``) stops within
  ``2 (sqrt(eps) |x| + xatol / 3)`` of the maximiser, where the concave gain falls short of its
  maximum by at most ``alpha delta^2`` (its curvature at the optimum is ``-2 alpha``), plus the
  rounding ``GAIN_ROUNDING`` of both evaluations;
* buyers' stationarity: central finite differences of :func:`buyer_cost` (two step sizes) against the
  certificate's analytic gradient. Stated bound: the Richardson estimate ``|fd(h) - fd(2h)|`` of the
  truncation error plus the rounding ``eps |J| / h`` of a central difference (times 4);
* buyers' deviation: a multi-start Powell search of :func:`buyer_cost` (derivative-free, not the
  certificate's L-BFGS-B) finds no improvement above the certificate's own rounding tolerance.

A perturbed profile must fail the certificate, results claimed ``ok`` must carry a passing certificate,
and the examples run with the status their certificate supports.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import optimize

from datamarket.core.certificates import Certificate
from datamarket.mechanisms.competing_buyers import (
    GAIN_ROUNDING,
    CompetingMarket,
    GNEResult,
    analyse_market,
    buyer_cost,
    certify_gne,
    section_iv_market,
)
from datamarket.scenarios import parse_scenario, run_scenario
from datamarket.scenarios.competing_buyers import Config
from datamarket.service.adapters import Input
from datamarket.service.adapters.competing_buyers import ADAPTER
from tests.strategies import competing_markets

ROOT = Path(__file__).resolve().parents[3]
EPS = float(np.finfo(np.float64).eps)
FILTERED = [HealthCheck.filter_too_much, HealthCheck.too_slow]


def _gne(market: CompetingMarket) -> GNEResult:
    g = analyse_market(market, cross_check=False).gne
    assume(g.gne_exists)
    return g


# ----------------------------------------------------------------------------------------------
# independent oracles
# ----------------------------------------------------------------------------------------------
def _exact_gain(weight: float, alpha: float, e: float) -> tuple[float, float]:
    """Closed-form best response to ``weight * exp(-2 alpha e) + e`` and the gain over ``e``."""
    e_best = math.log(2 * alpha * weight) / (2 * alpha)
    loss = lambda t: weight * math.exp(-2 * alpha * t) + t  # noqa: E731
    return e_best, loss(e) - loss(e_best)


def _gain_bound(weight: float, alpha: float, e: float, e_best: float) -> float:
    delta = 2 * (math.sqrt(EPS) * abs(e_best) + 1e-12 * (1 + abs(e)) / 3)
    mag = (
        weight
        * (math.exp(-2 * alpha * e) + math.exp(-2 * alpha * e_best))
        * (1 + 2 * alpha * max(abs(e), abs(e_best)))
        + abs(e)
        + abs(e_best)
    )
    return alpha * delta**2 + 2 * GAIN_ROUNDING * mag


def _fd_gradient(g: GNEResult, k: int, d: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of buyer k's cost in d^k, and the stated error bound."""
    cost = lambda v: buyer_cost(k, v, d, c, g.gamma, g.xi, g.alpha)  # noqa: E731
    j0 = abs(cost(d[:, k]))
    out, err = np.zeros(d.shape[0]), np.zeros(d.shape[0])
    for q in range(d.shape[0]):
        h = EPS ** (1 / 3) * max(d[q, k], 1e-3)
        fd = []
        for step in (h, 2 * h):
            up, dn = d[:, k].copy(), d[:, k].copy()
            up[q] += step
            dn[q] -= step
            fd.append((cost(up) - cost(dn)) / (2 * step))
        out[q] = fd[0]
        err[q] = 4 * (abs(fd[0] - fd[1]) + EPS * max(j0, 1.0) / h)
    return out, err


# ----------------------------------------------------------------------------------------------
# (a) residuals agree with brute force
# ----------------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=FILTERED)
@given(
    competing_markets(max_sources=4, max_buyers=3),
    st.lists(st.floats(-0.5, 0.5), min_size=4, max_size=4),
)
def test_source_and_social_residuals_match_closed_form(market: CompetingMarket, shifts: list[float]) -> None:
    """At the GNE and at shifted efforts, the certificate's gains are the closed-form gains."""
    g = _gne(market)
    assert g.effort_equilibrium is not None and g.total_d is not None
    n = market.n_sources
    dev = np.array(shifts[:n])
    moved = dataclasses.replace(
        g,
        effort_equilibrium=g.effort_equilibrium + dev,
        effort_social=np.where(g.total_gamma > 0, g.effort_social + dev, g.effort_social),
    )
    for prof in (g, moved):
        assert prof.effort_equilibrium is not None
        cert = certify_gne(prof)
        src, soc = cert["gne.source_best_response"].detail, cert["social.optimum"].detail
        for i in range(n):
            w, a, e = float(g.total_d[i]), float(g.alpha[i]), float(prof.effort_equilibrium[i])
            e_best, gain = _exact_gain(w, a, e)
            assert abs(src["gain"][i] - gain) <= _gain_bound(w, a, e, e_best), (i, src, gain)
            if g.total_gamma[i] > 0:
                w, e = float(g.total_gamma[i]), float(prof.effort_social[i])
                e_best, gain = _exact_gain(w, a, e)
                assert abs(soc["loss_decrease"][i] - gain) <= _gain_bound(w, a, e, e_best), (i, soc, gain)
            else:  # L unbounded below in e_i: reported at -inf, nothing to improve
                assert soc["loss_decrease"][i] is None and soc["relative_decrease"][i] == 0.0


@settings(max_examples=10, deadline=None, suppress_health_check=FILTERED)
@given(
    competing_markets(max_sources=4, max_buyers=3, min_buyers=2),
    st.lists(st.floats(-0.2, 0.2), min_size=12, max_size=12),
)
def test_buyer_gradient_matches_finite_differences(market: CompetingMarket, noise: list[float]) -> None:
    """The certificate's KKT gradient is the cost's gradient, at the GNE and at a perturbed d."""
    g = _gne(market)
    assert g.d is not None and g.c is not None
    moved = dataclasses.replace(g, d=g.d * (1 + np.array(noise[: g.d.size]).reshape(g.d.shape)))
    for prof in (g, moved):
        assert prof.d is not None and prof.c is not None
        grads = certify_gne(prof)["gne.buyer_stationarity"].detail["gradient"]
        for k in range(market.n_buyers):
            fd, err = _fd_gradient(g, k, prof.d, prof.c)
            assert np.all(np.abs(np.array(grads[k]) - fd) <= err), (k, grads[k], fd, err)


@settings(max_examples=8, deadline=None, suppress_health_check=FILTERED)
@given(competing_markets(max_sources=3, max_buyers=3, min_buyers=2), st.integers(0, 2**16))
def test_no_buyer_deviation_found_by_an_independent_search(market: CompetingMarket, seed: int) -> None:
    """A derivative-free multi-start search finds no improvement beyond the certificate's tolerance."""
    g = _gne(market)
    assert g.d is not None and g.c is not None
    check = certify_gne(g)["gne.buyer_deviation"]
    assert check.passed, check
    rng = np.random.default_rng(seed)
    for k in range(market.n_buyers):
        eq_cost = check.detail["equilibrium_cost"][k]
        best = eq_cost
        for x0 in g.d[:, k][None, :] * rng.uniform(0.3, 3.0, (3, market.n_sources)):
            res = optimize.minimize(
                lambda v, k=k: buyer_cost(k, np.abs(v), g.d, g.c, g.gamma, g.xi, g.alpha),
                x0,
                method="Powell",
                options={"xtol": 1e-10, "ftol": 1e-14},
            )
            best = min(best, float(res.fun))
        # the certificate's residual (~0) and the brute force agree within its rounding tolerance
        assert eq_cost - best <= check.tolerance * check.detail["cost_magnitude"][k], (k, eq_cost, best)


# ----------------------------------------------------------------------------------------------
# (b) a result claimed ok carries a passing certificate
# ----------------------------------------------------------------------------------------------
@st.composite
def scenario_configs(draw: st.DrawFn) -> Config:
    """Small scenario configs: 2-4 sources on a grid, 1-3 linear or constant buyers, 200 MC rounds."""
    n = draw(st.integers(2, 4))
    locs = draw(st.lists(st.integers(-10, 10), min_size=n, max_size=n, unique=True))
    sources = [{"location": x / 10, "effort_alpha": draw(st.floats(0.5, 5.0))} for x in sorted(locs)]
    buyers = []
    for _ in range(draw(st.integers(1, 3))):
        lo = draw(st.floats(-1.0, 0.5))
        buyers.append(
            {
                "estimator": {"type": "polynomial", "degree": draw(st.integers(0, min(1, n - 1)))},
                "evaluation": {"type": "uniform", "low": lo, "high": lo + draw(st.floats(0.2, 1.5))},
                "eta": draw(st.floats(0.02, 0.5)),
            }
        )
    return Config.model_validate(
        {
            "kind": "competing_buyers",
            "competition": draw(st.floats(0.0, 0.5)),
            "sources": sources,
            "buyers": buyers,
            "simulation": {"rounds": 200},
        }
    )


@settings(max_examples=8, deadline=None, suppress_health_check=FILTERED)
@given(scenario_configs())
def test_status_follows_the_certificate(config: Config) -> None:
    res = run_scenario(config)
    assert not res.certificate.empty
    assert res.status != "ok" or res.certificate.passed, res.certificate.summary()
    if res.fields["gne_exists"]:  # every GNE the solver finds is certified
        assert res.status == "ok", res.certificate.summary()
    else:  # provably none: the failing existence check is the evidence
        assert res.status == "no_equilibrium" and res.reason
        assert any(name.startswith("gne.") for name in res.certificate.failures())


# ----------------------------------------------------------------------------------------------
# (c) a non-equilibrium profile fails
# ----------------------------------------------------------------------------------------------
def _perturbations(g: GNEResult) -> dict[str, GNEResult]:
    assert g.d is not None and g.c is not None and g.effort_equilibrium is not None
    d, c = g.d.copy(), g.c.copy()
    d[0, 0] *= 1.1
    c_more = c.copy()
    c_more[0, 0] += 0.01
    return {
        "gne.source_best_response": dataclasses.replace(g, effort_equilibrium=g.effort_equilibrium + 0.01),
        "gne.buyer_stationarity": dataclasses.replace(g, d=d),
        "gne.buyer_payment_minimal": dataclasses.replace(g, c=c_more),
        "social.optimum": dataclasses.replace(g, effort_social=g.effort_social + 0.01),
        "social.price_of_anarchy": dataclasses.replace(g, price_of_anarchy=(g.price_of_anarchy or 0) * 1.001),
    }


@pytest.mark.parametrize("x1", [0.0, 0.6])
def test_perturbed_profile_fails_the_certificate(x1: float) -> None:
    g = analyse_market(section_iv_market(x1)).gne
    assert certify_gne(g).passed
    for name, bad in _perturbations(g).items():
        cert = certify_gne(bad)
        assert not cert.passed and name in cert.failures(), (name, cert.summary())
    # a buyer moving off its d^k: the deviation search recovers the cost it lost
    assert g.d is not None and g.c is not None
    d = g.d.copy()
    d[:, 1] *= 1.2
    dev = certify_gne(dataclasses.replace(g, d=d))["gne.buyer_deviation"]
    lost = buyer_cost(1, d[:, 1], d, g.c, g.gamma, g.xi, g.alpha) - buyer_cost(
        1, g.d[:, 1], d, g.c, g.gamma, g.xi, g.alpha
    )
    # L-BFGS-B stops on an absolute projected gradient (gtol = 1e-5): with d ~ 100 the cost is flat and
    # it stops short of the optimum by ~1e-4 of the loss here; 1e-3 is the stated bound
    assert not dev.passed and lost * (1 - 1e-3) <= dev.detail["improvement"][1] <= lost * (1 + 1e-9)


def test_missing_feasibility_and_negative_d_are_the_evidence() -> None:
    from datamarket.mechanisms.competing_buyers import solve_gne

    xi = np.ones((2, 2, 1))
    xi[0, 1] = xi[1, 0] = 0.0
    infeasible = solve_gne(np.array([[1.0], [0.2]]), xi, np.array([1.0, 1.0]))
    assert certify_gne(infeasible).failures() == ["gne.feasibility"]
    negative = solve_gne(np.array([[1.0], [-0.5]]), xi, np.array([1.0, 1.0]))
    assert "gne.contracts_nonnegative" in certify_gne(negative).failures()


# ----------------------------------------------------------------------------------------------
# (d) examples and the service adapter
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("example", "status"),
    [
        ("competing_buyers.toml", "ok"),
        ("competing_buyers-three-buyers.toml", "ok"),
        ("competing_buyers-no-gne.toml", "no_equilibrium"),
    ],
)
def test_examples_status_and_certificate(example: str, status: str) -> None:
    res = run_scenario(parse_scenario((ROOT / "examples" / example).read_text()))
    assert res.status == status and not res.certificate.empty
    assert res.certificate.passed == (status == "ok"), res.certificate.summary()
    if status == "no_equilibrium":
        assert "gne.spectral_radius" in res.certificate.failures()
    data = res.to_json()
    assert data["certificate"]["passed"] == (status == "ok")
    assert all(isinstance(c["detail"], dict) for c in data["certificate"]["checks"].values())


def test_adapter_clearing_carries_the_certificate() -> None:
    inputs = [
        Input("s1", "source", {"location": 0.0, "effort_alpha": 1.0}),
        Input("s2", "source", {"location": 1.0, "effort_alpha": 1.0}),
        Input("b1", "estimator", {"degree": 1, "low": -1.0, "high": 1.0, "eta": 1.0}),
        Input("b2", "estimator", {"degree": 1, "low": -1.0, "high": 1.0, "eta": 1.0}),
    ]
    clearing = ADAPTER.clear({"competition": 0.0}, inputs, seed=0)
    assert isinstance(clearing.certificate, Certificate)
    assert clearing.certificate.passed and len(clearing.certificate.checks) == 12
