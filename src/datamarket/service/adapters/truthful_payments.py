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

A buyer receives its weights ``W_i``, keyed by the sellers' positions in the round (``"seller 2 of
3"``: the order of their names, which are never shown), its estimate ``sum_j W_ij mu_j`` and its
price; a seller its share ``f_j(W)``, payment and the rule. The clearing carries
:func:`~datamarket.mechanisms.truthful_payments.payment_certificate` of the rule's payments.

Receipts (:data:`RULES`) explain a seller's payment by the market's rule, in the terms the library
computes it: Myerson (9) as c_j f_j plus the integral of the share curve (closed form or the chosen
quadrature), VCG (10) as c_j f_j plus the externality SC*_-j - SC*, leave-one-out (1) as V(S) minus
V(S without j), exact Shapley (8) grouped by the size of the coalition joined (a Monte Carlo estimate
with its standard error and no terms). A buyer's price (17) is one term, its share of the sellers'
payments: its shares eta_ij and the payments P_j stay out (a term eta_ij P_j with eta_ij gives P_j
away, and with one buyer the term is P_j). Nothing on a receipt gives away one other participant's
amount (its price, payment, value or cost): an aggregate of others is shown only when it adds up at
least two of them -- the total paid to the sellers on a buyer's receipt (or when the buyer is the only
one paying: it is then its own price), the social costs SC*, SC*_-j of VCG when they include at least
two other participants, the buyers' total values V(S), V(S without j) of leave-one-out when there are
at least two buyers (with one buyer, V(S) is that buyer's value: the payment is then one term).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset, Outcome
from datamarket.scenarios.inputs.truthful_payments import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by
from datamarket.service.adapters.charges import Charge, Rule

_FAN = "Fan, Rotello, Karimireddy, From Fairness to Truthfulness: Rethinking Data Valuation Design"
RULES = {
    "myerson": Rule(
        title="A seller's payment, Myerson rule (9)",
        formula="P_j = c_j f_j(W(c)) + integral from c_j to infinity of f_j(W(u, c_-j)) du,  "
        "f_j(W) = sum_i w_ij^2",
        source=f"{_FAN}, eq. (9)",
        text="Your reported cost factor times the share f_j you supply, plus the area under your share "
        "curve above your report: the shares you would have supplied at every higher report. Reporting "
        "your true cost is your best strategy (Claim 3, Theorem 4.1): a higher report shrinks your share, "
        "a lower one pays you below your cost; and the payment never falls below your cost c_j f_j.",
    ),
    "vcg": Rule(
        title="A seller's payment, VCG rule (10)",
        formula="P_j = c_j f_j(W(c)) + SC*_-j - SC*(c);  on the mean-estimation market "
        "SC*_-j - SC* = f_j / h_j, h_j = ((G + N + diag(c))^-1)_jj",
        source=f"{_FAN}, eq. (10)",
        text="Your reported cost factor times your share, plus what your presence saves the market: the "
        "social cost (the buyers' losses plus the sellers' reported costs) without you minus with you. "
        "Reporting your true cost is your best strategy and the payment covers your cost (Claim 4); on "
        "this market it equals the Myerson payment (Theorem 4.2).",
    ),
    "loo": Rule(
        title="A seller's payment, leave-one-out rule (1)",
        formula="P_j = V(S) - V(S \\ {j}),  V(pi) = sum_i v_i(W'_pi),  v_i(W) = l_i(0) - l_i(W)",
        source=f"{_FAN}, eq. (1)",
        text="The buyers' total value with every seller minus their total value if you were absent (the "
        "allocation chosen again without you). Your report does not enter the formula, but it moves the "
        "allocation and so the payment: this rule is not truthful (Claim 2).",
    ),
    "shapley": Rule(
        title="A seller's payment, Data Shapley rule (8)",
        formula="P_j = sum over pi in S \\ {j} of |pi|! (|S| - |pi| - 1)! / |S|! [V(pi + j) - V(pi)],  "
        "V(empty) = 0",
        source=f"{_FAN}, eq. (8)",
        text="Your marginal value to the buyers, averaged over every group of other sellers you could "
        "join, each group size weighing the same: the term for groups of k other sellers is your average "
        "marginal value to them divided by the number of sellers. Not truthful either (Remark 1).",
    ),
    "split": Rule(
        title="A buyer's price, the split of the sellers' payments (17)",
        formula="P_i = sum_j eta_ij P_j,  eta_ij = (v_i(W) - v_i(W^-j)) / sum_k (v_k(W) - v_k(W^-j)) "
        "(1/|B| where no buyer's value depends on seller j)",
        source=f"{_FAN}, Theorem 4.3, eq. (17)",
        text="Each seller's payment is shared among the buyers in proportion to the value each would "
        "lose if that seller's weights were removed (W^-j: the seller's column set to zero, the rest "
        "unchanged). You pay your share eta_ij of every seller's payment; the shares of one payment add "
        "up to one, so the buyers together pay exactly what the sellers receive. Your receipt gives the "
        "sum, not your share of each payment: that would give the seller's payment away.",
    ),
}


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
    rules: ClassVar[dict[str, Rule]] = RULES
    plan_labels: ClassVar[dict[str, str]] = {
        "rule": "payment rule",
        "buyers": "buyers",
        "sellers": "sellers",
        "dimension": "dimension of the mean, d",
    }

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
                "weights": {_position("seller", j, len(sellers)): x for j, x in enumerate(w[i].tolist())},
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
        charges = _charges(market, result, rule, method, (buyers, sellers), inputs, outcome)
        return Clearing(outcome, deliverables, certificate=certificate, charges=charges)


Terms = tuple[tuple[str, float], ...]
_COST = "your reported cost c_j"


def _position(who: str, j: int, n: int) -> str:
    """A counterpart by its position in the round (the order of names), never by its name."""
    return f"{who} {j + 1} of {n}"


def _charges(
    market: Any,
    result: Any,
    rule: str,
    method: str,
    names: tuple[list[str], list[str]],
    inputs: Sequence[Input],
    outcome: Outcome,
) -> dict[str, list[Charge]]:
    """Each seller's payment by the market's ``rule`` and each buyer's price by the split (17), in the
    terms of :mod:`datamarket.mechanisms.truthful_payments`; a line is explained when it is booked
    (non-zero)."""
    buyers, sellers = names
    nb, ns = len(buyers), len(sellers)
    c, f = np.asarray(result.reported_costs), np.asarray(result.shares)
    pays, prices = np.asarray(outcome.payments, float), np.asarray(outcome.prices, float)
    explain = {"myerson": _myerson_terms, "vcg": _vcg_terms, "loo": _loo_terms, "shapley": _shapley_terms}
    out: dict[str, list[Charge]] = {}
    for j, (terms, extra) in enumerate(explain[rule](market, result, method)):
        if pays[nb + j] == 0.0:
            continue
        used = {_COST: float(c[j]), "f_j(W) (your share, sum_i w_ij^2)": float(f[j])}
        used |= {"|S| (sellers)": ns, "|B| (buyers)": nb, **extra}
        money = (_COST, *(k for k in extra if k.startswith("SC")))  # the social costs of VCG
        out[sellers[j]] = [Charge("payment", rule, float(pays[nb + j]), terms, used, money)]
    tasks = latest_by(inputs, "task")
    for i, b in enumerate(buyers):
        if prices[i] != 0.0:
            out[b] = [_split_charge(result, rule, i, tasks[b].payload, (prices[:nb], pays[nb:]))]
    return out


def _myerson_terms(market: Any, result: Any, method: str) -> list[tuple[Terms, dict[str, Any]]]:
    """c_j f_j and the integral I_j of eq. (9), each as :func:`myerson_payments` computes the payment:
    for ``auto`` and ``closed_form`` by Sherman-Morrison (:func:`fast.myerson_allocation_curve`:
    f_j(W(u)) = |g|^2/(1 + u m)^2, so I_j = |g|^2/(m(1 + c_j m))), otherwise c_j f_j(W) plus
    :func:`myerson_integral` by ``method``."""
    from datamarket.mechanisms.truthful_payments import fast, myerson_integral

    c = np.asarray(result.reported_costs)
    out: list[tuple[Terms, dict[str, Any]]] = []
    if method in ("auto", "closed_form"):
        f = np.asarray(result.shares)
        for j in range(c.size):
            g2, m = fast.myerson_allocation_curve(market, c, j)
            integral = g2 / (m * (1.0 + c[j] * m))
            curve = {"|g|^2 (your share at a report u: |g|^2/(1 + u m)^2)": g2, "m (same curve)": m}
            out.append((_myerson_pair(c[j] * f[j], integral), {**curve, "integral computed": "closed form"}))
        return out
    f = market.cost_shapes(market.allocate(c))
    for j in range(c.size):
        integral = myerson_integral(market, c, j, method=method)
        out.append((_myerson_pair(c[j] * f[j], integral), {"integral computed": method}))
    return out


def _myerson_pair(cost_share: float, integral: float) -> Terms:
    return (
        ("c_j f_j(W): your reported cost x your share", float(cost_share)),
        ("integral of your share f_j(W(u, c_-j)) over reports u from c_j to infinity", float(integral)),
    )


def _vcg_terms(market: Any, result: Any, method: str) -> list[tuple[Terms, dict[str, Any]]]:
    """c_j f_j plus the externality SC*_-j - SC* as the closed form of eq. (10) computes it
    (f_j / h_j, :func:`fast.vcg_payments`); the social costs with and without j are inputs when they
    add up at least two other participants' losses and costs (one buyer and one seller: SC* less the
    seller's own c_j f_j is the buyer's loss, and SC*_-j its loss without data)."""
    from datamarket.mechanisms.truthful_payments import fast, social_cost

    c, f = np.asarray(result.reported_costs), np.asarray(result.shares)
    others = market.n_buyers + c.size - 1
    h = np.diag(fast.inverse_system(market, c))
    out: list[tuple[Terms, dict[str, Any]]] = []
    for j in range(c.size):
        terms = (
            ("c_j f_j(W): your reported cost x your share", float(c[j] * f[j])),
            ("SC*_-j - SC*: the social cost your presence saves (f_j / h_j)", float(f[j] / h[j])),
        )
        used: dict[str, Any] = {}
        if others >= 2:
            without = social_cost(market, market.allocate(c, np.arange(c.size) != j), c)
            used = {"SC* (social cost with you)": float(result.social_cost), "SC*_-j (without you)": without}
        out.append((terms, used))
    return out


_LOO_ONE = "V(S) - V(S \\ {j}): the buyer's value with every seller less its value without you"


def _loo_terms(market: Any, result: Any, method: str) -> list[tuple[Terms, dict[str, Any]]]:
    """V(S) (the buyers' values at the allocation) minus V(S \\ {j}) (:func:`coalition_value`: the
    allocation solved again without j), eq. (1); with one buyer its values would be the two terms, so
    the payment is one term, their difference."""
    from datamarket.mechanisms.truthful_payments import coalition_value

    c = np.asarray(result.reported_costs)
    total = float(np.sum(result.values))
    out: list[tuple[Terms, dict[str, Any]]] = []
    for j in range(c.size):
        without = coalition_value(market, c, [k for k in range(c.size) if k != j])
        if market.n_buyers >= 2:
            terms: Terms = (
                ("V(S): the buyers' total value with every seller", total),
                ("-V(S \\ {j}): minus their total value without you", -without),
            )
        else:
            terms = ((_LOO_ONE, total - without),)
        out.append((terms, {}))
    return out


def _shapley_terms(market: Any, result: Any, method: str) -> list[tuple[Terms, dict[str, Any]]]:
    """Eq. (8) grouped by the number k of other sellers in the coalition joined, from the coalition
    table :func:`shapley_payments` uses (:func:`fast.coalition_table`); a Monte Carlo estimate (more
    than 20 sellers) is given with its standard error and no terms."""
    from datamarket.mechanisms.truthful_payments import fast

    n = int(np.asarray(result.reported_costs).size)
    how = str(result.diagnostics.get("shapley_method", "exact"))
    info: dict[str, Any] = {"Shapley computed": how}
    info["coalition values evaluated"] = int(result.diagnostics.get("shapley_evaluations", 0))
    if how != "exact":
        se = np.asarray(result.shapley_stderr, float)
        return [((), {**info, "standard error": float(se[j])}) for j in range(n)]
    table = fast.coalition_table(market, np.asarray(result.reported_costs))
    masks = np.arange(1 << n, dtype=np.int64)
    size = np.zeros(1 << n, dtype=np.int64)
    for b in range(n):
        size += (masks >> b) & 1
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    out: list[tuple[Terms, dict[str, Any]]] = []
    for j in range(n):
        rest = masks[(masks >> j) & 1 == 0]
        sums = np.bincount(size[rest], weights=table[rest | (1 << j)] - table[rest], minlength=n)
        terms = tuple((_joining(k), float(weight[k] * sums[k])) for k in range(n))
        out.append((terms, info))
    return out


def _joining(k: int) -> str:
    if k == 0:
        return "alone: V({j}) / |S|"
    return f"joining {k} other seller{'s' if k > 1 else ''}: your average marginal value / |S|"


_VALUE = "v_i(W) (your value)"
_TOTAL = "total paid to the sellers, sum_j P_j"


def _split_charge(
    result: Any, rule: str, i: int, task: Mapping[str, Any], booked: tuple[np.ndarray, np.ndarray]
) -> Charge:
    """Buyer ``i``'s price, eq. (17), as one term: its share of the sellers' payments. Neither its
    shares eta_ij nor the payments P_j are shown: a term eta_ij P_j beside eta_ij gives P_j away, and
    with one seller eta_i1 and the price do. The total paid to the sellers (``booked``: the buyers'
    prices, then the sellers' payments, as the outcome books them) is shown when it is the buyer's
    own price (no other buyer pays) or adds up at least two other buyers' prices and two sellers'
    payments; with one other buyer paying, the total less the price would be that buyer's price."""
    prices, pays = booked
    eta, pay = np.asarray(result.eta)[i], np.asarray(result.payments[rule])
    ns = int(pay.size)
    share = math.fsum(float(e * p) for e, p in zip(eta, pay, strict=True))
    terms = (("your share of the sellers' payments, sum_j eta_ij P_j", share),)
    used: dict[str, Any] = {
        "your target mu_i": [float(x) for x in task["target"]],
        "W_i (your weights, seller 1 to |S| in the round's order)": np.asarray(result.allocation)[i].tolist(),
        _VALUE: float(np.asarray(result.values)[i]),
        "sellers' payment rule": rule,
        "|S| (sellers)": ns,
        "|B| (buyers)": int(prices.size),
    }
    other_buyers = int(np.count_nonzero(prices)) - 1
    if other_buyers == 0 or (other_buyers >= 2 and np.count_nonzero(pays) >= 2):
        used[_TOTAL] = math.fsum(float(p) for p in pays)
    money = tuple(k for k in (_VALUE, _TOTAL) if k in used)
    return Charge("price", "split", float(prices[i]), terms, used, money)


ADAPTER = TruthfulPaymentsAdapter()
