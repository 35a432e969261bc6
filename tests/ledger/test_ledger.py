"""Ledger: exact money (largest remainder), migrations, hash chain, verification, CLI."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from typer.testing import CliRunner

from datamarket.cli import app as cli_app
from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Outcome, Role
from datamarket.ledger import (
    GENESIS,
    Posting,
    append_round,
    current_revision,
    dump,
    head_revision,
    largest_remainder,
    make_engine,
    make_sessionmaker,
    outcome_postings,
    upgrade,
    verify,
)
from datamarket.ledger.models import Base, LedgerEntry, Market, Round
from tests.service_support import BACKENDS, fresh_database

money = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
nonneg_money = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)


# -- money ------------------------------------------------------------------------------------------
@given(st.lists(money, min_size=1, max_size=30), st.sampled_from([1, 100, 1000]))
def test_largest_remainder_sums_exactly_and_stays_within_one_unit(amounts: list[float], scale: int) -> None:
    out = largest_remainder(amounts, scale)
    exact = [Fraction(x) * scale for x in amounts]
    assert sum(out) == round(sum(exact))
    assert all(abs(m - q) < 1 for m, q in zip(out, exact, strict=True))
    assert out == largest_remainder(amounts, scale)  # deterministic


def test_largest_remainder_ties_go_to_the_first_amount() -> None:
    assert largest_remainder([1 / 3, 1 / 3, 1 / 3], total=100) == [34, 33, 33]
    assert largest_remainder([0.005, 0.005], total=1) == [1, 0]
    with pytest.raises(InvalidMarketError, match="total"):
        largest_remainder([0.1], total=50)
    with pytest.raises(InvalidMarketError, match=r"amounts\[1\]"):
        largest_remainder([0.1, float("nan")])


@st.composite
def outcomes(draw: st.DrawFn) -> Outcome:
    n = draw(st.integers(1, 8))
    roles = draw(st.lists(st.sampled_from(list(Role)), min_size=n, max_size=n))
    prices = draw(st.lists(nonneg_money, min_size=n, max_size=n))
    payments = draw(st.lists(nonneg_money, min_size=n, max_size=n))
    return Outcome("t", tuple(f"p{i}" for i in range(n)), tuple(roles), prices=prices, payments=payments)


@given(outcomes(), st.sampled_from([1, 100]))
def test_every_round_balances_to_the_unit(outcome: Outcome, scale: int) -> None:
    postings = outcome_postings(outcome, scale)
    assert sum(p.amount_minor for p in postings) == 0
    exact: dict[tuple[str, str], Fraction] = {}
    for i, name in enumerate(outcome.participants):
        exact[(name, "price")] = -Fraction(float(np.asarray(outcome.prices)[i])) * scale
        exact[(name, "payment")] = Fraction(float(np.asarray(outcome.payments)[i])) * scale
    take = -sum(exact.values(), Fraction(0))
    for p in postings:
        want = take if p.account == "platform" else exact[(p.account, p.memo)]
        assert abs(p.amount_minor - want) < 1


def test_postings_of_a_simple_round() -> None:
    o = Outcome("t", ("b", "s"), (Role.BUYER, Role.SELLER), prices=[10.005, 0.0], payments=[0.0, 10.0])
    assert [(p.account, p.amount_minor, p.memo) for p in outcome_postings(o)] == [
        ("b", -1001, "price"),  # 10.005 is 10.00499999... in binary: floor 1000, largest remainder +1
        ("s", 1000, "payment"),
        ("platform", 1, "platform take"),
    ]
    with pytest.raises(InvalidMarketError, match="reserved"):
        outcome_postings(Outcome("t", ("platform",), (Role.BUYER,)))


# -- database ---------------------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    with fresh_database(request.param, tmp_path) as url:
        eng = make_engine(url)
        upgrade(eng)
        yield eng
        eng.dispose()


def test_migrations_create_exactly_the_models(engine) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision()


def _rounds(session, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    m = Market(kind="broker", name="", params={}, scale=100, currency="USD")
    session.add(m)
    session.flush()
    # rounds that book entries are cleared (at most one pending or running round per market)
    rs = [Round(market_id=m.id, seed=0, input_ids=[], status="cleared") for _ in range(n)]
    session.add_all(rs)
    session.flush()
    return [r.id for r in rs]


def test_chain_verifies_and_detects_tampering(engine) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        r1, r2 = _rounds(s, 2)
        append_round(
            s, r1, [Posting("a", -150, "price"), Posting("b", 100, "payment"), Posting("platform", 50, "t")]
        )
        append_round(s, r2, [Posting("a", -7, "price"), Posting("b", 7, "payment")])
    with sessions() as s:
        rep = verify(s)
        assert rep.ok and rep.entries == 5 and rep.rounds == 2, rep.problems
        entries = s.execute(select(LedgerEntry).order_by(LedgerEntry.seq)).scalars().all()
        assert entries[0].prev_hash == GENESIS
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(entries))
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET amount_minor = -160 WHERE seq = 1"))
    with sessions() as s:
        rep = verify(s)
    assert not rep.ok
    assert any("entry 1 (round 1): hash mismatch" in p for p in rep.problems)
    assert any("round 1" in p and "sum" in p for p in rep.problems)


def test_deleted_entry_breaks_the_chain(engine) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        (r1,) = _rounds(s, 1)
        append_round(s, r1, [Posting("a", -1, "x"), Posting("b", 0, "y"), Posting("c", 1, "z")])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE seq = 2"))
    with sessions() as s:
        problems = verify(s).problems
    assert any("entry 3 (round 1): expected sequence number 2" in p for p in problems)
    assert any("entry 3 (round 1): prev_hash" in p for p in problems)
    assert any("round 1: record says entry_count 3, its entries give 2" in p for p in problems)


def test_unbalanced_round_is_refused_and_leaves_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        (r1,) = _rounds(s, 1)
        s.get(Round, r1).status = "running"  # nothing booked yet
    before = None
    with sessions() as s:
        before = dump(s)
    with pytest.raises(InvalidMarketError, match="does not balance"), sessions() as s, s.begin():
        append_round(s, r1, [Posting("a", -100, "price"), Posting("b", 99, "payment")])
    with pytest.raises(RuntimeError), sessions() as s, s.begin():  # failure after appending: rollback
        append_round(s, r1, [Posting("a", -100, "price"), Posting("b", 100, "payment")])
        raise RuntimeError("crash in the same transaction")
    with sessions() as s:
        assert dump(s) == before
        assert verify(s).ok


def test_cli_ledger_verify_detects_a_modified_entry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/cli.db"
    eng = make_engine(url)
    upgrade(eng)
    with make_sessionmaker(eng)() as s, s.begin():
        (r1,) = _rounds(s, 1)
        append_round(s, r1, [Posting("a", -250, "price"), Posting("b", 250, "payment")])
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["ledger", "verify", "--db", url])
    assert ok.exit_code == 0 and "ledger OK: 2 entries in 1 rounds" in ok.output
    dumped = runner.invoke(cli_app, ["ledger", "dump", "--db", url])
    assert dumped.exit_code == 0 and [e["amount_minor"] for e in json.loads(dumped.output)["entries"]] == [
        -250,
        250,
    ]
    with eng.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET account = 'mallory' WHERE seq = 2"))
    bad = runner.invoke(cli_app, ["ledger", "verify", "--db", url, "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert not report["ok"] and "entry 2 (round 1): hash mismatch (entry was modified)" in report["problems"]
    missing = runner.invoke(cli_app, ["ledger", "verify", "--db", f"sqlite:///{tmp_path}/nope.db"])
    assert missing.exit_code == 2 and "no such SQLite file" in missing.output
    eng.dispose()
