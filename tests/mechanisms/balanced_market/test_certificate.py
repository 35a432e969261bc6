"""Certificates of the balanced market (Chaintreau, Maio, Ziani): every seller's best-response regret,
checked against an independent brute force, and statuses that follow the certificate.

The brute force below shares no code with the engine: the revenue F is evaluated from the market's
arrays (buyers paying the posted prices, curves (Z - alpha n^-beta)_+), the Shapley payoff (7) by
enumerating every coalition of the other sellers, and the best response by a dense grid refined with
a bounded scalar search. A grid maximum is a lower bound of the exact maximum, so the brute-force
regret can never exceed the certificate's exact regret (up to rounding), and a result reported ``ok``
must have a brute-force regret within the certificate's tolerance.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from scipy.optimize import minimize_scalar

from datamarket.core.certificates import Certificate
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    analyse,
    certify_solutions,
    class_equilibria,
    group_terms,
)
from datamarket.scenarios import run_scenario
from datamarket.scenarios._loader import validate_scenario
from tests.strategies import class_balanced_markets

ROOT = Path(__file__).resolve().parents[3]

NINE = {
    "kind": "balanced_market",
    "model": "shapley_nash",
    "groups": ["A", "B"],
    "gamma": [0.7, 0.3],
    "sellers": [{"name": f"c{j}", "costs": [0.5, 0.3]} for j in range(2)]
    + [{"name": f"e{j}", "costs": [0.8, 0.5]} for j in range(7)],
    "buyers": [
        {"name": "b0", "values": [1.4, 1.0]},
        {"name": "b1", "values": [1.0, 0.6]},
        {"name": "b2", "values": [1.4, 0.0]},
        {"name": "b3", "values": [1.0, 0.0]},
    ],
}


def _revenue(market: BalancedMarket, prices: np.ndarray, scales: np.ndarray):
    """F(S) = sum_g sum_{i: mu_ig >= p_g} p_g G_ig(a_g S), from the market's arrays alone."""

    def f(s: float) -> float:
        total = 0.0
        for g in range(market.shape[2]):
            if scales[g] <= 0 or prices[g] <= 0:
                continue
            n = scales[g] * s
            for i in range(market.shape[1]):
                if market.values[i, g] >= prices[g] and n > 0:
                    acc = market.Z[i, g] - market.alpha[i, g] * n ** (-market.beta[i, g])
                    total += prices[g] * max(acc, 0.0)
        return total

    return f


def _brute_regret(x: np.ndarray, costs: np.ndarray, f) -> np.ndarray:
    """Each seller's regret by coalition enumeration and a dense grid + bounded refinement."""
    m = x.size
    out = np.zeros(m)
    for j in range(m):
        others = [k for k in range(m) if k != j]
        coal = []
        for r in range(m):
            w = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
            coal += [(w, float(sum(x[k] for k in t))) for t in itertools.combinations(others, r)]
        sums = {s for _, s in coal}
        base = {s: f(s) for s in sums}

        def pay(s: float, _coal=coal, _base=base, _c=costs[j]) -> float:
            return sum(w * (f(t + s) - _base[t]) for w, t in _coal) - _c * s

        top = max(f(1e9) - 0.0, 0.0) / costs[j] + 1.0  # payoff < 0 beyond (revenue bound / cost)
        grid = np.concatenate([[0.0], np.geomspace(1e-4, top, 400)])
        vals = np.array([pay(float(s)) for s in grid])
        k = int(np.argmax(vals))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        best = float(vals[k])
        if hi > lo:
            res = minimize_scalar(
                lambda s: -pay(s), bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
            )
            best = max(best, -float(res.fun))
        out[j] = best - pay(float(x[j]))
    return out


def _market(d: dict) -> BalancedMarket:
    n, g = d["values"].shape
    z, a, b = d["curve"]
    return BalancedMarket(
        values=d["values"],
        costs=d["costs"],
        Z=np.full((n, g), z),
        alpha=np.full((n, g), a),
        beta=np.full((n, g), b),
        gamma=d["gamma"],
    )


