"""The paper's examples and replication claims (Agarwal, Dahleh, Sarkar: Ex. 3.1, Ex. 4.5, Thm 5.4).

Identical streams give every non-empty coalition the same gain (copies are fitted once: Assumption 2
made exact), so the Shapley values are exact fractions; the only error is rounding of the value table
(2^M entries of magnitude <= 1 per value), hence the tolerance ``TOL``. Where the spec of the paper's
claims fails (PD*_A's replication, a third party's copies under PD*_B, Thm 5.4's step on a real learner
with negative marginals), the test shows the failure and says it is the paper's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from datamarket.mechanisms.realtime_market import DivisionSpec, Streams, Task, replication_sweep

TOL = 64 * np.finfo(float).eps  # 2^(2 + 3) table entries of magnitude <= 1, two sums


def identical_market(seed: int = 0) -> tuple[Streams, Task]:
    """Sellers A and B sell the same stream; the buyer's task is that stream plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(120)
    y = x + 0.5 * rng.standard_normal(120)
    return Streams(np.column_stack([x, x]), ("A", "B")), Task.split(y, 0.3, rng)


def orthogonal_market(seed: int = 0) -> tuple[Streams, Task]:
    """A and B exactly orthogonal (cos = 0); the task their sum plus noise."""
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((200, 2))
    f[:, 1] -= f[:, 0] * (f[:, 0] @ f[:, 1]) / (f[:, 0] @ f[:, 0])
    y = f.sum(axis=1) + 0.5 * rng.standard_normal(200)
    return Streams(f, ("A", "B")), Task.split(y, 0.3, rng)


def test_example_3_1_pd_a_pays_the_replicator_two_thirds() -> None:
    """Ex. 3.1: identical streams get 1/2 each; after A copies once, A's two streams get 2/3, B 1/3."""
    streams, task = identical_market()
    sweep = replication_sweep(streams, task, "A", 1, rules=("pd_a",))
    before, after = sweep.point("pd_a", 0), sweep.point("pd_a", 1)
    assert before.total("A") == pytest.approx(0.5, abs=TOL) and before.total("B") == pytest.approx(
        0.5, abs=TOL
    )
    assert after.total("A") == pytest.approx(2 / 3, abs=TOL) and after.total("B") == pytest.approx(
        1 / 3, abs=TOL
    )


def test_example_4_5_pd_b_with_lambda_one_and_cosine() -> None:
    """Ex. 4.5 (lambda = 1, |cos|): A from e^-1/2 = .183940 to 2 e^-2/3 = .090224; B to e^-2/3 = .045112."""
    streams, task = identical_market()
    sweep = replication_sweep(streams, task, "A", 1, rules=("pd_b",), division=DivisionSpec(lam=1.0))
    before, after = sweep.point("pd_b", 0), sweep.point("pd_b", 1)
    assert before.total("A") == pytest.approx(math.exp(-1) / 2, abs=TOL)
    assert before.total("B") == pytest.approx(math.exp(-1) / 2, abs=TOL)
    assert after.total("A") == pytest.approx(2 * math.exp(-2) / 3, abs=TOL)
    assert after.total("B") == pytest.approx(math.exp(-2) / 3, abs=TOL)
    assert (round(before.total("A"), 6), round(after.total("A"), 6), round(after.total("B"), 6)) == (
        0.18394,
        0.090224,
        0.045112,
    )


@pytest.mark.parametrize("c", [0, 1, 2, 3])
def test_replication_sweep_closed_forms(c: int) -> None:
    """lambda = log 2: PD*_B pays A (c+1)/(c+2) 2^-(c+1) and B 2^-(c+1)/(c+2); PD*_A pays A (c+1)/(c+2)."""
    streams, task = identical_market()
    sweep = replication_sweep(streams, task, "A", c)
    a, b = sweep.point("pd_a", c), sweep.point("pd_b", c)
    assert a.total("A") == pytest.approx((c + 1) / (c + 2), abs=TOL)
    assert b.total("A") == pytest.approx((c + 1) / (c + 2) * 2 ** -(c + 1), abs=TOL)
    assert b.total("B") == pytest.approx(2 ** -(c + 1) / (c + 2), abs=TOL)
    # Thm 5.4 (lambda = log 2): the replicator never earns more than without copies
    assert b.total("A") <= sweep.point("pd_b", 0).total("A") + TOL
    # the rest of the charge is reported as unassigned, not spread over the sellers
    assert b.division.unassigned == pytest.approx(1 - b.total("A") - b.total("B"), abs=TOL)


