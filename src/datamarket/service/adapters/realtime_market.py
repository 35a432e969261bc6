"""Adapter of the real-time data marketplace (Agarwal, Dahleh, Sarkar, "A Marketplace for Data: An
Algorithmic Solution", ACM EC 2019): the market online.

Over HTTP:

1. each seller uploads its ``stream``: one numeric column of ``T`` values (a file; it stays in the
   market for every later buyer: a *standing* input, which no round consumes);
2. a buyer submits a ``bid`` (JSON, :class:`~datamarket.scenarios.inputs.realtime_market.Order`): its
   value per unit of gain, its bid, its labels (one per row of the streams) and its test rows. The
   service **answers at once**, in the answer to that request (``payload.answer``): the price PF*
   drew (Algorithm 1, the market's state carried from the previous buyer), the level AF* allocated,
   the predictions of the learner trained on the allocated streams for the test rows, the gain and the
   charge RF* (eq. 3). The bid is stored with its answer in the transaction that answers it, which
   holds the market's lock, so buyers are served one at a time in the order they are stored;
3. the service then opens a round over the answered bids (at once if none is in progress, else when
   the one in progress ends): under a lease, exactly once, the worker rebuilds each buyer's allocated
   streams (the same common random numbers), re-measures its gain curve and checks that it gives the
   answered charge, divides the charge by PD* (Algorithm 2 or 3, the market's ``rule``) and books the
   buyer's charge, each seller's share and, under PD*_B, the unassigned part to the platform.

What the answer needs later and the buyer must not see (the pricer's weights after this buyer, the
seeds, the streams' content ids) is stored beside it under ``payload._answer`` and never shown. The
online market does not know how many buyers will come, so Algorithm 1 runs with the doubling trick
(:class:`~datamarket.scenarios.inputs.realtime_market.OnlineParams`: ``horizon`` is ``"doubling"``).
A bid cannot be withdrawn once answered (the buyer has its predictions). A stream withdrawn while
answered bids wait makes their round fail with the seller named: their division needs the data they
were answered with.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.certificates import Certificate, Check
from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset, Outcome, Role
from datamarket.learning.models import estimator_from_path
from datamarket.mechanisms.realtime_market import (
    Learner,
    MarketConfig,
    PricerState,
    Round,
    Scorer,
    Streams,
    Task,
    answer,
    balance_check,
    divide_answer,
    measure_curve,
    myerson_check,
    truthfulness_check,
    unassigned_check,
)
from datamarket.scenarios.inputs.realtime_market import SUBMISSIONS, OnlineParams, Params
from datamarket.scenarios.realtime_market import market_config
from datamarket.service.adapters import Clearing, Input, ModelAdapter
from datamarket.service.adapters.charges import Charge, Rule

__all__ = ["ADAPTER", "RULES", "RealtimeMarketAdapter"]

_SOURCE = "Agarwal, Dahleh, Sarkar, A Marketplace for Data: An Algorithmic Solution (ACM EC 2019)"
RULES = {
    "charge": Rule(
        title="A buyer's charge, RF* (eq. 3)",
        formula="r_n = b_n h(b_n) - integral_0^b_n h(z) dz,  h: the gain curve at the posted price p_n",
        source=f"{_SOURCE}, eq. (3), Thm 5.1",
        text="Your bid times the gain your bid bought, minus the area under the gain curve up to your bid "
        "(Myerson's payment). The curve is measured on your own task at the price the market posted; "
        "bidding your true value per unit of gain is your best strategy (Thm 5.1).",
    ),
    "payment": Rule(
        title="A seller's payment, PD* (Algorithms 2 and 3)",
        formula="P_m = sum_n psi_n(m) r_n;  PD*_A: psi = Shapley / (v(all) - v(none));  "
        "PD*_B: psi_A(m) exp(-lambda sum_j SM(X_m, X_j))",
        source=f"{_SOURCE}, Algorithms 2 and 3, Thm 5.3 and 5.4",
        text="Each buyer's charge is divided among the sellers by the Shapley values of the streams in "
        "that buyer's task; under PD*_B a stream similar to others (a copy) gets less, and the part "
        "nobody is paid stays with the platform. Your payment adds up your shares of this round's "
        "charges.",
    ),
}


def _learner(p: Params, seed: int) -> Learner:
    return Learner(estimator_from_path(p.learner.name, p.learner.params, seed=seed))


def _streams(inputs: Sequence[Input]) -> Streams:
    """The sellers' streams, one column per seller in the order of their names."""
    cols = {i.participant: i.dataset for i in inputs if i.kind == "stream" and i.dataset is not None}
    if not cols:
        raise InvalidMarketError("stream", "no seller has uploaded a stream yet")
    lengths = {name: ds.n_samples for name, ds in cols.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidMarketError(
            "stream", f"the sellers' streams differ in length: {dict(sorted(lengths.items()))}"
        )
    names = sorted(cols)
    return Streams(np.column_stack([cols[n].features[:, 0] for n in names]), tuple(names))


def _task(order: Mapping[str, Any]) -> Task:
    labels = np.asarray(order["labels"], dtype=np.float64)
    test = np.zeros(labels.size, dtype=bool)
    test[np.asarray(order["test_rows"], dtype=int)] = True
    return Task(labels, test)


class RealtimeMarketAdapter(ModelAdapter):
    kind = "realtime_market"
    description = (
        "Real-time data marketplace: buyers answered at once, charges split by Shapley (Agarwal et al.)"
    )
    submission_kinds: ClassVar[dict[str, str]] = {
        "stream": "seller: its feature stream, one numeric column of T values (stays for every buyer)",
        "bid": 'buyer: {"value": mu_n, "bid": b_n, "labels": [T numbers], "test_rows": [row indices]}, '
        "answered at once with predictions and a charge",
    }
    dataset_kinds = frozenset({"stream"})
    params_model = OnlineParams
    submission_models = SUBMISSIONS
    cumulative_kinds = frozenset({"bid"})  # every bid is answered and charged; none supersedes another
    standing_kinds = frozenset({"stream"})  # no round consumes a stream
    answer_kinds = frozenset({"bid"})
    rules: ClassVar[dict[str, Rule]] = RULES
    plan_labels: ClassVar[dict[str, str]] = {
        "sellers": "sellers with a stream",
        "rows": "rows of the streams, T",
        "waiting": "answered bids waiting for their division",
    }

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """:class:`OnlineParams` (the doubling trick: a service does not know how many buyers will
        come), the learner's import path and parameters checked now."""
        valid = super().validate_params(params)
        _learner(Params.model_validate(valid), 0)
        return valid

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        if kind in SUBMISSIONS:
            order = self.validate_json(kind, payload)
            p = Params.model_validate(params)
            rows, n = order["test_rows"], len(order["labels"])
            if len(set(rows)) != len(rows) or not all(0 <= r < n for r in rows) or len(rows) >= n:
                raise InvalidMarketError(
                    "data.test_rows", f"need distinct rows in [0, {n - 1}], leaving at least one to train on"
                )
            bid = order["value"] if order["bid"] is None else order["bid"]
            if bid > p.max_bid:
                raise InvalidMarketError(
                    "data.bid", f"exceeds the market's max_bid {p.max_bid} (Assumption 4)"
                )
            return order
        assert dataset is not None
        if dataset.n_features != 1 or dataset.n_samples < 2:
            raise InvalidMarketError(
                "file",
                f"a stream is one numeric column of at least 2 values, got {dataset.n_features} columns",
            )
        return {}

    def check_submission(self, params: Mapping[str, Any], mine: Sequence[Input], new: Input) -> None:
        """A participant sells one stream or buys, never both."""
        kinds = {i.kind for i in mine}
        if new.kind == "stream" and "stream" in kinds:
            raise InvalidMarketError("kind", "you already sell a stream in this market")
        if new.kind == "stream" and "bid" in kinds:
            raise InvalidMarketError("kind", "you bid in this market; a participant sells or buys, not both")
        if new.kind == "bid" and "stream" in kinds:
            raise InvalidMarketError("kind", "you sell a stream in this market; a participant sells or buys")

    # -- answering a buyer at once ---------------------------------------------------------------------
    def answer(
        self,
        params: Mapping[str, Any],
        inputs: Sequence[Input],
        new: Input,
        previous: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(public, private)``: what the buyer is told, and what its division needs later (module
        docstring). ``inputs`` are the market's waiting inputs, ``previous`` the private part of the
        market's last answer (None before the first buyer)."""
        p = Params.model_validate(params)
        cfg = market_config(p)
        streams = _streams(inputs)
        task = _task(new.payload)
        if task.labels.size != streams.length:
            raise InvalidMarketError(
                "data.labels",
                f"need one label per row of the sellers' streams ({streams.length}), got {task.labels.size}",
            )
        state = PricerState.from_dict((previous or {}).get("pricer"))
        price_seed, noise_seed, split_seed = (secrets.randbits(63) for _ in range(3))
        bid = float(new.payload["value"] if new.payload.get("bid") is None else new.payload["bid"])
        a = answer(streams, task, bid, _learner(p, noise_seed), cfg, state, price_seed, noise_seed)
        public = {
            "price": a.price,
            "bid": a.bid,
            "level": a.level,
            "gain": a.gain,
            "charge": a.charge,
            "test_rows": sorted(int(r) for r in new.payload["test_rows"]),
            "predictions": [float(x) for x in a.predictions],
        }
        private = {
            "pricer": a.state.to_dict(),
            "noise_seed": noise_seed,
            "split_seed": split_seed,
            "streams": dict(zip(streams.names, streams.ids, strict=True)),
        }
        return public, private

    # -- the round: dividing the answered charges -------------------------------------------------------
    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        if not any(i.kind == "bid" for i in inputs):
            raise InvalidMarketError("inputs", "no answered bid waits for its division")
        _streams(inputs)

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        streams = [i for i in inputs if i.kind == "stream"]
        rows = {i.dataset.n_samples for i in streams if i.dataset is not None}
        return {
            "sellers": len(streams),
            "rows": rows.pop() if len(rows) == 1 else None,
            "waiting": sum(1 for i in inputs if i.kind == "bid"),
        }

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing:
        p = Params.model_validate(params)
        cfg = market_config(p)
        streams = _streams(inputs)
        rounds: list[Round] = []
        told: list[float] = []
        for i in inputs:
            if i.kind != "bid":
                continue
            told_to, private = i.payload["answer"], i.payload["_answer"]
            used = dict(zip(streams.names, streams.ids, strict=True))
            if used != private["streams"]:
                gone = sorted(set(private["streams"]).symmetric_difference(used)) or sorted(
                    n for n in used if used[n] != private["streams"].get(n)
                )
                raise InvalidMarketError(
                    "stream",
                    f"{i.participant} was answered on other streams than the market has now ({gone})",
                )
            task, noise, level = _task(i.payload), int(private["noise_seed"]), int(told_to["level"])
            learner = _learner(p, noise)
            scorer = Scorer.of(task, learner.classifier, cfg.baseline)
            curve, _ = measure_curve(streams, task, learner, scorer, cfg.allocation, cfg.max_bid, noise)
            price, bid = float(told_to["price"]), float(told_to["bid"])
            division = divide_answer(streams, task, level, learner, cfg, noise, int(private["split_seed"]))
            rounds.append(
                Round(
                    buyer=i.participant,
                    value=float(i.payload["value"]),
                    bid=bid,
                    price=price,
                    level=curve.level(price, bid),
                    gain=float(curve.gain([price], bid)[0]),
                    charge=float(curve.payment([price], bid)[0]),
                    curve=curve,
                    division=division,
                )
            )
            told.append(float(told_to["charge"]))
        return Clearing(
            outcome=self._outcome(streams, rounds, cfg),
            deliverables=self._deliverables(streams, rounds),
            certificate=self._certificate(rounds, told, cfg),
            charges=self._charges(streams, rounds),
        )

    def _outcome(self, streams: Streams, rounds: Sequence[Round], cfg: MarketConfig) -> Outcome:
        buyers = sorted({r.buyer for r in rounds})
        paid = {b: math.fsum(r.charge for r in rounds if r.buyer == b) for b in buyers}
        values = {b: math.fsum(r.value * r.gain for r in rounds if r.buyer == b) for b in buyers}
        received = np.sum([r.payments() for r in rounds], axis=0)
        zeros = [0.0] * streams.n_sellers
        return Outcome(
            mechanism=f"realtime_market.{cfg.division.rule}",
            participants=(*buyers, *streams.names),
            roles=(Role.BUYER,) * len(buyers) + (Role.SELLER,) * streams.n_sellers,
            allocated=[*(float(sum(r.gain for r in rounds if r.buyer == b)) for b in buyers), *zeros],
            prices=[*(paid[b] for b in buyers), *zeros],
            payments=[0.0] * len(buyers) + [float(x) for x in received],
            values=[*(values[b] for b in buyers), *zeros],
            costs=[0.0] * (len(buyers) + streams.n_sellers),
            extra={
                "rule": cfg.division.rule,
                "unassigned": math.fsum(r.charge * r.division.unassigned for r in rounds),
                "buyers_served": len(rounds),
            },
        )

    def _deliverables(self, streams: Streams, rounds: Sequence[Round]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rounds:
            mine = out.setdefault(r.buyer, {"answers": []})
            mine["answers"].append({"price": r.price, "bid": r.bid, "gain": r.gain, "charge": r.charge})
        for m, name in enumerate(streams.names):  # no per-buyer share: with the payment it gives a charge
            out[name] = {
                "buyers_divided": len(rounds),
                "payment": math.fsum(float(r.payments()[m]) for r in rounds),
            }
        return out

    def _certificate(self, rounds: Sequence[Round], told: Sequence[float], cfg: MarketConfig) -> Certificate:
        again = [abs(r.charge - t) for r, t in zip(rounds, told, strict=True)]
        scale = max(1.0, *(r.bid for r in rounds))
        reproduced = Check(
            "answer.reproduced",
            "each buyer was charged what the worker's re-measured gain curve gives at its price and bid",
            "the gain curve re-measured from the answer's common random numbers; RF*(p, b) recomputed",
            max(again),
            1e-9 * scale,
            {r.buyer: {"told": t, "again": r.charge} for r, t in zip(rounds, told, strict=True)},
        )
        probes = [(f"{r.buyer}#{k}", r.curve, r.price, r.value) for k, r in enumerate(rounds)]
        checks = [reproduced, myerson_check(rounds), truthfulness_check(probes, cfg.max_bid)]
        if cfg.division.rule == "pd_a":
            checks.append(balance_check(rounds))
        else:
            checks.append(unassigned_check(rounds, cfg.division.lam))
        return Certificate.of(*checks)

    def _charges(self, streams: Streams, rounds: Sequence[Round]) -> dict[str, list[Charge]]:
        out: dict[str, list[Charge]] = {}
        for b in sorted({r.buyer for r in rounds}):
            mine = [r for r in rounds if r.buyer == b]
            total = math.fsum(r.charge for r in mine)
            terms = tuple((f"RF*(p, b) of your bid {k + 1}", r.charge) for k, r in enumerate(mine))
            inputs: dict[str, Any] = {
                "your bids b_n": [r.bid for r in mine],
                "posted prices p_n": [r.price for r in mine],
                "your gains h(b_n)": [r.gain for r in mine],
            }
            out[b] = [Charge("price", "charge", total, terms, inputs, ("your bids b_n", "posted prices p_n"))]
        for m, name in enumerate(streams.names):
            pay = math.fsum(float(r.payments()[m]) for r in rounds)
            terms = (("sum over this round's buyers of psi_n(m) r_n", pay),)
            inputs = {"buyers whose charges were divided": len(rounds), "sellers": streams.n_sellers}
            out[name] = [Charge("payment", "payment", pay, terms, inputs)]
        return out


ADAPTER = RealtimeMarketAdapter()
