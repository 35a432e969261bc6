"""Receipts and checkpoints through the HTTP API as a hostile participant would use them, on SQLite
and PostgreSQL: brute-forcing another participant's amount from a receipt, reading
receipts and checkpoints of a round of another market, the chain head, the checkpoint check as an
oracle."""

from __future__ import annotations

import copy
import json

import pytest

from datamarket.ledger import receipt_problems
from datamarket.ledger.money import PLATFORM
from tests import service_support
from tests.ledger.test_receipts import brute_force
from tests.service_support import setup_broker, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def _cleared(admin, mid: int, seed: int) -> int:  # type: ignore[no-untyped-def]
    done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": seed}).json()["id"])
    assert done["status"] == "cleared", done["error"]
    return int(done["id"])


@pytest.mark.slow  # two broker rounds and a brute force over every hash of a receipt: about 10 s
def test_receipts_reveal_nothing_and_are_scoped_to_the_round(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m1, m2 = setup_broker(live, admin), setup_broker(live, admin, seed=1)
        r1, r2 = _cleared(admin, m1["market"], 3), _cleared(admin, m2["market"], 4)
        ids, b = m1["ids"], m1["clients"]["buyer_b"]
        rec = b.get(f"/rounds/{r1}/receipts/{ids['buyer_b']}").json()
        ledger = admin.get("/ledger/entries").json()["entries"]
        others = [e for e in ledger if e["round_id"] == r1 and e["participant_id"] != ids["buyer_b"]]
        assert others and all(e["version"] == 3 for e in ledger)
        # the attack: every name and id of the market (more than the plan shows a participant), every
        # amount up to the largest of the round, every hash of the receipt as target and as previous hash
        people = {**{f"{n}_{m1['market']}": i for n, i in ids.items()}, PLATFORM: None}
        bound = max(abs(e["amount_minor"]) for e in others)
        assert brute_force(rec, people, bound) == {}
        text = json.dumps(rec)
        assert not any(e["salt"] in text for e in others)
        # another's hash only as the head after the round and the previous hash of its own entries:
        # salted both, so the loop above found nothing
        links = {e["prev_hash"] for e in rec["entries"]} | {rec["checkpoint"]["hash"]}
        assert {e["hash"] for e in others if e["hash"] in text} <= links
        # ... while the receipt proves the participant's own entries offline, and not altered ones
        assert receipt_problems(rec) == [] and rec["entries"]
        bad = copy.deepcopy(rec)
        bad["entries"][0]["amount_minor"] -= 1
        assert any("altered" in p for p in receipt_problems(bad))
        # a round of a market buyer_b took no part in: the answer of a round that does not exist
        for path in (f"/rounds/{r2}/receipts/{ids['buyer_b']}", f"/rounds/{r2}/models/{ids['buyer_b']}"):
            got, none = b.get(path), b.get(path.replace(f"/{r2}/", "/99999/"))
            assert (got.status_code, none.status_code) == (404, 404), path
            assert (
                got.json()["detail"] == f"round {r2} not found"
                and none.json()["detail"] == "round 99999 not found"
            )
        cp2 = admin.get(f"/rounds/{r2}/receipts/{m2['ids']['buyer_b']}").json()["checkpoint"]
        assert b.post("/ledger/checkpoint", json=cp2).status_code == 404
        # the chain head and its counts: the operator's
        assert b.get("/ledger/checkpoint").status_code == 403
        head = admin.get("/ledger/checkpoint").json()
        assert head["seq"] == len(ledger) and admin.post("/ledger/checkpoint", json=head).json()["ok"]
        _checkpoint_is_no_oracle(admin, b, m1, r1, rec["checkpoint"], ledger)


def _checkpoint_is_no_oracle(admin, b, m1, r1, cp, ledger) -> None:  # type: ignore[no-untyped-def]
    """buyer_b checks its checkpoint; a guess at another sequence number or a proof of another
    participant's entry gets the same answer whether right or wrong."""
    ok = b.post("/ledger/checkpoint", json=cp).json()
    assert ok["ok"] and ok["problems"] == [], ok
    assert (ok["rounds"], ok["entries"], ok["head_seq"], ok["head_hash"]) == (
        1,
        cp["size"],
        cp["seq"],
        cp["hash"],
    )
    right = b.post("/ledger/checkpoint", json={**cp, "seq": 1, "hash": ledger[0]["hash"]}).json()
    wrong = b.post("/ledger/checkpoint", json={**cp, "seq": 1, "hash": "ab" * 32}).json()
    assert right["problems"] == wrong["problems"] and not right["ok"]
    assert any("is not the chain head after round" in p for p in right["problems"])
    assert not any("history rewritten" in p for p in right["problems"])
    theirs = admin.get(f"/rounds/{r1}/receipts/{m1['ids']['buyer_a']}").json()["checkpoint"]["proofs"][0]
    forged = {**theirs, "hash": "cd" * 32}
    a = b.post("/ledger/checkpoint", json={**cp, "proofs": [theirs]}).json()
    f = b.post("/ledger/checkpoint", json={**cp, "proofs": [forged]}).json()
    assert a["problems"] == f["problems"] and any("is not one of your entries" in p for p in a["problems"])
    assert b.post("/ledger/checkpoint", json={"seq": cp["seq"], "hash": cp["hash"]}).status_code == 403
    assert b.post("/ledger/checkpoint", json={**cp, "round_id": 2**40}).status_code == 422
