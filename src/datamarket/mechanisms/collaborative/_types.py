"""Domain values, payment maths and validation of the collaborative market (Ohrimenko et al.).

Split from :mod:`datamarket.mechanisms.collaborative` (which re-exports every public name here); see
that module's docstring for the paper, the algorithm and the deviations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import Dataset, Outcome
from datamarket.learning.models import ModelSpec
from datamarket.mechanisms.collaborative._games import Characteristic, content_id

ShapleyMethod = Literal["auto", "exact", "monte_carlo"]
Customise = Literal["none", "paper", "masked"]
PAPER = "Ohrimenko, Tople, Tschiatschek: Collaborative ML Markets with Data-Replication-Robust Payments"


@dataclass(frozen=True)
class Party:
    """A party of the collaborative market: training data, validation task and fee scale.

    ``task`` is the party's validation task (labelled). In a single-task market (``"u"``, ``"v"``) parties
    may leave it ``None`` and share the task another party gives. ``fee_scale`` multiplies the market's fee
    constant :math:`c` for this party (:math:`c_i = c \\cdot` ``fee_scale``).
    """

    name: str
    train: Dataset
    task: Dataset | None = None
    fee_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidMarketError("parties.name", "party name must be a non-empty string")
        where = f"parties[{self.name}]"
        if not isinstance(self.train, Dataset):
            raise InvalidMarketError(f"{where}.train", "must be a Dataset")
        if self.train.labels is None:
            raise InvalidMarketError(f"{where}.train.labels", "training data needs labels")
        if self.train.n_samples == 0:
            raise InvalidMarketError(f"{where}.train", "dataset is empty")
        if self.task is not None:
            if not isinstance(self.task, Dataset) or self.task.labels is None:
                raise InvalidMarketError(f"{where}.task", "the validation task needs labelled data")
        scale = float(self.fee_scale)
        if not np.isfinite(scale) or scale < 0:
            raise InvalidMarketError(
                f"{where}.fee_scale", f"must be a non-negative finite number, got {scale}"
            )


@dataclass(frozen=True)
class CollaborativeConfig:
    """Parameters of a round.

    Attributes
    ----------
    model : the learner (:class:`~datamarket.learning.models.ModelSpec`).
    characteristic : ``"u"`` (accuracy, the naive rule of Sec. 6.3), ``"v"`` (single task, Sec. 4.1)
        or ``"w"`` (multi-task, Sec. 4.2).
    c : fee constant (Sec. 3 step 3), positive.
    shapley : ``"exact"``, ``"monte_carlo"`` or ``"auto"`` (exact up to ``max_exact`` parties).
    n_permutations, truncation_tol : Monte Carlo budget (every party seen in at least this many
        permutations) and relative TMC truncation tolerance (0: none)
    tau : data-selection threshold on normalised Shapley values (Sec. 5); ``None``: no selection.
    guard : zero-element guard; ``False`` is the paper's raw rule.
    customise, lam : customised delivered models for ``"w"`` (Sec. 5 eq. (2)): ``"paper"`` penalises
        the other tasks, ``"masked"`` only their labels the party's task does not hold; weight ``lam``.
    classes : the market's label set (default: the union of the training labels).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    characteristic: Characteristic = "v"
    c: float = 1.0
    shapley: ShapleyMethod = "auto"
    n_permutations: int = 200
    truncation_tol: float = 0.0
    tau: float | None = None
    guard: bool = True
    customise: Customise = "none"
    lam: float = 0.0
    classes: tuple[Any, ...] | None = None
    max_exact: int = 12

    def __post_init__(self) -> None:
        if self.characteristic not in ("u", "v", "w"):
            raise ConfigurationError("characteristic", "must be 'u', 'v' or 'w'")
        if not np.isfinite(self.c) or self.c <= 0:
            raise ConfigurationError("c", "fee constant must be positive and finite")
        if self.shapley not in ("auto", "exact", "monte_carlo"):
            raise ConfigurationError("shapley", "must be 'auto', 'exact' or 'monte_carlo'")
        if int(self.n_permutations) < 2:
            raise ConfigurationError("n_permutations", "need at least 2 permutations")
        if not np.isfinite(self.truncation_tol) or self.truncation_tol < 0:
            raise ConfigurationError("truncation_tol", "must be non-negative")
        if self.tau is not None and not np.isfinite(self.tau):
            raise ConfigurationError("tau", "must be finite")
        if self.customise not in ("none", "paper", "masked"):
            raise ConfigurationError("customise", "must be 'none', 'paper' or 'masked'")
        if not np.isfinite(self.lam) or self.lam < 0:
            raise ConfigurationError("lam", "must be non-negative")
        if self.customise != "none" and self.characteristic != "w":
            raise ConfigurationError("customise", "customised models need the multi-task market ('w')")
        if self.customise != "none" and self.model.kind != "logreg":
            raise ConfigurationError("customise", "customised training is implemented for model 'logreg'")
        if not 1 <= int(self.max_exact) <= 20:
            raise ConfigurationError("max_exact", "must be between 1 and 20")


