"""The operator's buttons for a stuck round on its portal page: fail (nothing booked, inputs stay
unconsumed) and release, each behind the session's CSRF token and the operator role, with the attempt
seen on the page as a compare-and-set (the API's ``POST /rounds/{id}/fail|release``).

The round belongs to a market of a kind the service has no adapter for, so no runner ever claims it:
it stays pending until the operator acts, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.portal.test_views import register, sign_in
from tests.service_support import ADMIN, db_url, make_app  # noqa: F401  (fixture)


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:  # noqa: F811
    app = make_app(db_url)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        app.state.test_client = c
        yield app


def stuck_round(app: Any) -> int:
    """A pending round of a market whose kind no process serves (so it is never claimed)."""
    from datamarket.ledger.models import Market, Round

    with app.state.service.db.write() as s:
        m = Market(kind="unserved", params={}, scale=100, currency="USD", name="stuck")
        s.add(m)
        s.flush()
        r = Round(market_id=m.id, seed=1, input_ids=[], seed_source="operator")
        s.add(r)
        s.flush()
        return int(r.id)


def status_of(app: Any, rid: int) -> str:
    from datamarket.ledger.models import Round

    with app.state.service.db.read() as s:
        return str(s.get(Round, rid).status)


def test_operator_fails_a_stuck_round_from_its_page(app: Any) -> None:
    rid = stuck_round(app)
    op, csrf = sign_in(app, ADMIN)
    page = op.get(f"/portal/rounds/{rid}")
    assert page.status_code == 200 and 'id="fail-round"' in page.text
    assert 'id="release-round"' not in page.text  # a pending round holds no lease to release

    # without the CSRF token nothing happens
    r = op.post(f"/portal/rounds/{rid}/fail", data={"reason": "stuck"})
    assert r.status_code == 403 and status_of(app, rid) == "pending"
    # a stale attempt (the round was claimed again since the page was drawn) is a conflict
    r = op.post(f"/portal/rounds/{rid}/fail", data={"csrf": csrf, "attempt": "7"})
    assert r.status_code == 409 and 'id="round-message"' in r.text and status_of(app, rid) == "pending"

    r = op.post(f"/portal/rounds/{rid}/fail", data={"csrf": csrf, "attempt": "0", "reason": "stuck"})
    assert r.status_code == 303, r.text
    assert status_of(app, rid) == "failed"
    assert 'id="fail-round"' not in op.get(f"/portal/rounds/{rid}").text
    # failing it again is idempotent, releasing a failed round is a conflict shown on the page
    assert op.post(f"/portal/rounds/{rid}/fail", data={"csrf": csrf}).status_code == 303
    r = op.post(f"/portal/rounds/{rid}/release", data={"csrf": csrf})
    assert r.status_code == 409 and status_of(app, rid) == "failed"


def test_a_participant_cannot_fail_or_release_a_round(app: Any) -> None:
    rid = stuck_round(app)
    op, csrf = sign_in(app, ADMIN)
    key = register(app, op, csrf, "mallory")
    p, pcsrf = sign_in(app, key)
    for action in ("fail", "release"):
        r = p.post(f"/portal/rounds/{rid}/{action}", data={"csrf": pcsrf, "attempt": "0"})
        assert r.status_code in (403, 404), (action, r.status_code)
    assert status_of(app, rid) == "pending"
