"""Adapter of competing buyers and strategic, effort-averse data sources (Westenbroek et al.).

Westenbroek et al.'s market (:class:`~datamarket.mechanisms.competing_buyers.CompetingMarket`) over HTTP:

* a source submits ``source`` ``{"location": x_i, "effort_alpha": alpha_i > 0}`` (its common-knowledge
  location and effort sensitivity, Assumption 2);
* a buyer submits ``estimator`` ``{"degree": k, "low": a, "high": b, "eta": eta_j > 0}``: polynomial
  regression of degree ``k`` (Assumption 3; degree 1 is the paper's Section IV), evaluated on
  ``U[a, b]``, with conversion ``eta_j``;
* the market parameter ``competition`` is the common competition level ``delta`` in [0, 1], or a
  symmetric matrix of levels (one row per buyer, in name order).

Parameters and submissions are the family's input models
(:mod:`datamarket.scenarios.inputs.competing_buyers`), shared with the scenario kind.

Clearing computes the weights and the generalized Nash equilibrium (:func:`analyse_market`) and books
the equilibrium's **expected** contract payments (:func:`market_outcome`: buyer ``k`` pays
``sum_i E[p_i^k]``, source ``i`` receives ``sum_k E[p_i^k]``); without an equilibrium the round fails
with the solver's status. A source receives its contracts ``(c_i^k, d_i^k)`` and equilibrium effort.
The clearing carries :func:`certify_gne`'s certificate (existence, every source's and buyer's best
response, social optimum): the service books nothing when it fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.progress import Progress
from datamarket.core.types import Dataset
from datamarket.scenarios.inputs.competing_buyers import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by


class CompetingBuyersAdapter(ModelAdapter):
    kind = "competing_buyers"
    description = "Competing buyers and strategic data sources, equilibrium contracts (Westenbroek et al.)"
    submission_kinds: ClassVar[dict[str, str]] = {
        "source": 'source: {"location": x, "effort_alpha": > 0}',
        "estimator": 'buyer: {"degree": 0..5, "low": a, "high": b > a, "eta": > 0}',
    }
    dataset_kinds = frozenset[str]()
    params_model = Params
    submission_models = SUBMISSIONS

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        return self.validate_json(kind, payload)

    def _market(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> Any:
        from datamarket.mechanisms.competing_buyers import (
            CompetingMarket,
            PolynomialRegression,
            UniformInterval,
        )

        src, est = latest_by(inputs, "source"), latest_by(inputs, "estimator")
        both = sorted(set(src) & set(est))
        if both:
            raise InvalidMarketError(f"inputs.{both[0]}", "cannot be both a source and a buyer")
        sources, buyers = sorted(src), sorted(est)
        if len(sources) < 2 or not buyers:
            raise InvalidMarketError("inputs", "need at least two sources and one buyer")
        return CompetingMarket(
            locations=np.array([src[s].payload["location"] for s in sources]),
            effort_alpha=np.array([src[s].payload["effort_alpha"] for s in sources]),
            estimators=tuple(PolynomialRegression(int(est[b].payload["degree"])) for b in buyers),
            evaluations=tuple(UniformInterval(est[b].payload["low"], est[b].payload["high"]) for b in buyers),
            competition=np.asarray(params["competition"], dtype=float),
            eta=np.array([est[b].payload["eta"] for b in buyers]),
            source_names=tuple(sources),
            buyer_names=tuple(buyers),
        )

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        m = self._market(params, inputs)
        return {
            "sources": list(m.source_names),
            "buyers": list(m.buyer_names),
            "competition": params["competition"],
        }

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        self._market(params, inputs)

    def clear(
        self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int, progress: Progress | None = None
    ) -> Clearing:
        from datamarket.mechanisms.competing_buyers import analyse_market, certify_gne, market_outcome

        market = self._market(params, inputs)
        analysis = analyse_market(market, progress=progress)
        outcome = market_outcome(analysis)  # raises with the solver's status when there is no GNE
        g = analysis.gne
        assert g.c is not None and g.d is not None and g.effort_equilibrium is not None
        assert g.expected_payments is not None
        deliverables: dict[str, dict[str, Any]] = {}
        for i, s in enumerate(market.source_names):
            deliverables[s] = {
                "kind": "contracts",
                "effort": float(g.effort_equilibrium[i]),
                "contracts": {
                    b: {"c": float(g.c[i, k]), "d": float(g.d[i, k])}
                    for k, b in enumerate(market.buyer_names)
                },
            }
        for k, b in enumerate(market.buyer_names):
            deliverables[b] = {
                "kind": "contracts",
                "expected_payments": {
                    s: float(g.expected_payments[i, k]) for i, s in enumerate(market.source_names)
                },
            }
        return Clearing(outcome, deliverables, certificate=certify_gne(g))


ADAPTER = CompetingBuyersAdapter()
