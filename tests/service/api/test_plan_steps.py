"""The plan's next steps and the upload quota through the HTTP API, on SQLite and PostgreSQL: a
participant's plan lists what it should do next; an upload of another size than the plan asks is a
409 naming both numbers; a submission replaced by a later one of its kind says so
(``superseded_by``), and the round reads the latest only (the issue's "3 then 7 uploads")."""

from __future__ import annotations

import numpy as np

from tests import service_support
from tests.service_support import BROKER_BIDS, BROKER_COSTS, csv_bytes, register, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def points(n: int) -> bytes:
    return csv_bytes(np.random.default_rng(n).normal(2.0, 1.0, (n, 1)))


def test_three_then_the_planned_points_over_http(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}}).json()["id"]
        cl = {n: live.client(register(admin, n)[1]) for n in (*BROKER_BIDS, *BROKER_COSTS)}
        x = cl["seller_x"]
        assert x.get(f"/markets/{mid}/plan").status_code == 409  # not determined: no steps to give
        x.post(
            f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": BROKER_COSTS["seller_x"]}}
        )
        early = x.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=points(3))
        assert early.status_code == 201, early.text  # the plan is not determined: stored
        for name, bid in BROKER_BIDS.items():
            cl[name].post(f"/markets/{mid}/submissions", json={"kind": "bid", "data": bid})
        cl["seller_y"].post(
            f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": BROKER_COSTS["seller_y"]}}
        )
        full = admin.get(f"/markets/{mid}/plan").json()
        assert "next_steps" not in full
        n = full["n_star"]["seller_x"]
        assert n != 3
        seen = x.get(f"/markets/{mid}/plan").json()
        assert seen["next_steps"] == [
            f"Your upload has 3 points, the plan asks for {n}. Upload exactly {n} data points "
            "(submission kind `dataset`, one numeric column): it replaces it."
        ]
        buyer = cl["buyer_a"].get(f"/markets/{mid}/plan").json()
        assert buyer["next_steps"] == ["Your bid is stored; wait for the operator to clear the round."]
        refused = x.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=points(3))
        assert refused.status_code == 409
        assert refused.json() == {
            "detail": f"the plan asks you for {n} points; this file has 3",
            "field": "file",
        }
        late = x.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=points(n)).json()
        y = full["n_star"]["seller_y"]
        assert (
            cl["seller_y"]
            .post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=points(y))
            .status_code
            == 201
        )
        old = x.get(f"/submissions/{early.json()['id']}").json()
        assert old["superseded_by"] == late["id"]
        assert old["excluded_reason"] == f"superseded by #{late['id']}, ignored"
        for c in (x, admin):
            listed = {s["id"]: s for s in c.get(f"/markets/{mid}/submissions").json()}
            assert (
                listed[old["id"]]["superseded_by"] == late["id"]
                and listed[late["id"]]["superseded_by"] is None
            )
        assert (
            x.get(f"/markets/{mid}/plan").json()["next_steps"][-1]
            == "Wait for the operator to clear the round."
        )
        rnd = admin.post(f"/markets/{mid}/rounds", json={"seed": 3}).json()
        done = wait_round(admin, rnd["id"])
        assert done["status"] == "cleared", done
        assert late["id"] in done["input_ids"] and old["id"] not in done["input_ids"]
        schema = admin.get("/openapi.json").json()
        assert "superseded_by" in schema["components"]["schemas"]["SubmissionOut"]["properties"]
        assert "next_steps" in schema["paths"]["/markets/{mid}/plan"]["get"]["description"]
        for c in cl.values():
            c.close()
