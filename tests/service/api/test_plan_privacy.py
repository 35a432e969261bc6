"""The market plan through the HTTP API, on SQLite and PostgreSQL: a participant
sees its own row and aggregates, never another participant's name or row; the operator sees it all."""

from __future__ import annotations

import json

from tests import service_support
from tests.service_support import BROKER_BIDS, BROKER_COSTS, register, setup_broker

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def test_plan_shows_a_participant_its_row_and_aggregates(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid, cl = m["market"], m["clients"]
        full = admin.get(f"/markets/{mid}/plan").json()
        names = {n: f"{n}_{mid}" for n in (*BROKER_BIDS, *BROKER_COSTS)}
        assert sorted(full["buyers"] + full["contributors"]) == sorted(names.values())
        for short, me in names.items():
            seen = cl[short].get(f"/markets/{mid}/plan").json()
            text = json.dumps(seen)
            assert not [n for n in names.values() if n != me and n in text], (me, seen)
            assert seen["curve"] == full["curve"] and seen["n_plus"] == full["n_plus"]
            agg = seen["aggregates"]
            assert agg["counts"] == {
                "buyers": 2,
                "contributors": 2,
                "n_star": 2,
                "allocations": 2,
                "prices": 2,
            }
            assert agg["totals"]["prices"] == sum(full["prices"])
            assert agg["totals"]["n_star"] == sum(full["n_star"].values())
            if short in BROKER_BIDS:  # a buyer: its posted price and allocation
                j = full["buyers"].index(me)
                assert seen["buyers"] == [me] and seen["contributors"] == [] and seen["n_star"] == {}
                assert (seen["prices"], seen["allocations"]) == (
                    [full["prices"][j]],
                    [full["allocations"][j]],
                )
            else:  # a contributor: its N*_i
                assert seen["contributors"] == [me] and seen["buyers"] == [] and seen["prices"] == []
                assert seen["n_star"] == {me: full["n_star"][me]}
                assert {seen["contributor_1"], seen["contributor_2"]} <= {me, None}
        # someone who took no part sees the aggregates and no row at all
        _, key = register(admin, f"outsider_{mid}")
        with live.client(key) as out:
            seen = out.get(f"/markets/{mid}/plan").json()
        assert not [n for n in names.values() if n in json.dumps(seen)]
        assert seen["buyers"] == [] and seen["n_star"] == {} and seen["aggregates"]["counts"]["buyers"] == 2
