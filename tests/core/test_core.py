import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datamarket.core import (
    Dataset,
    ICProbe,
    InvalidMarketError,
    Offers,
    Outcome,
    Property,
    Role,
    Seller,
    audit_budget_balance,
    audit_envy_free,
    audit_incentive_compatibility,
    audit_ir_buyers,
    audit_ir_sellers,
    audit_outcome,
    make_rng,
    spawn_generators,
)


def _outcome(**kw):
    base = dict(
        mechanism="toy",
        participants=("b1", "b2", "s1"),
        roles=(Role.BUYER, Role.BUYER, Role.SELLER),
        prices=[2.0, 1.0, 0.0],
        payments=[0.0, 0.0, 3.0],
        values=[3.0, 1.5, 0.0],
        costs=[0.0, 0.0, 2.5],
    )
    base.update(kw)
    return Outcome(**base)


def test_outcome_utilities_and_take() -> None:
    o = _outcome()
    # exact: sums and differences of small dyadic numbers are exact in binary floating point
    assert o.utilities.tolist() == [1.0, 0.5, 0.5]
    assert o.platform_take == 0.0
    assert o.buyer_indices == [0, 1] and o.seller_indices == [2]


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3),
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=3, max_size=3),
)
def test_outcome_round_trips_through_json(prices, values) -> None:
    o = _outcome(prices=prices, values=values, extra={"a": np.float64(1.5), "b": [np.int64(2)]})
    again = Outcome.from_dict(json.loads(json.dumps(o.to_dict())))
    # exact: JSON writes floats with repr, which round-trips every float64
    assert again == o
    assert again.extra == {"a": 1.5, "b": [2]}


def test_outcome_rejects_bad_input() -> None:
    with pytest.raises(InvalidMarketError, match="prices: must be finite"):
        _outcome(prices=[math.nan, 0, 0])
    with pytest.raises(InvalidMarketError, match="one entry per participant"):
        _outcome(prices=[1.0])
    with pytest.raises(InvalidMarketError, match="unique"):
        _outcome(participants=("a", "a", "b"))
    with pytest.raises(InvalidMarketError, match="at least one"):
        Outcome("x", (), ())
    with pytest.raises(InvalidMarketError, match="schema"):
        Outcome.from_dict({"schema": "other/9"})


def test_dataset_and_participants_validate() -> None:
    with pytest.raises(InvalidMarketError, match="empty"):
        Dataset(np.zeros((0, 3)))
    with pytest.raises(InvalidMarketError, match="labels"):
        Dataset(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(InvalidMarketError, match="finite"):
        Dataset(np.array([[np.nan]]))
    with pytest.raises(InvalidMarketError, match="non-negative"):
        Seller("s", np.array([-1.0]))
    d = Dataset(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]), np.array(["a", "b", "a"]))
    assert d.subset([2, 0]).labels.tolist() == [0, 0]


def test_audits_detect_violations() -> None:
    good = _outcome()
    assert all(a.holds for a in audit_outcome(good).values())
    bad = _outcome(prices=[4.0, 1.0, 0.0], payments=[0.0, 0.0, 2.0])
    assert not audit_ir_buyers(bad).holds and audit_ir_buyers(bad).violation == pytest.approx(1.0)
    assert not audit_ir_sellers(bad).holds
    assert not audit_budget_balance(bad, strong=True).holds
    assert audit_budget_balance(bad, strong=False).holds  # platform keeps 3
    assert not audit_budget_balance(_outcome(payments=[0, 0, 4.0]), strong=False).holds


def test_envy_free_audit() -> None:
    offers = Offers(np.array([[1.0, 3.0], [1.0, 1.2]]), np.array([0.5, 2.0]), np.array([1, 0]))
    o = _outcome(offers=offers)
    assert audit_envy_free(o).holds
    envious = Offers(offers.values, offers.prices, np.array([0, 0]))  # buyer 0 prefers option 1
    r = audit_envy_free(_outcome(offers=envious))
    assert not r.holds and r.violation == pytest.approx(0.5)
    assert audit_envy_free(_outcome()).holds is False  # no menu: cannot certify


def test_ic_audit_finds_profitable_misreport() -> None:
    # first-price-like rule: paying one's report is not truthful
    lying = ICProbe("s", lambda r: r - 1.0 if r >= 1.0 else 0.0, truth=1.0, grid=[1.0, 1.5, 2.0])
    res = audit_incentive_compatibility([lying])
    assert res.property is Property.INCENTIVE_COMPATIBLE and not res.holds
    assert res.violation == pytest.approx(1.0)
    truthful = ICProbe("s", lambda r: 1.0 if r <= 1.0 else 0.0, truth=1.0, grid=[0.5, 1.5])
    assert audit_incentive_compatibility([truthful]).holds


def test_seeded_streams_are_reproducible() -> None:
    # exact: same seed, same generator
    assert make_rng(3).random() == make_rng(3).random()
    a = [g.random() for g in spawn_generators(5, 4)]
    assert a == [g.random() for g in spawn_generators(5, 4)]
    assert len(set(a)) == 4
    with pytest.raises(ValueError, match="seed"):
        make_rng(-1)
