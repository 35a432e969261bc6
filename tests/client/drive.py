"""Markets of every family set up through :mod:`datamarket.client` (helpers, no tests): the operator
creates the market and registers the participants; each participant submits through its own client,
with the input models of :mod:`datamarket.scenarios.inputs` and every kind of dataset the client
takes (numpy arrays, DataFrames, CSV files, bytes, Parquet). The inputs are those of
tests/service/api/test_rounds_of_every_kind.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from datamarket.client import Client, MarketOut
from datamarket.scenarios.inputs import (
    balanced_market,
    broker,
    collaborative,
    competing_buyers,
    realtime_market,
    truthful_payments,
)
from tests.service_support import csv_bytes

Setup = Callable[[Client, Path], tuple[MarketOut, dict[str, Client]]]


def join(op: Client, market: MarketOut, names: list[str]) -> dict[str, Client]:
    """Register ``names`` (suffixed with the market's id: names are unique per service); one client each."""
    return {n: op.participant(op.register_participant(f"{n}_{market.id}")) for n in names}


def broker_market(op: Client, tmp: Path, kind: str = "broker") -> tuple[MarketOut, dict[str, Client]]:
    """Two buyers bid, two contributors report costs, read their N*_i and upload that many points
    (``kind``: the broker's, or a test adapter wrapping it)."""
    market = op.create_market(kind, broker.Params(sigma=1.0), name="mean estimation")
    cl = join(op, market, ["buyer_a", "buyer_b", "seller_x", "seller_y"])
    cl["buyer_a"].submit(market, broker.Bid(valuation="gaussian", width=0.5))
    cl["buyer_b"].submit(market, {"valuation": "threshold", "width": 0.4, "scale": 0.9}, "bid")
    cl["seller_x"].submit(market, broker.Cost(cost=0.05))
    cl["seller_y"].submit(market, broker.Cost(cost=0.06))
    rng = np.random.default_rng(0)
    for name in ("seller_x", "seller_y"):
        plan = cl[name].get_plan(market)
        n = plan["n_star"][f"{name}_{market.id}"]
        assert plan["next_steps"] and set(plan["n_star"]) == {f"{name}_{market.id}"}  # its own row only
        if n:
            cl[name].upload(market, rng.normal(2.0, 1.0, n))  # a 1-d array: one feature (NPZ)
    return market, cl


def blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.arange(n) % 2
    return rng.normal(0.0, 0.7, (n, 2)) + y[:, None] * 1.5, y


def collaborative_market(op: Client, tmp: Path) -> tuple[MarketOut, dict[str, Client]]:
    """Three parties upload labelled data as DataFrames (CSV, Parquet, NPZ); the first the task too."""
    params = collaborative.Params(characteristic="v", c=2.0, model={"kind": "logreg", "max_iter": 50})
    market = op.create_market("collaborative", params)
    cl = join(op, market, ["party0", "party1", "party2"])
    rng = np.random.default_rng(1)
    for k, (name, fmt) in enumerate(zip(cl, ("csv", "parquet", "npz"), strict=True)):
        x, y = blobs(rng, 8 + 6 * k)
        frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1]})
        cl[name].upload(market, frame, labels=y, format=fmt)
    x, y = blobs(rng, 40)
    cl["party0"].upload(market, x, labels=y, kind="task")
    return market, cl


def truthful_payments_market(op: Client, tmp: Path) -> tuple[MarketOut, dict[str, Client]]:
    """Two buyers post tasks, three sellers upload data (CSV files) and report costs."""
    market = op.create_market("truthful_payments", truthful_payments.Params(rule="myerson"))
    cl = join(op, market, ["b1", "b2", "s1", "s2", "s3"])
    cl["b1"].submit(market, truthful_payments.Task(target=[1.0, 0.5]))
    cl["b2"].submit(market, truthful_payments.Task(target=[0.2, 1.0]))
    rng = np.random.default_rng(3)
    for k, name in enumerate(("s1", "s2", "s3")):
        path = tmp / f"{name}_{market.id}.csv"
        path.write_bytes(csv_bytes(rng.normal([1.0, 0.5], 1.0 + k, (10 + 5 * k, 2))))
        cl[name].upload(market, path)
        cl[name].submit(market, truthful_payments.Cost(cost=1.0 + k))
    return market, cl


