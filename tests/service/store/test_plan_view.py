"""The plan as the store answers it and the submissions it supersedes, on SQLite and PostgreSQL:
a participant's next steps, the operator's table, the upload quota of the plan (``plan_quota``) and
a new submission excluding its owner's earlier waiting one of its kind ("superseded by #N, ignored").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
from sqlalchemy import select

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger.models import Round, Submission
from datamarket.service.adapters import Adapter
from datamarket.service.adapters.broker import ADAPTER as BROKER
from datamarket.service.adapters.broker import BrokerAdapter
from datamarket.service.adapters.plans import default_next_steps
from datamarket.service.auth import Principal
from datamarket.service.state import ServiceState
from datamarket.service.store import markets, participants, rounds, submissions
from datamarket.service.store.errors import NotReady
from tests.service_support import csv_bytes, db_url, make_app  # noqa: F401  (fixture)

OPERATOR = Principal(True)


class CumulativeBroker(BrokerAdapter):
    """The broker, reading every waiting cost (for the test of ``cumulative_kinds``)."""

    kind = "broker"
    cumulative_kinds: ClassVar[frozenset[str]] = frozenset({"cost"})


class NamingBroker(BrokerAdapter):
    """The broker without its own steps, whose plan is never determined and names a participant."""

    kind = "broker"
    next_steps = None  # type: ignore[assignment]

    def plan(self, params: Any, inputs: Any) -> dict[str, Any]:
        late = max((i.participant for i in inputs), default="nobody")
        raise InvalidMarketError(f"inputs.{late}", f"{late} has not reported yet")


@dataclass
class World:
    st: ServiceState
    mid: int
    who: dict[str, Principal]
    adapters: dict[str, Adapter]

    def submit(self, name: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        st = self.st
        return submissions.submit_json(st.db, self.adapters, st.limits, self.who[name], self.mid, kind, data)[
            0
        ]

    def upload(self, name: str, rows: int, key: str | None = None) -> dict[str, Any]:
        body = csv_bytes(np.random.default_rng(rows).normal(2.0, 1.0, (rows, 1)))
        up = submissions.Upload(body, "dataset", "csv", filename=f"{rows}.csv")
        st = self.st
        return submissions.upload_dataset(st.db, self.adapters, st.limits, self.who[name], self.mid, up, key)[
            0
        ]

    def plan(self, name: str | None = None) -> dict[str, Any]:
        who = OPERATOR if name is None else self.who[name]
        return markets.plan(self.st.db, self.adapters, self.st.limits, self.mid, who)

    def page(self, name: str | None = None) -> dict[str, Any]:
        who = OPERATOR if name is None else self.who[name]
        return markets.plan_page(self.st.db, self.adapters, self.st.limits, self.mid, who)

    def subs(self, name: str | None = None) -> dict[int, dict[str, Any]]:
        who = OPERATOR if name is None else self.who[name]
        return {x["id"]: x for x in submissions.list_submissions(self.st.db, who, self.mid)}


def world(url: str, adapter: Adapter = BROKER) -> World:
    app = make_app(url)
    st: ServiceState = app.state.service
    adapters = {**st.adapters, "broker": adapter}
    mid = markets.create_market(st.db, adapters, "broker", "m", {"sigma": 1.0})["id"]
    who = {}
    for name in ("buyer_a", "buyer_b", "seller_x", "seller_y"):
        p = participants.register(st.db, name)
        who[name] = Principal(False, p["id"], name)
    return World(st, mid, who, adapters)


@pytest.fixture
def w(db_url: str) -> Iterator[World]:  # noqa: F811
    yield world(db_url)


def bids_and_costs(w: World) -> None:
    for name in ("buyer_a", "buyer_b"):
        w.submit(name, "bid", {"valuation": "gaussian", "width": 0.5})
    w.submit("seller_x", "cost", {"cost": 0.05})
    w.submit("seller_y", "cost", {"cost": 0.06})


def test_next_steps_follow_the_participant_through_the_round(w: World) -> None:
    first = w.page("seller_x")
    assert first["plan"] is None and "bid" in first["problem"]
    assert any("report a cost before uploading data" in s for s in first["next_steps"])
    w.submit("seller_x", "cost", {"cost": 0.05})
    assert "not determined yet" in w.page("seller_x")["next_steps"][0]
    bids_and_costs(w)
    n = w.plan()["n_star"]["seller_x"]
    seen = w.plan("seller_x")
    assert seen["next_steps"] == [
        f"Upload exactly {n} data points (submission kind `dataset`, one numeric column)."
    ]
    assert w.plan("buyer_a")["next_steps"] == [
        "Your bid is stored; wait for the operator to clear the round."
    ]
    w.upload("seller_x", n)
    assert w.plan("seller_x")["next_steps"][-1] == "Wait for the operator to clear the round."
    assert "next_steps" not in w.plan()  # the operator's plan is the adapter's, as it is


def test_the_default_steps_come_from_kinds_and_quota(db_url: str) -> None:  # noqa: F811
    w = world(db_url, NamingBroker())
    steps = w.page("seller_x")["next_steps"]
    assert steps[:3] == [f"Submit `{k}` ({t})." for k, t in BROKER.submission_kinds.items()]
    w.submit("seller_x", "cost", {"cost": 0.05})
    steps = w.page("seller_x")["next_steps"]
    assert steps[0].startswith("Your `cost` is stored") and steps[-1].startswith("Wait until the inputs")
    # with a determined plan, the quota of the plan against the latest upload
    plan = {"n_star": {"seller_x": 4}}
    assert default_next_steps(BROKER, plan, "seller_x", [])[0].startswith("Upload exactly 4 data points")


def test_a_problem_with_the_plan_names_no_other_participant(db_url: str) -> None:  # noqa: F811
    w = world(db_url, NamingBroker())
    w.submit("seller_x", "cost", {"cost": 0.05})
    w.submit("seller_y", "cost", {"cost": 0.06})
    assert w.page()["problem"] == "inputs.seller_y: seller_y has not reported yet"  # the operator's
    seen = w.page("seller_x")
    assert seen["problem"] == "inputs.another participant: another participant has not reported yet"
    with pytest.raises(NotReady) as exc:
        w.plan("seller_x")
    assert "seller_y" not in str(exc.value) and "seller_y" not in str(exc.value.field)
    assert "seller_y" not in str(seen["next_steps"])


def test_the_operator_table_has_a_row_per_participant_and_the_participant_its_own(w: World) -> None:
    bids_and_costs(w)
    full, table = w.plan(), w.page()["table"]
    assert [r["name"] for r in table["rows"]] == ["buyer_a", "buyer_b", "seller_x", "seller_y"]
    assert table["roles"] == ["buyers", "contributors"]
    assert table["columns"] == ["allocations", "prices", "n_star"]
    assert table["rows"][1]["values"] == {"allocations": full["allocations"][1], "prices": full["prices"][1]}
    n_x = full["n_star"]["seller_x"]
    assert table["rows"][2] == {"name": "seller_x", "roles": ["contributors"], "values": {"n_star": n_x}}
    assert set(table["other"]) == {
        "n_plus",
        "curve",
        "contributor_1",
        "contributor_2",
        "w",
        "opt_profit",
        "split",
    }
    mine = w.page("buyer_b")
    assert mine["table"]["rows"] == [
        {
            "name": "buyer_b",
            "roles": ["buyers"],
            "values": {"allocations": full["allocations"][1], "prices": full["prices"][1]},
        }
    ]
    assert mine["table"]["other"]["contributor_1"] is None  # another participant's name, scrubbed
    assert "n_star" not in mine["table"]["other"] and "contributors" not in mine["table"]["other"]
    assert mine["plan"]["next_steps"] == mine["next_steps"]


def test_an_upload_of_another_size_than_the_plan_asks_is_refused(w: World) -> None:
    w.submit("seller_x", "cost", {"cost": 0.05})
    early = w.upload("seller_x", 3)  # the plan is not determined: nothing to compare with
    bids_and_costs(w)
    n = w.plan()["n_star"]["seller_x"]
    assert n != 3
    with pytest.raises(NotReady) as exc:
        w.upload("seller_x", 3)
    assert exc.value.message == f"the plan asks you for {n} points; this file has 3"
    assert exc.value.field == "file"
    assert len(w.subs("seller_x")) == 3  # nothing stored: two costs and the early upload
    # the steps say that the early upload does not fit, then the upload of the right size supersedes it
    assert w.plan("seller_x")["next_steps"][0].startswith(f"Your upload has 3 points, the plan asks for {n}.")
    late = w.upload("seller_x", n)
    subs = w.subs("seller_x")
    assert subs[early["id"]]["excluded_reason"] == f"superseded by #{late['id']}, ignored"
    assert subs[early["id"]]["superseded_by"] == late["id"]
    assert subs[late["id"]]["superseded_by"] is None and subs[late["id"]]["excluded_at"] is None


def test_a_new_submission_supersedes_the_waiting_one_of_its_kind(w: World) -> None:
    one = w.submit("seller_x", "cost", {"cost": 0.05})
    two = w.submit("seller_x", "cost", {"cost": 0.07})
    other = w.submit("seller_y", "cost", {"cost": 0.06})  # another participant's: untouched
    subs = w.subs()
    assert subs[one["id"]]["superseded_by"] == two["id"] and subs[one["id"]]["excluded_at"] is not None
    assert subs[two["id"]]["excluded_at"] is None and subs[other["id"]]["excluded_at"] is None
    got = submissions.get_submission(w.st.db, w.who["seller_x"], one["id"])
    assert got["excluded_reason"] == f"superseded by #{two['id']}, ignored"
    # an idempotent replay supersedes nothing more; a withdrawn submission is not superseded again
    st, me = w.st, w.who["seller_x"]
    three, _ = submissions.submit_json(st.db, w.adapters, st.limits, me, w.mid, "cost", {"cost": 0.08}, "k")
    again, created = submissions.submit_json(
        st.db, w.adapters, st.limits, me, w.mid, "cost", {"cost": 0.08}, "k"
    )
    assert not created and again["id"] == three["id"] and w.subs()[three["id"]]["excluded_at"] is None
    submissions.withdraw(st.db, me, three["id"])
    w.submit("seller_x", "cost", {"cost": 0.09})
    assert w.subs()[three["id"]]["excluded_reason"] == "withdrawn by its owner"


def test_an_input_of_a_round_in_progress_is_not_superseded(w: World) -> None:
    one = w.submit("seller_x", "cost", {"cost": 0.05})
    with w.st.db.write() as s:
        s.add(Round(market_id=w.mid, status="pending", input_ids=[one["id"]]))
    two = w.submit("seller_x", "cost", {"cost": 0.07})
    subs = w.subs()
    assert subs[one["id"]]["excluded_at"] is None and subs[two["id"]]["excluded_at"] is None


def test_cumulative_kinds_are_never_superseded(db_url: str) -> None:  # noqa: F811
    w = world(db_url, CumulativeBroker())
    one = w.submit("seller_x", "cost", {"cost": 0.05})
    w.submit("seller_x", "cost", {"cost": 0.07})
    assert w.subs()[one["id"]]["excluded_at"] is None
    assert w.page("seller_x")["next_steps"]  # the broker's own steps still apply


def test_three_then_the_planned_points_the_round_uses_the_latest_only(w: World) -> None:
    """The issue's case: a contributor uploads 3 points before the plan is determined, then the
    number it asks for (here 5): the 3 are stated as superseded and no round reads them."""
    w.submit("seller_x", "cost", {"cost": 0.05})
    three = w.upload("seller_x", 3)
    bids_and_costs(w)
    n_star = w.plan()["n_star"]
    assert n_star["seller_x"] != 3
    seven = w.upload("seller_x", n_star["seller_x"])
    w.upload("seller_y", n_star["seller_y"])
    st = w.st
    rnd, _ = rounds.open_round(st.db, w.adapters, st.limits, OPERATOR, w.mid, seed=1)
    assert three["id"] not in rnd["input_ids"] and seven["id"] in rnd["input_ids"]
    with st.db.read() as s:
        row = s.execute(select(Submission).where(Submission.id == three["id"])).scalar_one()
        assert row.excluded_reason == f"superseded by #{seven['id']}, ignored"
