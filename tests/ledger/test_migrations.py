"""Old chains still verify after the migration to ledger format 2.

``tests/fixtures/ledger_v1.sqlite`` was written by the code before revision 0003 (format-1 entries,
schema 0001; ``tests/fixtures/make_ledger_v1.py``). It is upgraded here as it is (SQLite) and after
copying its rows into a PostgreSQL database at revision 0001.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, select, text, update

from datamarket.ledger import (
    Posting,
    append_round,
    balances,
    checkpoint_of,
    current_revision,
    head_revision,
    make_engine,
    make_sessionmaker,
    upgrade,
    verify,
)
from datamarket.ledger.chain import records
from datamarket.ledger.models import LedgerEntry, Market, Round
from tests.service_support import BACKENDS, fresh_database

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger_v1.sqlite"
V1_TABLES = (
    "participants",
    "markets",
    "rounds",
    "submissions",
    "deliverables",
    "ledger_entries",
    "ledger_head",
)


def _copy_v1(target: Engine, tmp: Path) -> None:
    """Every row of the fixture into ``target`` (at revision 0001), sequences moved past the ids."""
    shutil.copy(FIXTURE, tmp / "source.db")  # the committed file is never opened for writing
    source = make_engine(f"sqlite:///{tmp}/source.db")
    meta = MetaData()
    meta.reflect(source, only=V1_TABLES)
    with source.connect() as src, target.begin() as dst:
        dst.execute(text("DELETE FROM ledger_head"))
        for name in V1_TABLES:
            rows = [dict(r._mapping) for r in src.execute(meta.tables[name].select())]
            if rows:
                dst.execute(meta.tables[name].insert(), rows)
            if target.dialect.name == "postgresql" and name not in ("ledger_entries", "ledger_head"):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
                    )
                )
    source.dispose()


@pytest.fixture(params=BACKENDS)
def migrated(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        shutil.copy(FIXTURE, tmp_path / "v1.db")
        eng = make_engine(f"sqlite:///{tmp_path}/v1.db")
        assert current_revision(eng) == "0001"
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    with fresh_database(request.param, tmp_path) as url:
        eng = make_engine(url)
        upgrade(eng, "0001")
        _copy_v1(eng, tmp_path)
        upgrade(eng)
        yield eng
        eng.dispose()


def test_old_chain_verifies_after_the_migration(migrated) -> None:  # type: ignore[no-untyped-def]
    assert current_revision(migrated) == head_revision()
    with make_sessionmaker(migrated)() as s:
        rep = verify(s)
        assert rep.ok, rep.problems
        assert (rep.entries, rep.rounds, rep.head_seq) == (12, 4, 12)  # the zero-entry round is booked too
        entries = records(s)
        assert {e.version for e in entries} == {1}
        assert [m.currency for m in s.execute(select(Market).order_by(Market.id)).scalars()] == [
            "USD",
            "UNIT:6",
        ]
        # the issue's -1521847 (cents plus micro-units) is gone: one balance per currency
        assert balances(s)["buyer_a"] == {"USD": -152, "UNIT:6": -1521695}
        assert {e.kind for e in entries} == {"price", "payment", "platform_take"}
        cp = checkpoint_of(s, 1, 1)
        assert cp is not None and cp["seq"] == 4 and len(cp["proofs"]) == 1


def test_migrated_chain_grows_in_format_2(migrated) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(migrated)
    with sessions() as s, s.begin():
        r = Round(market_id=1, seed=9, input_ids=[], status="cleared")
        s.add(r)
        s.flush()
        append_round(
            s,
            r.id,
            [Posting("buyer_a", -5, "price"), Posting("platform", 5, "platform take")],
            {"buyer_a": 1},
        )
    with sessions() as s:
        rep = verify(s)
        assert rep.ok, rep.problems
        assert [e.version for e in records(s)] == [1] * 12 + [2, 2]


def test_format_1_columns_outside_the_old_hash_are_checked(migrated) -> None:  # type: ignore[no-untyped-def]
    with migrated.begin() as c:  # buyer_a's entry 1 re-pointed to buyer_b: the format-1 hash misses it
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 1).values(participant_id=2))
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 2).values(kind="price"))
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 5).values(currency="USD", market_id=1))
    with make_sessionmaker(migrated)() as s:
        found = verify(s).problems
    assert any(
        "entry 1 (round 1): account 'buyer_a' but participant 2 is 'buyer_b' (entry re-pointed)" == p
        for p in found
    )
    assert any("entry 2 (round 1): kind 'price' does not follow from its memo 'payment'" == p for p in found)
    assert any(p.startswith("entry 5 (round 2): market 1, but round 2 is of market 2") for p in found)
    assert any(p.startswith("entry 5 (round 2): currency USD, but market 2 is in UNIT:6") for p in found)
    assert not any("hash mismatch" in p for p in found)  # format 1 does not hash these columns


def test_cli_refuses_an_old_schema_until_migrated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from datamarket.cli import app as cli_app

    shutil.copy(FIXTURE, tmp_path / "v1.db")
    url = f"sqlite:///{tmp_path}/v1.db"
    runner = CliRunner()
    old = runner.invoke(cli_app, ["ledger", "verify", "--db", url])
    assert old.exit_code == 2 and "at schema revision 0001" in old.output and "ledger migrate" in old.output
    moved = runner.invoke(cli_app, ["ledger", "migrate", "--db", url])
    assert moved.exit_code == 0 and f"schema revision 0001 -> {head_revision()}" in moved.output
    ok = runner.invoke(cli_app, ["ledger", "verify", "--db", url])
    assert ok.exit_code == 0 and "ledger OK: 12 entries in 4 rounds, head 12" in ok.output, ok.output
