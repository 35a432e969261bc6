"""The portal's headers, on both databases.

* The session cookie's ``Secure`` flag follows the scheme the server sees (after the
  ``X-Forwarded-Proto`` of a trusted proxy, ``forwarded_allow_ips``), not the ``Host`` header: behind
  a TLS proxy forwarding ``Host: 127.0.0.1:8000`` or ``localhost`` the cookie is ``Secure``; a setting
  forces it either way; plain HTTP on loopback keeps a usable cookie.
* Every answer under ``/portal`` carries the security headers: JSON 404/405, ``figure.svg``,
  redirects, the body limit's 413, static files.
* A state-changing portal request from another origin (``Origin``, else ``Referer``, or
  ``Sec-Fetch-Site``) is refused with the portal's 403 page before anything is read or stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from datamarket.service.portal.headers import SECURITY_HEADERS
from datamarket.service.portal.session import SessionSettings
from tests.service.portal.test_views import csrf_of, register
from tests.service_support import (  # noqa: F401  (fixture)
    ADMIN,
    BROKER_BIDS,
    LiveServer,
    csv_bytes,
    db_url,
    make_app,
    wait_round,
)

BASE = "http://127.0.0.1"
BID = BROKER_BIDS["buyer_a"]


def has_security_headers(r: httpx.Response) -> bool:
    return all(r.headers.get(k) == v for k, v in SECURITY_HEADERS.items())


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:  # noqa: F811
    app = make_app(db_url)
    with TestClient(app, base_url=BASE):
        yield app


def sign_in(app: Any, key: str) -> tuple[TestClient, str]:
    c = TestClient(app, base_url=BASE, follow_redirects=False)
    page = c.get("/portal/login")
    r = c.post("/portal/login", data={"api_key": key, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    home = c.get("/portal/")
    return c, csrf_of(home.text)


# -- Secure from the scheme, through real uvicorn and the trusted proxy's headers ---------------------
@contextmanager
def behind_proxy(url: str, trusted: str, **settings: Any) -> Iterator[LiveServer]:
    """The service under uvicorn as ``datamarket serve`` runs it, trusting the proxies ``trusted``
    (``forwarded_allow_ips``; the test connects from 127.0.0.1, as a TLS proxy on the same host)."""
    with LiveServer(make_app(url, forwarded_allow_ips=trusted, **settings)) as srv:
        yield srv


def session_cookie(srv: LiveServer, headers: dict[str, str]) -> str:
    """Sign in through ``srv`` with ``headers`` (as the proxy forwards them): the session's Set-Cookie."""
    page = httpx.get(srv.url + "/portal/login", headers=headers)
    login = page.cookies.get("dm_portal_login") or ""
    r = httpx.post(
        srv.url + "/portal/login",
        headers={**headers, "Cookie": f"dm_portal_login={login}"},
        data={"api_key": ADMIN, "csrf": csrf_of(page.text)},
    )
    assert r.status_code == 303, r.text
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("dm_portal="))
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    home = httpx.get(srv.url + "/portal/", headers={**headers, "Cookie": f"dm_portal={token}"})
    assert home.status_code == 200  # the session works through the proxy
    return cookie


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost"])
def test_cookie_is_secure_behind_a_tls_proxy_forwarding_a_loopback_host(db_url: str, host: str) -> None:  # noqa: F811
    tls = {"Host": host, "X-Forwarded-Proto": "https"}
    with behind_proxy(db_url, trusted="127.0.0.1") as srv:
        assert "Secure" in session_cookie(srv, tls)
        # plain HTTP on loopback (development) keeps a cookie the browser will send back
        assert "Secure" not in session_cookie(srv, {"Host": host})


