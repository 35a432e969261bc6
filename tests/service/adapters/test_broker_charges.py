"""The broker's receipts explain each buyer's price (14) and each contributor's payment (15)."""

from __future__ import annotations

from tests import service_support
from tests.service.adapters.charges_support import check_receipt_charges
from tests.service_support import setup_broker, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def test_broker_receipts_explain_price_and_payment(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid, ids, cl = m["market"], m["ids"], m["clients"]
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 3}).json()["id"])
        assert done["status"] == "cleared", done["error"]
        rid = done["id"]
        for name, client in cl.items():
            charges = check_receipt_charges(client, rid, ids[name], set(ids) - {name}, {"price", "payment"})
            if name.startswith("buyer"):
                (price,) = charges
                assert price["memo"] == "price" and len(price["terms"]) == 3
                assert price["inputs"]["your bid"]["valuation"] in ("gaussian", "threshold", "exponential")
                # the posted expected price is an input: the buyer sees why it paid more or less
                assert "q_j+ (posted expected price)" in price["inputs"]
            else:
                assert all(c["memo"] == "payment" and len(c["terms"]) == 4 for c in charges)