def balanced_market_market(op: Client, tmp: Path) -> tuple[MarketOut, dict[str, Client]]:
    """Two sellers (data with labels and groups, per-group costs), two buyers (test sets, bids)."""
    market = op.create_market("balanced_market", balanced_market.Params(groups=[0, 1]))
    cl = join(op, market, ["s1", "s2", "b1", "b2"])
    rng = np.random.default_rng(5)

    def data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y, g = np.arange(n) % 2, (np.arange(n) // 2) % 2
        return rng.normal(0, 1, (n, 2)) + y[:, None] * 1.5, y, g

    for name in ("s1", "s2"):
        x, y, g = data(16)
        cl[name].upload(market, x, labels=y, groups=g)
        cl[name].submit(market, balanced_market.Cost(costs=[0.1, 0.2]))
    for k, name in enumerate(("b1", "b2")):
        x, y, g = data(16)
        cl[name].upload(market, csv_bytes(x, y, g), kind="task", format="csv")
        cl[name].submit(market, balanced_market.Bid(values=[1.0 + k, 0.5]))
    return market, cl


def competing_buyers_market(op: Client, tmp: Path) -> tuple[MarketOut, dict[str, Client]]:
    """Two sources, two estimators (JSON submissions only)."""
    market = op.create_market("competing_buyers", competing_buyers.Params(competition=0.0))
    cl = join(op, market, ["src1", "src2", "buyer1", "buyer2"])
    cl["src1"].submit(market, competing_buyers.Source(location=0.0, effort_alpha=1.0))
    cl["src2"].submit(market, competing_buyers.Source(location=1.0))
    cl["buyer1"].submit(market, competing_buyers.Estimator(degree=1))
    cl["buyer2"].submit(market, competing_buyers.Estimator(degree=1, low=-1.0, high=1.0, eta=1.0))
    return market, cl


def realtime_market_market(op: Client, tmp: Path) -> tuple[MarketOut, dict[str, Client]]:
    """Three sellers upload a feature of scikit-learn's diabetes data each (an ndarray, a DataFrame,
    a CSV file); two buyers bid (answered at once, the first round opens by itself); the caller opens
    no round: :func:`wait_for_booking` follows the automatic ones."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x, y = x[:120], (y[:120] - y[:120].mean()) / y[:120].std()
    params = realtime_market.Params(horizon="doubling", levels=6, rule="pd_a", max_bid=2.0)
    market = op.create_market("realtime_market", params, name="diabetes features")
    cl = join(op, market, ["bmi", "bp", "s5", "clinic_a", "clinic_b"])
    cl["bmi"].upload(market, x[:, 2], kind="stream")
    cl["bp"].upload(market, pd.DataFrame({"bp": x[:, 3]}), kind="stream")
    path = tmp / "s5.csv"
    pd.DataFrame({"s5": x[:, 8]}).to_csv(path, index=False)
    cl["s5"].upload(market, path, kind="stream")
    test = list(range(0, 120, 4))
    for name, value in (("clinic_a", 1.5), ("clinic_b", 0.8)):
        order = realtime_market.Order(value=value, labels=y.tolist(), test_rows=test)
        answered = cl[name].submit(market, order)
        assert len(answered.payload["answer"]["predictions"]) == len(test), answered.payload
    return market, cl


def booked_rounds(op: Client, market: MarketOut, timeout: float = 120.0) -> list:
    """The rounds of a market whose rounds open by themselves (the real-time market), once every
    answered bid was booked: each round waited for, until no bid waits."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        for r in op.list_rounds(market):
            op.wait(r, timeout=timeout)
        if all(x.consumed_round_id for x in op.list_submissions(market) if x.kind == "bid"):
            rounds = op.list_rounds(market)  # after the check: every round that booked a bid
            return [op.wait(r, timeout=timeout) for r in rounds]
        assert time.monotonic() < deadline, "answered bids were never booked"
        time.sleep(0.1)


AUTOMATIC = {"realtime_market"}
"""Families whose rounds open by themselves (each answered bid is booked without the operator)."""

FAMILIES: dict[str, Setup] = {
    "broker": broker_market,
    "collaborative": collaborative_market,
    "truthful_payments": truthful_payments_market,
    "balanced_market": balanced_market_market,
    "competing_buyers": competing_buyers_market,
    "realtime_market": realtime_market_market,
}
