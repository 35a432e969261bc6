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
        r, certificate = certified_round(self._parties(inputs), config, seed=seed, progress=progress)
        deliverables = {
            name: {
                "kind": "model",
                "model": asdict(config.model),
                "trained_on": [r.names[j] for j in r.selected[i]],
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
        return Clearing(r.outcome, deliverables, certificate=certificate)

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


ADAPTER = CollaborativeAdapter()
