"""Receipt pages explain every line (rule, terms, inputs, a link to the guide) with amounts written by
the one formatter, on SQLite and PostgreSQL; the guide shows each rule at the anchor receipts link to."""

from __future__ import annotations

import re
from typing import Any

from tests.service.portal.test_views import _broker_ready, app, register, sign_in  # noqa: F401  (fixture)
from tests.service_support import ADMIN, db_url, wait_round  # noqa: F401  (fixture)

NAMES = ("buyer_a", "buyer_b", "seller_x", "seller_y")
MONEY = re.compile(r'<span class="money" data-amount-minor="(-?\d+)">(-?[\d,]+\.\d\d) USD</span>')


def _cleared(app: Any) -> tuple[dict[str, Any], int]:  # noqa: F811
    w = _broker_ready(app)
    r = w["op"].post(f"/portal/markets/{w['mid']}/rounds", data={"csrf": w["csrf"], "seed": "3"})
    rid = int(r.headers["location"].rsplit("/", 1)[1])

    class _Admin:
        def get(self, path: str) -> Any:
            return app.state.test_client.get(path, headers={"X-API-Key": ADMIN})

    assert wait_round(_Admin(), rid)["status"] == "cleared"  # type: ignore[arg-type]
    return w, rid


def test_receipts_explain_each_line_and_link_the_guide(app: Any) -> None:  # noqa: F811
    w, rid = _cleared(app)
    for me in NAMES:
        c, _ = w["users"][me]
        page = c.get(f"/portal/rounds/{rid}/receipt").text
        assert not [n for n in NAMES if n != me and n in page], me
        memo = "price" if me.startswith("buyer") else "payment"
        if me.startswith("seller") and 'id="charge-payment"' not in page:
            assert "No money moved for you" in page  # a contributor the plan did not ask for data
            continue
        section = page[page.index(f'id="charge-{memo}"') :]
        assert f'href="/portal/guide#broker-{memo}"' in section
        assert "eq. (14)" in section if memo == "price" else "eq. (15)" in section
        assert "Exact amount" in section and "Inputs used" in section
        # every amount is the formatter's: two decimals, the code, the minor units kept in data-*
        amounts = MONEY.findall(page)
        assert amounts, page[:2000]
        for minor, text in amounts:
            assert f"{int(minor) / 100:,.2f}" == text.replace("−", "-")
        assert "USD USD" not in page and "2.3519943519257707" not in page
    guide = w["op"].get("/portal/guide").text
    assert 'id="broker-price"' in guide and 'id="broker-payment"' in guide


def test_a_participant_of_another_round_gets_no_receipt_link_or_figure(app: Any) -> None:  # noqa: F811
    w, rid = _cleared(app)
    outsider, _ = sign_in(app, register(app, w["op"], w["csrf"], "outsider"))
    page = outsider.get(f"/portal/rounds/{rid}").text
    assert 'id="not-yours"' in page and "receipt-link" not in page and "figure.svg" not in page
    assert outsider.get(f"/portal/rounds/{rid}/receipt").status_code == 404
    assert outsider.get(f"/portal/rounds/{rid}/figure.svg").status_code == 404
    mine = w["users"]["buyer_a"][0].get(f"/portal/rounds/{rid}").text
    assert "receipt-link" in mine and "figure.svg" in mine
