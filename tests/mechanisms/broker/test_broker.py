"""Broker mechanism M* and Algorithm 1 (Chen, Clinton, Kandasamy, Algorithms 1-2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.audits import sweep_misreports
from datamarket.core.errors import InfeasibleError, InvalidMarketError
from datamarket.mechanisms.broker import (
    AUTO_E1_LIMIT,
    AUTO_E1_WORK,
    BrokerMarket,
    algorithm1,
    algorithm1_outcome,
    closed_form,
    e1_workload,
    ic_probes,
    mstar_transfers,
    plan_collection,
    settle,
    simulate,
)
from datamarket.pricing.ordered_item import audit_scheme, brute_force_lp
from datamarket.pricing.solvers import solve_milp
from datamarket.pricing.valuations import Exponential, Gaussian, Tabulated, Threshold
from tests.strategies import broker_markets, value_tables


def _market(costs=(0.05, 0.06, 0.2), sigma=1.0):
    return BrokerMarket(
        buyers=("a", "b", "c"),
        valuations=(Threshold(0.4), Gaussian(0.5, 0.8), Exponential(0.3, 0.9)),
        contributors=("x", "y", "z"),
        costs=costs,
        sigma=sigma,
    )


@settings(max_examples=12)
@given(value_tables(max_buyers=2, max_n=3), st.floats(0.3, 0.9))
def test_algorithm1_is_opt_lemma2(values, c1) -> None:
    """Lemma 2 with an exact oracle: Algorithm 1's profit equals OPT (eq. 3) by brute force."""
    nb = values.shape[0]
    n_cap = int(np.floor(nb / c1 + 1e-12))
    width = values.shape[1] - 1
    table = np.hstack([values, np.repeat(values[:, -1:], max(0, n_cap - width), axis=1)])
    res = algorithm1(table, c1)
    brute = max(brute_force_lp(table, n) - c1 * n for n in range(1, n_cap + 1))
    assert res.profit == pytest.approx(brute, abs=1e-7)
    assert audit_scheme(table, res.allocations, res.prices) <= 1e-9
    assert res.n_plus == int(np.argmax(np.nan_to_num(res.profits, nan=-np.inf) >= res.profit - 1e-12))


@pytest.mark.parametrize("solver", ["E2", "support"])
def test_algorithm1_solvers_agree(solver) -> None:
    base = _market(costs=(0.15, 0.16, 0.3))
    other = BrokerMarket(**{**_fields(base), "solver": solver, "delta": 0.05})
    a, b = plan_collection(base), plan_collection(other)
    assert b.profit_n_plus <= a.profit_n_plus + 1e-9
    if solver == "E2":
        assert b.n_plus == a.n_plus and b.profit_n_plus == pytest.approx(a.profit_n_plus, abs=1e-7)


def _fields(m):
    return {
        "buyers": m.buyers,
        "valuations": m.valuations,
        "contributors": m.contributors,
        "costs": tuple(m.costs),
        "sigma": m.sigma,
    }


def test_plan_fixes_w_and_collection() -> None:
    market = _market()
    plan = plan_collection(market)
    assert plan.n_plus >= 2 and plan.n1 == plan.n_plus - 1 and plan.n2 == 1
    assert plan.n_star == {"x": plan.n1, "y": 1, "z": 0}
    # W uses c_1 (N+ - 1) + c_2 and equals profit_{N+} - (c_2 - c_1)
    assert plan.w == pytest.approx(plan.prices.sum() - 0.05 * (plan.n_plus - 1) - 0.06)
    assert plan.w == pytest.approx(plan.profit_n_plus - 0.01)
    assert plan.d1 == pytest.approx(0.05 * plan.n1**2) and plan.d2 == pytest.approx(0.06)
    # Thm 5.1 (PO): W >= OPT - (c2 - c1) with an exact oracle (N+ >= 2 here)
    assert plan.w >= plan.opt_profit - 0.01 - 1e-12
    # IRB/EFB of the posted menu
    assert audit_scheme(market.table, plan.allocations, plan.prices) <= 1e-9


