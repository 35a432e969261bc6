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
from datamarket.service.adapters.charges import Charge, Rule
from datamarket.service.adapters.plans import quota, rows_of

__all__ = ["ADAPTER", "RULES", "SOLVERS", "VALUATIONS", "BrokerAdapter"]

_SOURCE = (
    "Chen, Clinton, Kandasamy, Incentivizing Truthful Data Contributions in a Marketplace for Mean Estimation"
)
RULES = {
    "price": Rule(
        title="A buyer's price, mechanism M* (14)",
        formula="p_j = q_j+ (N*_1 + N*_2)/N+ + sum_i d_i (sigma^2/N*_-i + sigma^2/N*_i)/|B| "
        "- (d_1 + d_2)/|B| (mu_1 - mu_2)^2,  d_i = c_i N*_i^2 / sigma^2",
        source=f"{_SOURCE}, eq. (14)",
        text="The posted expected price q_j+ of your sample size m_j+, plus the contributors' variance "
        "terms shared equally among the buyers, minus a correction that grows with the discrepancy "
        "between the two contributors' submitted means. In expectation over truthful data the "
        "correction equals the variance terms (E(mu_1 - mu_2)^2 = sigma^2/N*_1 + sigma^2/N*_2), so you "
        "pay q_j+ on average; in one round you pay more when the two means happen to agree closely "
        "and less when they differ.",
    ),
    "payment": Rule(
        title="A contributor's payment, mechanism M* (15)",
        formula="r_i = w N*_i/N+ + c_i N*_i + d_i (sigma^2/N*_-i + sigma^2/N*_i) - d_i (mu_1 - mu_2)^2",
        source=f"{_SOURCE}, eq. (15)",
        text="Your share of the broker's surplus w in proportion to the points you collected, the "
        "reimbursement of your reported cost per point for the N*_i points of the plan, and a bonus "
        "minus a penalty for the discrepancy between your mean and the other contributor's: the "
        "penalty is what makes truthful data your best response. In expectation the bonus and the "
        "penalty cancel.",
    ),
}


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
    plan_labels: ClassVar[dict[str, str]] = {
        "buyers": "buyers",
        "contributors": "contributors",
        "n_plus": "points to collect in all, N+",
        "allocations": "points delivered to the buyer, m_j+",
        "prices": "posted expected price, q_j+",
        "curve": "posted price of each number of points, q_N+(0..N+)",
        "n_star": "points to collect, N*_i",
        "contributor_1": "cheapest contributor",
        "contributor_2": "second cheapest contributor",
        "w": "expected surplus of M*, W",
        "opt_profit": "optimal expected profit, OPT",
        "split": "collection split evenly (equal lowest costs)",
    }
    plan_money: ClassVar[frozenset[str]] = frozenset({"prices", "curve", "w", "opt_profit"})
    plan_quota: ClassVar[dict[str, str]] = {"dataset": "n_star"}  # a contributor uploads its N*_i points
    rules: ClassVar[dict[str, Rule]] = RULES

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

    def next_steps(
        self, params: Mapping[str, Any], plan: Mapping[str, Any] | None, me: str, mine: Sequence[Input]
    ) -> list[str]:
        """A buyer bids, then waits; a contributor reports its cost, then uploads the ``N*_i`` points
        the plan asks of it once the plan is determined, then waits."""
        latest = {i.kind: i for i in mine}
        if "bid" in latest:
            return ["Your bid is stored; wait for the operator to clear the round."]
        if "cost" not in latest:
            return [
                "To buy an estimate of the mean, submit a bid (submission kind `bid`).",
                "To sell data points, report your cost per point (submission kind `cost`): "
                "report a cost before uploading data.",
            ]
        wanted, have = quota(plan, "n_star", me), rows_of(latest.get("dataset"))
        if wanted is None:
            return [
                "Your cost is stored. The plan is not determined yet (it needs a bid and two "
                "contributors' costs): come back to see how many points to upload."
            ]
        if wanted == have or (wanted == 0 and have is None):
            return [
                f"The plan asks you for {wanted} points and you have uploaded them."
                if wanted
                else "The plan asks you for no points: upload nothing.",
                "Wait for the operator to clear the round.",
            ]
        if wanted == 0:
            return ["The plan asks you for no points: withdraw your `dataset` upload."]
        upload = f"Upload exactly {wanted} data points (submission kind `dataset`, one numeric column)"
        if have is None:
            return [upload + "."]
        return [f"Your upload has {have} points, the plan asks for {wanted}. {upload}: it replaces it."]

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
        return Clearing(
            outcome,
            deliverables,
            certificate=certify_broker(market, plan, outcome),
            charges=_charges(market, plan, inputs, outcome),
        )

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


