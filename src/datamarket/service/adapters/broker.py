"""Adapter of the broker marketplace for mean estimation (Chen et al., mechanism M*).

Chen et al.'s Algorithm 2 has two phases (:mod:`datamarket.mechanisms.broker`); over HTTP they are:

1. buyers submit a ``bid`` (their error valuation: ``{"valuation": "gaussian"|"threshold"|
   "exponential", "width": tau_or_t, "scale": alpha}``), contributors a ``cost`` (``{"cost": c_i}``,
   per sample); the market's parameters are ``sigma``, ``solver`` and ``delta``. Parameters, bids and
   costs are the family's input models (:mod:`datamarket.scenarios.inputs.broker`), shared with the
   scenario kind ``broker``: the same solvers (default ``auto``) and the same ``delta`` (the grid
   ratio of the support restriction). ``GET /markets/{id}/plan`` then shows :func:`plan_collection`'s
   ``N*_i`` (how many points each contributor must collect) and the posted expected prices ``q_j+``;
2. contributors upload their points as a ``dataset`` (one feature column; a contributor asked for
   ``N*_i = 0`` points uploads nothing), and the operator clears the round: :func:`settle` charges
   (14) and pays (15). The plan is a deterministic function of bids and costs, so the worker
   recomputes exactly the plan participants saw.

Deliverables: a buyer receives its random subset of the pooled points and their mean (its estimate);
a contributor its requested sample size and payment. The clearing carries
:func:`~datamarket.mechanisms.broker.certify_broker`'s certificate of the plan and the settled round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.scenarios.inputs.broker import SOLVERS, SUBMISSIONS, VALUATIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by

__all__ = ["ADAPTER", "SOLVERS", "VALUATIONS", "BrokerAdapter"]


class BrokerAdapter(ModelAdapter):
    kind = "broker"
    description = "Broker marketplace for mean estimation, mechanism M* (Chen et al.)"
    submission_kinds: ClassVar[dict[str, str]] = {
        "bid": 'buyer: {"valuation": "gaussian|threshold|exponential", "width": >0, "scale": (0, 1]}',
        "cost": 'contributor: {"cost": per-sample cost > 0}',
        "dataset": "contributor: the N*_i points of the plan (one numeric column)",
    }
    dataset_kinds = frozenset({"dataset"})
    params_model = Params
    submission_models = SUBMISSIONS
    plan_rows: ClassVar[dict[str, tuple[str, ...]]] = {"buyers": ("allocations", "prices")}  # m_j+, q_j+

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        if kind in SUBMISSIONS:
            return self.validate_json(kind, payload)
        assert dataset is not None
        if dataset.n_features != 1:
            raise InvalidMarketError(
                "file", f"broker data has one column of points, got {dataset.n_features}"
            )
        return {}

    def check_submission(self, params: Mapping[str, Any], mine: Sequence[Input], new: Input) -> None:
        """A participant is a buyer (bids) or a contributor (costs, then data), never both."""
        kinds = {i.kind for i in mine}
        if new.kind == "bid" and "cost" in kinds:
            raise InvalidMarketError("kind", "you reported a cost in this market; withdraw it before bidding")
        if new.kind == "cost" and "bid" in kinds:
            raise InvalidMarketError(
                "kind", "you bid in this market; withdraw the bid before reporting a cost"
            )
        if new.kind == "dataset" and "cost" not in kinds:
            raise InvalidMarketError("kind", "report a cost before uploading data")

    # -- helpers ---------------------------------------------------------------------------------
    def _market(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> Any:
        from datamarket.mechanisms.broker import BrokerMarket
        from datamarket.pricing.valuations import Exponential, Gaussian, Threshold

        bids, costs = latest_by(inputs, "bid"), latest_by(inputs, "cost")
        both = sorted(set(bids) & set(costs))
        if both:
            raise InvalidMarketError("inputs", f"{both[0]} submitted both a bid and a cost")
        if not bids:
            raise InvalidMarketError("inputs", "no buyer has submitted a bid")
        if len(costs) < 2:
            raise InvalidMarketError("inputs", "mechanism M* needs cost reports from two contributors")
        cls: dict[str, Any] = {"gaussian": Gaussian, "threshold": Threshold, "exponential": Exponential}
        buyers = sorted(bids)
        contributors = sorted(costs)
        vals = tuple(
            cls[bids[b].payload["valuation"]](bids[b].payload["width"], bids[b].payload["scale"])
            for b in buyers
        )
        return BrokerMarket(
            buyers=tuple(buyers),
            valuations=vals,
            contributors=tuple(contributors),
            costs=tuple(float(costs[c].payload["cost"]) for c in contributors),
            sigma=float(params["sigma"]),
            solver=str(params["solver"]),
            delta=float(params["delta"]),
        )

    def _submissions(self, market: Any, plan: Any, inputs: Sequence[Input]) -> dict[str, np.ndarray]:
        data = latest_by(inputs, "dataset")
        stray = sorted(set(data) - set(market.contributors))
        if stray:
            raise InvalidMarketError("inputs", f"{stray[0]} uploaded data but reported no cost")
        out = {}
        for c in market.contributors:
            ds = data[c].dataset if c in data else None
            y = np.zeros(0) if ds is None else np.asarray(ds.features[:, 0])
            if y.size != plan.n_star[c]:
                raise InvalidMarketError(
                    f"inputs.{c}", f"the plan asks {c} for {plan.n_star[c]} points, got {y.size}"
                )
            out[c] = y
        return out

    # -- adapter protocol ------------------------------------------------------------------------
    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        from datamarket.mechanisms.broker import plan_collection

        market = self._market(params, inputs)
        plan = plan_collection(market)
        d = plan.to_dict()
        d["buyers"] = list(market.buyers)
        d["contributors"] = list(market.contributors)
        return d

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        from datamarket.mechanisms.broker import plan_collection

        market = self._market(params, inputs)
        self._submissions(market, plan_collection(market), inputs)

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing:
        from datamarket.mechanisms.broker import certify_broker, plan_collection, settle

        market = self._market(params, inputs)
        plan = plan_collection(market)
        subs = self._submissions(market, plan, inputs)
        outcome = settle(market, plan, subs, seed=seed)
        pooled = np.concatenate([subs[plan.contributor_1], subs[plan.contributor_2]])
        deliveries = outcome.extra["deliveries"]
        deliverables: dict[str, dict[str, Any]] = {}
        for j, b in enumerate(market.buyers):
            idx = np.asarray(deliveries[b], dtype=int)
            deliverables[b] = {
                "kind": "data",
                "points": pooled[idx].tolist(),
                "estimate": outcome.extra["buyer_estimates"][b],
                "expected_price": float(plan.prices[j]),
            }
        for k, c in enumerate(market.contributors):
            deliverables[c] = {
                "kind": "contribution",
                "points_requested": int(plan.n_star[c]),
                "payment": float(np.asarray(outcome.payments)[len(market.buyers) + k]),
            }
        return Clearing(outcome, deliverables, certificate=certify_broker(market, plan, outcome))

    def round_figure(
        self,
        outcome: Mapping[str, Any] | None,
        names: Sequence[str],
        paid: Mapping[str, float],
        received: Mapping[str, float],
    ) -> tuple[str, dict[str, list[float]]]:
        """Each buyer's posted expected price ``q_j+`` (Algorithm 2, phase 1) next to the amounts
        booked: what each buyer paid (14) and each contributor received (15)."""
        parts = (outcome or {}).get("participants", [])
        buyers = [p["name"] for p in parts if p.get("role") == "buyer"]
        posted = dict(zip(buyers, (outcome or {}).get("extra", {}).get("expected_prices", []), strict=False))
        return "Broker round: posted prices and payments", {
            "posted expected price q_j+": [float(posted.get(n, 0.0)) for n in names],
            "paid (ledger)": [paid[n] for n in names],
            "received (ledger)": [received[n] for n in names],
        }


ADAPTER = BrokerAdapter()
