"""Receipts reveal nothing of other participants' entries, and still prove the participant's own,
on SQLite and PostgreSQL.

The attack a hostile participant makes: every field of another entry of the round is known to a participant or
guessable (sequence numbers from its own entries' positions, the round, market and currency, the
round's timestamp shared by all its entries, account names from the market plan, small participant
ids, the three memos) except the amount, so a loop over plausible minor units against every hash the
receipt holds (raw, or as a Merkle leaf) recovers the amount when the hash is unsalted.
:func:`brute_force` is that loop; it recovers every other amount from a receipt of the old shape
(format-2 hashes, the round's entry hashes listed) and nothing from today's receipt.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from datamarket.cli import app as cli_app
from datamarket.ledger import (
    GENESIS,
    EntryRecord,
    checkpoint_of,
    entry_hash_v2,
    export_lines,
    make_engine,
    make_sessionmaker,
    receipt_problems,
    upgrade,
    verify_checkpoints,
    verify_export,
)
from datamarket.ledger.chain import records
from datamarket.ledger.merkle import merkle_root
from datamarket.ledger.models import LedgerEntry
from datamarket.ledger.money import ENTRY_KINDS, PLATFORM, format_minor
from tests.ledger_support import book_market
from tests.service_support import BACKENDS, fresh_database

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(params=BACKENDS)
def booked(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    with fresh_database(request.param, tmp_path) as url:
        eng = make_engine(url)
        upgrade(eng)
        info = book_market(eng)
        info.update(engine=eng, url=url)
        yield info
        eng.dispose()


def receipt_of(
    entries: Iterable[EntryRecord], checkpoint: Mapping[str, Any] | None, pid: int
) -> dict[str, Any]:
    """A receipt as the service builds it: the participant's own entries and the checkpoint."""
    mine = [
        {**e.to_dict(), "amount": format_minor(e.amount_minor, 100)}
        for e in entries
        if e.participant_id == pid
    ]
    return {
        "round_id": mine[0]["round_id"],
        "participant_id": pid,
        "currency": mine[0]["currency"],
        "entries": mine,
        "net_minor": sum(e["amount_minor"] for e in mine),
        "checkpoint": checkpoint,
    }


def brute_force(receipt: Mapping[str, Any], people: Mapping[str, int | None], bound: int) -> dict[int, int]:
    """The attack (module docstring): ``{seq: amount}`` of every other entry of the round
    whose hash, or Merkle leaf, the receipt lets one test guesses against, trying amounts in
    ``[-bound, bound]`` and, as the previous hash, every hash the receipt holds."""
    own = receipt["entries"]
    mine = {e["hash"] for e in own}
    revealed = set(HEX64.findall(json.dumps(receipt))) - {e.get("salt") for e in own}
    targets = revealed - mine
    cp = receipt["checkpoint"] or {}
    size = len(cp["entry_hashes"]) if cp.get("entry_hashes") else cp.get("size") or 0
    if cp.get("entry_hashes"):  # the old receipt: positions from the list
        first = own[0]["seq"] - cp["entry_hashes"].index(own[0]["hash"])
    else:  # positions from the proofs' indices
        first = min(p["seq"] - p["index"] for p in cp.get("proofs") or [{"seq": own[0]["seq"], "index": 0}])
    seqs = [k for k in range(first, first + max(size, 1)) if k not in {e["seq"] for e in own}]
    e0, found = own[0], {}
    for seq in seqs:
        for prev in sorted(revealed | {GENESIS}):
            for account, pid in people.items():
                for memo, kind in ENTRY_KINDS.items():
                    fields = {
                        "seq": seq,
                        "round_id": e0["round_id"],
                        "market_id": e0["market_id"],
                        "participant_id": pid,
                        "account": account,
                        "kind": kind,
                        "currency": e0["currency"],
                        "memo": memo,
                        "created_at": e0["created_at"],
                        "prev_hash": prev,
                    }
                    for amount in range(-bound, bound + 1):
                        h = entry_hash_v2(**fields, amount_minor=amount)
                        leaf = hashlib.sha256(b"\x00" + bytes.fromhex(h)).hexdigest()  # RFC 9162 leaf
                        if h not in mine and (h in targets or leaf in targets):
                            found[seq] = amount
    return found


def _format_2(entries: list[EntryRecord]) -> list[EntryRecord]:
    """The same chain as the code before revision 0007 wrote it: format 2, no salts."""
    out, prev = [], GENESIS
    for e in entries:
        d = {**e.to_dict(), "version": 2, "salt": None, "prev_hash": prev}
        d["hash"] = prev = EntryRecord.from_dict(d).computed_hash()
        out.append(EntryRecord.from_dict(d))
    return out


def _people(booked: Mapping[str, Any]) -> dict[str, int | None]:
    return {**booked["ids"], PLATFORM: None}