def _charges(market: Any, plan: Any, inputs: Sequence[Input], outcome: Any) -> dict[str, list[Charge]]:
    """Each buyer's price (14) and each paid contributor's payment (15) as the terms of
    :func:`~datamarket.mechanisms.broker.mstar_transfers` (both contributors' data have the plan's
    sizes: :meth:`BrokerAdapter._submissions` refuses a round otherwise)."""
    s2, nb = float(market.sigma) ** 2, len(market.buyers)
    n = {plan.contributor_1: plan.n1, plan.contributor_2: plan.n2}
    d = {plan.contributor_1: plan.d1, plan.contributor_2: plan.d2}
    var = {c: d[c] * (s2 / n[o] + s2 / n[c]) for c, o in zip(n, reversed(list(n)), strict=True)}
    gap = float(outcome.extra["discrepancy"]) ** 2
    bids = latest_by(inputs, "bid")
    quantities = {"N*_1": plan.n1, "N*_2": plan.n2, "N+": plan.n_plus, "sigma": float(market.sigma)}
    out: dict[str, list[Charge]] = {}
    for j, b in enumerate(market.buyers):
        q = float(plan.prices[j])
        terms: tuple[tuple[str, float], ...] = (
            ("posted expected price q_j+ x (N*_1 + N*_2)/N+", q * (plan.n1 + plan.n2) / plan.n_plus),
            ("contributors' variance terms / |B|", sum(var.values()) / nb),
            ("- discrepancy correction (d_1 + d_2)/|B| (mu_1 - mu_2)^2", -(plan.d1 + plan.d2) / nb * gap),
        )
        inputs_j = {"your bid": dict(bids[b].payload), "m_j+ (your sample size)": int(plan.allocations[j])}
        inputs_j |= {"q_j+ (posted expected price)": q, "|B| (buyers)": nb, **quantities}
        inputs_j["mu_1 - mu_2 (realised)"] = float(outcome.extra["discrepancy"])
        price = float(np.asarray(outcome.prices)[j])
        out[b] = [Charge("price", "price", price, terms, inputs_j, ("q_j+ (posted expected price)",))]
    for k, c in enumerate(market.contributors):
        pay = float(np.asarray(outcome.payments)[nb + k])
        if c not in n or pay == 0.0:
            out[c] = []  # the plan asked nothing of it: nothing booked, nothing to explain
            continue
        cost = float(plan.c1 if c == plan.contributor_1 else plan.c2)
        terms = (
            ("share of the surplus w N*_i/N+", plan.w * n[c] / plan.n_plus),
            ("cost reimbursement c_i N*_i", cost * n[c]),
            ("variance bonus d_i (sigma^2/N*_-i + sigma^2/N*_i)", var[c]),
            ("- discrepancy penalty d_i (mu_1 - mu_2)^2", -d[c] * gap),
        )
        inputs_c = {"your cost c_i": cost, "N*_i (your points)": int(n[c]), "w (surplus)": float(plan.w)}
        inputs_c |= {"d_i = c_i N*_i^2 / sigma^2": float(d[c]), **quantities}
        inputs_c["mu_1 - mu_2 (realised)"] = float(outcome.extra["discrepancy"])
        out[c] = [Charge("payment", "payment", pay, terms, inputs_c, ("your cost c_i", "w (surplus)"))]
    return out


ADAPTER = BrokerAdapter()
