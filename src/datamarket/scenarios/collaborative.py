r"""Scenario kind ``collaborative``: the collaborative ML market of Ohrimenko et al. on scikit-learn's digits.

A file lists ``[[parties]]``, each with the ``digits`` it holds (training data) and, for the multi-task
market (``characteristic = "w"``), its own ``task`` digits; a single-task market (``"u"``, ``"v"``) gives
one common ``task``. Images come from ``sklearn.datasets.load_digits`` (the offline stand-in for MNIST,
features scaled to [0, 1]), split per class with the scenario's seed: ``train_frac`` (or
``train_count`` images) of each class to training, shared round-robin among its holders, the rest to
validation. An optional ``[replication]`` table runs the replication attack of one party.

JSON fields (public interface): ``parties`` (list of {``name``, ``fee``, ``gain``, ``payout``, ``net``,
``share``}: fee :math:`A_i`, gain :math:`a_i`, payout :math:`b_i = \mathbf{a}\hat\psi_i` (Ohrimenko et al.,
Sec. 4.1 "payout :math:`b_i`"), net :math:`t_i - A_i = b_i - a_i`, normalised Shapley share; the
amount returned :math:`t_i = A_i + \text{net}` is in the ``parties`` table), ``characteristic``,
``balance_residual``, ``replication`` (with ``[replication]``: {``replicas``, ``combined_net``,
``condition_1``} for that many replicas, and ``per_replicas``: one row per characteristic the market admits
(u, v, w) and replica count k = 0..replicas with ``original_net``, ``combined_net``, ``share``, the Condition
1 ``bound`` and whether ``condition_1`` holds) and ``selected`` (per task: {``task``, ``parties``}, the
parties whose data trains that task's model).

The certificate (:func:`~datamarket.mechanisms.collaborative.round_certificate`) checks the round's
claims: Shapley efficiency and values recomputed from the coalition gains, fees, payouts, the pot, budget
balance and, under the guard, non-negative payouts. The replication attack is measured (``condition_1``
may be false) and claims nothing, so it is not certified.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from datamarket.core.audits import AuditResult, audit_budget_balance, audit_ir_sellers
from datamarket.learning.models import ModelSpec
from datamarket.mechanisms.collaborative import (
    CollaborativeConfig,
    GainEngine,
    Party,
    build_market,
    certified_round,
    content_id,
    replication_gain,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.collaborative import FeeScale, Learner, Round, fee_field, fee_scale_field

Digit = int


@lru_cache(maxsize=1)
def load_digits_arrays() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``load_digits`` features divided by 16 and labels, read-only."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    xs = np.asarray(x, dtype=np.float64) / 16.0
    ys = np.asarray(y, dtype=np.int64)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


class ModelConfig(Learner):
    """The learner (``logreg``, ``mlp`` or ``knn1``) and its budget, seeded with the scenario's seed."""


class PartyConfig(FeeScale):
    """One party: the digits it holds, its own task (multi-task market) and its fee scale (the
    service's ``fee_scale`` submission)."""

    name: str = Field(min_length=1, description="party name, unique", json_schema_extra={"symbol": "i"})
    digits: list[int] = Field(
        min_length=1,
        description="digit classes whose training images the party holds",
        json_schema_extra={"symbol": "X_i"},
    )
    task: list[int] | None = Field(
        default=None,
        min_length=1,
        description="digit classes of the party's validation task (multi-task markets)",
        json_schema_extra={"symbol": "V_i"},
    )
    fee_scale: NonNegativeFloat = fee_scale_field(default=1.0)

    @model_validator(mode="after")
    def _digits_in_range(self) -> PartyConfig:
        for what, labels in (("digits", self.digits), ("task", self.task or [])):
            bad = [d for d in labels if not 0 <= d <= 9]
            if bad:
                raise ValueError(f"{what}: labels {bad} are not digits 0-9")
        return self


class ReplicationConfig(StrictModel):
    """Party ``party`` adds ``replicas`` copies of itself (new identities, same data)."""

    party: str = Field(
        min_length=1,
        description="name of the party that replicates its data",
        json_schema_extra={"symbol": "i"},
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=8,
        description="number of replicas (fake identities)",
        json_schema_extra={"unit": "replicas", "symbol": "k"},
    )


