"""A round whose certificate fails is recorded ``unverified`` and books nothing (SQLite and PostgreSQL).

The adapter below is the real broker's, returning the real outcome with a failing budget-balance check
(as a mechanism would whose answer does not check out): the round must end ``unverified`` with the
failing check named, no ledger entry, no deliverable, its inputs unconsumed, so that the next round
over the same inputs clears and books once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.service_support import (
    BACKENDS,
    UNCERTIFIED,
    UNCERTIFIED_REF,
    audit,
    served_with,
    setup_broker,
    wait_round,
)


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    with served_with(request.param, tmp_path, {"uncertified_broker": UNCERTIFIED_REF}) as world:
        yield world


def test_a_round_whose_certificate_fails_books_nothing(served: Any) -> None:
    url, srv, admin = served
    setup = setup_broker(srv, admin, kind="uncertified_broker")
    mid = setup["market"]
    UNCERTIFIED.fail = True
    try:
        rid = admin.post(f"/markets/{mid}/rounds").json()["id"]
        body = wait_round(admin, rid)
    finally:
        UNCERTIFIED.fail = False
    assert body["status"] == "unverified", body
    assert "mstar.budget_balance" in body["error"] and "nothing was booked" in body["error"]
    assert body["certificate_passed"] is False and body["certificate"]["passed"] is False
    assert admin.get("/ledger/entries").json()["entries"] == []
    participant = setup["clients"]["buyer_a"]
    seen = participant.get(f"/rounds/{rid}").json()
    assert seen["certificate"] is None and seen["certificate_passed"] is False  # checks: operator only
    # the inputs stay unconsumed: the next round clears over them and books once, with its certificate
    again = admin.post(f"/markets/{mid}/rounds")
    assert again.status_code == 202, again.text
    done = wait_round(admin, again.json()["id"])
    assert done["status"] == "cleared" and done["certificate_passed"] is True
    assert done["certificate"]["checks"]["mstar.budget_balance"]["passed"]
    booked = {e["round_id"] for e in admin.get("/ledger/entries").json()["entries"]}
    assert booked == {done["id"]}
    assert admin.get("/ledger/verify").json()["ok"]
    assert audit(url)["double_booked"] == []
