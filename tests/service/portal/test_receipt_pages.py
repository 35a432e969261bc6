"""The portal's receipt verification form and a participant's market page, on SQLite and
PostgreSQL: a ``pid`` that is not a row id is the portal's 422 page with its security
headers, never a 500; a participant's market page shows its own row of the plan, no other name."""

from __future__ import annotations

from typing import Any

from tests.service.portal.test_views import _broker_ready, app, sign_in  # noqa: F401  (fixture)
from tests.service_support import ADMIN, db_url  # noqa: F401  (fixture)

BAD_PIDS = ("abc", "1e3", "-1", "0", "0x10", "", " ", "1.0", "1" * 400, "2147483648", "\u0661", "1 1")


def test_a_pid_that_is_no_row_id_is_a_4xx_page(app: Any) -> None:  # noqa: F811
    op, csrf = sign_in(app, ADMIN)
    for pid in BAD_PIDS:
        r = op.post("/portal/rounds/1/receipt/verify", data={"csrf": csrf, "pid": pid})
        assert r.status_code == 422, (pid, r.status_code, r.text[:300])
        assert 'id="problem"' in r.text and "pid: must be a row id" in r.text, pid
        assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # a well-formed id of nothing: the 404 page
    r = op.post("/portal/rounds/1/receipt/verify", data={"csrf": csrf, "pid": "7"})
    assert r.status_code == 404 and 'id="problem"' in r.text


def test_a_participant_market_page_shows_its_row_only(app: Any) -> None:  # noqa: F811
    w = _broker_ready(app)
    names = ("buyer_a", "buyer_b", "seller_x", "seller_y")
    for me in names:
        c, _ = w["users"][me]
        page = c.get(f"/portal/markets/{w['mid']}").text
        assert 'id="plan"' in page and 'id="plan-privacy"' in page
        assert not [n for n in names if n != me and n in page], me
    full = w["op"].get(f"/portal/markets/{w['mid']}").text
    assert all(n in full for n in names)