def _check_against_brute_force(market: BalancedMarket, a) -> None:
    cert = a.certificate
    for sol in (a.baseline, a.intervention):
        if sol.scenario == "baseline":
            games = [
                (
                    f"baseline.nash.{name}",
                    sol.production[:, g],
                    market.costs[:, g],
                    np.eye(market.shape[2])[g],
                )
                for g, name in enumerate(market.groups)
            ]
        else:
            gam = market.gamma
            h = int(np.argmax(gam))
            games = [("intervention.nash.total", sol.production[:, h] / gam[h], market.costs @ gam, gam)]
        for name, x, costs, scales in games:
            check = cert[name]
            brute = _brute_regret(x, costs, _revenue(market, sol.prices, scales))
            # the grid maximum is a lower bound of the exact best response: never above the certificate's
            # regret beyond rounding (payoffs are sums of at most 2^7 terms of size <= the scale)
            assert np.all(brute <= np.asarray(check.detail["regrets"]) + check.tolerance), name
            if check.passed:
                assert brute.max() <= check.tolerance * 1.0001, name


@settings(max_examples=12, deadline=None)
@given(d=class_balanced_markets())
def test_certificate_regrets_match_a_brute_force(d) -> None:
    """Property: on class-structured markets (2-8 sellers), the certificate's regrets bound the brute
    force's, a passing certificate is confirmed by the brute force, and the status follows it."""
    assume(d["ok"])
    market = _market(d)
    a = analyse(market, "shapley_nash")
    _check_against_brute_force(market, a)
    if a.status == "ok":
        assert a.certificate.passed
    assert not (a.status == "ok" and not a.certificate.passed)


def test_nine_seller_market_returns_a_verified_equilibrium() -> None:
    """The market of the report: two cheap sellers, seven expensive; the class-symmetric search finds no
    producing equilibrium under the intervention; the refined search finds the one in which the two
    cheap sellers produce different amounts, and both engines report the same (canonical) profile."""
    res = run_scenario(validate_scenario(NINE))
    assert res.status == "ok" and res.certificate.passed
    prod = np.array(res.fields["intervention"]["production"])
    assert prod[0, 0] > prod[1, 0] > 0 and np.all(prod[2:] == 0)  # canonical: first seller the most
    assert res.fields["backfire"] is False
    regrets = res.fields["best_response_regrets"]["intervention"]
    assert max(regrets) <= res.certificate["intervention.nash.total"].tolerance
    gen = run_scenario(validate_scenario({**NINE, "engine": "general"}))
    np.testing.assert_allclose(gen.fields["intervention"]["production"], prod, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        gen.fields["baseline"]["production"], res.fields["baseline"]["production"], rtol=1e-9, atol=1e-12
    )


def test_refined_search_works_beyond_the_general_engine_fallback() -> None:
    """Two cheap sellers beside an idle class of 18 (M = 20 > GENERAL_FALLBACK): still verified."""
    cfg = {
        **NINE,
        "sellers": NINE["sellers"][:2] + [{"name": f"e{j}", "costs": [0.8, 0.5]} for j in range(18)],
    }
    res = run_scenario(validate_scenario({**cfg, "growth": [4]}))
    assert res.status == "ok" and res.certificate.passed
    prod = np.array(res.fields["intervention"]["production"])
    assert prod[0, 0] > prod[1, 0] > 0 and np.all(prod[2:] == 0)


def test_a_perturbed_profile_fails_the_certificate() -> None:
    """The check can fail: move the first cheap seller off its equilibrium quantity."""
    market = validate_scenario(NINE).market()
    a = analyse(market, "shapley_nash")
    prod = a.intervention.production.copy()
    prod[0] *= 0.5
    bad = dataclasses.replace(a.intervention, production=prod)
    cert = certify_solutions(market, a.baseline, bad)
    assert not cert.passed and "intervention.nash.total" in cert.failures()


