"""The certificate of a run (truthfulness, the charge, the regret bound, balance or unassigned revenue,
Shapley values, replication): it passes on honest runs and each check fails on a run that breaks its
claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datamarket.mechanisms.realtime_market import (
    Allocation,
    DivisionSpec,
    GainCurve,
    MarketConfig,
    MarketRun,
    Streams,
    Task,
    TaskBuyer,
    certify_run,
    random_market,
    run_market,
)


@pytest.fixture(scope="module")
def runs() -> dict[str, MarketRun]:
    return {rule: random_market(5, rule) for rule in ("pd_a", "pd_b")}  # type: ignore[arg-type]


def _with_round(run: MarketRun, i: int, **changes: object) -> MarketRun:
    rounds = list(run.rounds)
    rounds[i] = dataclasses.replace(rounds[i], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(run, rounds=tuple(rounds))


def test_honest_runs_pass(runs: dict[str, MarketRun]) -> None:
    a, b = certify_run(runs["pd_a"]), certify_run(runs["pd_b"])
    assert a.passed and b.passed, (a.summary(), b.summary())
    assert [c.name for c in a.checks] == [
        "truthfulness",
        "charge.myerson",
        "pricing.regret",
        "division.balance",
        "division.shapley",
    ]
    assert "division.unassigned" in [c.name for c in b.checks]


def test_a_wrong_charge_fails_the_myerson_check(runs: dict[str, MarketRun]) -> None:
    run = runs["pd_a"]
    bad = _with_round(run, 0, charge=run.rounds[0].charge + 1e-6)
    assert certify_run(bad).failures() == ["charge.myerson"]


def test_a_falling_gain_curve_fails_truthfulness(runs: dict[str, MarketRun]) -> None:
    """The paper's rule on the grid with a gain curve that falls (monotone=False): a buyer gains by
    overbidding past the fall; the certificate's truthfulness check catches it."""
    run = runs["pd_a"]
    alloc = Allocation(form="mask", levels=3, monotone=False)
    curve = GainCurve(alloc, alloc.grid(1.0), np.array([0.0, 0.5, 0.2, 0.6]))
    bad = _with_round(
        run, 0, curve=curve, price=0.9, value=0.55, bid=0.55, charge=float(curve.payment([0.9], 0.55)[0])
    )
    assert "truthfulness" in certify_run(bad).failures()


def test_shares_off_by_a_rounding_error_pass_and_a_real_imbalance_fails(runs: dict[str, MarketRun]) -> None:
    run = runs["pd_a"]
    d = run.rounds[1].division
    ok = dataclasses.replace(d, shares=d.shares * (1 + 4 * np.finfo(float).eps))
    assert certify_run(_with_round(run, 1, division=ok)).passed
    bad = dataclasses.replace(d, shares=d.shares * 1.01, paid=d.paid * 1.01)
    assert set(certify_run(_with_round(run, 1, division=bad)).failures()) == {"division.balance"}


def test_renormalised_robust_shares_fail_the_unassigned_check(runs: dict[str, MarketRun]) -> None:
    """Spreading PD*_B's unassigned revenue over the sellers (as a renormalising implementation does)
    breaks Thm 5.4; the certificate refuses it."""
    run = runs["pd_b"]
    d = run.rounds[0].division
    spread = dataclasses.replace(d, paid=d.paid / d.paid.sum(), unassigned=0.0)
    assert certify_run(_with_round(run, 0, division=spread)).failures() == ["division.unassigned"]


def test_runs_are_reproducible_and_the_doubling_trick_is_certified() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 3))
    streams = Streams(x, ("a", "b", "c"))
    buyers = [
        TaskBuyer(f"b{n}", Task.split(x @ rng.standard_normal(3) + rng.standard_normal(50), 0.3, rng), v)
        for n, v in enumerate(rng.uniform(0, 1, 9))
    ]
    cfg = MarketConfig(horizon="doubling", division=DivisionSpec(rule="pd_a", shapley="sampled", samples=30))
    one, two = (
        run_market(streams, buyers, config=cfg, seed=4),
        run_market(streams, buyers, config=cfg, seed=4),
    )
    assert one.outcome() == two.outcome()
    assert [e.stop - e.start for e in one.pricing.epochs] == [1, 2, 4, 2]
    cert = certify_run(one)
    assert cert.passed, cert.summary()
    assert "division.shapley" not in [c.name for c in cert.checks]  # sampled values: no value table