def test_cookie_secure_setting_forces_the_flag(db_url: str) -> None:  # noqa: F811
    tls = {"Host": "127.0.0.1:8000", "X-Forwarded-Proto": "https"}
    # a proxy whose X-Forwarded-Proto is not trusted (none by default): the app sees http on loopback
    for untrusted in ("", "192.0.2.1"):
        with behind_proxy(db_url, trusted=untrusted) as srv:
            assert "Secure" not in session_cookie(srv, tls)
    with behind_proxy(db_url, trusted="192.0.2.1", sessions=SessionSettings(cookie_secure=True)) as srv:
        assert "Secure" in session_cookie(srv, tls)
    with behind_proxy(db_url, trusted="127.0.0.1", sessions=SessionSettings(cookie_secure=False)) as srv:
        assert "Secure" not in session_cookie(srv, tls)


def test_cookie_secure_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from datamarket.core.errors import ConfigurationError
    from datamarket.service.config import ServiceSettings

    monkeypatch.setenv("DATAMARKET_COOKIE_SECURE", "true")
    assert ServiceSettings.from_env(admin_key="k", executor="thread").sessions.cookie_secure is True
    explicit = SessionSettings(cookie_secure=False, operator_idle_s=60)
    got = ServiceSettings.from_env(admin_key="k", executor="thread", sessions=explicit).sessions
    assert got == explicit  # an explicit setting wins over the environment
    monkeypatch.setenv("DATAMARKET_COOKIE_SECURE", "0")
    assert ServiceSettings.from_env(admin_key="k", executor="thread").sessions.cookie_secure is False
    monkeypatch.setenv("DATAMARKET_COOKIE_SECURE", "maybe")
    with pytest.raises(ConfigurationError, match="cookie_secure"):
        ServiceSettings.from_env(admin_key="k", executor="thread")


# -- security headers on every answer under /portal ----------------------------------------------------
def test_every_portal_answer_has_the_security_headers(app: Any) -> None:
    anon = TestClient(app, base_url=BASE, follow_redirects=False)
    op, _ = sign_in(app, ADMIN)
    answers = {
        "JSON 404": op.get("/portal/no-such-page"),
        "JSON 404 anonymous": anon.get("/portal/nope/nope"),
        "405 PUT": op.put("/portal/login"),
        "405 DELETE": op.delete("/portal/"),
        "redirect to sign in": anon.get("/portal/"),
        "static": anon.get("/portal/static/portal.css"),
        "static 404": anon.get("/portal/static/nothing.js"),
        "page": op.get("/portal/"),
        "413": anon.post(
            "/portal/login", content=b"x" * (11 * 1024 * 1024), headers={"Content-Type": "text/plain"}
        ),
    }
    assert answers["JSON 404"].status_code == 404 and answers["405 PUT"].status_code == 405
    assert answers["redirect to sign in"].status_code == 303 and answers["413"].status_code == 413
    for what, r in answers.items():
        assert has_security_headers(r), (what, r.status_code, dict(r.headers))
    api = op.get("/health")  # the JSON API outside /portal is unchanged
    assert "content-security-policy" not in api.headers


def cleared_round(app: Any, admin: TestClient) -> int:
    """A cleared broker round, set up through the JSON API (two buyers, two contributors with data)."""
    mid = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}}).json()["id"]
    inputs = {
        "b1": ("bid", BID),
        "b2": ("bid", BID),
        "s1": ("cost", {"cost": 0.05}),
        "s2": ("cost", {"cost": 0.06}),
    }
    keys = {}
    for name, (kind, data) in inputs.items():
        keys[name] = admin.post("/participants", json={"name": name}).json()["api_key"]
        r = admin.post(
            f"/markets/{mid}/submissions",
            json={"kind": kind, "data": data},
            headers={"X-API-Key": keys[name]},
        )
        assert r.status_code == 201, r.text
    n_star = admin.get(f"/markets/{mid}/plan").json()["n_star"]
    rng = np.random.default_rng(0)
    for name in ("s1", "s2"):
        body = csv_bytes(rng.normal(2.0, 1.0, (n_star[name], 1)))
        r = admin.post(
            f"/markets/{mid}/datasets",
            params={"format": "csv"},
            content=body,
            headers={"X-API-Key": keys[name]},
        )
        assert r.status_code == 201, r.text
    r = admin.post(f"/markets/{mid}/rounds")
    assert r.status_code == 202, r.text
    assert wait_round(admin, r.json()["id"])["status"] == "cleared"  # type: ignore[arg-type]
    return int(r.json()["id"])


