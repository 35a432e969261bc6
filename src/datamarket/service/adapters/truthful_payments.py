"""Adapter of truthful payments to sellers with private costs (Fan et al., mean-estimation market).

Fan et al.'s mean-estimation market (eq. (21), :class:`~datamarket.mechanisms.truthful_payments.
MeanEstimationMarket`) over HTTP:

* a buyer submits a ``task`` ``{"target": [mu_1, ..., mu_d]}``, the mean it wants to estimate;
* a seller uploads a ``dataset`` (``d`` numeric feature columns) and reports a ``cost``
  ``{"cost": c_j}`` (its private cost factor). The seller's estimate is the sample mean of its rows,
  ``mu_j = mean(X_j)``, with total variance ``sigma_j^2 = trace(Cov(X_j)) / n_j`` (the variance of a
  sample mean; ``n_j >= 2``);
* clearing computes the allocation (22) and the market's payment ``rule`` (``myerson`` by default,
  or ``vcg``, ``loo``, ``shapley``; the Myerson integral by ``myerson_method``) with
  :func:`~datamarket.mechanisms.truthful_payments.compute_payments`; buyers pay the eta-split (17)
  (:func:`payment_outcome`). Parameters, tasks and costs are the family's input models
  (:mod:`datamarket.scenarios.inputs.truthful_payments`), shared with the scenario kind.

A buyer receives the weights ``W_i`` and its estimate ``sum_j W_ij mu_j``; a seller its share
``f_j(W)`` and payment. The clearing carries
:func:`~datamarket.mechanisms.truthful_payments.payment_certificate` of the rule's payments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset, Outcome
from datamarket.scenarios.inputs.truthful_payments import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by


class TruthfulPaymentsAdapter(ModelAdapter):
    kind = "truthful_payments"
    description = "Truthful payments to sellers with private costs (Fan et al., mean estimation)"
    submission_kinds: ClassVar[dict[str, str]] = {
        "task": 'buyer: {"target": [d numbers]}, the mean to estimate',
        "dataset": "seller: rows of d numeric columns (its estimate is their mean)",
        "cost": 'seller: {"cost": private cost factor >= 0}',
    }
    dataset_kinds = frozenset({"dataset"})
    params_model = Params
    submission_models = SUBMISSIONS

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_params(params)
        if "myerson_method" not in params:  # stored as before when not given (the default applies)
            del out["myerson_method"]
        return out

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        if kind in SUBMISSIONS:
            return self.validate_json(kind, payload)
        assert dataset is not None
        if dataset.n_samples < 2:
            raise InvalidMarketError("file", "need at least two rows to estimate the variance of the mean")
        if float(np.trace(np.atleast_2d(np.cov(dataset.features, rowvar=False)))) <= 0:
            raise InvalidMarketError("file", "rows are all identical (zero variance)")
        return {}

    def _market(self, inputs: Sequence[Input]) -> tuple[Any, list[str], list[str], np.ndarray]:
        from datamarket.mechanisms.truthful_payments import MeanEstimationMarket

        tasks, data, costs = (
            latest_by(inputs, "task"),
            latest_by(inputs, "dataset"),
            latest_by(inputs, "cost"),
        )
        if not tasks:
            raise InvalidMarketError("inputs", "no buyer has submitted a task")
        sellers = sorted(data)
        if not sellers:
            raise InvalidMarketError("inputs", "no seller has uploaded data")
        for s in sellers:
            if s not in costs:
                raise InvalidMarketError(f"inputs.{s}", "uploaded data but reported no cost")
        stray = sorted((set(costs) - set(data)) | (set(tasks) & set(data)))
        if stray:
            raise InvalidMarketError(
                f"inputs.{stray[0]}", "must be either a buyer (task) or a seller (data + cost)"
            )
        buyers = sorted(tasks)
        targets = [tasks[b].payload["target"] for b in buyers]
        dims = {len(t) for t in targets}
        means, variances = [], []
        for s in sellers:
            x = np.asarray(data[s].dataset.features)  # type: ignore[union-attr]
            means.append(x.mean(axis=0))
            variances.append(float(np.trace(np.atleast_2d(np.cov(x, rowvar=False)))) / x.shape[0])
            dims.add(x.shape[1])
        if len(dims) != 1:
            raise InvalidMarketError(
                "inputs", f"targets and data must share one dimension, got {sorted(dims)}"
            )
        market = MeanEstimationMarket.from_variances(targets, means, variances)
        return market, buyers, sellers, np.array([costs[s].payload["cost"] for s in sellers])

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        market, buyers, sellers, _ = self._market(inputs)
        return {
            "rule": params["rule"],
            "buyers": buyers,
            "sellers": sellers,
            "dimension": market.buyer_means.shape[1],
        }

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        self._market(inputs)

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing:
        from datamarket.mechanisms.truthful_payments import (
            compute_payments,
            payment_certificate,
            payment_outcome,
        )

        market, buyers, sellers, costs = self._market(inputs)
        rule = str(params["rule"])
        method = str(params.get("myerson_method", "auto"))
        result = compute_payments(market, costs, rules=(rule,), myerson_method=method, seed=seed)
        generic = payment_outcome(market, result, rule).to_dict()
        for row, name in zip(generic["participants"], [*buyers, *sellers], strict=True):
            row["name"] = name
        outcome = Outcome.from_dict(generic)
        w = np.asarray(result.allocation)
        deliverables: dict[str, dict[str, Any]] = {}
        for i, b in enumerate(buyers):
            deliverables[b] = {
                "kind": "estimate",
                "weights": dict(zip(sellers, w[i].tolist(), strict=True)),
                "estimate": (w[i] @ market.seller_means).tolist(),
                "price": float(result.buyer_prices[rule][i]),
            }
        for j, s in enumerate(sellers):
            deliverables[s] = {
                "kind": "sale",
                "share": float(result.shares[j]),
                "payment": float(result.payments[rule][j]),
                "rule": rule,
            }
        certificate = payment_certificate(market, result, myerson_method=method)
        return Clearing(outcome, deliverables, certificate=certificate)


ADAPTER = TruthfulPaymentsAdapter()
