"""Immutable domain values: participants, datasets and the outcome of a market round.

Every mechanism family of the papers maps onto the same vocabulary:

* a **seller** (contributor, data source) is paid for data and may incur a cost;
* a **buyer** pays a price for a model, an estimate or a prediction and values what it receives;
* a **party** (Ohrimenko et al.'s collaborative market) is both at once;
* the **platform** (marketplace, broker) keeps the difference ``sum(prices) - sum(payments)``.

An :class:`Outcome` records, per participant, what was allocated, the price paid, the payment received,
the value of what was received and the cost incurred, so that property audits
(:mod:`datamarket.core.audits`) can run on any mechanism's result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError

OUTCOME_SCHEMA = "datamarket.outcome/1"

# The array aliases of the package, declared here once and imported everywhere else.
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def finite_array(name: str, values: Any, *, ndim: int | None = None, nonneg: bool = False) -> FloatArray:
    """Validate and return ``values`` as a read-only float64 array.

    Raises :class:`InvalidMarketError` naming ``name`` on NaN/inf, wrong dimension or negatives.

    >>> finite_array("costs", [1, 2]).tolist()
    [1.0, 2.0]
    >>> finite_array("costs", [1, float("nan")])
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: costs: must be finite (no NaN or inf)
    """
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidMarketError(name, f"must be numeric ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise InvalidMarketError(name, f"must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidMarketError(name, "must be finite (no NaN or inf)")
    if nonneg and np.any(arr < 0):
        raise InvalidMarketError(name, "must be non-negative")
    arr.setflags(write=False)
    return arr


class Role(StrEnum):
    """What a participant does in a round."""

    BUYER = "buyer"
    SELLER = "seller"
    PARTY = "party"  # both buyer and seller (Ohrimenko et al.)


@dataclass(frozen=True)
class Dataset:
    """Features, labels and optional demographic-group labels of one participant's data.

    >>> d = Dataset(np.zeros((3, 2)), np.array([0, 1, 1]))
    >>> d.n_samples, d.n_features
    (3, 2)
    """

    features: FloatArray
    labels: NDArray[Any] | None = None
    groups: NDArray[Any] | None = None

    def __post_init__(self) -> None:
        x = finite_array("features", self.features)
        if x.ndim != 2:
            raise InvalidMarketError("features", f"must be a 2-d array, got shape {x.shape}")
        if x.shape[0] == 0:
            raise InvalidMarketError("features", "dataset is empty")
        object.__setattr__(self, "features", x)
        for name in ("labels", "groups"):
            col = getattr(self, name)
            if col is None:
                continue
            arr = np.asarray(col)
            if arr.shape != (x.shape[0],):
                raise InvalidMarketError(
                    name, f"must have one entry per row ({x.shape[0]}), got shape {arr.shape}"
                )
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise InvalidMarketError(name, "must be finite (no NaN or inf)")
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def subset(self, rows: NDArray[np.intp] | Sequence[int]) -> Dataset:
        """The rows ``rows`` of this dataset."""
        idx = np.asarray(rows, dtype=np.intp)
        return Dataset(
            self.features[idx],
            None if self.labels is None else self.labels[idx],
            None if self.groups is None else self.groups[idx],
        )


@dataclass(frozen=True)
class Seller:
    """A data seller with a (possibly private) per-unit cost vector; ``cost`` is non-negative."""

    name: str
    cost: FloatArray = field(default_factory=lambda: np.zeros(1))

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidMarketError("name", "participant name must be non-empty")
        cost = finite_array(f"sellers[{self.name}].cost", np.atleast_1d(self.cost), nonneg=True)
        object.__setattr__(self, "cost", cost)


@dataclass(frozen=True)
class Buyer:
    """A buyer with a non-negative value of accuracy (per group or task) and an optional bid."""

    name: str
    value: FloatArray = field(default_factory=lambda: np.ones(1))
    bid: FloatArray | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidMarketError("name", "participant name must be non-empty")
        value = finite_array(f"buyers[{self.name}].value", np.atleast_1d(self.value), nonneg=True)
        object.__setattr__(self, "value", value)
        if self.bid is not None:
            bid = finite_array(f"buyers[{self.name}].bid", np.atleast_1d(self.bid), nonneg=True)
            object.__setattr__(self, "bid", bid)


@dataclass(frozen=True)
class Offers:
    """A menu for envy-freeness audits: ``values[i, k]`` is buyer ``i``'s value of option ``k``,
    ``prices[k]`` its price and ``choice[i]`` the option buyer ``i`` got (``-1`` for nothing, worth 0
    at price 0). Row ``i`` refers to the ``i``-th buyer (role BUYER or PARTY) of the outcome."""

    values: FloatArray
    prices: FloatArray
    choice: NDArray[np.intp]

    def __post_init__(self) -> None:
        values = finite_array("offers.values", self.values, ndim=2)
        prices = finite_array("offers.prices", self.prices, ndim=1)
        choice = np.asarray(self.choice, dtype=np.intp)
        if values.shape[1] != prices.shape[0] or choice.shape != (values.shape[0],):
            raise InvalidMarketError("offers", "values, prices and choice shapes do not agree")
        if np.any((choice < -1) | (choice >= prices.shape[0])):
            raise InvalidMarketError("offers.choice", "option index out of range")
        choice.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "choice", choice)


_PER_PARTICIPANT = ("allocated", "prices", "payments", "values", "costs")


@dataclass(frozen=True)
class Outcome:
    """Result of one market round, per participant (index ``i`` refers to ``participants[i]``).

    Attributes
    ----------
    mechanism : name of the mechanism that produced it.
    participants, roles : names and roles, aligned.
    allocated : what each participant received or supplied (quantity, gain, allocation weight).
    prices : money each participant paid (buyers and parties; 0 for pure sellers).
    payments : money each participant received (sellers and parties; 0 for pure buyers).
    values : value to the participant of what it received (buyers; 0 for pure sellers).
    costs : cost the participant incurred to supply data (sellers; 0 for pure buyers).
    offers : optional menu for the envy-freeness audit.
    extra : JSON-safe metadata (mechanism parameters, diagnostics).

    ``utilities = values - prices + payments - costs``; the platform keeps
    ``platform_take = sum(prices) - sum(payments)``.

    >>> o = Outcome("toy", ("b", "s"), (Role.BUYER, Role.SELLER), prices=[3.0, 0.0],
    ...             payments=[0.0, 3.0], values=[5.0, 0.0], costs=[0.0, 1.0])
    >>> o.utilities.tolist(), o.platform_take
    ([2.0, 2.0], 0.0)
    >>> Outcome.from_dict(o.to_dict()) == o
    True
    """

    mechanism: str
    participants: tuple[str, ...]
    roles: tuple[Role, ...]
    allocated: FloatArray | Sequence[float] | None = None
    prices: FloatArray | Sequence[float] | None = None
    payments: FloatArray | Sequence[float] | None = None
    values: FloatArray | Sequence[float] | None = None
    costs: FloatArray | Sequence[float] | None = None
    offers: Offers | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.participants)
        if n == 0:
            raise InvalidMarketError("participants", "an outcome needs at least one participant")
        if len(set(self.participants)) != n:
            raise InvalidMarketError("participants", "participant names must be unique")
        object.__setattr__(self, "participants", tuple(self.participants))
        object.__setattr__(self, "roles", tuple(Role(r) for r in self.roles))
        if len(self.roles) != n:
            raise InvalidMarketError("roles", f"need {n} roles, got {len(self.roles)}")
        for name in _PER_PARTICIPANT:
            raw = getattr(self, name)
            arr = finite_array(name, np.zeros(n) if raw is None else raw, ndim=1)
            if arr.shape != (n,):
                raise InvalidMarketError(name, f"need one entry per participant ({n})")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "extra", dict(self.extra))

    # -- derived quantities -------------------------------------------------------------------
    @property
    def utilities(self) -> FloatArray:
        u: FloatArray = (
            np.asarray(self.values)
            - np.asarray(self.prices)
            + np.asarray(self.payments)
            - np.asarray(self.costs)
        )
        return u

    @property
    def platform_take(self) -> float:
        return float(np.sum(np.asarray(self.prices)) - np.sum(np.asarray(self.payments)))

    def indices(self, *roles: Role) -> list[int]:
        """Indices of participants whose role is one of ``roles``."""
        return [i for i, r in enumerate(self.roles) if r in roles]

    @property
    def buyer_indices(self) -> list[int]:
        return self.indices(Role.BUYER, Role.PARTY)

    @property
    def seller_indices(self) -> list[int]:
        return self.indices(Role.SELLER, Role.PARTY)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, versioned representation."""
        out: dict[str, Any] = {
            "schema": OUTCOME_SCHEMA,
            "mechanism": self.mechanism,
            "participants": [
                {
                    "name": p,
                    "role": r.value,
                    **{k: float(np.asarray(getattr(self, k))[i]) for k in _PER_PARTICIPANT},
                    "utility": float(self.utilities[i]),
                }
                for i, (p, r) in enumerate(zip(self.participants, self.roles, strict=True))
            ],
            "platform_take": self.platform_take,
            "extra": _json_safe(self.extra),
        }
        if self.offers is not None:
            out["offers"] = {
                "values": self.offers.values.tolist(),
                "prices": self.offers.prices.tolist(),
                "choice": self.offers.choice.tolist(),
            }
        return out

    def to_dataframe(self) -> Any:
        """One row per participant: ``name``, ``role``, the per-participant arrays, ``utility``.

        pandas is imported on first use (a dependency of the package, kept out of import time).

        >>> o = Outcome("t", ("b", "s"), (Role.BUYER, Role.SELLER), prices=[2.0, 0.0], payments=[0.0, 2.0])
        >>> o.to_dataframe()[["name", "role", "prices", "payments", "utility"]].values.tolist()
        [['b', 'buyer', 2.0, 0.0, -2.0], ['s', 'seller', 0.0, 2.0, 2.0]]
        """
        import pandas as pd

        return pd.DataFrame(self.to_dict()["participants"])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """Inverse of :meth:`to_dict`; rejects unknown schema versions."""
        if data.get("schema") != OUTCOME_SCHEMA:
            raise InvalidMarketError("schema", f"unsupported outcome schema {data.get('schema')!r}")
        rows = data["participants"]
        offers = data.get("offers")
        return cls(
            mechanism=data["mechanism"],
            participants=tuple(r["name"] for r in rows),
            roles=tuple(Role(r["role"]) for r in rows),
            **{k: [r[k] for r in rows] for k in _PER_PARTICIPANT},  # type: ignore[arg-type]
            offers=None
            if offers is None
            else Offers(
                np.array(offers["values"], dtype=float),
                np.array(offers["prices"], dtype=float),
                np.array(offers["choice"], dtype=np.intp),
            ),
            extra=dict(data.get("extra", {})),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _json_safe(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to plain JSON types; non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


json_safe = _json_safe