def test_equal_minimum_costs_split_collection() -> None:
    plan = plan_collection(_market(costs=(0.2, 0.05, 0.05)))
    assert plan.split and plan.contributor_1 == "y" and plan.contributor_2 == "z"
    assert plan.n1 + plan.n2 == plan.n_plus and abs(plan.n1 - plan.n2) <= 1
    assert plan.w == pytest.approx(plan.opt_profit)  # reaches OPT when c1 = c2 (N_OPT >= 2)


def test_negative_w_refused() -> None:
    market = BrokerMarket(
        buyers=("a",), valuations=(Gaussian(1.0, 0.3),), contributors=("x", "y"), costs=(0.01, 0.9), sigma=1
    )
    with pytest.raises(InfeasibleError, match=r"W = .* < 0"):
        plan_collection(market)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": 1e200}, "sigma"),  # sigma^2 overflows: was an OverflowError traceback
        ({"sigma": 1e-300}, "sigma"),  # sigma^2 underflows to 0: was a ZeroDivisionError in d_i
        ({"costs": (0.05, 0.0, 0.1)}, "costs"),
        ({"costs": (0.05, -1.0, 0.1)}, "costs"),
        ({"costs": (0.05, float("nan"), 0.1)}, "costs"),
        ({"contributors": ("x",), "costs": (0.1,)}, "contributors"),
        ({"valuations": (Threshold(0.4), Gaussian(0.5), Gaussian(0.5))[:2]}, "valuations"),
    ],
)
def test_bad_markets(change, field) -> None:
    with pytest.raises(InvalidMarketError) as info:
        BrokerMarket(**{**_fields(_market()), **change})
    assert info.value.field == field


def test_bad_valuation_tables() -> None:
    for bad, match in (([0.2, 0.1], "not monotone"), ([0.2, 1.1], "outside")):
        with pytest.raises(InvalidMarketError, match=match):
            BrokerMarket(**{**_fields(_market()), "valuations": (Tabulated(bad),) * 3})


def test_settle_validates_submissions() -> None:
    market = _market()
    plan = plan_collection(market)
    good = {"x": np.zeros(plan.n1), "y": np.zeros(1), "z": np.zeros(0)}
    settle(market, plan, good, seed=0)
    with pytest.raises(InvalidMarketError, match=r"submissions\.y: missing"):
        settle(market, plan, {"x": good["x"], "z": good["z"]}, seed=0)
    with pytest.raises(InvalidMarketError, match="expected 1 points, got 2"):
        settle(market, plan, {**good, "y": np.zeros(2)}, seed=0)
    with pytest.raises(InvalidMarketError, match="finite"):
        settle(market, plan, {**good, "x": np.full(plan.n1, np.nan)}, seed=0)
    with pytest.raises(InvalidMarketError, match="unknown"):
        settle(market, plan, {**good, "w": np.zeros(1)}, seed=0)


def test_settle_outcome_and_off_path_budget() -> None:
    market = _market()
    plan = plan_collection(market)
    rng = np.random.default_rng(5)
    subs = {"x": rng.normal(3, 1, plan.n1), "y": rng.normal(3, 1, 1), "z": np.zeros(0)}
    out = settle(market, plan, subs, seed=2)
    assert abs(out.platform_take) <= 1e-9
    assert out.allocated[:3].tolist() == plan.allocations.tolist()
    assert out.costs[3] == pytest.approx(0.05 * plan.n1)
    # exact: same seed, same deterministic code path
    assert settle(market, plan, subs, seed=2) == out  # seeded
    # off path: contributor 1 submits the wrong size -> deficit (c2 - c1) N*_1 / N+
    short = {**subs, "x": subs["x"][:-1]}
    off = settle(market, plan, short, seed=2, strict=False)
    assert off.platform_take == pytest.approx(-(0.06 - 0.05) * plan.n1 / plan.n_plus, abs=1e-12)


