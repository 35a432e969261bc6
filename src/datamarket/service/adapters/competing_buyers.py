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
with the solver's status. A source receives its equilibrium effort and its contracts ``(c_i^k,
d_i^k)``, keyed by the buyers' positions in the round (``"buyer 1 of 2"``: the order of their names,
which are never shown); a buyer the expected payments ``E[p_i^k]`` of its contracts, keyed by the
sources' positions (``"source 2 of 4"``). The clearing carries :func:`certify_gne`'s certificate
(existence, every source's and buyer's best response, social optimum): the service books nothing
when it fails.

Receipts (:data:`RULES`) explain a source's payment and a buyer's price as the expected payments of
the contracts, E[p_i^k] = c_i^k - d_i^k S_i^k (the fixed part minus the expected penalty, with the
expected squared residual S_i^k of :func:`canonical_contracts`), one pair of terms per counterpart,
named by its position in the round and never by its name. A participant sees the amounts of its own
contracts (its own money) and nothing of a contract between two others: a buyer's receipt leaves out
the split theta_i^k, which with its contract's expected payment theta_i^k e_i* gives the source's
whole payment e_i* away (and, less its own share, the other buyers' contracts with that source).
The canonical split is equal shares (Theorem 1's theta_i^k = 1/|B|), so a buyer who knows the number
of buyers can still infer e_i* = |B| E[p_i^k]: a property of the mechanism, not of the receipt.
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
from datamarket.service.adapters.charges import Charge, Rule

_WDRS = (
    "Westenbroek, Dong, Ratliff, Sastry, Statistical Estimation with Strategic Data Sources in "
    "Competitive Settings"
)
_CONTRACTS = "contracts of Cai, Daskalakis, Papadimitriou (COLT 2015)"
RULES = {
    "payment": Rule(
        title="A source's expected payment under the buyers' contracts (8), at the equilibrium",
        formula="E[p_i] = sum_k E[p_i^k] = sum_k (c_i^k - d_i^k S_i^k),  S_i^k = sum_l xi_il^k sigma_l^2,  "
        "sigma_l^2 = 1/(2 alpha_l D_l),  D_l = sum_k d_l^k;  at the equilibrium "
        "c_i^k = d_i^k S_i^k + theta_i^k e_i*, so E[p_i] = e_i* = ln(2 alpha_i D_i)/(2 alpha_i)",
        source=f"{_WDRS}, Assumption 1 eq. (8), the expected payment before (9), (17)-(18), Theorem 1 "
        f"and Lemma 1; {_CONTRACTS}",
        text="Each buyer k pays you under its contract p_i^k = c_i^k - d_i^k (y_i - f^k_-i(x_i))^2: a "
        "fixed part minus a penalty on the distance between your report and the buyer's prediction at "
        "your location from the other sources' reports. The round books the expected payments at the "
        "buyers' equilibrium: each fixed part minus its expected penalty (d_i^k times the expected "
        "squared residual S_i^k). In expectation they reimburse exactly the effort e_i* that is your best "
        "response (17) (Lemma 1), shared among the buyers by theta_i^k (equal shares).",
    ),
    "price": Rule(
        title="A buyer's price: the expected payments of its contracts (8), at the equilibrium",
        formula="P^k = sum_i E[p_i^k] = sum_i (c_i^k - d_i^k S_i^k) = sum_i theta_i^k e_i*,  "
        "S_i^k = sum_l xi_il^k sigma_l^2,  sigma_l^2 = 1/(2 alpha_l D_l)",
        source=f"{_WDRS}, Assumption 1 eq. (8), the expected payment before (9), Theorem 1 and Lemma 1; "
        f"{_CONTRACTS}",
        text="What your contracts pay the sources in expectation at the equilibrium of the buyers' game "
        "(Theorem 1): for each source, the fixed part c_i^k minus the expected penalty d_i^k S_i^k. The "
        "penalty weights d are the equilibrium's, which make each source's effort its best response; "
        "the fixed parts make the sources' expected payments equal their effort (Lemma 1), and you bear "
        "the share theta_i^k of each source's effort.",
    ),
}
Terms = tuple[tuple[str, float], ...]  # (label, value) adding up to a charge's amount


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
    rules: ClassVar[dict[str, Rule]] = RULES
    plan_labels: ClassVar[dict[str, str]] = {
        "sources": "sources",
        "buyers": "buyers",
        "competition": "competition between buyers",
    }

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
        n, m = market.n_sources, market.n_buyers
        for i, s in enumerate(market.source_names):
            deliverables[s] = {
                "kind": "contracts",
                "effort": float(g.effort_equilibrium[i]),
                "contracts": {
                    _position("buyer", k, m): {"c": float(g.c[i, k]), "d": float(g.d[i, k])} for k in range(m)
                },
            }
        for k, b in enumerate(market.buyer_names):
            deliverables[b] = {
                "kind": "contracts",
                "expected_payments": {
                    _position("source", i, n): float(g.expected_payments[i, k]) for i in range(n)
                },
            }
        charges = _charges(market, analysis, params, inputs, outcome)
        return Clearing(outcome, deliverables, certificate=certify_gne(g), charges=charges)


def _charges(
    market: Any, analysis: Any, params: Mapping[str, Any], inputs: Sequence[Input], outcome: Any
) -> dict[str, list[Charge]]:
    """Each source's expected payment and each buyer's price as the expected contract payments
    E[p_i^k] = c_i^k - d_i^k S_i^k (the text before (9)), with S_i^k as
    :func:`~datamarket.mechanisms.competing_buyers.canonical_contracts` computes it for the
    equilibrium's contracts; a line is explained when it is booked (non-zero)."""
    from datamarket.mechanisms.competing_buyers import canonical_contracts

    g = analysis.gne
    assert g.d is not None and g.c is not None and g.theta is not None
    _, s = canonical_contracts(g.d, g.xi, g.alpha, g.theta)
    m = market.n_buyers
    pays, prices = np.asarray(outcome.payments, float), np.asarray(outcome.prices, float)
    src, est = latest_by(inputs, "source"), latest_by(inputs, "estimator")
    out: dict[str, list[Charge]] = {}
    for i, name in enumerate(market.source_names):
        if pays[m + i] != 0.0:
            out[name] = [_source_charge(g, s, i, src[name].payload, float(pays[m + i]))]
    for k, name in enumerate(market.buyer_names):
        if prices[k] != 0.0:
            used = {"your estimator": dict(est[name].payload), "delta (competition)": params["competition"]}
            out[name] = [_buyer_charge(g, s, k, used, float(prices[k]))]
    return out


def _position(who: str, j: int, n: int) -> str:
    """A counterpart by its position in the round (the order of names), never by its name."""
    return f"{who} {j + 1} of {n}"


def _contract_terms(who: str, c: np.ndarray, d: np.ndarray, s: np.ndarray, sub: str) -> Terms:
    """Per counterpart (by position, never by name) the fixed part and the expected penalty."""
    out: list[tuple[str, float]] = []
    for j, (ci, di, si) in enumerate(zip(c, d, s, strict=True)):
        idx, where = sub.format(j + 1), _position(who, j, len(c))
        out.append((f"{where}: fixed part c_{idx}", float(ci)))
        out.append((f"{where}: expected penalty -d_{idx} S_{idx}", -float(di * si)))
    return tuple(out)


_C_SRC = "c_i^k (fixed part of each buyer's contract)"
_E_SRC = "e_i* = ln(2 alpha_i D_i)/(2 alpha_i) (your effort at the equilibrium, (17))"


def _source_charge(g: Any, s: np.ndarray, i: int, source: Mapping[str, Any], amount: float) -> Charge:
    """Source ``i``'s expected payment: one fixed part and one expected penalty per buyer."""
    assert g.c is not None and g.d is not None and g.theta is not None and g.effort_equilibrium is not None
    d_total = float(np.sum(g.d[i]))
    alpha = float(g.alpha[i])
    used = {
        "your location x_i": float(source["location"]),
        "your effort sensitivity alpha_i": float(source["effort_alpha"]),
        _C_SRC: g.c[i].tolist(),
        "d_i^k (penalty weight of each buyer's contract)": g.d[i].tolist(),
        "S_i^k (expected squared residual of your report, each buyer)": s[i].tolist(),
        "D_i = sum_k d_i^k": d_total,
        _E_SRC: float(g.effort_equilibrium[i]),
        "sigma_i^2 = 1/(2 alpha_i D_i) (your report's variance, (18))": 1.0 / (2 * alpha * d_total),
        "theta_i^k (the share of your effort each buyer bears)": g.theta[i].tolist(),
    }
    terms = _contract_terms("buyer", g.c[i], g.d[i], s[i], "i^{}")
    return Charge("payment", "payment", amount, terms, used, (_C_SRC, _E_SRC))


_C_BUY = "c_i^k (your contracts' fixed parts, one per source)"


def _buyer_charge(g: Any, s: np.ndarray, k: int, used: dict[str, Any], amount: float) -> Charge:
    """Buyer ``k``'s price: one fixed part and one expected penalty per source. Without the split
    theta_i^k (module docstring): with it, each contract's expected payment gives the source's."""
    assert g.c is not None and g.d is not None
    used |= {
        _C_BUY: g.c[:, k].tolist(),
        "d_i^k (your contracts' penalty weights, one per source)": g.d[:, k].tolist(),
        "S_i^k (expected squared residual of each source's report)": s[:, k].tolist(),
    }
    terms = _contract_terms("source", g.c[:, k], g.d[:, k], s[:, k], "{}^k")
    return Charge("price", "price", amount, terms, used, (_C_BUY,))


ADAPTER = CompetingBuyersAdapter()
