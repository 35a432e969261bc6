"""Portal sessions bound to the key that opened them, on both databases.

The attack: an operator's portal session outlived the rotation of the admin key (8 hours). Now a
session is bound to the key (``portal_sessions.key_binding``): a service restarted on the same database
with another admin key refuses the old cookie; a participant whose key is replaced loses its sessions;
an operator session ends after 30 idle minutes (sliding on activity, 8 h at most); participants keep
the 8-hour limit only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from datamarket.ledger.models import Participant, PortalSession, utcnow
from datamarket.service.auth import hash_key
from datamarket.service.portal import session as session_module
from tests.service.portal.test_views import csrf_of, register
from tests.service_support import ADMIN, db_url, make_app  # noqa: F401  (fixture)

BASE = "http://127.0.0.1"


@contextmanager
def running(url: str, **settings: Any) -> Iterator[Any]:
    """The service on ``url`` (a fresh process's app: same database, its own settings)."""
    app = make_app(url, **settings)
    with TestClient(app, base_url=BASE):
        yield app


def sign_in(app: Any, key: str) -> tuple[TestClient, str]:
    c = TestClient(app, base_url=BASE, follow_redirects=False)
    page = c.get("/portal/login")
    r = c.post("/portal/login", data={"api_key": key, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    home = c.get("/portal/")
    assert home.status_code == 200, home.text
    return c, csrf_of(home.text)


def with_cookie(app: Any, token: str) -> TestClient:
    """A browser on ``app`` presenting the session cookie ``token``."""
    c = TestClient(app, base_url=BASE, follow_redirects=False)
    c.cookies.set("dm_portal", token, domain="127.0.0.1", path="/portal")
    return c


def signed_out(c: TestClient) -> bool:
    r = c.get("/portal/")
    return r.status_code == 303 and r.headers["location"] == "/portal/login"


def test_rotating_the_admin_key_ends_operator_sessions(db_url: str) -> None:  # noqa: F811
    with running(db_url) as app:
        op, _ = sign_in(app, ADMIN)
        token = op.cookies.get("dm_portal") or ""
        with app.state.service.db.read() as s:
            row = s.execute(select(PortalSession)).scalar_one()
        # the row holds neither the key nor its hash, only a binding keyed by the token
        assert row.key_binding and ADMIN not in row.key_binding and hash_key(ADMIN) != row.key_binding
    with running(db_url) as app:  # a restart with the same key keeps the session
        assert not signed_out(with_cookie(app, token))
    with running(db_url, admin_key="rotated-admin-key") as app:  # the key rotated: the cookie is refused
        assert signed_out(with_cookie(app, token))
        op2, _ = sign_in(app, "rotated-admin-key")  # the new key signs in
        assert not signed_out(op2)
        old = TestClient(app, base_url=BASE, follow_redirects=False)
        page = old.get("/portal/login")
        refused = old.post("/portal/login", data={"api_key": ADMIN, "csrf": csrf_of(page.text)})
        assert refused.status_code == 401  # and the old key no longer signs in
    with running(db_url) as app:  # the old key put back: the refused session was ended, not suspended
        assert signed_out(with_cookie(app, token))


def test_replacing_a_participants_key_ends_its_sessions(db_url: str) -> None:  # noqa: F811
    with running(db_url) as app:
        op, csrf = sign_in(app, ADMIN)
        key = register(app, op, csrf, "alice")
        alice, _ = sign_in(app, key)
        token = alice.cookies.get("dm_portal") or ""
        new_key = "dm_replaced-key-for-alice"
        with app.state.service.db.write() as s:  # the key revoked and replaced
            s.execute(
                update(Participant).where(Participant.name == "alice").values(api_key_hash=hash_key(new_key))
            )
        assert signed_out(with_cookie(app, token))
        again, _ = sign_in(app, new_key)
        assert not signed_out(again)


def test_a_session_from_before_the_binding_is_refused(db_url: str) -> None:  # noqa: F811
    """A row without a binding (opened before migration 0008) signs its browser out."""
    with running(db_url) as app:
        op, _ = sign_in(app, ADMIN)
        with app.state.service.db.write() as s:
            s.execute(update(PortalSession).values(key_binding=None))
        assert signed_out(op)


class Clock:
    """The session module's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(session_module, "utcnow", c)
    return c


def test_operator_sessions_end_after_30_idle_minutes_sliding(db_url: str, clock: Clock) -> None:  # noqa: F811
    """Default rules: 30 idle minutes (within one touch step, 60 s), sliding on each request."""
    with running(db_url) as app:
        op, _ = sign_in(app, ADMIN)
        for _ in range(3):  # active every 29 minutes: alive well past 30 minutes from sign-in
            clock.advance(minutes=29)
            assert not signed_out(op)
        clock.advance(minutes=30, seconds=1)  # idle beyond 30 minutes since the last request
        assert signed_out(op)


def test_an_active_operator_session_still_ends_after_8_hours(db_url: str, clock: Clock) -> None:  # noqa: F811
    with running(db_url) as app:
        op, _ = sign_in(app, ADMIN)
        for _ in range(8 * 3):  # a request every 20 minutes for 8 hours
            assert not signed_out(op)
            clock.advance(minutes=20)
        assert signed_out(op)


def test_participants_keep_the_absolute_limit_only(db_url: str, clock: Clock) -> None:  # noqa: F811
    with running(db_url) as app:
        op, csrf = sign_in(app, ADMIN)
        alice, _ = sign_in(app, register(app, op, csrf, "alice"))
        clock.advance(hours=7, minutes=59)  # idle for hours: still signed in
        assert not signed_out(alice)
        clock.advance(minutes=1, seconds=1)
        assert signed_out(alice)


def test_idle_limit_is_a_setting(db_url: str, clock: Clock) -> None:  # noqa: F811
    from datamarket.service.portal.session import SessionSettings

    rules = SessionSettings(operator_idle_s=120, participant_idle_s=300)
    with running(db_url, sessions=rules) as app:
        op, csrf = sign_in(app, ADMIN)
        alice, _ = sign_in(app, register(app, op, csrf, "alice"))
        clock.advance(seconds=121)
        assert signed_out(op) and not signed_out(alice)
        clock.advance(seconds=301)
        assert signed_out(alice)


def test_touch_step_bounds_writes_and_the_idle_error() -> None:
    from datamarket.service.portal.session import touch_step

    assert touch_step(1800) == 60 and touch_step(120) == 12
