"""Structured logs: request ids, formats, and nothing secret in them.

* A full broker round against a live ``datamarket serve`` (worker processes, logging at DEBUG in
  JSON) on SQLite and PostgreSQL: registrations (keys), bids and costs, uploads with distinctive
  values, a portal sign-in (session cookie), the clearing, every receipt, and a key put in a query
  string. Every line of the captured output is one JSON object; no API key, admin key, session or
  CSRF token, uploaded value or query string appears in it; the round opened with ``X-Request-ID``
  logs with that id in the service process, in its round thread and in the worker process that
  clears it.
* ``X-Request-ID``: a sane one is echoed, anything else replaced by a fresh id.
* The formatters: JSON fields, the human line, ``auto`` (human on a terminal), redaction.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from datamarket.core.errors import ConfigurationError
from datamarket.service.observability import logs
from tests.service.portal.test_views import csrf_of
from tests.service_support import ADMIN, Serve, csv_bytes, db_url, make_app, register, wait_round  # noqa: F401

REQUEST = "round-req.42:a/b=c+d"
# uploaded values no log may show: 12 significant digits, written as the CSV carries them
SECRET_VALUES = [2.71828182846 + k * 1.00000000001 for k in range(40)]


def _portal_sign_in(url: str, key: str) -> tuple[str, str]:
    """Sign in to the portal with ``key``; the session cookie and the page's CSRF token."""
    with httpx.Client(base_url=url, follow_redirects=False) as browser:
        page = browser.get("/portal/login")
        r = browser.post("/portal/login", data={"api_key": key, "csrf": csrf_of(page.text)})
        assert r.status_code == 303, r.text
        home = browser.get("/portal/")
        assert home.status_code == 200
        return str(browser.cookies.get("dm_portal")), csrf_of(home.text)


def _round(srv: Serve) -> dict[str, Any]:
    """A broker market of two buyers and two contributors, cleared; every secret it used."""
    admin = srv.admin
    mid = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}}).json()["id"]
    ids = {name: register(admin, name) for name in ("buyer_a", "buyer_b", "seller_x", "seller_y")}
    keys = {name: key for name, (_, key) in ids.items()}
    bids = {
        "buyer_a": {"valuation": "gaussian", "width": 0.5},
        "buyer_b": {"valuation": "gaussian", "width": 0.4},
    }
    for name, bid in bids.items():
        assert (
            srv.client(keys[name])
            .post(f"/markets/{mid}/submissions", json={"kind": "bid", "data": bid})
            .is_success
        )
    for name, cost in (("seller_x", 0.0517293), ("seller_y", 0.0618347)):
        body = {"kind": "cost", "data": {"cost": cost}}
        assert srv.client(keys[name]).post(f"/markets/{mid}/submissions", json=body).is_success
    values = iter(SECRET_VALUES)
    for name in ("seller_x", "seller_y"):
        c = srv.client(keys[name])
        n = c.get(f"/markets/{mid}/plan").json()["n_star"][name]
        body = csv_bytes(np.array([[next(values)] for _ in range(n)]))
        assert c.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body).status_code == 201
    opened = admin.post(f"/markets/{mid}/rounds", headers={"X-Request-ID": REQUEST})
    assert opened.status_code == 202 and opened.headers["x-request-id"] == REQUEST, opened.text
    rid = opened.json()["id"]
    assert wait_round(admin, rid)["status"] == "cleared"
    for name, (pid, key) in ids.items():
        assert srv.client(key).get(f"/rounds/{rid}/receipts/{pid}").status_code == 200, name
    assert httpx.get(f"{srv.url}/health", params={"api_key": keys["buyer_a"]}).status_code == 200
    session, csrf = _portal_sign_in(srv.url, keys["seller_x"])
    return {"round": rid, "keys": keys, "session": session, "csrf": csrf}