def test_brute_force_recovers_other_amounts_from_an_old_receipt_only(booked) -> None:  # type: ignore[no-untyped-def]
    eng, ids, (r1, _, _) = booked["engine"], booked["ids"], booked["rounds"]
    with make_sessionmaker(eng)() as s:
        chain = records(s)
        cp = checkpoint_of(s, r1, ids["seller_x"])
        salts = {e.seq: e.salt for e in chain}
    others = {
        e.seq: e.amount_minor for e in chain if e.round_id == r1 and e.participant_id != ids["seller_x"]
    }
    assert others == {1: -152, 3: 71, 4: 11}  # buyer_a, seller_y and the platform in round 1 (USD)
    # the receipt as it was before this revision: format-2 hashes and every entry hash of the round
    old = [e for e in _format_2(chain) if e.round_id == r1]
    hashes = [e.hash for e in old]
    old_cp = {"round_id": r1, "seq": 4, "hash": hashes[-1], "entry_hashes": hashes, "proofs": []}
    assert brute_force(receipt_of(old, old_cp, ids["seller_x"]), _people(booked), 160) == others
    # today's receipt of the same round: own entries, salts, proofs, root: nothing to test guesses on
    assert cp is not None
    new = receipt_of([e for e in chain if e.round_id == r1], cp, ids["seller_x"])
    assert receipt_problems(new) == []
    assert brute_force(new, _people(booked), 160) == {}
    text = json.dumps(new)
    assert "entry_hashes" not in text and "buyer_a" not in text and "seller_y" not in text
    assert not any(salts[k] in text for k in others)  # no other entry's salt
    assert len(cp["proofs"]) == 1 and cp["size"] == 4


def test_receipt_verifies_offline_and_fails_when_altered(booked, tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng, ids, (_, r2, _) = booked["engine"], booked["ids"], booked["rounds"]
    with make_sessionmaker(eng)() as s:
        chain = [e for e in records(s) if e.round_id == r2]
        cp = checkpoint_of(s, r2, ids["buyer_a"])
    rec = receipt_of(chain, cp, ids["buyer_a"])
    for e in rec["entries"]:
        e["amount"] = format_minor(e["amount_minor"], 10**6)
    rec["currency"] = "TOKEN:6"
    assert receipt_problems(rec) == []

    def altered(edit: Any) -> list[str]:
        bad = json.loads(json.dumps(rec))
        edit(bad)
        return receipt_problems(bad)

    def more(d: dict[str, Any]) -> None:
        d["entries"][0]["amount_minor"] += 1
        d["entries"][0]["amount"] = format_minor(d["entries"][0]["amount_minor"], 10**6)
        d["net_minor"] += 1

    assert any("do not hash to its hash (altered)" in p for p in altered(more))
    shown = altered(lambda d: d["entries"][0].update(amount="-0.000001"))
    assert any("is not its" in p for p in shown)
    assert any("not the sum" in p for p in altered(lambda d: d.update(net_minor=d["net_minor"] + 1)))
    sibling = altered(lambda d: d["checkpoint"]["proofs"][0]["proof"].__setitem__(0, "ab" * 32))
    assert any("inclusion proof fails" in p for p in sibling)
    assert any(
        "inclusion proof fails" in p for p in altered(lambda d: d["checkpoint"].update(merkle_root="cd" * 32))
    )
    assert any("no inclusion proof" in p for p in altered(lambda d: d["checkpoint"].update(proofs=[])))
    salt = altered(lambda d: d["entries"][0].update(salt="00" * 32))
    assert any("altered" in p for p in salt)
    # the same on the command line: `ledger verify --receipt` without a database or an export
    good, bad = tmp_path / "receipt.json", tmp_path / "bad.json"
    good.write_text(json.dumps(rec))
    tampered = json.loads(json.dumps(rec))
    more(tampered)
    bad.write_text(json.dumps(tampered))
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["ledger", "verify", "--receipt", str(good)])
    assert ok.exit_code == 0 and "OK (entries and proofs hold)" in ok.output, ok.output
    no = runner.invoke(cli_app, ["ledger", "verify", "--receipt", str(bad)])
    assert no.exit_code == 1 and "altered" in no.output, no.output
    # with the ledger: the receipt's checkpoint and entries are found in the chain
    db = runner.invoke(cli_app, ["ledger", "verify", "--db", booked["url"], "--receipt", str(good)])
    assert db.exit_code == 0, db.output


def test_checkpoints_of_both_shapes_check_against_the_ledger(booked) -> None:  # type: ignore[no-untyped-def]
    eng, ids, (r1, _, r3) = booked["engine"], booked["ids"], booked["rounds"]
    sessions = make_sessionmaker(eng)
    with sessions() as s:
        cp = checkpoint_of(s, r3, ids["buyer_b"])
        hashes = list(
            s.execute(
                select(LedgerEntry.hash).where(LedgerEntry.round_id == r1).order_by(LedgerEntry.seq)
            ).scalars()
        )
        lines = [json.loads(x) for x in export_lines(s)]
    # a checkpoint kept before revision 0007 lists the round's entry hashes: it still verifies
    old = {
        "round_id": r1,
        "seq": 4,
        "hash": hashes[-1],
        "entry_hashes": hashes,
        "merkle_root": merkle_root(hashes),
    }
    assert cp is not None
    with sessions() as s:
        assert verify_checkpoints(s, [old, cp]).ok
    assert verify_export([json.dumps(x) for x in lines], [old, cp]).ok
    # the export carries the salts: an auditor recomputes every hash offline
    assert all(x["salt"] is not None for x in lines if x["record"] == "entry")
    # a round whose entries changed fails the new checkpoint by its root and size
    with eng.begin() as c:
        c.execute(LedgerEntry.__table__.delete().where(LedgerEntry.seq == 13))  # type: ignore[attr-defined]
    with sessions() as s:
        found = verify_checkpoints(s, [cp]).problems
    assert any(f"round {r3} has 3 entries now, not the 4 checkpointed ones" in p for p in found), found
    assert any("no entry 13 any more (truncated)" in p for p in found), found
