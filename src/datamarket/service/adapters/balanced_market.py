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
Receipts explain both lines (:data:`RULES`): a buyer's price per group, ``p_g`` times its accuracy; a
seller's Shapley payment, shown as an equal split of the revenue plus its Shapley adjustment only when
the revenue is an aggregate (at least two buyers paid and two other sellers were paid), else as one term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.scenarios.inputs.balanced_market import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by
from datamarket.service.adapters.charges import Charge, Rule

__all__ = ["ADAPTER", "RULES", "BalancedMarketAdapter"]

_PAPER = "Chaintreau, Maio, Ziani, The Cost of Balanced Training-Data Production in an Online Data Market"
RULES = {
    "price": Rule(
        title="A buyer's price: reserve price times accuracy, per group bought (6)",
        formula="RF_i = Σ_g 1[μ_i,g ≥ p_g] p_g G_i,g(x_g^([M])),  p_g = argmax_p p #{k: μ_k,g ≥ p} (15)",
        source=f"{_PAPER}, eqs. (4)-(6); reserve prices eqs. (14)-(15)",
        text="For each group whose posted reserve price p_g your bid μ_i,g reaches, a model is trained on "
        "all sellers' samples of that group and you pay p_g per unit of the accuracy it reaches on your "
        "test data (Myerson's posted-price payment, so bidding your true values is your best strategy, "
        "Fact 4.1). A group whose reserve price is above your bid costs nothing.",
    ),
    "payment": Rule(
        title="A seller's payment: Shapley share of the revenue (7)",
        formula="PD_j = Σ_i,g p_g Σ_{T ⊆ [M] \\ {j}} c_T (G_i,g(x̃^(T ∪ {j})) - G_i,g(x̃^(T))),  "
        "c_T = |T|! (M - |T| - 1)! / M!",
        source=f"{_PAPER}, eq. (7)",
        text="The buyers' payments are divided among the sellers by the Shapley value: you receive the "
        "revenue your samples add, averaged over every order in which the sellers could join (the models "
        "of every coalition are retrained). The payments add up to the revenue w(p). With at least three "
        "sellers paid by at least two buyers the receipt writes yours as an equal split w(p)/M plus your "
        "Shapley adjustment; otherwise as one term, since the revenue would reveal another "
        "participant's amount. Your production cost κ^(j)·x^(j) is yours to bear and is not a line of "
        "the receipt.",
    ),
}


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
    rules: ClassVar[dict[str, Rule]] = RULES
    plan_labels: ClassVar[dict[str, str]] = {
        "groups": "groups",
        "reserve_prices": "reserve price per group",
        "sellers": "sellers",
    }
    plan_money: ClassVar[frozenset[str]] = frozenset({"reserve_prices"})

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
        from datamarket.mechanisms.balanced_market import (
            allocation,
            certify_empirical_round,
            run_empirical_round,
        )

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
            sold = allocation(r["values"], res.prices)[i]  # (4): a bid reaching a positive price
            deliverables[b] = {
                "kind": "model",
                "groups_bought": [g for g, s in zip(r["groups"], sold, strict=True) if s],
                "accuracy": dict(zip([str(g) for g in r["groups"]], res.accuracy[i].tolist(), strict=True)),
                "price": float(res.revenue[i]),
            }
        for j, s in enumerate(r["seller_names"]):
            deliverables[s] = {"kind": "sale", "payment": float(res.payments[j])}
        cert = certify_empirical_round(res.prices, res.revenue, res.payments, r["values"])
        return Clearing(res.outcome, deliverables, certificate=cert, charges=_charges(params, r, res))


_BID, _PRICES, _COSTS, _COST = (
    "μ_i,g (your bid per group)",
    "p_g (reserve prices)",
    "κ_g^(j) (your unit costs)",
    "κ^(j)·x^(j) (your production cost)",
)
_REVENUE = "w(p) (revenue of the round: all buyers' prices)"


