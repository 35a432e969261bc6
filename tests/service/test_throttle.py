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


# -- the limit is exact, also for concurrent guesses ------------------------------------------------
def test_concurrent_failures_are_checked_and_counted_at_once() -> None:
    import threading

    t = AuthThrottle(limit=20, window_s=60.0)
    barrier = threading.Barrier(64)
    admitted: list[bool] = []

    def guess() -> None:
        barrier.wait()
        admitted.append(t.failure("a") is None)

    threads = [threading.Thread(target=guess) for _ in range(64)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert admitted.count(True) == 20 and admitted.count(False) == 44


def test_sequential_guesses_get_exactly_the_limit_of_401s(db_url: str) -> None:  # noqa: F811
    """With limit 20 the 20th unknown key is a 401 and the 21st a 429 (21 got through before)."""
    with TestClient(_app(db_url, limit=20)) as c:
        codes = [
            c.get("/participants/me", headers={"X-API-Key": f"dm_guess_{i}"}).status_code for i in range(21)
        ]
    assert codes == [401] * 20 + [429]


def test_concurrent_guesses_over_http_get_exactly_the_limit_of_401s(
    db_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sixty unknown keys sent at the same instant from one address: exactly ``limit`` are answered
    401, the rest 429. The key lookup is slowed to 50 ms (a loaded database) so that every guess is
    between the check before the lookup and the count after it at once: before the fix, each of them
    passed the check and was answered 401."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from datamarket.service.api import deps
    from tests.service_support import LiveServer

    lookup = deps.principal_of_key

    def slow_lookup(*args: Any) -> Any:
        time.sleep(0.05)
        return lookup(*args)

    monkeypatch.setattr(deps, "principal_of_key", slow_lookup)
    n = 60
    with LiveServer(_app(db_url, limit=20)) as srv:
        clients = [srv.client(f"dm_guess_{i}") for i in range(n)]
        barrier = threading.Barrier(n)

        def guess(k: int) -> int:
            barrier.wait()
            return clients[k].get("/participants/me").status_code

        try:
            with ThreadPoolExecutor(n) as pool:
                codes = list(pool.map(guess, range(n)))
        finally:
            for c in clients:
                c.close()
    assert codes.count(401) == 20 and codes.count(429) == n - 20, codes


# -- X-Forwarded-For: trusted only from configured proxies; memory bounded ---------------------------
def test_forwarded_allow_ips_follows_uvicorn_and_refuses_typos() -> None:
    from datamarket.core.errors import ConfigurationError
    from datamarket.service.config import ServiceSettings
    from datamarket.service.throttle import forwarded_allow_ips

    assert ServiceSettings().forwarded_allow_ips == ""  # nothing trusted by default, loopback included
    assert forwarded_allow_ips("*") == "*" and forwarded_allow_ips(" ") == ""
    assert forwarded_allow_ips("127.0.0.1, fd00::/8") == "127.0.0.1,fd00::/8"
    for bad in ("localhost", "10.0.0.0/33", "*,10.0.0.1"):
        with pytest.raises(ConfigurationError, match="forwarded_allow_ips"):
            ServiceSettings(forwarded_allow_ips=bad)


def test_from_env_reads_uvicorn_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from datamarket.service.config import ServiceSettings

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.1.2.3")
    assert ServiceSettings.from_env().forwarded_allow_ips == "10.1.2.3"
    assert ServiceSettings.from_env(forwarded_allow_ips="10.9.9.9").forwarded_allow_ips == "10.9.9.9"


def test_memory_is_bounded_behind_a_trusted_proxy(db_url: str) -> None:  # noqa: F811
    """Behind a trusted proxy every client address counts apart: a flood of made-up addresses keeps at
    most ``max_clients`` of them, and a long forwarded name is cut to ``MAX_ADDRESS`` characters."""
    from datamarket.service.throttle import MAX_ADDRESS

    app = make_app(db_url, throttle=ThrottleSettings(limit=2, max_clients=50), forwarded_allow_ips="*")
    with TestClient(app) as c:
        for i in range(300):
            xff = f"10.{i // 250}.{i % 250}.1" if i % 3 else "x" * 5000 + str(i)
            r = c.get("/participants/me", headers={"X-API-Key": "dm_guess", "X-Forwarded-For": xff})
            assert r.status_code in (401, 429)
        fails = c.app.state.service.throttle._fails  # type: ignore[attr-defined]
        assert len(fails) == 50 and max(len(k) for k in fails) <= MAX_ADDRESS


def _without_forwarded_env() -> dict[str, str]:
    """This environment without uvicorn's ``FORWARDED_ALLOW_IPS`` (the defaults under test)."""
    import os

    return {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}


def _guess(client: Any, xff: str) -> int:
    import secrets

    headers = {
        "X-API-Key": f"dm_{secrets.token_hex(8)}",
        "X-Forwarded-For": xff,
        "X-Forwarded-Proto": "https",
    }
    return int(client.get("/participants/me", headers=headers).status_code)


def _from(address: str, base_url: str, key: str | None = ADMIN) -> Any:
    """An httpx client whose connections come from ``address`` (any 127.x.y.z is this host)."""
    import httpx

    headers = {"X-API-Key": key} if key else {}
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, headers=headers, transport=transport, timeout=60)


def test_a_local_client_cannot_bypass_the_limit_with_x_forwarded_for(
    db_url: str,  # noqa: F811
    tmp_path: Any,
) -> None:
    """The attack: a client on the server's host (a loopback peer, which uvicorn trusts
    by default) sends a made-up ``X-Forwarded-For`` with every unknown key. Against ``datamarket
    serve`` with default settings, 300 such guesses get exactly 20 (the limit) 401s, and naming the
    operator's address in the header locks nobody else out."""
    import random

    from tests.service_support import Serve

    srv = Serve(db_url, tmp_path / "serve.log", [], env=_without_forwarded_env()).up()
    try:
        rng = random.Random(29)
        victim = "127.0.0.2"  # the operator's address (another peer on the loopback network)
        with _from("127.0.0.1", srv.url, None) as attacker:
            addresses = [
                victim if k % 10 == 0 else f"203.0.{rng.randrange(256)}.{rng.randrange(256)}"
                for k in range(300)
            ]
            codes = [_guess(attacker, xff) for xff in addresses]
        assert codes.count(401) == 20 and codes.count(429) == 280
        with _from(victim, srv.url) as operator:
            assert operator.get("/participants").status_code == 200
        with _from("127.0.0.1", srv.url) as same_peer:  # the limit fell on the real peer
            assert same_peer.get("/participants").status_code == 429
    finally:
        srv.stop()


def test_a_configured_proxy_names_the_client(db_url: str, tmp_path: Any) -> None:  # noqa: F811
    """With ``--forwarded-allow-ips 127.0.0.1`` the proxy's ``X-Forwarded-For`` is the client: the
    limit falls on the forwarded address, not on the proxy or its other clients; a peer that is not
    listed still cannot name a client."""
    from tests.service_support import Serve

    args = ["--forwarded-allow-ips", "127.0.0.1"]
    srv = Serve(db_url, tmp_path / "serve.log", args, env=_without_forwarded_env()).up()
    try:
        with _from("127.0.0.1", srv.url, None) as proxy:
            codes = [_guess(proxy, "198.51.100.7") for _ in range(25)]
        assert codes == [401] * 20 + [429] * 5
        with _from("127.0.0.1", srv.url) as proxy:
            blocked = proxy.get("/participants", headers={"X-Forwarded-For": "198.51.100.7"})
            assert blocked.status_code == 429
            other = proxy.get("/participants", headers={"X-Forwarded-For": "198.51.100.8"})
            assert other.status_code == 200
            assert proxy.get("/participants").status_code == 200  # the proxy itself
        with _from("127.0.0.2", srv.url) as untrusted:  # its header is ignored: it is 127.0.0.2
            assert (
                untrusted.get("/participants", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
            )
    finally:
        srv.stop()