def test_orthogonal_streams_pd_b_halves_the_replicator_and_keeps_the_honest_seller() -> None:
    """Orthogonal streams: SM(A, B) = 0, so PD*_B pays A its PD*_A share times 2^-c and B its PD*_A share."""
    streams, task = orthogonal_market()
    sweep = replication_sweep(streams, task, "A", 3)
    for c in range(4):
        a, b = sweep.point("pd_a", c), sweep.point("pd_b", c)
        assert b.total("A") == pytest.approx(a.total("A") * 2.0**-c, abs=TOL)
        assert b.total("B") == pytest.approx(a.total("B"), abs=TOL)


def test_pd_a_is_not_robust_to_replication_as_the_paper_says() -> None:
    """Property 3.4 fails for PD*_A (Ex. 3.1): every extra copy raises the replicator's total."""
    streams, task = identical_market()
    totals = [
        replication_sweep(streams, task, "A", 3, rules=("pd_a",)).point("pd_a", c).total("A")
        for c in range(4)
    ]
    assert all(later > earlier + 0.04 for earlier, later in itertools.pairwise(totals))


def test_weakness_a_third_party_copying_an_honest_seller_cuts_its_pay_under_pd_b() -> None:
    """The paper's weakness (Ohrimenko et al.'s criticism): PD*_B penalises similarity to anyone, so a
    third party uploading a copy of B's stream cuts the honest B's pay from 1/4 to 1/12 (lambda = log 2)."""
    streams, task = identical_market()
    sweep = replication_sweep(streams, task, "B", 1, rules=("pd_b",), owner="copycat")
    assert not sweep.self_replication
    assert sweep.point("pd_b", 0).total("B") == pytest.approx(0.25, abs=TOL)
    assert sweep.point("pd_b", 1).total("B") == pytest.approx(1 / 12, abs=TOL)
    assert sweep.point("pd_b", 1).total("copycat") == pytest.approx(1 / 12, abs=TOL)


def _counterexample_market() -> tuple[Streams, Task]:
    """Three correlated streams and a linear task, where s0's marginal gain changes sign."""
    rng = np.random.default_rng(19)
    m = int(rng.integers(2, 5))
    base = rng.normal(size=(60, 2))
    x = base @ rng.normal(size=(2, m)) + rng.normal(scale=rng.uniform(0.1, 1.0), size=(60, m))
    y = x @ rng.normal(size=m) + rng.normal(scale=0.5, size=60)
    return Streams(x, tuple(f"s{i}" for i in range(m))), Task.split(y, 0.3, rng)


def test_weakness_theorem_5_4_fails_when_a_copy_is_worth_more_than_the_original() -> None:
    """Thm 5.4's proof needs each copy's Shapley value to be at most the original's (step d). With a
    learner scored on held-out rows, marginal gains can change sign, and a copy can be worth more: here
    s0's single copy is worth 4 times its original's value, and s0's streams together earn more under
    PD*_B after copying. The certificate's replication check fails on this market."""
    from datamarket.mechanisms.realtime_market import certify_run, random_market

    streams, task = _counterexample_market()
    sweep = replication_sweep(streams, task, "s0", 2)
    orig = sweep.point("pd_a", 0).division.shares[0]
    copy = sweep.point("pd_a", 1).division.shares[0]
    assert 0 <= orig < copy / 4
    assert sweep.point("pd_b", 1).total("s0") > 4 * sweep.point("pd_b", 0).total("s0") > 0
    cert = certify_run(random_market(0, "pd_b"), sweep)
    assert cert.failures() == ["division.replication"]


def test_negative_share_replication_is_not_certified() -> None:
    """Thm 5.4 presumes shares in [0, 1]: a stream that lowers the held-out gain has a negative share, and
    the penalty shrinks it towards 0 as it copies itself, so copying raises its pay. No claim is made
    for such a seller (the check is left out)."""
    from datamarket.mechanisms.realtime_market import certify_run, random_market

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 2))
    y = x[:, 0] + 0.3 * rng.standard_normal(40)
    streams = Streams(x, ("signal", "noise"))
    task = Task.split(y, 0.5, rng)
    sweep = replication_sweep(streams, task, "noise", 2)
    before, after = sweep.point("pd_b", 0).total("noise"), sweep.point("pd_b", 2).total("noise")
    assert before < after < 0
    names = [c.name for c in certify_run(random_market(0, "pd_b"), sweep).checks]
    assert "division.replication" not in names