def test_no_verified_profile_is_reported_as_such() -> None:
    """With a negative tolerance nothing can pass: the engine says so (found = 0) and keeps the
    smallest-regret candidate as evidence; an analysis with such a sub-game is no_equilibrium_found."""
    market = validate_scenario(NINE).market()
    terms = group_terms(market, np.array([1.0, 0.6]), 0)
    eq = class_equilibria(market.costs[:, 0], terms, tol=-1.0)
    assert eq.diagnostics["found"] == 0 and math.isfinite(eq.regrets[0])
    a = analyse(market, "shapley_nash")
    notes = {**a.baseline.notes, "no_equilibrium_found": ["A"]}
    stuck = dataclasses.replace(a, baseline=dataclasses.replace(a.baseline, notes=notes))
    assert stuck.status == "no_equilibrium_found" and stuck.unfound == ["baseline.A"]


def test_status_follows_the_certificate() -> None:
    """An empty or failing certificate is never ok; ok needs a passing one."""
    from datamarket.scenarios._base import ScenarioResult

    assert ScenarioResult("k", 0, {}).status == "unverified"
    good = run_scenario(validate_scenario(NINE))
    failing = Certificate(tuple(dataclasses.replace(c, residual=1.0) for c in good.certificate.checks[:1]))
    r = ScenarioResult("k", 0, {}, certificate=failing)
    assert r.status == "unverified" and "certificate failed" in (r.reason or "")
    assert r.to_json()["certificate"]["passed"] is False
    assert r.json_tables()["certificate"][0]["passed"] is False


def test_knife_edge_kappa_equals_tau_forms_in_both_models() -> None:
    """kappa_B = tau_B exactly in the nine-seller market (rho_B = 1.2, c_G = 1/4 for the curve (1, 1, 1),
    kappa_B = 0.3): a lone producer earns zero profit, so both the idle and the producing profile are
    (weak) equilibria; the selection rule takes the producing one, as the paper counts kappa = tau as
    forming (errata: reserve prices and knife edges). Both engines agree."""
    for engine in ("auto", "general"):
        res = run_scenario(validate_scenario({**NINE, "engine": engine}))
        assert res.fields["thresholds"][1] == pytest.approx(0.3, rel=1e-15)
        prod = np.array(res.fields["baseline"]["production"])
        assert prod[0, 1] == pytest.approx(2.0, rel=1e-9) and np.all(prod[1:, 1] == 0)
        assert res.certificate["baseline.nash.B"].passed


@pytest.mark.parametrize(
    "path", sorted((ROOT / "examples").glob("balanced_market*.toml")), ids=lambda p: p.stem
)
def test_examples_carry_a_passing_certificate(path: Path) -> None:
    res = run_scenario(validate_scenario(tomllib.loads(path.read_text())))
    assert res.status == "ok" and res.certificate.passed and not res.certificate.empty
    names = [c.name for c in res.certificate.checks]
    assert "baseline.payments_efficient" in names and "growth.verified" in names


def test_thin_demand_at_a_large_grid_finds_a_lone_class_split() -> None:
    """Four classes of 18 sellers (19^4 = 130321 count vectors, beyond the full split search) and a
    group valued by two buyers only: no class-symmetric profile with production is an equilibrium
    there; the supports where only the first sellers of one class produce find the one where the first
    two sellers of the cheapest class produce (equal amounts), certified, instead of
    no_equilibrium_found."""
    n = 40
    values = np.column_stack([np.where(np.arange(n) % 2 == 0, 2.0, 1.5), np.zeros(n)])
    values[:2, 1] = [0.5, 0.3]
    costs = np.repeat(np.array([[0.1 * f, 0.1 * f] for f in (1, 1.05, 1.1, 1.15)]), 18, axis=0)
    ones = np.ones((n, 2))
    market = BalancedMarket(
        values=values, costs=costs, Z=ones, alpha=ones, beta=ones, gamma=np.array([0.5, 0.5])
    )
    a = analyse(market, "shapley_nash")
    assert a.status == "ok" and a.certificate.passed, a.certificate.summary()
    group_b = a.baseline.production[:, 1]
    producing = np.flatnonzero(group_b)
    assert 0 < producing.size < 18 and producing.tolist() == list(range(producing.size))
    assert np.all(group_b[producing] == group_b[0])