class Config(Round, ScenarioConfig):
    """A collaborative scenario: the round's parameters
    (:class:`~datamarket.scenarios.inputs.collaborative.Round`, shared with the service), the fee
    constant, the learner, the parties and how the digits are split among them."""

    kind: Literal["collaborative"]
    parties: list[PartyConfig] = Field(
        min_length=2, max_length=20, description="the parties (2 to 20)", json_schema_extra={"symbol": "M"}
    )
    task: list[int] | None = Field(
        default=None,
        min_length=1,
        description="digit classes of the common validation task",
        json_schema_extra={"symbol": "V"},
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="the learner", json_schema_extra={"symbol": "M(·)"}
    )
    fee: PositiveFloat = fee_field()
    train_frac: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="fraction of each class's images used for training",
        json_schema_extra={"unit": "share"},
    )
    train_count: int | None = Field(
        default=None,
        ge=1,
        description="training images per class (overrides train_frac)",
        json_schema_extra={"unit": "samples"},
    )
    halve: list[int] = Field(
        default_factory=list,
        description="classes whose training pool is halved between the parties holding them",
    )
    replication: ReplicationConfig | None = Field(default=None, description="optional replication attack")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [p.name for p in self.parties]
        if len(set(names)) != len(names):
            raise ValueError("parties: names must be unique")
        if self.characteristic == "w":
            if any(p.task is None for p in self.parties):
                raise ValueError("parties: the multi-task market (w) needs a task for every party")
        elif self.task is None:
            raise ValueError("task: a single-task market (u, v) needs the common task digits")
        bad_halve = [d for d in self.halve if not 0 <= d <= 9]
        if bad_halve:  # review: a non-digit here used to be ignored silently
            raise ValueError(f"halve: labels {bad_halve} are not digits 0-9")
        held = {d for p in self.parties for d in p.digits}
        wanted = set(self.task or []) | {d for p in self.parties for d in p.task or []}
        if wanted - held:
            raise ValueError(
                f"task: labels {sorted(wanted - held)} are not in the market (no party holds them)"
            )
        if self.replication is not None and self.replication.party not in names:
            raise ValueError(f"replication.party: no party named {self.replication.party!r}")
        return self


def default_config() -> Config:
    """Five parties with three digits each, common task on all digits, v, selection and a replicator."""
    holdings = [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8], [8, 9, 0]]
    return Config(
        kind="collaborative",
        name="digits, five parties",
        characteristic="v",
        parties=[PartyConfig(name=f"P{i + 1}", digits=h) for i, h in enumerate(holdings)],
        task=list(range(10)),
        tau=0.01,
        replication=ReplicationConfig(party="P1", replicas=2),
    )


def _library_config(config: Config) -> CollaborativeConfig:
    m = config.model
    return CollaborativeConfig(
        model=ModelSpec(
            m.kind, C=m.C, max_iter=m.max_iter, tol=m.tol, hidden=m.hidden, random_state=config.seed
        ),
        characteristic=config.characteristic,
        c=config.fee,
        shapley=config.shapley,
        n_permutations=config.n_permutations,
        tau=config.tau,
        guard=config.guard,
        customise=config.customise,
        lam=config.lam,
        max_exact=config.max_exact,
    )