@dataclass(frozen=True)
class PropertyCheck:
    """A property of Ohrimenko et al. checked on one round: ``holds`` and the worst violation."""

    name: str
    holds: bool
    violation: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "holds": self.holds, "violation": self.violation, "detail": self.detail}


@dataclass(frozen=True)
class CollaborativeRound:
    """Everything a round produced (arrays aligned with ``names``).

    ``fee`` :math:`A_i`, ``gain`` :math:`a_i`, ``reward`` :math:`b_i`, ``payout`` :math:`t_i` (amount
    returned), ``net`` :math:`t_i - A_i`, ``share`` :math:`\\hat\\psi_i` used for the payouts (clipped
    under the guard), ``raw_share`` the unclipped one, ``shapley`` the raw Shapley values of the
    characteristic, ``grand_value`` :math:`f(\\mathbf{M})`, ``own_accuracy`` :math:`g_i`,
    ``delivered_accuracy`` :math:`\\mathcal{G}(V_i; \\mathcal{M}^i)`, ``selected`` :math:`D_i` as
    party indices, ``selection_share`` the normalised :math:`\\hat\\psi(u_i)` per party (``None``
    without selection), ``fits``/``cache_hits``/``evaluations``/``elapsed`` the cost.
    """

    outcome: Outcome
    names: tuple[str, ...]
    characteristic: str
    fee: NDArray[np.float64]
    gain: NDArray[np.float64]
    reward: NDArray[np.float64]
    payout: NDArray[np.float64]
    net: NDArray[np.float64]
    share: NDArray[np.float64]
    raw_share: NDArray[np.float64]
    shapley: NDArray[np.float64]
    shapley_stderr: NDArray[np.float64]
    grand_value: float
    own_accuracy: NDArray[np.float64]
    delivered_accuracy: NDArray[np.float64]
    selected: tuple[tuple[int, ...], ...]
    selection_share: tuple[tuple[float, ...], ...] | None
    balance_residual: float
    checks: dict[str, PropertyCheck]
    method: str
    fits: int
    cache_hits: int
    evaluations: int
    elapsed: float

    def party_rows(self) -> list[dict[str, Any]]:
        r"""Per-party rows with the scenario's JSON names: name, fee, gain, payout, net, share.

        ``payout`` is :math:`b_i = \mathbf{a}\hat\psi_i`, the paper's word for it ("i obtains
        :math:`\mathcal{M}_\mathbf{M}` and payout :math:`b_i`", Ohrimenko et al., Sec. 4.1 and Sec. 4.2 table
        "payout | :math:`b_i`"), not the amount returned :math:`t_i` (attribute ``payout`` of this class,
        which is ``fee + net``).
        """
        return [
            {
                "name": n,
                "fee": float(self.fee[i]),
                "gain": float(self.gain[i]),
                "payout": float(self.reward[i]),
                "net": float(self.net[i]),
                "share": float(self.share[i]),
            }
            for i, n in enumerate(self.names)
        ]