def test_simulation_on_path_bb_and_expectations() -> None:
    market = _market()
    plan = plan_collection(market)
    sim = simulate(market, plan, reps=8000, seed=1)
    assert sim.max_budget_imbalance <= 1e-9  # BB on every realisation
    # (16): E p*_j = q_j+ within 4 standard errors
    assert np.all(np.abs(sim.expected_prices - plan.prices) <= 4 * sim.price_se)
    theory = (
        np.array([plan.c1 * plan.n1, plan.c2 * plan.n2]) + plan.w * np.array([plan.n1, plan.n2]) / plan.n_plus
    )
    assert np.all(np.abs(sim.expected_payments - theory) <= 4 * sim.payment_se)
    # buyers' realised values
    own = market.table[np.arange(3), plan.allocations]
    assert np.all(np.abs(sim.realised_values - own) <= 4 * sim.realised_values_se + 1e-12)
    # ex-post negative prices occur yet BB holds
    assert (sim.price_samples < 0).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_every_deviation_loses_worst_case(seed) -> None:
    """ICC (Thm 5.1 / Lemmas 7-9): each listed deviation loses beyond its MC error, worst case over mu,
    and the Monte Carlo gain agrees with its closed form."""
    market = _market(costs=(0.03, 0.05, 0.2), sigma=1.4) if seed else _market()
    plan = plan_collection(market)
    sim = simulate(market, plan, reps=6000, seed=seed)
    strategies = {d.strategy for d in sim.deviations}
    assert {
        "under_collect",
        "pad_fabricated",
        "shift",
        "fabricate",
        "wrong_size",
        "over_collect",
    } <= strategies
    for d in sim.deviations:
        if d.strategy == "truthful":
            continue
        assert d.gain + 4 * d.gain_se < 0, d
        assert abs(d.gain - d.closed_form_gain) <= 4 * d.gain_se + 1e-9, d


def test_fabrication_gains_only_at_the_guess() -> None:
    """/Sec. 2.9: fabricating from N(mu', sigma^2) gains at mu = mu', loses in the worst case."""
    plan = plan_collection(_market())
    at_guess = closed_form(plan, 1.0, 0, "fabricate", 0.0, 0.0) - closed_form(
        plan, 1.0, 0, "truthful", 0.0, 0.0
    )
    assert at_guess == pytest.approx(plan.c1 * plan.n1)
    far = closed_form(plan, 1.0, 0, "fabricate", 5.0, 0.0) - closed_form(plan, 1.0, 0, "truthful", 0.0, 0.0)
    assert far < 0


def test_ic_probes_truth_is_best() -> None:
    market = _market()
    plan = plan_collection(market)
    for probe in ic_probes(market, plan):
        rep = sweep_misreports(probe)
        assert rep.gain <= 1e-12, rep
    # truthful utility is W N*_i / N+ (IRC)
    assert closed_form(plan, 1.0, 0, "truthful", 0.0, 0.0) == pytest.approx(plan.w * plan.n1 / plan.n_plus)


def test_transfers_budget_identity_vectorised() -> None:
    plan = plan_collection(_market())
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=1000), rng.normal(size=1000)
    p, pi = mstar_transfers(plan, 3, 1.0, True, True, m1, m2)
    np.testing.assert_allclose(p.sum(axis=1), pi.sum(axis=1), atol=1e-12)
    # on path every buyer's price moves by the same amount: EF among bought bundles ex post
    shift = p - plan.prices
    np.testing.assert_allclose(shift, shift[:, :1].repeat(3, axis=1), atol=1e-12)


def test_algorithm1_outcome_audits() -> None:
    out = algorithm1_outcome(_market())
    from datamarket.core.audits import audit_outcome

    audits = audit_outcome(out)
    assert all(audits[k].holds for k in ("ir_buyer", "ir_seller", "envy_free", "budget_balance_weak"))
    assert out.platform_take > 0


