"""Tampering as an insider with database access would, on SQLite and PostgreSQL: each edit is found
and the problem names the entry or the round."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from datamarket.cli import app as cli_app
from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Outcome, Role
from datamarket.ledger import (
    MAX_MINOR,
    EntryRecord,
    Posting,
    append_round,
    balances,
    checkpoint_of,
    export_lines,
    make_engine,
    make_sessionmaker,
    outcome_postings,
    upgrade,
    verify,
    verify_checkpoints,
    verify_export,
)
from datamarket.ledger.chain import ENTRY_COLUMNS, records
from datamarket.ledger.merkle import verify_inclusion
from datamarket.ledger.models import (
    Deliverable,
    LedgerEntry,
    LedgerHead,
    LedgerRound,
    Round,
    Submission,
)
from tests.ledger_support import book_market, clear_round, market
from tests.service_support import BACKENDS, fresh_database


@pytest.fixture(params=BACKENDS)
def booked(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    with fresh_database(request.param, tmp_path) as url:
        eng = make_engine(url)
        upgrade(eng)
        info = book_market(eng)
        info.update(engine=eng, backend=request.param, url=url)
        yield info
        eng.dispose()


def problems(eng: Engine, checkpoints: Any = ()) -> tuple[str, ...]:
    with make_sessionmaker(eng)() as s:
        return verify_checkpoints(s, checkpoints).problems


def has(found: tuple[str, ...], *parts: str) -> bool:
    """Some problem contains every one of ``parts``."""
    return any(all(p in x for p in parts) for x in found)


def rewrite_chain(eng: Engine, edit: Callable[[list[EntryRecord]], list[EntryRecord]]) -> None:
    """What an attacker who knows the hash function can do: edit the entries, renumber them, recompute
    every hash and link, replace the table and point the head at the new last entry."""
    with make_sessionmaker(eng)() as s, s.begin():
        old = records(s)
        new, prev = [], "0" * 64
        for seq, e in enumerate(edit(old), 1):
            d = {**e.to_dict(), "seq": seq, "prev_hash": prev}
            d["hash"] = EntryRecord.from_dict(d).computed_hash()
            prev = d["hash"]
            new.append(d)
        s.execute(delete(LedgerEntry))
        for d in new:
            s.add(LedgerEntry(**{**d, "created_at": datetime.fromisoformat(d["created_at"])}))
        s.flush()
        s.execute(update(LedgerHead).values(seq=len(new), hash=prev))


def test_booked_chain_verifies_with_every_column_hashed(booked) -> None:  # type: ignore[no-untyped-def]
    eng = booked["engine"]
    with make_sessionmaker(eng)() as s:
        rep = verify(s)
        assert rep.ok, rep.problems
        assert (rep.entries, rep.rounds, rep.head_seq) == (13, 3, 13)
        assert {e.version for e in records(s)} == {3}
        assert all(e.salt is not None and len(e.salt) == 64 for e in records(s))
        assert set(LedgerEntry.__table__.columns.keys()) == set(ENTRY_COLUMNS)  # nothing outside the hash
        bal = balances(s)
    # never summed across units: buyer_a paid 1.52 USD and 1.521695 TOKEN
    assert bal["buyer_a"] == {"USD": -152, "TOKEN:6": -1521695}
    assert (
        sum(v.get("USD", 0) for v in bal.values()) == 0
        and sum(v.get("TOKEN:6", 0) for v in bal.values()) == 0
    )


def test_repointed_participant_is_found(booked) -> None:  # type: ignore[no-untyped-def]
    eng, ids, (r1, _, _) = booked["engine"], booked["ids"], booked["rounds"]
    with eng.begin() as c:
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 1).values(participant_id=ids["buyer_b"]))
    found = problems(eng)
    assert has(found, f"entry 1 (round {r1})", "hash mismatch")
    assert has(found, f"entry 1 (round {r1})", "re-pointed")


@pytest.mark.parametrize(
    ("column", "value", "also"),
    [
        ("created_at", None, None),
        ("kind", "price", None),
        ("memo", "refund", "stored outcome"),
        ("market_id", "usd", "is of market"),
        ("currency", "USD", "several currencies"),
        ("account", "mallory", "stored outcome"),
    ],
)
def test_every_column_is_covered(booked, column: str, value: Any, also: str | None) -> None:  # type: ignore[no-untyped-def]
    eng, (_, r2, _) = booked["engine"], booked["rounds"]
    with make_sessionmaker(eng)() as s:
        e = s.get(LedgerEntry, 7)  # seller_x's payment in round 2 (TOKEN:6)
        assert e is not None and e.round_id == r2
        if column == "created_at":
            value = e.created_at + timedelta(seconds=1)
        elif value == "usd":
            value = booked["markets"][0]
    with eng.begin() as c:
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 7).values({column: value}))
    found = problems(eng)
    assert has(found, f"entry 7 (round {r2})", "hash mismatch"), found
    if also:
        assert has(found, also), found


def test_tail_truncation_with_head_rewrite_is_found(booked) -> None:  # type: ignore[no-untyped-def]
    eng, (r1, r2, r3) = booked["engine"], booked["rounds"]
    with make_sessionmaker(eng)() as s:
        kept = s.get(LedgerEntry, 9)
        assert kept is not None and kept.round_id == r2
        cp3 = checkpoint_of(s, r3)
        cp2 = checkpoint_of(s, r2, booked["ids"]["seller_x"])
    # the attack: drop the last round, copy the previous hash into the head
    with eng.begin() as c:
        c.execute(delete(LedgerEntry).where(LedgerEntry.round_id == r3))
        c.execute(update(LedgerHead).values(seq=9, hash=kept.hash))
    found = problems(eng)
    assert has(found, f"round {r3}: record says entry_count 4, its entries give 0")
    # ... and the round record too
    with eng.begin() as c:
        c.execute(delete(LedgerRound).where(LedgerRound.round_id == r3))
        c.execute(update(LedgerHead).values(rounds=2))
    found = problems(eng)
    assert found == (f"round {r3}: cleared but the ledger has no record of it (entries deleted?)",)
    # a full cover-up inside the database (round failed, inputs released, deliverables gone) leaves a
    # consistent database: only a checkpoint kept outside it (a receipt) shows the truncation
    with eng.begin() as c:
        c.execute(update(Round).where(Round.id == r3).values(status="failed"))
        c.execute(update(Submission).where(Submission.consumed_round_id == r3).values(consumed_round_id=None))
        c.execute(delete(Deliverable).where(Deliverable.round_id == r3))
    assert problems(eng) == ()
    assert problems(eng, [cp2]) == ()  # the chain still extends round 2's checkpoint
    found = problems(eng, [cp3])
    assert has(found, f"checkpoint (seq 13, round {r3})", "no entry 13 any more (truncated)")
    assert has(found, f"round {r3} has 0 entries now, not the 4 checkpointed ones")
    assert r1 < r2 < r3


def test_truncated_round_is_found_even_when_rehashed(booked) -> None:  # type: ignore[no-untyped-def]
    eng, (r1, _, _) = booked["engine"], booked["rounds"]
    with make_sessionmaker(eng)() as s:
        cp = checkpoint_of(s, r1, booked["ids"]["buyer_a"])
    assert cp is not None
    rewrite_chain(eng, lambda es: [e for e in es if e.seq != 4])  # the platform's take of round 1
    found = problems(eng)
    assert has(found, f"round {r1}: USD entries sum to -11 minor units, not 0")
    assert has(found, f"round {r1}: record says entry_count 4, its entries give 3")
    assert has(found, f"round {r1}: ledger entries differ from the postings")
    assert has(problems(eng, [cp]), f"checkpoint (seq 4, round {r1})", "history rewritten")


def test_real_amount_is_refused_or_found(booked) -> None:  # type: ignore[no-untyped-def]
    eng, (r1, _, _) = booked["engine"], booked["rounds"]
    stmt = text("UPDATE ledger_entries SET amount_minor = 283.6 WHERE seq = 1")
    if booked["backend"] == "sqlite":
        with pytest.raises(IntegrityError, match="ck_ledger_amount_integer"), eng.begin() as c:
            c.execute(stmt)
        with eng.begin() as c:  # an insider can switch the CHECK off; verify still notices
            c.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
            c.execute(stmt)
            c.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
        found = problems(eng)
        assert has(found, f"entry 1 (round {r1}): amount_minor 283.6 is not an integer")
    else:  # BIGINT: PostgreSQL rounds the numeric to 284 on assignment, the hash no longer matches
        with eng.begin() as c:
            c.execute(stmt)
            assert c.execute(text("SELECT amount_minor FROM ledger_entries WHERE seq = 1")).scalar() == 284
        found = problems(eng)
        assert has(found, f"entry 1 (round {r1}): hash mismatch")
    assert has(found, f"round {r1}: USD entries sum to")


def test_mixed_currencies_are_refused_and_found(booked) -> None:  # type: ignore[no-untyped-def]
    eng = booked["engine"]
    sessions = make_sessionmaker(eng)
    with pytest.raises(InvalidMarketError, match="one currency per round"), sessions() as s, s.begin():
        usd = s.get(Round, booked["rounds"][0])
        assert usd is not None
        r = Round(market_id=usd.market_id, seed=0, input_ids=[], status="cleared")
        s.add(r)
        s.flush()
        append_round(s, r.id, [Posting("a", -1, "price"), Posting("b", 1, "payment")], currency="EUR")
    with sessions() as s:
        assert verify(s).ok
    with eng.begin() as c:  # a round whose entries disagree on the currency
        c.execute(update(LedgerEntry).where(LedgerEntry.seq == 10).values(currency="EUR"))
    r3 = booked["rounds"][2]
    found = problems(eng)
    assert has(found, f"round {r3}: entries in several currencies ['EUR', 'USD']")
    assert has(found, f"entry 10 (round {r3}): currency EUR, but market")


def test_overflow_of_minor_units_is_refused(booked) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidMarketError, match="overflow"):
        Posting("a", 2**63, "x")
    huge = Outcome("t", ("b", "s"), (Role.BUYER, Role.SELLER), prices=[1e300, 0], payments=[0, 1e300])
    with pytest.raises(InvalidMarketError, match="overflow"):
        outcome_postings(huge)
    sessions = make_sessionmaker(booked["engine"])
    big = (MAX_MINOR + 1) // 2
    with sessions() as s, s.begin():
        m = market(s, "CREDIT:0")
        clear_round(s, m, [0, 0, 0, 0], [0, 0, 0, 0])
        r = Round(market_id=m.id, seed=0, input_ids=[], status="cleared")
        s.add(r)
        s.flush()
        append_round(s, r.id, [Posting("whale", -big, "price"), Posting("shark", big, "payment")])
    with (
        pytest.raises(InvalidMarketError, match=r"balance of '(whale|shark)' would be .* beyond 2\^63 - 1"),
        sessions() as s,
        s.begin(),
    ):
        r = Round(market_id=m.id, seed=0, input_ids=[], status="cleared")
        s.add(r)
        s.flush()
        append_round(s, r.id, [Posting("whale", -big, "price"), Posting("shark", big, "payment")])
    with sessions() as s:
        assert verify(s).ok
        assert balances(s)["shark"] == {"CREDIT:0": big}


def test_checkpoint_proofs_and_offline_export(booked, tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng, (r1, r2, _), ids = booked["engine"], booked["rounds"], booked["ids"]
    with make_sessionmaker(eng)() as s:
        cp = checkpoint_of(s, r2, ids["buyer_a"])
        lines = list(export_lines(s))
    assert cp is not None and cp["seq"] == 9 and cp["size"] == 5 and "entry_hashes" not in cp
    (proof,) = cp["proofs"]  # buyer_a has one entry in round 2
    assert verify_inclusion(proof["hash"], proof["index"], 5, proof["proof"], cp["merkle_root"])
    assert len(proof["proof"]) == 3  # ceil(log2 5)
    assert not verify_inclusion(proof["hash"], proof["index"] + 1, 5, proof["proof"], cp["merkle_root"])
    assert verify_export(lines, [cp]).ok
    assert len([x for x in lines if json.loads(x)["record"] == "entry"]) == 13
    # offline: an auditor with the export file and the CLI only
    good, bad = tmp_path / "ledger.jsonl", tmp_path / "bad.jsonl"
    good.write_text("\n".join(lines) + "\n")
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps({"round_id": r2, "checkpoint": cp}))
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["ledger", "verify", "--file", str(good), "--checkpoint", str(receipt)])
    assert ok.exit_code == 0 and "ledger OK: 13 entries in 3 rounds, head 13" in ok.output, ok.output
    edited = [json.loads(x) for x in lines]
    edited[0]["participant_id"] = ids["seller_y"]
    bad.write_text("\n".join(json.dumps(x) for x in edited[:-5]) + "\nnot json\n")  # also cut the tail
    out = runner.invoke(cli_app, ["ledger", "verify", "--file", str(bad), "--json"])
    assert out.exit_code == 1
    found = tuple(json.loads(out.output)["problems"])
    assert has(found, f"entry 1 (round {r1}): hash mismatch")
    assert has(found, "line 13: not a ledger export line")
    assert has(found, "ledger_head row is missing")
    # the CLI on the database: export, then verify with the checkpoint
    exported = runner.invoke(cli_app, ["ledger", "export", "--db", booked["url"]])
    assert exported.exit_code == 0 and exported.output.splitlines() == lines
    db_ok = runner.invoke(cli_app, ["ledger", "verify", "--db", booked["url"], "--checkpoint", str(receipt)])
    assert db_ok.exit_code == 0, db_ok.output
    cp_bad = tmp_path / "cp.json"
    cp_bad.write_text(json.dumps([{**cp, "hash": "ab" * 32}]))
    wrong = runner.invoke(cli_app, ["ledger", "verify", "--db", booked["url"], "--checkpoint", str(cp_bad)])
    assert wrong.exit_code == 1 and "history rewritten" in wrong.output
    cp_bad.write_text("{}")
    malformed = runner.invoke(
        cli_app, ["ledger", "verify", "--db", booked["url"], "--checkpoint", str(cp_bad)]
    )
    assert malformed.exit_code == 2 and "needs integer 'seq'" in malformed.output


def test_unbooked_round_record_and_stray_submission_are_found(booked) -> None:  # type: ignore[no-untyped-def]
    eng, failed = booked["engine"], booked["failed"]
    with eng.begin() as c:
        c.execute(update(Submission).where(Submission.id == 1).values(consumed_round_id=failed))
    assert has(problems(eng), f"submission 1: consumed by round {failed}, which is not cleared")
    with eng.begin() as c:
        c.execute(update(Round).where(Round.id == booked["rounds"][1]).values(status="failed"))
    assert has(problems(eng), f"round {booked['rounds'][1]}: has ledger entries or a record but is failed")
    with make_sessionmaker(eng)() as s:
        assert s.execute(select(LedgerRound.round_id)).scalars().all() == list(booked["rounds"])