def _charges(params: Mapping[str, Any], r: Mapping[str, Any], res: Any) -> dict[str, list[Charge]]:
    """Each buyer's price (6) as one term per group, ``1[μ_i,g ≥ p_g] p_g G_i,g`` exactly as
    :func:`~datamarket.mechanisms.balanced_market.run_empirical_round` sums it, and each seller's
    Shapley payment (7) (``r``: :meth:`BalancedMarketAdapter._round_inputs`; ``res``: the round).
    A participant whose line is zero books none and gets no charge (an empty list: its receipt is
    explained, with nothing to explain)."""
    from datamarket.mechanisms.balanced_market import allocation

    groups, p = list(r["groups"]), np.asarray(res.prices, dtype=float)
    sold, m = allocation(r["values"], p), len(r["seller_names"])
    posted = {
        "groups g": groups,
        _PRICES: p.tolist(),
        "tie-break of p_g": str(params["tie"]),
        "M (sellers)": m,
    }
    prices, payments = np.asarray(res.outcome.prices, float), np.asarray(res.outcome.payments, float)
    out: dict[str, list[Charge]] = {name: [] for name in res.outcome.participants}
    for i, task in enumerate(r["buyers"]):
        if prices[m + i] == 0.0:
            continue
        terms = tuple(
            (
                f"group {g}: p_g × G_i,g"
                if sold[i, k]
                else f"group {g}: not bought (bid below p_g, or p_g = 0)",
                float(sold[i, k] * p[k] * res.accuracy[i, k]),
            )
            for k, g in enumerate(groups)
        )
        used = {
            _BID: [float(v) for v in r["values"][i]],
            **posted,
            "groups you bought": [g for k, g in enumerate(groups) if sold[i, k]],
            "G_i,g (accuracy of your model per group bought)": [
                float(a) if sold[i, k] else None for k, a in enumerate(res.accuracy[i])
            ],
            "your test rows per group": [int(task.tests[g].n_samples) for g in groups],
        }
        out[task.name] = [Charge("price", "price", float(prices[m + i]), terms, used, (_BID, _PRICES))]
    for j, name in enumerate(r["seller_names"]):
        if payments[j] != 0.0:
            out[name] = [_seller_charge(r, res, j, posted)]
    return out


def _seller_charge(r: Mapping[str, Any], res: Any, j: int, posted: Mapping[str, Any]) -> Charge:
    """Seller ``j``'s Shapley payment (7): as an equal split of the revenue plus its Shapley adjustment
    when the revenue is an aggregate (at least two buyers paid and two other sellers were paid: it
    then reveals no single participant's amount), else as one term."""
    m, n = len(r["seller_names"]), len(r["buyers"])
    prices, payments = np.asarray(res.outcome.prices, float), np.asarray(res.outcome.payments, float)
    pay = float(payments[j])
    aggregate = np.count_nonzero(prices[m:]) >= 2 and np.count_nonzero(payments[:m]) - 1 >= 2
    ds = r["sellers"][j]
    used: dict[str, Any] = {
        "x_g^(j) (your samples per group)": [int(np.sum(ds.groups == g)) for g in r["groups"]],
        _COSTS: [float(c) for c in r["costs"][j]],
        _COST: float(np.asarray(res.outcome.costs, float)[j]),
        **posted,
        "N (buyers)": n,
    }
    if m == 1:
        terms: tuple[tuple[str, float], ...] = (("the whole revenue w(p): you are the only seller", pay),)
    elif aggregate:
        w = float(np.sum(res.revenue))  # as the round's certificate sums it
        used[_REVENUE] = w
        terms = (
            ("equal split w(p)/M of the revenue", w / m),
            ("Shapley adjustment: what your samples add beyond an equal split", pay - w / m),
        )
    else:
        terms = (("Shapley value of your samples in the revenue game (7)", pay),)
    money = (_COSTS, _COST, _PRICES, *([_REVENUE] if _REVENUE in used else []))
    return Charge("payment", "payment", pay, terms, used, money)


ADAPTER = BalancedMarketAdapter()
