"""Property: any single-row edit, deletion or insertion in the ledger's tables (or in the round and
submission rows they are tied to) makes ``verify`` fail.

The chain of :func:`tests.ledger_support.book_market` is built once; each example applies one change
inside a transaction, verifies through the same connection and rolls back. Insertions are the
strongest kind an insider can make without recomputing later hashes: an entry correctly linked to
the head (with or without moving the head), a round record for a round that was not cleared.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from datamarket.ledger import entry_hash_v3, make_engine, upgrade, verify
from datamarket.ledger.models import LedgerEntry, LedgerHead, LedgerRound, Round, Submission
from tests.ledger_support import book_market

ENTRIES: Table = LedgerEntry.__table__  # type: ignore[assignment]
RECORDS: Table = LedgerRound.__table__  # type: ignore[assignment]
HEAD: Table = LedgerHead.__table__  # type: ignore[assignment]
ROUNDS: Table = Round.__table__  # type: ignore[assignment]
SUBMISSIONS: Table = Submission.__table__  # type: ignore[assignment]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('hyp')}/chain.db")
    upgrade(eng)
    info = book_market(eng)
    yield eng, info
    eng.dispose()


def _flip(h: str, pos: int) -> str:
    pos %= len(h)
    return h[:pos] + ("0" if h[pos] != "0" else "1") + h[pos + 1 :]


def _other(values: list[Any], current: Any, k: int) -> Any:
    choices = [v for v in values if v != current]
    return choices[k % len(choices)]


def _edit_entry(conn: Connection, draw: st.DrawFn, info: dict[str, Any]) -> str:
    seq = draw(st.integers(1, 13))
    row = dict(conn.execute(select(ENTRIES).where(ENTRIES.c.seq == seq)).one()._mapping)
    col = draw(st.sampled_from(sorted(row)))
    k = draw(st.integers(0, 50))
    d = draw(st.sampled_from([-2, -1, 1, 2]))
    old = row[col]
    if col == "seq":
        new: Any = 100 + seq
    elif col == "version":
        new = _other([1, 2, 3], old, k)
    elif col == "round_id":
        new = _other([*info["rounds"], info["failed"]], old, k)
    elif col == "market_id":
        new = _other(list(info["markets"]), old, k)
    elif col == "participant_id":
        new = _other([None, *info["ids"].values()], old, k)
    elif col == "amount_minor":
        new = old + d
    elif col == "created_at":
        new = old + timedelta(microseconds=d)
    elif col in ("hash", "prev_hash"):
        new = _flip(old, k)
    elif col == "currency":
        new = _other(["USD", "TOKEN:6", "EUR"], old, k)
    else:  # account, kind, memo
        new = old + "x"
    conn.execute(update(ENTRIES).where(ENTRIES.c.seq == seq).values({col: new}))
    return f"entry {seq}.{col}: {old!r} -> {new!r}"


def _edit_record(conn: Connection, draw: st.DrawFn, info: dict[str, Any]) -> str:
    rid = draw(st.sampled_from(info["rounds"]))
    row = dict(conn.execute(select(RECORDS).where(RECORDS.c.round_id == rid)).one()._mapping)
    col = draw(st.sampled_from(sorted(set(row) - {"created_at"})))  # created_at: informational only
    k, d = draw(st.integers(0, 50)), draw(st.sampled_from([-2, -1, 1, 2]))
    old = row[col]
    if col == "round_id":
        new: Any = info["failed"]
    elif col == "market_id":
        new = _other(list(info["markets"]), old, k)
    elif col == "currency":
        new = _other(["USD", "TOKEN:6", "EUR"], old, k)
    elif col in ("merkle_root", "head_hash"):
        new = _flip(old, k)
    else:
        new = old + d
    conn.execute(update(RECORDS).where(RECORDS.c.round_id == rid).values({col: new}))
    return f"record {rid}.{col}: {old!r} -> {new!r}"


def _edit_other(conn: Connection, draw: st.DrawFn, info: dict[str, Any]) -> str:
    what = draw(
        st.sampled_from(["head.seq", "head.hash", "head.rounds", "head.id", "round.status", "submission"])
    )
    head = conn.execute(select(HEAD)).one()
    if what == "head.hash":
        conn.execute(update(HEAD).values(hash=_flip(head.hash, draw(st.integers(0, 63)))))
    elif what.startswith("head."):
        col = what.split(".")[1]
        conn.execute(update(HEAD).values({col: getattr(head, col) + draw(st.sampled_from([-1, 1, 2]))}))
    elif what == "round.status":
        rid = draw(st.sampled_from(info["rounds"]))
        conn.execute(
            update(ROUNDS)
            .where(ROUNDS.c.id == rid)
            .values(status=draw(st.sampled_from(["failed", "pending"])))
        )
    else:
        sid = (
            conn.execute(select(SUBMISSIONS.c.id).where(SUBMISSIONS.c.consumed_round_id.is_not(None)))
            .scalars()
            .all()
        )
        conn.execute(
            update(SUBMISSIONS)
            .where(SUBMISSIONS.c.id == draw(st.sampled_from(sid)))
            .values(consumed_round_id=info["failed"])
        )
    return what


def _delete(conn: Connection, draw: st.DrawFn, info: dict[str, Any]) -> str:
    table = draw(st.sampled_from(["entry", "record", "head"]))
    if table == "entry":
        seq = draw(st.integers(1, 13))
        conn.execute(delete(ENTRIES).where(ENTRIES.c.seq == seq))
        return f"delete entry {seq}"
    if table == "record":
        rid = draw(st.sampled_from(info["rounds"]))
        conn.execute(delete(RECORDS).where(RECORDS.c.round_id == rid))
        return f"delete record {rid}"
    conn.execute(delete(HEAD))
    return "delete head"


def _insert(conn: Connection, draw: st.DrawFn, info: dict[str, Any]) -> str:
    if draw(st.booleans()):  # a record for the failed round, copied from a real one
        rid = draw(st.sampled_from(info["rounds"]))
        row = dict(conn.execute(select(RECORDS).where(RECORDS.c.round_id == rid)).one()._mapping)
        conn.execute(insert(RECORDS).values({**row, "round_id": info["failed"]}))
        return f"insert record copied from {rid}"
    head = conn.execute(select(HEAD)).one()
    src = dict(conn.execute(select(ENTRIES).where(ENTRIES.c.seq == draw(st.integers(1, 13)))).one()._mapping)
    amount = draw(st.sampled_from([0, 1, -1, src["amount_minor"]]))
    row = {**src, "seq": head.seq + 1, "prev_hash": head.hash, "amount_minor": amount}
    row["hash"] = entry_hash_v3(**{k: v for k, v in row.items() if k not in ("version", "hash")})
    conn.execute(insert(ENTRIES).values(row))
    moved = draw(st.booleans())
    if moved:
        conn.execute(update(HEAD).values(seq=row["seq"], hash=row["hash"]))
    return f"append entry {row['seq']} (amount {amount}, head moved: {moved})"


@settings(max_examples=100)  # about 0.1 s each; 1500 examples were run once while writing it
@given(data=st.data())
def test_any_single_row_change_is_noticed(chain: Any, data: st.DataObject) -> None:
    eng, info = chain
    with eng.connect() as conn:
        outer = conn.begin()
        try:
            with Session(bind=conn) as s:
                assert verify(s).ok
            op = data.draw(st.sampled_from([_edit_entry, _edit_record, _edit_other, _delete, _insert]))
            change = op(conn, data.draw, info)
            with Session(bind=conn) as s:
                rep = verify(s)
            assert not rep.ok, f"not noticed: {change}"
            assert all(p.split(":")[0] for p in rep.problems)
        finally:
            outer.rollback()