# -- pure payment maths ----------------------------------------------------------------------------
def normalise_shares(psi: NDArray[np.float64], *, clip: bool = False) -> NDArray[np.float64]:
    r""":math:`\hat\psi_i = \psi_i / \sum_j \psi_j` (Ohrimenko et al., Sec. 4.1 "normalized using 1/v(M)"),
    ``1/M`` when the sum vanishes; with ``clip`` the zero-element guard, :math:`\max(\hat\psi,0)`
    renormalised.

    >>> normalise_shares(np.array([1.0, 3.0])).tolist()
    [0.25, 0.75]
    >>> normalise_shares(np.array([-1.0, 3.0]), clip=True).tolist()
    [0.0, 1.0]
    """
    psi = np.asarray(psi, dtype=np.float64)
    n = psi.shape[0]
    total = float(psi.sum())
    share = psi / total if abs(total) > 1e-12 else np.full(n, 1.0 / n)
    if clip:
        pos = np.maximum(share, 0.0)
        s = float(pos.sum())
        share = pos / s if s > 1e-12 else np.full(n, 1.0 / n)
    return share


def divide_payments(
    own_gain: NDArray[np.float64],
    final_gain: NDArray[np.float64],
    share: NDArray[np.float64],
    fee_constant: NDArray[np.float64] | float = 1.0,
) -> dict[str, NDArray[np.float64]]:
    r"""Payment division of Ohrimenko et al., Sec. 3 step 5 and Sec. 4.1.

    :math:`A_i = c_i(1 - g_i)`, :math:`a_i = c_i(G_i - g_i)`, :math:`b_i = \mathbf{a}\hat\psi_i` with
    :math:`\mathbf{a} = \sum a_i`, :math:`t_i = (A_i - a_i) + b_i`, net :math:`t_i - A_i`. Balance
    :math:`\sum_i (t_i - A_i) = \mathbf{a}(\sum\hat\psi - 1)` vanishes whenever the shares sum to one.

    >>> d = divide_payments(np.array([0.5, 0.5]), np.array([0.9, 0.9]), np.array([0.5, 0.5]))
    >>> d["fee"].tolist(), d["payout"].round(12).tolist(), float(d["net"].sum())
    ([0.5, 0.5], [0.5, 0.5], 0.0)
    """
    g = np.asarray(own_gain, dtype=np.float64)
    c = np.broadcast_to(np.asarray(fee_constant, dtype=np.float64), g.shape)
    fee = c * (1.0 - g)
    gain = c * (np.asarray(final_gain, dtype=np.float64) - g)
    reward = float(gain.sum()) * np.asarray(share, dtype=np.float64)
    payout = (fee - gain) + reward
    return {"fee": fee, "gain": gain, "reward": reward, "payout": payout, "net": payout - fee}


# -- validation ------------------------------------------------------------------------------------
def _label_set(values: NDArray[Any]) -> set[Any]:
    return {v.item() if hasattr(v, "item") else v for v in np.unique(values)}


def validate_market(
    parties: Sequence[Party], config: CollaborativeConfig
) -> tuple[list[Dataset], list[int], tuple[Any, ...]]:
    """Check a market before any work; returns the distinct tasks, each party's task index and labels.

    Raises :class:`InvalidMarketError` naming the field: fewer than two parties, duplicate names,
    empty data, feature dimension mismatch, missing tasks, task labels outside the market's label set,
    training labels outside ``config.classes``, different tasks in a single-task market.
    """
    _check_parties(parties)
    labels = _market_labels(parties, config)
    tasks, task_ids = _distinct_tasks(parties, labels)
    return tasks, _task_of(parties, config, tasks, task_ids), tuple(sorted(labels, key=str))


def _check_parties(parties: Sequence[Party]) -> None:
    """At least two parties with unique names, non-empty training data and one feature dimension."""
    if not isinstance(parties, Sequence) or len(parties) < 2:
        raise InvalidMarketError("parties", "a collaborative market needs at least two parties")
    names = [p.name for p in parties]
    if len(set(names)) != len(names):
        raise InvalidMarketError("parties", "party names must be unique")
    for p in parties:
        if not isinstance(p, Party):
            raise InvalidMarketError("parties", "every party must be a Party")
        if p.train.n_samples == 0:
            raise InvalidMarketError(f"parties[{p.name}].train", "dataset is empty")
    dim = parties[0].train.n_features
    for p in parties:
        for what, ds in (("train", p.train), ("task", p.task)):
            if ds is not None and ds.n_features != dim:
                raise InvalidMarketError(
                    f"parties[{p.name}].{what}.features",
                    f"feature dimension {ds.n_features} differs from the market's {dim}",
                )


