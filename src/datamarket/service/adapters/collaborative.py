"""Adapter of the collaborative ML market with replication-robust payments (Ohrimenko et al.).

Every participant is a party (buyer and seller at once). Submissions:

* ``dataset``: the party's labelled training data (upload);
* ``task``: its labelled validation task (upload); in the single-task markets (``u``, ``v``) one task
  given by any party is shared, in ``w`` every party gives one;
* ``fee_scale``: ``{"fee_scale": s}`` multiplies the market's fee constant ``c`` (default 1).

Market parameters (:class:`~datamarket.scenarios.inputs.collaborative.Params`, whose round parameters
the scenario kind ``collaborative`` shares) map onto
:class:`~datamarket.mechanisms.collaborative.CollaborativeConfig` (``characteristic``, ``c``,
``shapley``, ``n_permutations``, ``max_exact``, ``tau``, ``guard``, ``customise``, ``lam`` and a
``model`` table for :class:`~datamarket.learning.models.ModelSpec`); only the keys given are stored,
the others take the model's defaults. Clearing calls
:func:`~datamarket.mechanisms.collaborative.clear_round`: each party pays its fee ``A_i`` and receives
``t_i`` (the ledger books both), and its deliverable is the delivered model's description and accuracy.
The clearing carries the round's certificate (:func:`~datamarket.mechanisms.collaborative.certified_round`).
Receipts explain both lines (:data:`RULES`): the fee as ``c_i - c_i g_i`` and the amount returned as
``A_i - a_i + b_i``, with the party's own accuracies, Shapley value and share, and the pot ``a`` (with two
parties the pot and one's own improvement give the other's: the payout rule ``b_i = a ψ̂_i`` needs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from datamarket.core.errors import InvalidInputError, InvalidMarketError
from datamarket.core.progress import Progress
from datamarket.core.types import Dataset
from datamarket.scenarios.inputs.collaborative import SUBMISSIONS, Params
from datamarket.service.adapters import Clearing, Input, ModelAdapter, latest_by, validate_input
from datamarket.service.adapters.charges import Charge, Rule

__all__ = ["ADAPTER", "RULES", "CollaborativeAdapter"]

_PAPER = (
    "Ohrimenko, Tople, Tschiatschek, "
    "Collaborative Machine Learning Markets with Data-Replication-Robust Payments"
)
RULES = {
    "fee": Rule(
        title="A party's participation fee (Sec. 3, step 3)",
        formula="A_i = c_i (1 - g_i),  c_i = c s_i,  g_i = G(V_i; M(X_i))",
        source=f"{_PAPER}, Sec. 3 step 3",
        text="You pay the market's price of accuracy c_i (the fee constant c times your fee scale s_i) for "
        "the accuracy that a model trained on your data alone lacks on your validation task, 1 - g_i: the "
        "better your own data, the smaller the fee. Part of it comes back to you (the payment line).",
    ),
    "payment": Rule(
        title="The amount returned to a party (Sec. 3 step 5, Sec. 4.1-4.2)",
        formula="t_i = (A_i - a_i) + b_i,  a_i = c_i (G_i - g_i),  b_i = a ψ̂_i,  a = Σ_k a_k,  "
        "ψ̂_i = ψ(f, i) / Σ_k ψ(f, k),  ψ the Shapley value (1) of f = v, w or u",
        source=f"{_PAPER}, Sec. 3 step 5 (minus signs restored), Sec. 4.1 payment division, "
        "Sec. 4.2, eq. (1)",
        text="Your fee comes back minus your improvement a_i: the accuracy your delivered model G_i adds to "
        "your own g_i, priced at c_i, is what you pay for the better model. Every party's improvement goes "
        "into a pot a, divided in proportion to the normalised Shapley values of the market's "
        "characteristic function (v: one task, w: many tasks, u: plain accuracy): your payout b_i = a ψ̂_i "
        "is what your data are worth to the market, and your net gain is b_i - a_i. Under the "
        "zero-element guard (the default) negative shares count as zero and your delivered model is never "
        "worse than your own, so you get at least your fee back when nobody's data help you.",
    ),
}


def _integral_labels(ds: Dataset | None) -> Dataset | None:
    """CSV and Parquet labels arrive as floats; integral ones become integers (class labels)."""
    if ds is None or ds.labels is None:
        return ds
    lab = np.asarray(ds.labels)
    if lab.dtype.kind == "f" and np.all(lab == np.round(lab)):
        return Dataset(ds.features, lab.astype(np.int64), ds.groups)
    return ds


class CollaborativeAdapter(ModelAdapter):
    kind = "collaborative"
    description = "Collaborative ML market with replication-robust Shapley payments (Ohrimenko et al.)"
    submission_kinds: ClassVar[dict[str, str]] = {
        "dataset": "party: labelled training data (upload)",
        "task": "party: labelled validation task (upload)",
        "fee_scale": 'party: {"fee_scale": >= 0} multiplies the fee constant c',
    }
    dataset_kinds = frozenset({"dataset", "task"})
    params_model = Params
    submission_models = SUBMISSIONS
    plan_labels: ClassVar[dict[str, str]] = {
        "parties": "parties",
        "tasks": "validation tasks",
        "task_of": "validation task of the party",
        "classes": "class labels",
    }
    rules: ClassVar[dict[str, Rule]] = RULES

    def _config(self, params: Mapping[str, Any]) -> Any:
        from datamarket.learning.models import ModelSpec
        from datamarket.mechanisms.collaborative import CollaborativeConfig

        model = params.get("model", {})
        if not isinstance(model, Mapping):
            raise InvalidMarketError("params.model", "must be an object")
        kw = {k: v for k, v in params.items() if k != "model"}
        try:
            return CollaborativeConfig(model=ModelSpec(**model), **kw)
        except InvalidInputError as exc:
            raise InvalidMarketError(f"params.{exc.field}", exc.message) from None
        except (TypeError, ValueError) as exc:
            raise InvalidMarketError("params", str(exc)) from None

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        validate_input(Params, params, "params")
        self._config(params)  # the rules across fields (customised models need w and logreg)
        return dict(params)

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        if kind in SUBMISSIONS:
            return self.validate_json(kind, payload)
        assert dataset is not None
        if dataset.labels is None:
            raise InvalidMarketError("file", f"{kind} needs a label column")
        return {}

    def check_submission(self, params: Mapping[str, Any], mine: Sequence[Input], new: Input) -> None:
        """A task or fee scale belongs to a party that has uploaded training data."""
        if new.kind != "dataset" and not any(i.kind == "dataset" for i in mine):
            raise InvalidMarketError("kind", f"upload training data before a {new.kind!r}")

    def _parties(self, inputs: Sequence[Input]) -> list[Any]:
        from datamarket.mechanisms.collaborative import Party

        train, task, fee = (
            latest_by(inputs, "dataset"),
            latest_by(inputs, "task"),
            latest_by(inputs, "fee_scale"),
        )
        stray = sorted((set(task) | set(fee)) - set(train))
        if stray:
            raise InvalidMarketError("inputs", f"{stray[0]} has no training data")
        parties = []
        for name in sorted(train):
            ds = _integral_labels(train[name].dataset)
            assert ds is not None
            parties.append(
                Party(
                    name,
                    ds,
                    _integral_labels(task[name].dataset) if name in task else None,
                    float(fee[name].payload["fee_scale"]) if name in fee else 1.0,
                )
            )
        return parties

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        from datamarket.mechanisms.collaborative import validate_market

        parties = self._parties(inputs)
        tasks, task_of, labels = validate_market(parties, self._config(params))
        return {
            "parties": [p.name for p in parties],
            "tasks": len(tasks),
            "task_of": dict(zip([p.name for p in parties], task_of, strict=True)),
            "classes": [x.item() if hasattr(x, "item") else x for x in labels],
        }

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        self.plan(params, inputs)

    def clear(
        self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int, progress: Progress | None = None
    ) -> Clearing:
        from dataclasses import asdict

        from datamarket.mechanisms.collaborative import certified_round

        config = self._config(params)
        parties = self._parties(inputs)
        r, certificate = certified_round(parties, config, seed=seed, progress=progress)
        deliverables = {
            name: {
                "kind": "model",
                "model": asdict(config.model),
                # how many parties' data trained the model, never their names (a party sees only its own)
                "trained_on_parties": len(r.selected[i]),
                "own_accuracy": float(r.own_accuracy[i]),
                "delivered_accuracy": float(r.delivered_accuracy[i]),
                "fee": float(r.fee[i]),
                "payout": float(
                    r.reward[i]
                ),  # b_i, as the scenario's JSON field (Ohrimenko et al., Section 4.1)
                "returned": float(r.payout[i]),  # t_i = A_i - a_i + b_i, the money paid back
                "net": float(r.net[i]),
                "share": float(r.share[i]),
            }
            for i, name in enumerate(r.names)
        }
        return Clearing(
            r.outcome, deliverables, certificate=certificate, charges=_charges(config, parties, r)
        )

    def round_figure(
        self,
        outcome: Mapping[str, Any] | None,
        names: Sequence[str],
        paid: Mapping[str, float],
        received: Mapping[str, float],
    ) -> tuple[str, dict[str, list[float]]]:
        """Each party's fee ``A_i`` and the money ``t_i`` paid back to it (Section 4.1), whose
        difference is the Shapley-based net."""
        return "Collaborative round: fees and Shapley-based payments", {
            "fee A_i paid": [paid[n] for n in names],
            "payment t_i received": [received[n] for n in names],
        }


_POT = "a (pot: the improvements of all parties)"
_MONEY = (
    "c (fee constant)",
    "c_i = c s_i",
    "A_i (your fee)",
    "a_i = c_i (G_i - g_i) (your improvement)",
    _POT,
)


def _charges(config: Any, parties: Sequence[Any], r: Any) -> dict[str, list[Charge]]:
    """Each party's fee ``A_i`` (rule ``fee``) and the amount ``t_i`` returned to it (rule ``payment``),
    as the terms :func:`~datamarket.mechanisms.collaborative.divide_payments` computed them (``r``: the
    round's :class:`~datamarket.mechanisms.collaborative.CollaborativeRound`, aligned with ``parties``).
    Inputs: the party's own data, fee scale and accuracies, the market's constants, its own Shapley
    value and share, and the pot ``a`` (an aggregate of every party's improvement). A line that is zero
    is not booked and gets no charge."""
    prices, payments = np.asarray(r.outcome.prices, float), np.asarray(r.outcome.payments, float)
    pot = float(np.sum(r.gain))  # a, exactly as divide_payments sums it
    out: dict[str, list[Charge]] = {}
    for i, p in enumerate(parties):
        c_i, g_i = float(config.c) * float(p.fee_scale), float(r.own_accuracy[i])
        own: dict[str, Any] = {
            "your training data (rows)": int(p.train.n_samples),
            "s_i (your fee scale)": float(p.fee_scale),
            "c (fee constant)": float(config.c),
            "c_i = c s_i": c_i,
            "g_i (accuracy of a model on your data alone)": g_i,
        }
        lines = []
        terms: tuple[tuple[str, float], ...]
        if prices[i] != 0.0:
            terms = (
                ("c_i (price of full accuracy)", c_i),
                ("- c_i g_i (what your own data already reach)", -c_i * g_i),
            )
            lines.append(Charge("price", "fee", float(prices[i]), terms, own, _MONEY[:2]))
        if payments[i] != 0.0:
            fee, gain, reward = float(r.fee[i]), float(r.gain[i]), float(r.reward[i])
            terms = (
                ("your fee A_i returned", fee),
                ("- your improvement a_i = c_i (G_i - g_i)", -gain),
                ("your payout b_i = a ψ̂_i", reward),
            )
            used = own | _payment_inputs(config, r, i, pot)
            lines.append(Charge("payment", "payment", float(payments[i]), terms, used, _MONEY))
        out[p.name] = lines  # empty when nothing is booked: explained, with nothing to explain
    return out


def _payment_inputs(config: Any, r: Any, i: int, pot: float) -> dict[str, Any]:
    """What the payment of party ``i`` used besides its fee's inputs: its accuracies, improvement,
    Shapley value and share, how the shares were computed, and the aggregates: the pot and counts of
    parties."""
    d: dict[str, Any] = {
        "A_i (your fee)": float(r.fee[i]),
        "G_i (accuracy of your delivered model)": float(r.delivered_accuracy[i]),
        "a_i = c_i (G_i - g_i) (your improvement)": float(r.gain[i]),
        "characteristic function f": str(r.characteristic),
        f"ψ_i (your Shapley value of {r.characteristic})": float(r.shapley[i]),
        "ψ̂_i (your share of the pot)": float(r.share[i]),
        _POT: pot,
        "Shapley values": str(r.method),
        "zero-element guard": bool(config.guard),
        "M (parties)": len(r.names),
        "parties whose data trained your model": len(r.selected[i]),
        "your validation task": "your own" if r.characteristic == "w" else "the market's common task",
    }
    if r.method == "monte_carlo":
        d["standard error of ψ_i"] = float(r.shapley_stderr[i])
    if config.guard:
        d["ψ̂_i before clipping negative shares"] = float(r.raw_share[i])
    return d


ADAPTER = CollaborativeAdapter()
