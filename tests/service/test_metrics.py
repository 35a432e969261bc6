"""Prometheus metrics, scraped from live ``datamarket serve`` processes (fresh processes, so that the
counts are exactly this test's), on SQLite and PostgreSQL.

* One broker round through the API: ``/metrics`` (admin key) shows every metric the issue names and
  counts the round (``datamarket_rounds_total{kind="broker",status="cleared"} 1.0``), the requests by
  route template (never a raw id), the uploads' bytes and refusals by reason, the ledger entries
  booked, the verifications (one of a tampered ledger fails), the unknown keys and the throttle's
  429s; a participant gets 403 and an anonymous client 401; ``--metrics-port`` serves the same
  without a key.
* Two processes on one database: each counts the rounds its workers cleared (``claimed_by``) and the
  requests it answered, and their sum is the whole.
* ``deploy/``: every metric the Grafana dashboard and the Prometheus rules use exists in a scrape.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from datamarket.ledger import make_engine, upgrade
from tests.service_support import (
    ADMIN,
    BACKENDS,
    Serve,
    csv_bytes,
    db_url,  # noqa: F401  (fixture)
    free_port,
    fresh_database,
    make_app,
    setup_broker,
    wait_round,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMED = (  # the metrics the issue names, as their series appear in a scrape
    "datamarket_http_requests_total",
    "datamarket_http_request_duration_seconds_bucket",
    "datamarket_rounds_total",
    "datamarket_round_duration_seconds_bucket",
    "datamarket_lease_expiries_total",
    "datamarket_lease_takeovers_total",
    "datamarket_upload_bytes_total",
    "datamarket_upload_rejections_total",
    "datamarket_ledger_entries_total",
    "datamarket_ledger_verifications_total",
    "datamarket_throttle_rejections_total",
)


def samples(text_: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text_)
        for s in family.samples
    }


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape[(name, frozenset(labels.items()))]


def scrape(srv: Serve) -> tuple[str, dict[Any, float]]:
    r = srv.admin.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return r.text, samples(r.text)


def _uploads(srv: Serve, market: int, key: str) -> None:
    """A refused upload of each of two classes: too large (413) and unreadable (422)."""
    with srv.client(key) as c:
        big = c.post(f"/markets/{market}/datasets", params={"format": "csv"}, content=b"0" * (11 << 20))
        assert big.status_code == 413, big.text
        bad = c.post(f"/markets/{market}/datasets", params={"format": "csv"}, content=b"x0\nnot a number\n")
        assert bad.status_code == 422, bad.text


def test_one_round_through_the_api_shows_every_metric_and_counts_it(
    db_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    mport = free_port()
    args = ["--executor", "thread", "--auth-failures", "2", "--metrics-port", str(mport)]
    srv = Serve(db_url, tmp_path / "serve.log", args).up()
    try:
        world = setup_broker(srv, srv.admin)
        mid, seller = world["market"], world["clients"]["seller_x"]
        _uploads(srv, mid, seller.headers["X-API-Key"])
        r = srv.admin.post(f"/markets/{mid}/rounds", json={"seed": 1})
        assert r.status_code == 202, r.text
        assert wait_round(srv.admin, r.json()["id"])["status"] == "cleared"
        assert srv.admin.get("/ledger/verify").json()["ok"]
        assert seller.get("/metrics").status_code == 403
        assert httpx.get(f"{srv.url}/metrics").status_code == 401
        raw, got = scrape(srv)

        assert 'datamarket_rounds_total{kind="broker",status="cleared"} 1.0' in raw.splitlines()
        assert {name for name, _ in got} >= set(NAMED)
        assert value(got, "datamarket_round_duration_seconds_count", kind="broker") == 1
        assert value(got, "datamarket_rounds_total", kind="broker", status="failed") == 0
        sent = {"route": "/markets/{mid}/submissions", "method": "POST", "status": "201"}
        assert value(got, "datamarket_http_requests_total", **sent) == 4  # two bids, two costs
        routes = {dict(labels)["route"] for name, labels in got if name == "datamarket_http_requests_total"}
        assert "/rounds/{rid}" in routes and not [r for r in routes if re.search(r"\d", r)], routes
        stored = srv.admin.get(f"/markets/{mid}/submissions").json()
        upload_bytes = sum(s["size_bytes"] or 0 for s in stored if s["kind"] == "dataset")
        assert upload_bytes > 0 and value(got, "datamarket_upload_bytes_total") == upload_bytes
        for reason, n in (("too_large", 1), ("unreadable", 1), ("busy", 0)):
            assert value(got, "datamarket_upload_rejections_total", reason=reason) == n, reason
        entries = srv.admin.get("/ledger/entries").json()["entries"]
        assert value(got, "datamarket_ledger_entries_total") == len(entries) > 0
        assert value(got, "datamarket_ledger_verifications_total", scope="ledger", result="ok") == 1
        assert value(got, "datamarket_lease_expiries_total") == 0
        assert value(got, "datamarket_lease_takeovers_total") == 0
        info = {dict(labels)["instance_id"] for name, labels in got if name == "datamarket_process_info"}
        assert info == {srv.instance}

        _tamper_and_guess(srv, db_url)
        bare = httpx.get(f"http://127.0.0.1:{mport}/metrics")  # the separate bind: no key
        assert bare.status_code == 200, bare.text
        after = samples(bare.text)
        assert value(after, "datamarket_rounds_total", kind="broker", status="cleared") == 1
        assert value(after, "datamarket_ledger_verifications_total", scope="ledger", result="failed") == 1
        assert value(after, "datamarket_auth_failures_total") == 2
        assert value(after, "datamarket_throttle_rejections_total") == 1
    finally:
        srv.stop()


def _tamper_and_guess(srv: Serve, url: str) -> None:
    """One booked amount edited in the database (the next verification fails), then three unknown
    keys from one address with ``--auth-failures 2``: 401, 401, 429."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE seq = 1"))
    finally:
        engine.dispose()
    assert srv.admin.get("/ledger/verify").json()["ok"] is False
    codes = [srv.client(f"dm_wrong_{k}").get("/participants/me").status_code for k in range(3)]
    assert codes == [401, 401, 429]


