"""Adapter of the online data market with Shapley revenue division (Chaintreau et al., empirical mechanics).

Chaintreau et al.'s round (:func:`~datamarket.mechanisms.balanced_market.run_empirical_round`) over HTTP; the
market's ``groups`` parameter lists the demographic groups (integers) the data are split into (the
parameters, costs and bids are the family's input models, :mod:`datamarket.scenarios.inputs.balanced_market`):

* a seller uploads a ``dataset`` (features, ``label`` and ``group`` columns) and reports a ``cost``
  ``{"costs": [unit cost per group, > 0]}``;
* a buyer uploads a ``task`` (its labelled test data, with a ``group`` column; every group needs rows)
  and submits a ``bid`` ``{"values": [value per group, >= 0]}``;
* clearing posts the reserve prices (eq. 15), allocates (4)-(5), charges buyers the revenue (6) and
  pays sellers the Shapley value of the revenue game (7) (real retraining per coalition).

Buyers receive the accuracy of the model trained on their allocated groups; sellers their payment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.scenarios.inputs.balanced_market import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by


def _integral(ds: Dataset) -> Dataset:
    """Integer labels and groups (CSV and Parquet cells arrive as floats)."""
    cols: list[Any] = []
    for arr in (ds.labels, ds.groups):
        if arr is not None and np.asarray(arr).dtype.kind == "f" and np.all(arr == np.round(arr)):
            cols.append(np.asarray(arr).astype(np.int64))
        else:
            cols.append(arr)
    return Dataset(ds.features, cols[0], cols[1])


class BalancedMarketAdapter(ModelAdapter):
    kind = "balanced_market"
    description = "Online data market with Shapley revenue division (Chaintreau et al., empirical gains)"
    submission_kinds: ClassVar[dict[str, str]] = {
        "dataset": "seller: labelled samples with a group column (upload)",
        "cost": 'seller: {"costs": [unit cost per group, > 0]}',
        "task": "buyer: labelled test data with a group column (upload)",
        "bid": 'buyer: {"values": [value per group, >= 0]}',
    }
    dataset_kinds = frozenset({"dataset", "task"})
    params_model = Params
    submission_models = SUBMISSIONS

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        if kind in SUBMISSIONS:
            data = self.validate_json(kind, payload)
            (key, v), n = next(iter(data.items())), len(params["groups"])
            if len(v) != n:
                raise InvalidMarketError(f"data.{key}", f"must be a list of {n} numbers (one per group)")
            return data
        assert dataset is not None
        if dataset.labels is None or dataset.groups is None:
            raise InvalidMarketError("file", f"{kind} needs a label and a group column")
        ds = _integral(dataset)
        unknown = sorted({g.item() for g in np.unique(np.asarray(ds.groups))} - set(params["groups"]))
        if unknown:
            raise InvalidMarketError("file", f"groups {unknown} are not the market's {params['groups']}")
        if kind == "task":
            missing = sorted(set(params["groups"]) - {g.item() for g in np.unique(np.asarray(ds.groups))})
            if missing:
                raise InvalidMarketError("file", f"test data has no rows of groups {missing}")
        return {}

    def _round_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        from datamarket.learning.empirical_gain import BuyerTask

        data, costs = latest_by(inputs, "dataset"), latest_by(inputs, "cost")
        tasks, bids = latest_by(inputs, "task"), latest_by(inputs, "bid")
        sellers, buyers = sorted(data), sorted(tasks)
        if not sellers or not buyers:
            raise InvalidMarketError("inputs", "need at least one seller (dataset) and one buyer (task)")
        for group, need, what in ((sellers, costs, "cost"), (buyers, bids, "bid")):
            for name in group:
                if name not in need:
                    raise InvalidMarketError(f"inputs.{name}", f"has no {what}")
        stray = sorted((set(costs) - set(sellers)) | (set(bids) - set(buyers)) | (set(sellers) & set(buyers)))
        if stray:
            raise InvalidMarketError(
                f"inputs.{stray[0]}", "must be either a seller (dataset + cost) or a buyer (task + bid)"
            )
        groups = list(params["groups"])
        tests = []
        for b in buyers:
            ds = _integral(tasks[b].dataset)  # type: ignore[arg-type]
            g = np.asarray(ds.groups)
            tests.append(BuyerTask(b, {grp: ds.subset(np.flatnonzero(g == grp)) for grp in groups}))
        return {
            "sellers": [_integral(data[s].dataset) for s in sellers],  # type: ignore[arg-type]
            "seller_names": sellers,
            "buyers": tests,
            "values": np.array([bids[b].payload["values"] for b in buyers]),
            "costs": np.array([costs[s].payload["costs"] for s in sellers]),
            "groups": groups,
        }

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        from datamarket.mechanisms.balanced_market import reserve_prices

        r = self._round_inputs(params, inputs)
        prices, _ = reserve_prices(r["values"], params["tie"])
        return {
            "groups": r["groups"],
            "reserve_prices": np.asarray(prices).tolist(),
            "sellers": r["seller_names"],
        }

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        r = self._round_inputs(params, inputs)
        if len(r["sellers"]) > 12:
            raise InvalidMarketError("inputs", "exact Shapley over more than 12 sellers is not offered here")

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing:
        from datamarket.mechanisms.balanced_market import certify_empirical_round, run_empirical_round

        r = self._round_inputs(params, inputs)
        res = run_empirical_round(
            r["sellers"],
            r["buyers"],
            r["values"],
            r["costs"],
            r["groups"],
            tie=params["tie"],
            seed=seed,
            seller_names=r["seller_names"],
        )
        deliverables: dict[str, dict[str, Any]] = {}
        for i, b in enumerate(t.name for t in r["buyers"]):
            sold = r["values"][i] >= res.prices
            deliverables[b] = {
                "kind": "model",
                "groups_bought": [g for g, s in zip(r["groups"], sold, strict=True) if s],
                "accuracy": dict(zip([str(g) for g in r["groups"]], res.accuracy[i].tolist(), strict=True)),
                "price": float(res.revenue[i]),
            }
        for j, s in enumerate(r["seller_names"]):
            deliverables[s] = {"kind": "sale", "payment": float(res.payments[j])}
        cert = certify_empirical_round(res.prices, res.revenue, res.payments, r["values"])
        return Clearing(res.outcome, deliverables, certificate=cert)


ADAPTER = BalancedMarketAdapter()
