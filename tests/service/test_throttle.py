"""Failed-authentication throttle: unknown keys from one address end in 429, in the API and the portal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from datamarket.service.throttle import AuthThrottle, ThrottleSettings
from tests.service_support import ADMIN, db_url, make_app  # noqa: F401  (fixture)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_window_slides_and_blocks_until_the_oldest_failure_expires() -> None:
    clock = Clock()
    t = AuthThrottle(limit=3, window_s=10.0, clock=clock)
    for dt in (0.0, 2.0, 4.0):
        assert t.retry_after("a") is None
        clock.t += dt
        t.failure("a")
    # failures at 1000, 1002, 1006: blocked until 1000 + 10
    assert t.retry_after("a") == 4
    assert t.retry_after("b") is None  # per address
    clock.t = 1010.0  # the first failure has left the window (a failure at t counts while t > now - window)
    assert t.retry_after("a") is None
    t.failure("a")  # 1002, 1006, 1010 in the window: blocked until 1012
    assert t.retry_after("a") == 2
    clock.t = 1030.0
    assert t.retry_after("a") is None and "a" not in t._fails  # expired entries are dropped


def test_limit_zero_disables_and_bad_settings_are_refused() -> None:
    t = AuthThrottle(limit=0, window_s=1.0)
    for _ in range(100):
        t.failure("a")
    assert t.retry_after("a") is None
    for kwargs in ({"limit": -1}, {"window_s": 0.0}, {"window_s": float("nan")}, {"max_clients": 0}):
        with pytest.raises(ValueError, match="auth throttle"):
            AuthThrottle(**kwargs)


def test_tracked_addresses_are_bounded() -> None:
    t = AuthThrottle(limit=1, window_s=60.0, max_clients=3, clock=Clock())
    for c in ("a", "b", "c", "d"):
        t.failure(c)
    assert list(t._fails) == ["b", "c", "d"]  # the least recently failing address was dropped
    assert t.retry_after("a") is None and t.retry_after("d") == 60


def _app(url: str, limit: int = 3) -> Any:
    return make_app(url, throttle=ThrottleSettings(limit=limit, window_s=60.0))


def test_api_answers_429_after_too_many_unknown_keys(db_url: str) -> None:  # noqa: F811
    with TestClient(_app(db_url)) as c:
        admin = {"X-API-Key": ADMIN}
        alice = c.post("/participants", json={"name": "alice"}, headers=admin).json()
        mine = {"X-API-Key": alice["api_key"]}
        before = c.get("/ledger/entries", headers=admin).json()
        for _ in range(5):  # requests without a key are 401 but are no guesses
            assert c.get("/participants/me").status_code == 401
        for i in range(3):  # the limit: three unknown keys are answered 401
            r = c.get("/participants/me", headers={"X-API-Key": f"dm_guess_{i}"})
            assert r.status_code == 401, r.text
            if i < 2:  # below the limit a valid key works, and it neither counts nor resets the count
                assert c.get("/participants/me", headers=mine).status_code == 200
        r = c.get("/participants/me", headers={"X-API-Key": "dm_guess_3"})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert "too many unknown API keys" in r.json()["detail"]
        # the address is blocked before its key is looked at, the operator's included
        assert c.get("/participants/me", headers=mine).status_code == 429
        assert c.post("/participants", json={"name": "bob"}, headers=admin).status_code == 429
        # another address is not affected, and nothing was written by the refused requests
        with TestClient(c.app, client=("203.0.113.7", 50000)) as other:
            assert other.get("/participants/me", headers=mine).status_code == 200
            assert other.get("/ledger/entries", headers=admin).json() == before
            names = [p["name"] for p in other.get("/participants", headers=admin).json()]
            assert names == ["alice"]


def test_portal_sign_in_shows_the_wait(db_url: str) -> None:  # noqa: F811
    import re

    with TestClient(_app(db_url, limit=2), base_url="http://127.0.0.1") as c:
        page = c.get("/portal/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        for i in range(2):
            r = c.post(
                "/portal/login", data={"csrf": csrf, "api_key": f"dm_guess_{i}"}, follow_redirects=False
            )
            assert r.status_code == 401 and "unknown key" in r.text
        r = c.post("/portal/login", data={"csrf": csrf, "api_key": ADMIN}, follow_redirects=False)
        assert r.status_code == 429 and "retry in" in r.text and "Retry-After" in r.headers
        assert "dm_portal=" not in r.headers.get("set-cookie", "")