SERVE_ARGS = ["--executor", "thread", "--workers", "1", "--poll", "0.1"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_on_one_database_each_count_their_own_work(backend: str, tmp_path: Path) -> None:
    procs: list[Serve] = []
    with fresh_database(backend, tmp_path) as url:
        try:
            if backend == "sqlite":  # as in the cluster tests: migrate before the processes start
                engine = make_engine(url)
                upgrade(engine)
                engine.dispose()
            a = Serve(url, tmp_path / "a.log", SERVE_ARGS, {**os.environ})
            b = Serve(url, tmp_path / "b.log", SERVE_ARGS, {**os.environ})
            procs += [a.up(), b.up()]
            rounds = []
            for k in range(4):  # markets set up and rounds opened through a and b in turn
                via = procs[k % 2]
                mid = setup_broker(via, via.admin, seed=k)["market"]
                r = via.admin.post(f"/markets/{mid}/rounds")
                assert r.status_code == 202, r.text
                rounds.append(r.json()["id"])
            done = [wait_round(a.admin, rid) for rid in rounds]
            assert [d["status"] for d in done] == ["cleared"] * 4
            entries = len(a.admin.get("/ledger/entries").json()["entries"])
            scrapes = {p.instance: scrape(p)[1] for p in procs}
            for p in procs:
                mine = sum(d["claimed_by"] == p.instance for d in done)
                got = scrapes[p.instance]
                assert value(got, "datamarket_rounds_total", kind="broker", status="cleared") == mine
                opened = {"route": "/markets/{mid}/rounds", "method": "POST", "status": "202"}
                assert value(got, "datamarket_http_requests_total", **opened) == 2
            total = sum(value(s, "datamarket_ledger_entries_total") for s in scrapes.values())
            assert total == entries > 0
        finally:
            for p in procs:
                p.stop()


def deploy_metric_names() -> set[str]:
    """Every ``datamarket_*`` name the files of ``deploy/`` use (dashboard queries, rules)."""
    names: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            names |= set(re.findall(r"\bdatamarket_[a-z_]+[a-z]", path.read_text()))
    return names


def test_every_metric_of_the_deploy_examples_exists_in_a_scrape(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "datamarket.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 8
    import yaml

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert rules["groups"][0]["rules"]
    with TestClient(make_app(f"sqlite:///{tmp_path}/m.db"), headers={"X-API-Key": ADMIN}) as c:
        c.get("/health")
        body = c.get("/metrics").text
    scraped = {name for name, _ in samples(body)}
    used = deploy_metric_names()
    assert {n for n in NAMED if n.endswith("_total")} <= used  # the examples use the named metrics
    assert sorted(used - scraped) == []


def test_metrics_and_ready_are_in_the_openapi_schema(tmp_path: Path) -> None:
    with TestClient(make_app(f"sqlite:///{tmp_path}/o.db")) as c:
        paths = c.get("/openapi.json").json()["paths"]
        anonymous = c.get("/metrics")
    assert {"401", "403", "429"} <= set(paths["/metrics"]["get"]["responses"])
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert {"200", "503"} <= set(paths["/ready"]["get"]["responses"])
    assert anonymous.status_code == 401


def test_upload_body_bytes_count_only_on_success(tmp_path: Path) -> None:
    """In process (the registry is shared with the other tests here, so differences): an accepted
    upload adds its body's bytes, a refused one a rejection of its class and no bytes."""
    from datamarket.service.observability.metrics import REGISTRY

    def counts() -> tuple[float, float]:
        unreadable = {"reason": "unreadable"}
        return (
            REGISTRY.get_sample_value("datamarket_upload_bytes_total") or 0.0,
            REGISTRY.get_sample_value("datamarket_upload_rejections_total", unreadable) or 0.0,
        )

    params = {"characteristic": "v", "c": 2.0, "model": {"kind": "logreg", "max_iter": 50}}
    with TestClient(make_app(f"sqlite:///{tmp_path}/u.db"), headers={"X-API-Key": ADMIN}) as c:
        mid = c.post("/markets", json={"kind": "collaborative", "params": params}).json()["id"]
        key = {"X-API-Key": c.post("/participants", json={"name": "p"}).json()["api_key"]}
        body = csv_bytes(np.ones((6, 2)), np.arange(6) % 2)
        before = counts()
        ok = c.post(f"/markets/{mid}/datasets?format=csv", content=body, headers=key)
        assert ok.status_code == 201, ok.text
        bad = c.post(f"/markets/{mid}/datasets?format=csv", content=b"x\n?\n", headers=key)
        assert bad.status_code == 422, bad.text
        after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (len(body), 1)