def test_round_figure_has_the_security_headers(db_url: str) -> None:  # noqa: F811
    app = make_app(db_url)
    with TestClient(app, base_url=BASE, headers={"X-API-Key": ADMIN}) as admin:
        rid = cleared_round(app, admin)
        op, _ = sign_in(app, ADMIN)
        svg = op.get(f"/portal/rounds/{rid}/figure.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert has_security_headers(svg), dict(svg.headers)


# -- the origin of state-changing requests ---------------------------------------------------------------
EVIL = "https://evil.example"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Referer": EVIL + "/attack.html"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["origin", "null-origin", "lookalike", "referer", "sec-fetch-cross-site", "sec-fetch-same-site"],
)
def test_cross_origin_posts_are_refused(app: Any, headers: dict[str, str]) -> None:
    from sqlalchemy import func, select

    from datamarket.ledger.models import Market, Participant, PortalSession

    op, csrf = sign_in(app, ADMIN)
    attempts = [
        ("/portal/participants", {"csrf": csrf, "name": "mallory"}),
        ("/portal/markets/new", {"csrf": csrf, "kind": "broker", "sigma": "1.0"}),
        ("/portal/logout", {"csrf": csrf}),
    ]
    for path, form in attempts:
        r = op.post(path, data=form, headers=headers)
        assert r.status_code == 403, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html") and "cross-origin" in r.text
        assert has_security_headers(r)
    # the sign-in form too (a login CSRF would sign the victim into the attacker's account)
    anon = TestClient(app, base_url=BASE, follow_redirects=False)
    page = anon.get("/portal/login")
    r = anon.post("/portal/login", data={"api_key": ADMIN, "csrf": csrf_of(page.text)}, headers=headers)
    assert r.status_code == 403 and "dm_portal=" not in r.headers.get("set-cookie", "")
    with app.state.service.db.read() as s:
        counts = [s.execute(select(func.count()).select_from(m)).scalar_one() for m in (Participant, Market)]
        sessions = s.execute(select(func.count()).select_from(PortalSession)).scalar_one()
    assert counts == [0, 0] and sessions == 1  # nothing stored, the session not logged out


def test_cross_origin_upload_is_refused_before_the_body_is_read(app: Any) -> None:
    op, csrf = sign_in(app, ADMIN)
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "sigma": "1.0"})
    mid = int(r.headers["location"].split("/")[3].split("?")[0])
    alice, t = sign_in(app, register(app, op, csrf, "alice"))
    r = alice.post(
        f"/portal/markets/{mid}/datasets",
        data={"csrf": t, "kind": "dataset"},
        files={"file": ("x.csv", b"x0\n1.0\n", "text/csv")},
        headers={"Origin": EVIL},
    )
    assert r.status_code == 403 and "cross-origin" in r.text


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser (or an old one): the CSRF token decides
        {"Origin": BASE},
        {"Referer": BASE + "/portal/participants"},
        {"Sec-Fetch-Site": "same-origin", "Origin": BASE},
        # a proxy that rewrites Host: the browser's own word on the origin decides
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://portal.example"},
    ],
    ids=["none", "origin", "referer", "sec-fetch", "sec-fetch-host-rewritten"],
)
def test_same_origin_posts_pass_and_still_need_the_csrf_token(app: Any, headers: dict[str, str]) -> None:
    op, csrf = sign_in(app, ADMIN)
    assert op.post("/portal/participants", data={"name": "eve"}, headers=headers).status_code == 403
    r = op.post("/portal/participants", data={"csrf": csrf, "name": "alice"}, headers=headers)
    assert r.status_code == 201, r.text