@settings(max_examples=15)
@given(broker_markets(), st.integers(0, 2**31 - 1))
def test_theorem_5_1_on_generated_markets(market, seed) -> None:
    """Thm 5.1: IRB, EFB (posted menu), IRC (W >= 0 or refusal), ICC (closed-form probes), BB on random
    realisations, PO: W = max_{N>=2} profit_N - (c2 - c1) >= OPT - (c2 - c1) when N_OPT >= 2."""
    try:
        plan = plan_collection(market)
    except InfeasibleError:
        # refused only when W would be negative (IRC would fail; the paper omits this condition)
        order = market.order
        c1, c2 = (float(market.costs[i]) for i in order[:2])
        alg = algorithm1(market.table, c1, n_min=2)
        assert alg.profit - (c2 - c1) < 0 or alg.n_plus < 2
        return
    nb = len(market.buyers)
    assert audit_scheme(market.table, plan.allocations, plan.prices) <= 1e-9  # IRB + EFB
    assert plan.w >= 0
    for who, n in ((0, plan.n1), (1, plan.n2)):  # IRC: E pi - c N = W N / N+
        u = closed_form(plan, market.sigma, who, "truthful", 0.0, 0.0)
        assert u == pytest.approx(plan.w * n / plan.n_plus, abs=1e-9) and u >= -1e-12
    for probe in ic_probes(market, plan):  # ICC
        assert sweep_misreports(probe).gain <= 1e-9
    rng = np.random.default_rng(seed)  # BB on every realisation
    mu = rng.normal(0, 5)
    m1 = rng.normal(mu, market.sigma / np.sqrt(plan.n1), 500)
    m2 = rng.normal(mu, market.sigma / np.sqrt(plan.n2), 500)
    p, pi = mstar_transfers(plan, nb, market.sigma, True, True, m1, m2)
    assert np.abs(p.sum(axis=1) - pi.sum(axis=1)).max() <= 1e-9
    assert plan.w == pytest.approx(
        plan.profit_n_plus - (plan.c2 - plan.c1) * (0 if plan.split else 1), abs=1e-9
    )
    if plan.opt_n >= 2:  # PO (Thm 5.1 with an exact oracle for N_OPT = 1)
        assert plan.w >= plan.opt_profit - (plan.c2 - plan.c1) - 1e-9


def test_lemma5_fabrication_is_best_response_to_no_data() -> None:
    """Lemma 5 (Thms 3, 4): if the partner submits nothing, collecting data is worse in the worst case
    over mu than fabricating from a guess -- the mechanism cannot validate against anything."""
    market = _market()
    plan = plan_collection(market)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(20_000)
    worst_truthful, worst_fabricate = np.inf, np.inf
    for mu in (0.0, 3.0, 30.0):
        collected = mu + market.sigma / np.sqrt(plan.n1) * z  # truthful sample mean
        fabricated = 0.0 + market.sigma / np.sqrt(plan.n1) * z  # guess mu' = 0, no cost
        for mean, cost, store in ((collected, plan.c1 * plan.n1, "t"), (fabricated, 0.0, "f")):
            _, pi = mstar_transfers(plan, 3, market.sigma, True, False, mean, 0.0)
            u = float(pi[:, 0].mean()) - cost
            if store == "t":
                worst_truthful = min(worst_truthful, u)
            else:
                worst_fabricate = min(worst_fabricate, u)
    assert worst_fabricate > worst_truthful


def test_results_do_not_depend_on_mu() -> None:
    """On path, prices and payments are independent of the true mean."""
    market = _market()
    plan = plan_collection(market)
    a = simulate(market, plan, reps=4000, mus=(0.0,), seed=3)
    b = simulate(market, plan, reps=4000, mus=(3.7,), seed=3)
    np.testing.assert_allclose(a.expected_prices, b.expected_prices, atol=1e-9)
    np.testing.assert_allclose(a.expected_payments, b.expected_payments, atol=1e-9)