def _market_labels(parties: Sequence[Party], config: CollaborativeConfig) -> set[Any]:
    """The market's label set: ``config.classes`` (holding every training label), else the union of the
    training labels."""
    train_labels: set[Any] = set()
    for p in parties:
        train_labels |= _label_set(np.asarray(p.train.labels))
    labels = train_labels if config.classes is None else set(config.classes)
    if config.classes is not None:
        for p in parties:
            extra = _label_set(np.asarray(p.train.labels)) - labels
            if extra:
                raise InvalidMarketError(
                    f"parties[{p.name}].train.labels",
                    f"labels {sorted(extra)} are not in the market's classes",
                )
    return labels


def _distinct_tasks(parties: Sequence[Party], labels: set[Any]) -> tuple[list[Dataset], list[str]]:
    """The distinct validation tasks (by content) in order of first appearance, and their content ids."""
    tasks: list[Dataset] = []
    task_ids: list[str] = []
    for p in parties:
        if p.task is None:
            continue
        extra = _label_set(np.asarray(p.task.labels)) - labels
        if extra:
            raise InvalidMarketError(
                f"parties[{p.name}].task.labels",
                f"labels {sorted(extra)} are not in the market's label set {sorted(labels)}",
            )
        tid = content_id(p.task.features, np.asarray(p.task.labels))
        if tid not in task_ids:
            task_ids.append(tid)
            tasks.append(p.task)
    if not tasks:
        raise InvalidMarketError("parties.task", "at least one party must give a validation task")
    return tasks, task_ids


def _task_of(
    parties: Sequence[Party], config: CollaborativeConfig, tasks: list[Dataset], task_ids: list[str]
) -> list[int]:
    """Each party's task index: its own task in the multi-task market (every party gives one), else the
    one common task."""
    if config.characteristic == "w":
        missing = [p.name for p in parties if p.task is None]
        if missing:
            raise InvalidMarketError(
                f"parties[{missing[0]}].task", "the multi-task market (w) needs every task"
            )
        return [task_ids.index(content_id(p.task.features, np.asarray(p.task.labels))) for p in parties]  # type: ignore[union-attr]
    if len(tasks) > 1:
        other = next(
            p.name
            for p in parties
            if p.task is not None
            and p.task is not tasks[0]
            and content_id(p.task.features, np.asarray(p.task.labels)) != task_ids[0]
        )
        raise InvalidMarketError(
            f"parties[{other}].task",
            f"differs from the common task; characteristic {config.characteristic!r} is single-task, use 'w'",
        )
    return [0] * len(parties)


def round_checks(
    parties: Sequence[Party],
    ids: Sequence[str],
    task_of: Sequence[int],
    div: dict[str, NDArray[np.float64]],
    residual: float,
    tol: float = 1e-9,
) -> dict[str, PropertyCheck]:
    """Balance, symmetry, zero-element buyer and non-negative payouts (Ohrimenko et al., Sec. 3.1, Sec. 4)."""
    out = {
        "balance": PropertyCheck(
            "balance", residual <= tol, residual, "" if residual <= tol else "sum of net gains != 0"
        )
    }
    groups: dict[tuple[str, int, float], list[int]] = {}
    for i, p in enumerate(parties):
        groups.setdefault((ids[i], task_of[i], float(p.fee_scale)), []).append(i)
    spread = max((float(np.ptp(div["payout"][g])) for g in groups.values() if len(g) > 1), default=0.0)
    out["symmetry"] = PropertyCheck(
        "symmetry", spread <= tol, spread, "" if spread <= tol else "identical parties paid differently"
    )
    zero = np.abs(div["gain"]) <= 1e-12
    short = float(np.max(div["fee"][zero] - div["payout"][zero], initial=0.0))
    out["zero_element"] = PropertyCheck(
        "zero_element",
        short <= tol,
        max(short, 0.0),
        "" if short <= tol else "a zero-element party is not refunded its fee",
    )
    neg = float(max(0.0, -float(np.min(div["reward"]))))
    out["nonnegative_reward"] = PropertyCheck(
        "nonnegative_reward", neg <= tol, neg, "" if neg <= tol else "some b_i < 0"
    )
    return out