def _replication(
    parties: list[Party],
    lib: CollaborativeConfig,
    config: Config,
    names: list[str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The replication attack under the configured characteristic (the JSON field) and, for the table,
    under every characteristic the market admits (u and v need one common task), sharing one engine."""
    assert config.replication is not None
    idx = names.index(config.replication.party)
    ks = range(config.replication.replicas + 1)
    engine = GainEngine(lib.model, _distinct_tasks(parties))
    chars = [config.characteristic] + [c for c in ("u", "v", "w") if c != config.characteristic]
    if config.task is None:  # multi-task market: only w applies
        chars = ["w"]
    rows: list[dict[str, Any]] = []
    field: dict[str, Any] = {}
    for char in chars:
        cfg = replace(lib, characteristic=char, customise=lib.customise if char == "w" else "none")
        reports = replication_gain(parties, cfg, idx, ks, seed=config.seed, engine=engine)
        if char == config.characteristic:
            last = reports[-1]
            field = {
                "replicas": last.replicas,
                "combined_net": last.combined_net,
                "condition_1": last.condition_1,
            }
        rows.extend(
            {
                "characteristic": char,
                "party": rep.party,
                "replicas": rep.replicas,
                "original_net": rep.original_net,
                "combined_net": rep.combined_net,
                "share": rep.replicated_share,
                "bound": rep.bound,
                "condition_1": rep.condition_1,
            }
            for rep in reports
        )
    field["per_replicas"] = rows
    return field, rows


def _distinct_tasks(parties: list[Party]) -> list[tuple[NDArray[np.float64], NDArray[Any]]]:
    seen: dict[str, tuple[NDArray[np.float64], NDArray[Any]]] = {}
    for p in parties:
        if p.task is not None:
            pair = (p.task.features, np.asarray(p.task.labels))
            seen.setdefault(content_id(*pair), pair)
    return list(seen.values())


class Fields(ResultFields):
    """The kind's JSON fields (public interface)."""

    parties: list[Any] = Field(description="per party: name, fee, gain, payout, net, share")
    characteristic: str = Field(description="u, v or w")
    balance_residual: float | None = Field(description="sum of transfers (0 up to rounding)")
    selected: list[Any] = Field(description="per task: task, parties")
    replication: dict[str, Any] = Field(
        default_factory=dict,
        description="replicas, combined_net, condition_1, per_replicas (per characteristic and k)",
    )


def run(config: Config) -> ScenarioResult:
    """Split digits among the parties, clear one round and (optionally) the replication attack."""
    parties = _parties(config)
    lib = _library_config(config)
    r, certificate = certified_round(parties, lib, seed=config.seed)
    names = list(r.names)
    selected = _selected(config, r.selected, names)
    fields: dict[str, Any] = {
        "parties": r.party_rows(),
        "characteristic": config.characteristic,
        "balance_residual": r.balance_residual,
        "selected": selected,
    }
    tables = _tables(r, selected)
    if config.replication is not None:
        fields["replication"], tables["replication"] = _replication(parties, lib, config, names)
    audits: dict[str, AuditResult] = {
        a.property.value: a
        for a in (
            audit_budget_balance(r.outcome, strong=True),
            audit_budget_balance(r.outcome, strong=False),
            audit_ir_sellers(r.outcome),
        )
    }
    return ScenarioResult(
        kind="collaborative",
        seed=config.seed,
        fields=fields,
        outcome=r.outcome,
        audits=audits,
        tables=tables,
        certificate=certificate,
    )


def _parties(config: Config) -> list[Party]:
    """The parties of ``config``: digits split by :func:`build_market`, with their fee scales."""
    x, y = load_digits_arrays()
    tasks: Any = (
        tuple(config.task) if config.task is not None else [tuple(p.task or ()) for p in config.parties]
    )
    market = build_market(
        x,
        y,
        [tuple(p.digits) for p in config.parties],
        tasks,
        seed=config.seed,
        train_frac=config.train_frac,
        train_count=config.train_count,
        halve=config.halve,
        names=[p.name for p in config.parties],
    )
    return [
        type(p)(p.name, p.train, p.task, pc.fee_scale)
        for p, pc in zip(market.parties, config.parties, strict=True)
    ]


def _selected(config: Config, selected: Any, names: list[str]) -> list[dict[str, Any]]:
    """Per distinct task: the parties whose data train its model."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for i, p in enumerate(config.parties):
        key = tuple(config.task) if config.task is not None else tuple(p.task or ())
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "task": "common" if config.task is not None else p.name,
                "parties": [names[j] for j in selected[i]],
            }
        )
    return out


def _tables(r: Any, selected: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The parties, checks, selected and cost tables of a cleared round."""
    return {
        "parties": [
            {
                **row,
                "returned": float(r.payout[i]),
                "own_accuracy": float(r.own_accuracy[i]),
                "delivered_accuracy": float(r.delivered_accuracy[i]),
            }
            for i, row in enumerate(r.party_rows())
        ],
        "checks": [c.to_dict() for c in r.checks.values()],
        "selected": [{"task": s["task"], "parties": ", ".join(s["parties"])} for s in selected],
        "cost": [
            {
                "shapley": r.method,
                "model_fits": r.fits,
                "cache_hits": r.cache_hits,
                "seconds": round(r.elapsed, 3),
            }
        ],
    }