def test_buyers_pay_less_under_fabrication() -> None:
    """If contributor 1 pads with fabricated points, E p*_j drops by
    ((d1 + d2)/|B|)(var_sub - sigma^2/N*_1) (IRB is protected)."""
    market = _market()
    plan = plan_collection(market)
    n, half, reps = plan.n1, (plan.n1 + 1) // 2, 40_000
    rng = np.random.default_rng(11)
    real = rng.normal(1.0, 1.0, (reps, half))
    fake = real.mean(axis=1, keepdims=True) + rng.normal(0, 1.0, (reps, n - half))
    mean1 = np.concatenate([real, fake], axis=1).mean(axis=1)
    mean2 = rng.normal(1.0, 1.0, reps)
    p, _ = mstar_transfers(plan, 3, 1.0, True, True, mean1, mean2)
    var_sub = 1 / half + (n - half) / n**2
    target = plan.prices - (plan.d1 + plan.d2) / 3 * (var_sub - 1 / n)
    se = p.std(axis=0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(p.mean(axis=0) - target) <= 4 * se)
    assert np.all(target < plan.prices)


def test_auto_uses_pruned_e1_for_few_buyers_and_tiny_costs() -> None:
    """Regression: with 2 buyers and c_1 = 5e-4, ``(floor(|B|/c_1) + 1)^|B|`` = 16M sent ``auto`` to
    one MILP per N (minutes); E1's pruning only needs N up to ~1300, so ``auto`` now
    picks E1. The result is exact: the revenue at N+ equals an independent MILP (E2) at N+."""
    market = BrokerMarket(
        buyers=("a", "b"),
        valuations=(Gaussian(0.1), Threshold(0.05)),
        contributors=("x", "y"),
        costs=(0.0005, 0.001),
        sigma=1.0,
    )
    values, c1 = market.table, 0.0005
    n_cap = 4000
    assert float(n_cap + 1) ** 2 > AUTO_E1_LIMIT >= e1_workload(values, c1, n_cap, 2)
    assert AUTO_E1_WORK / 4 > AUTO_E1_LIMIT
    res = algorithm1(values, c1, n_min=2)
    assert res.solver == "E1"
    assert res.n_searched < n_cap
    milp = solve_milp(values, res.n_plus)
    assert res.profit + c1 * res.n_plus == pytest.approx(milp.revenue, abs=1e-9)
    # the pruning bound is rigorous: no N beyond the searched range can beat N+
    assert values[:, n_cap].sum() - c1 * (res.n_searched + 1) < res.profit


def test_auto_e1_for_two_buyers_with_a_slow_threshold() -> None:
    """Regression (review market t2): 2 buyers, c_1 = 4.3e-4, a threshold buyer whose value still
    rises at N = 4651, so E1's pruned range keeps about 6.5M allocations (> AUTO_E1_LIMIT). ``auto``
    used to run 4651 MILPs (over 5 minutes); at 2 buyers E1 prices ~16M allocations/s, so the work
    budget ``AUTO_E1_WORK / |B|^2`` keeps it on E1. Results match a brute force of the review."""
    market = BrokerMarket(
        buyers=("b0", "b1"),
        valuations=(Exponential(0.297), Threshold(0.021)),
        contributors=("c0", "c1", "c2"),
        costs=(0.0204, 0.00158, 0.00043),
        sigma=0.874,
    )
    c1, n_cap = 0.00043, 4651
    work = e1_workload(market.table, c1, n_cap, 2)
    assert AUTO_E1_LIMIT < work <= AUTO_E1_WORK / 4
    res = algorithm1(market.table, c1, n_min=2)
    assert res.solver == "E1"
    assert res.n_plus == 162
    assert res.allocations.tolist() == [162, 0]
    assert res.profit == pytest.approx(0.7684807936200817 + 0.00158 - c1, abs=1e-12)
    assert res.opt_profit == pytest.approx(0.7696307936200817, abs=1e-12)
