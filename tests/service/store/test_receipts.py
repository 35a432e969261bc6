"""Receipts and checkpoints of rounds booked before salted entries (revision 0007), through the store,
on SQLite and PostgreSQL: no hash of such a round reaches a participant, so none can be brute-forced,
and a participant's check of an old checkpoint is refused (it would test guesses); the operator's
still passes."""

from __future__ import annotations

import pytest

from datamarket.service.auth import Principal
from datamarket.service.store import ledger, receipts
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict, NotFound
from tests.ledger.test_migrations import before_salts  # noqa: F401  (fixture)

BUYER_A, BUYER_B = Principal(False, 1, "buyer_a"), Principal(False, 2, "buyer_b")


def test_unsalted_rounds_give_receipts_without_hashes(before_salts) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    eng, booked = before_salts
    db, rid = Database.on(eng), booked["round"]
    for r in (1, rid):  # a format-1 round of the fixture, the format-2 round added before 0007
        rec = receipts.get_receipt(db, BUYER_A, r, 1)
        assert rec["checkpoint"] is None and rec["round_hash"] is None and rec["entries"]
        assert all(e["hash"] is None and e["prev_hash"] is None and e["salt"] is None for e in rec["entries"])
        assert rec["net_minor"] == sum(e["amount_minor"] for e in rec["entries"])
    assert receipts.get_receipt(db, BUYER_A, rid, 1)["net_minor"] == -250
    # the checkpoint buyer_a kept before the upgrade: the operator checks it, buyer_a may not
    assert ledger.verify_checkpoint(db, Principal(True), booked["checkpoint"])["ok"]
    with pytest.raises(Conflict, match="booked before receipts were salted"):
        ledger.verify_checkpoint(db, BUYER_A, booked["checkpoint"])
    # buyer_b took no part in the added round: the answer of a round that does not exist
    with pytest.raises(NotFound, match=f"^round {rid} not found$"):
        receipts.get_receipt(db, BUYER_B, rid, 2)
    with pytest.raises(NotFound, match=f"^round {rid} not found$"):
        ledger.verify_checkpoint(db, BUYER_B, booked["checkpoint"])