def test_a_full_round_logs_json_with_request_ids_and_no_secret(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    log_path = tmp_path / "serve.log"
    args = ["--executor", "process", "--workers", "1", "--log-format", "json", "--log-level", "debug"]
    args += ["--access-log"]
    srv = Serve(db_url, log_path, args).up()
    try:
        got = _round(srv)
        pid = srv.proc.pid
    finally:
        srv.stop()
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert {"ts", "level", "logger", "msg", "pid"} <= set(lines[0])
    secrets = [ADMIN, *got["keys"].values(), got["session"], got["csrf"]]
    secrets += [repr(v) for v in SECRET_VALUES] + ["0.0517293", "0.0618347", "api_key="]
    assert [s for s in secrets if s in text] == []
    assert not [x for x in lines if x["logger"] == "uvicorn.access"]  # uvicorn's writes query strings
    access = [x for x in lines if x["logger"] == "datamarket.access"]
    assert any(x["route"] == "/markets/{mid}/datasets" and x["status"] == 201 for x in access)
    assert all("?" not in x["path"] for x in access)
    mine = [x for x in lines if x.get("request_id") == REQUEST]
    assert all(x.get("round_id") in (None, got["round"]) for x in mine)
    where = {(x["pid"] == pid, x["logger"].rsplit(".", 1)[-1], x["thread"].split("_")[0]) for x in mine}
    assert (True, "access", "MainThread") in where  # the request itself
    assert (True, "runner", "round") in where  # the runner's thread clearing it
    assert any(not in_service and logger == "worker" for in_service, logger, _ in where), where


def test_x_request_id_is_echoed_when_sane_and_replaced_otherwise(tmp_path: Path) -> None:
    with TestClient(make_app(f"sqlite:///{tmp_path}/r.db")) as c:
        assert c.get("/health", headers={"X-Request-ID": "abc-1.2:3"}).headers["x-request-id"] == "abc-1.2:3"
        for bad in ("has space", "x" * 129, "semi;colon", "é".encode("latin-1")):
            echoed = c.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{32}", echoed), bad
        fresh = {c.get("/ready").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3 and c.get("/nope").headers["x-request-id"]


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("datamarket.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_formatters_context_and_redaction() -> None:
    redact = logs.Redactor(["admin-secret"])
    key = "dm_" + "A" * 43
    with logs.bound("req-1", 7):
        record = _record(route="/rounds/{rid}")
        logs.ContextFilter().filter(record)
    out = json.loads(logs.JsonFormatter(redact).format(record))
    assert (out["msg"], out["request_id"], out["round_id"], out["route"]) == (
        "hello world",
        "req-1",
        7,
        "/rounds/{rid}",
    )
    assert logs.context() == (None, None)  # the block reset them
    human = logs.HumanFormatter(redact).format(_record(request_id="req-2", round_id=None))
    assert human.endswith("datamarket.test [req=req-2] hello world") and " INFO " in human
    assert redact(f"a {key} and admin-secret b") == "a [redacted] and [redacted] b"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.resolve_format("auto", Terminal()) == "human"
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    with pytest.raises(ConfigurationError, match="log_format"):
        logs.resolve_format("xml", io.StringIO())


def test_configure_logging_writes_json_and_quiets_sqlalchemy() -> None:
    names = ["", "datamarket", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic", *logs.QUIET]
    loggers = {n: logging.getLogger(n) for n in names}
    saved = {n: (g.level, list(g.handlers), g.propagate) for n, g in loggers.items()}
    stream = io.StringIO()
    try:
        assert logs.configure_logging("auto", "debug", secrets=["s3cr3t-admin"], stream=stream) == "json"
        logging.getLogger("datamarket.x").debug("the key is s3cr3t-admin")
        logging.getLogger("sqlalchemy.engine").info("INSERT ... (secret parameters)")
        assert not logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)
    finally:
        for n, (level, handlers, propagate) in saved.items():
            logger = loggers[n]
            logger.setLevel(level)
            logger.propagate = propagate
            for h in list(logger.handlers):
                logger.removeHandler(h)
            for h in handlers:
                logger.addHandler(h)
        logging.captureWarnings(False)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["the key is [redacted]"]


def test_observability_settings_from_environment_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from datamarket.service.config import LOG_FORMAT_ENV, LOG_LEVEL_ENV, ServiceSettings

    monkeypatch.setenv(LOG_FORMAT_ENV, "human")
    monkeypatch.setenv(LOG_LEVEL_ENV, "debug")
    s = ServiceSettings.from_env(admin_key="k")
    observed = (s.log_format, s.log_level, s.access_log, s.metrics_port, s.drain_s)
    assert observed == ("human", "debug", False, None, 5.0)
    assert ServiceSettings.from_env(log_format="json").log_format == "json"  # an option beats the environment
    for bad, field in (
        ({"log_format": "xml"}, "log_format"),
        ({"log_level": "trace"}, "log_level"),
        ({"metrics_port": 0}, "metrics_port"),
        ({"drain_s": -1.0}, "drain_s"),
    ):
        with pytest.raises(ConfigurationError, match=f"^{field}: "):
            ServiceSettings(**bad)  # type: ignore[arg-type]
