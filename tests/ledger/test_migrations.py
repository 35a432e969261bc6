"""Old chains still verify after the migrations to ledger formats 2 and 3.

``tests/fixtures/ledger_v1.sqlite`` was written by the code before revision 0003 (format-1 entries,
schema 0001; ``tests/fixtures/make_ledger_v1.py``). It is upgraded here as it is (SQLite) and after
copying its rows into a PostgreSQL database at revision 0001; and, for revision 0007 (salted format-3
entries), from the schema before it with a round of format-2 entries added as that code wrote them.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select, text, update

from datamarket.ledger import (
    Posting,
    append_round,
    balances,
    checkpoint_of,
    current_revision,
    entry_hash_v2,
    head_revision,
    make_engine,
    make_sessionmaker,
    upgrade,
    verify,
)
from datamarket.ledger.chain import records
from datamarket.ledger.merkle import merkle_root
from datamarket.ledger.models import LedgerEntry, Market, Round
from datamarket.ledger.money import ENTRY_KINDS
from datamarket.ledger.receipts import salted
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


def test_migrated_chain_grows_in_format_3(migrated) -> None:  # type: ignore[no-untyped-def]
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
        assert [e.version for e in records(s)] == [1] * 12 + [3, 3]
        assert [e.salt is None for e in records(s)] == [True] * 12 + [False, False]


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


# -- from the schema before revision 0007, with format-2 entries ---------------------------------------
def _revision_before_salts() -> str:
    """The revision 0007 upgrades from."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from datamarket.ledger.migrations import HERE

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    rev = ScriptDirectory.from_config(cfg).get_revision("0007")
    assert rev is not None and isinstance(rev.down_revision, str)
    return rev.down_revision


POSTINGS_V2 = (
    ("buyer_a", 1, -250, "price"),
    ("seller_x", 3, 240, "payment"),
    ("platform", None, 10, "platform take"),
)


def _book_format_2(eng: Engine) -> dict[str, Any]:
    """One cleared round of format-2 entries appended after the fixture's, as the code before revision
    0007 wrote it (Core statements: the models know the salt column, the schema does not yet); the
    old-style checkpoint (every entry hash listed) its participants kept."""
    meta = MetaData()
    meta.reflect(eng, only=("rounds", "ledger_entries", "ledger_rounds", "ledger_head"))
    t = meta.tables
    now = datetime(2026, 2, 1, 9, 30, 0, 123456, tzinfo=UTC)
    with eng.begin() as c:
        head = c.execute(select(t["ledger_head"])).one()
        rid = c.execute(
            t["rounds"]
            .insert()
            .values(market_id=1, status="cleared", progress=1.0, stage="", seed=5, input_ids=[], attempts=1)
            .values(created_at=now, updated_at=now)
        ).inserted_primary_key[0]
        seq, prev, hashes = head.seq, head.hash, []
        for account, pid, amount, memo in POSTINGS_V2:
            seq += 1
            f = {"seq": seq, "round_id": rid, "market_id": 1, "participant_id": pid, "account": account}
            f.update(kind=ENTRY_KINDS[memo], amount_minor=amount, currency="USD", memo=memo)
            f.update(created_at=now, prev_hash=prev)
            prev = entry_hash_v2(**f)
            c.execute(t["ledger_entries"].insert().values(version=2, hash=prev, **f))
            hashes.append(prev)
        record = {"round_id": rid, "market_id": 1, "currency": "USD", "entry_count": 3, "created_at": now}
        record.update(first_seq=seq - 2, last_seq=seq, merkle_root=merkle_root(hashes), head_seq=seq)
        c.execute(t["ledger_rounds"].insert().values(head_hash=prev, **record))
        c.execute(t["ledger_head"].update().values(seq=seq, hash=prev, rounds=head.rounds + 1))
    cp = {
        "round_id": rid,
        "seq": seq,
        "hash": prev,
        "entry_hashes": hashes,
        "merkle_root": merkle_root(hashes),
    }
    return {"round": rid, "checkpoint": cp}


@pytest.fixture(params=BACKENDS)
def before_salts(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    """The fixture's database at the revision before 0007 with a format-2 round added, then upgraded."""
    with fresh_database(request.param, tmp_path) as url:
        if request.param == "sqlite":
            shutil.copy(FIXTURE, tmp_path / "v1.db")
            url = f"sqlite:///{tmp_path}/v1.db"
        eng = make_engine(url)
        if request.param != "sqlite":
            upgrade(eng, "0001")
            _copy_v1(eng, tmp_path)
        upgrade(eng, _revision_before_salts())
        booked = _book_format_2(eng)
        upgrade(eng)
        yield eng, booked
        eng.dispose()


def test_format_2_entries_keep_their_hashes_and_checkpoints(before_salts) -> None:  # type: ignore[no-untyped-def]
    eng, booked = before_salts
    assert current_revision(eng) == head_revision()
    sessions = make_sessionmaker(eng)
    with sessions() as s:
        rep = verify(s, [booked["checkpoint"]])  # the chain, and the checkpoint kept before the upgrade
        assert rep.ok, rep.problems
        assert [(e.version, e.salt) for e in records(s)] == [(1, None)] * 12 + [(2, None)] * 3
        assert not salted(s, booked["round"]) and not salted(s, 1)
    with sessions() as s, s.begin():  # the chain grows in format 3 after them
        r = Round(market_id=1, seed=9, input_ids=[], status="cleared")
        s.add(r)
        s.flush()
        append_round(
            s,
            r.id,
            [Posting("seller_x", -5, "price"), Posting("platform", 5, "platform take")],
            {"seller_x": 3},
        )
        rid = r.id
    with sessions() as s:
        cp = checkpoint_of(s, rid, 3)
        rep = verify(s, [booked["checkpoint"], cp])
        assert rep.ok, rep.problems
        assert [e.version for e in records(s)][-3:] == [2, 3, 3] and salted(s, rid)
    # a format-2 entry given a salt, or a format-3 one losing it, is reported
    with eng.begin() as c:
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 13).values(salt="00" * 32))
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 16).values(salt=None))
    with sessions() as s:
        found = verify(s).problems
    assert any(p.startswith("entry 13 (round") and "format-2 entry with a salt" in p for p in found), found
    assert any(p.startswith("entry 16 (round") and "salt None is not 32 bytes of hex" in p for p in found), (
        found
    )
