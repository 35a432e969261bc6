"""Westenbroek et al. (competing buyers): Monte Carlo of the contracts, the scenario kind and the figures.

Monte Carlo tolerances: CLT with z = 5 on the *exact* standard deviation of a payment
(``datamarket.mechanisms._competing_simulation``; two-sided normal tail 5.7e-7 per comparison).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datamarket.core.audits import audit_declared, audit_incentive_compatibility
from datamarket.core.errors import InvalidMarketError
from datamarket.experiments import reproduce
from datamarket.experiments.competing_buyers import FIGURES, compute_poa, x1_grid
from datamarket.mechanisms import competing_buyers as cb
from datamarket.mechanisms.competing_buyers import (
    CompetingMarket,
    PolynomialRegression,
    UniformInterval,
    analyse_market,
    effort_sweep,
    ic_probes,
    section_iv_market,
    simulate_payments,
    source_expected_utility,
)
from datamarket.scenarios import ScenarioError, default_config, parse_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[3]
FIELDS = {
    "gamma",
    "xi",
    "spectral_radius",
    "gne_exists",
    "d",
    "effort_equilibrium",
    "effort_social",
    "loss_equilibrium",
    "loss_social",
    "price_of_anarchy",
    "contracts",
}


def _four_source_market() -> CompetingMarket:
    return CompetingMarket(
        np.linspace(-1, 1, 6),
        np.array([1, 2, 1.5, 3, 1, 2.0]),
        (PolynomialRegression(1), PolynomialRegression(0), PolynomialRegression(1)),
        (UniformInterval(), UniformInterval(0.0, 1.0), UniformInterval(-0.5, 0.5)),
        competition=np.array([[0, 0.3, 0.1], [0.3, 0, 0.2], [0.1, 0.2, 0]]),
        eta=np.array([0.2, 0.5, 0.25]),
    )


# ----------------------------------------------------------------------------------------------
# Monte Carlo of the contracts
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["section_iv", "six_sources"])
def test_monte_carlo_payments_match_formula(which: str) -> None:
    an = analyse_market(section_iv_market(0.2) if which == "section_iv" else _four_source_market())
    g = an.gne
    assert g.gne_exists and g.expected_payments is not None
    sim = simulate_payments(an, 40_000, seed=5)
    # unbiased fits (f = 0): the exact mean is the paper's c - d sum_l xi sigma_l^2 = theta e*
    np.testing.assert_allclose(sim.expected, g.expected_payments, rtol=1e-10, atol=1e-12)
    assert np.all(np.abs(sim.mean - sim.expected) <= sim.bound), (sim.mean - sim.expected, sim.bound)
    # ex-ante IR with equality (Lemma 1): expected utility 0 for every source
    assert np.all(np.abs(sim.utility - 0.0) <= sim.utility_bound)


def test_monte_carlo_with_biased_leave_one_out_fit() -> None:
    """The one-point leave-one-out fit is biased for a generic f: f = 0.3 x - 0.2 biases the fits
    by +0.25 and -0.30 at x1 = 0."""
    an = analyse_market(section_iv_market(0.0))
    sim = simulate_payments(an, 40_000, seed=9, truth=lambda x: 0.3 * x - 0.2)
    g = an.gne
    assert g.d is not None and g.expected_payments is not None
    bias = np.array([0.25, -0.30])
    np.testing.assert_allclose(sim.expected, g.expected_payments - g.d * bias[:, None] ** 2, rtol=1e-10)
    assert sim.within_bound


def test_equilibrium_effort_maximises_simulated_utility() -> None:
    """e* (17) is the source's best effort: MC utility at e* beats e* +- 0.25, 0.5, 1 (common random
    numbers), and each MC utility is within its CLT bound of the exact value."""
    an = analyse_market(section_iv_market(0.2))
    offsets = [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]
    for source in (0, 1):
        sims = effort_sweep(an, source, offsets, 40_000, seed=21)
        u = np.array([s.utility[source] for s in sims])
        exact = np.array([s.utility_expected[source] for s in sims])
        bounds = np.array([s.utility_bound[source] for s in sims])
        assert np.all(np.abs(u - exact) <= bounds)
        assert int(np.argmax(u)) == offsets.index(0.0)
        e_star = an.gne.effort_equilibrium
        assert e_star is not None
        for off, ex in zip(offsets, exact, strict=True):
            assert ex == pytest.approx(source_expected_utility(an, source, e_star[source] + off), abs=1e-12)


def test_same_report_to_every_buyer_is_optimal() -> None:
    """Proposition 1: shifting or adding noise to the report for one buyer lowers the MC utility by
    d_i^k (b^2 + tau^2) (exactly, within the CLT bound)."""
    an = analyse_market(_four_source_market())
    g = an.gne
    assert g.d is not None
    base = simulate_payments(an, 40_000, seed=3)
    source = 2
    for b, tau in [(0.3, 0.0), (0.0, 0.4), (-0.2, 0.2)]:
        shift = np.zeros((6, 3))
        noise = np.zeros((6, 3))
        shift[source, 1] = b
        noise[source, 1] = tau
        dev = simulate_payments(an, 40_000, seed=3, shift=shift, extra_std=noise)
        loss = g.d[source, 1] * (b**2 + tau**2)
        assert dev.utility_expected[source] == pytest.approx(base.utility_expected[source] - loss, abs=1e-12)
        assert abs(dev.utility[source] - dev.utility_expected[source]) <= dev.utility_bound[source]
        assert dev.utility[source] < base.utility[source]
        assert dev.within_bound


def test_simulation_is_seeded() -> None:
    an = analyse_market(section_iv_market(0.0))
    a = simulate_payments(an, 1000, seed=1).mean
    b = simulate_payments(an, 1000, seed=1).mean
    c = simulate_payments(an, 1000, seed=2).mean
    # exact: same seed, same deterministic code path
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(InvalidMarketError, match="rounds"):
        simulate_payments(an, 1, seed=0)


# ----------------------------------------------------------------------------------------------
# mechanism declaration
# ----------------------------------------------------------------------------------------------
def test_declared_properties_hold_and_ic_probe_detects_wrong_effort() -> None:
    info = cb.MECHANISMS[0]
    for seed in range(3):
        assert audit_declared(info, cb.sample(seed)) == []
    an = analyse_market(section_iv_market(0.0))
    probes = ic_probes(an)
    assert audit_incentive_compatibility(probes).holds
    # a probe whose "truth" is not e* must fail: the audit is not vacuous
    wrong = [p.__class__(p.agent, p.utility, p.truth + 0.5, p.grid) for p in probes[:1]]
    assert not audit_incentive_compatibility(wrong).holds


# ----------------------------------------------------------------------------------------------
# scenario kind
# ----------------------------------------------------------------------------------------------
def test_default_scenario_fields_and_outcome() -> None:
    res = run_scenario(default_config("competing_buyers"))
    assert set(res.fields) == FIELDS | {
        # added in result schema version 2
        "total_gamma",
        "total_d",
        "feasible_sources",
        "effort_social_unconstrained",
        "equilibrium_status",
        "best_responses",
    }
    data = json.loads(json.dumps(res.to_json()))
    assert data["gne_exists"] is True
    assert set(data["contracts"]) == {"c", "d"}
    assert np.array(data["gamma"]).shape == (2, 2) and np.array(data["xi"]).shape == (2, 2, 2)
    assert all(a["holds"] for a in data["audits"].values())
    o = res.outcome
    assert o is not None
    assert o.platform_take == pytest.approx(0.0, abs=1e-12)
    # sources are paid exactly their effort cost in expectation
    idx = o.seller_indices
    np.testing.assert_allclose(np.asarray(o.payments)[idx], np.asarray(o.costs)[idx], rtol=1e-12)
    assert data["effort_equilibrium"] == pytest.approx(list(np.asarray(o.costs)[idx]))


def test_example_section_iv_numbers() -> None:
    cfg = parse_scenario((ROOT / "examples" / "competing_buyers.toml").read_text())
    f = run_scenario(cfg).fields
    assert f["spectral_radius"] == pytest.approx(0.5)
    np.testing.assert_allclose(f["d"], [[20 / 9, 20 / 9], [8 / 9, 8 / 9]], rtol=1e-10)
    np.testing.assert_allclose(f["gamma"], [[4 / 3, 4 / 3], [1 / 3, 1 / 3]], rtol=1e-10)
    assert f["price_of_anarchy"] == pytest.approx(f["loss_equilibrium"] / f["loss_social"])


def test_no_gne_example_has_null_equilibrium_fields() -> None:
    cfg = parse_scenario((ROOT / "examples" / "competing_buyers-no-gne.toml").read_text())
    res = run_scenario(cfg)
    f = res.fields
    assert f["gne_exists"] is False and f["spectral_radius"] == pytest.approx(2.0)
    assert f["d"] is None and f["contracts"] is None and f["price_of_anarchy"] is None
    assert res.outcome is None


@pytest.mark.parametrize(
    ("snippet", "field"),
    [
        ("competition = 1.5", "competition"),
        ("competition = -0.2", "competition"),
        ("competition = [[0.0, 0.5], [0.4, 0.0]]", "competition"),
        ("competition = [[2.0, 0.5], [0.5, -1.0]]", "competition"),  # diagonal outside [0, 1]
        ("competition = [[0.0, 0.5], [0.5]]", r"competition: .*square matrix \(rows of equal length\)"),
    ],
)
def test_bad_competition_is_a_named_error(snippet: str, field: str) -> None:
    text = (
        f'kind = "competing_buyers"\n{snippet}\n'
        "[[sources]]\nlocation = 0.0\n[[sources]]\nlocation = 1.0\n[[buyers]]\n[[buyers]]\n"
    )
    with pytest.raises(ScenarioError, match=field):
        parse_scenario(text)


def test_bad_alpha_and_coincident_locations() -> None:
    base = 'kind = "competing_buyers"\n[[buyers]]\n'
    with pytest.raises(ScenarioError, match=r"sources\[1\]\.effort_alpha"):
        parse_scenario(
            base + "[[sources]]\nlocation = 0.0\neffort_alpha = -1.0\n[[sources]]\nlocation = 1.0\n"
        )
    cfg = parse_scenario(base + "[[sources]]\nlocation = 0.2\n[[sources]]\nlocation = 0.2\n")
    with pytest.raises(InvalidMarketError, match="locations: singular design"):
        run_scenario(cfg)


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def test_reproduce_quick_writes_every_figure(tmp_path: Path) -> None:
    paths = reproduce("competing_buyers", tmp_path, quick=True)
    for spec in FIGURES:
        for ext in ("png", "csv", "json"):
            p = tmp_path / "competing_buyers" / f"{spec.name}.{ext}"
            assert p in paths and p.stat().st_size > 0
    assert sum(s.in_demo for s in FIGURES) == 1


def test_poa_records_tend_to_two() -> None:
    recs = compute_poa(True, 0)
    assert len(recs) == len(x1_grid(True))
    poa = np.array([r["poa"] for r in recs], dtype=float)
    assert poa[0] == pytest.approx(1.0) and np.all(np.diff(poa) >= -1e-12) and np.all(poa < 2)


def test_leave_one_out_matrices_equal_refitted_estimators() -> None:
    """Differential: the vectorised predictions P y equal buyers refitting least squares (min-norm,
    ``numpy.linalg.lstsq``) without each source, report by report."""
    an = analyse_market(_four_source_market())
    mk = an.market
    rng = np.random.default_rng(4)
    y = rng.normal(size=(5, mk.n_sources))
    x = np.asarray(mk.locations)
    for k, est in enumerate(mk.estimators):
        for i in range(mk.n_sources):
            rest = np.delete(np.arange(mk.n_sources), i)
            coef = np.linalg.lstsq(est.design(x[rest]), y[:, rest].T, rcond=None)[0]
            refit = (est.design(x[i : i + 1]) @ coef)[0]
            np.testing.assert_allclose(y @ an.loo[i, :, k], refit, rtol=1e-9, atol=1e-12)
