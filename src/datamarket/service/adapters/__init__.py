"""Round-clearing adapters: map a market kind to "validate inputs -> call the library -> Outcome".

The service is mechanism-agnostic. For each market kind an :class:`Adapter` says

* which parameters a market of that kind takes (:meth:`Adapter.validate_params`, in the request);
* which submissions participants may make (``dataset`` uploads, ``bid``, ``cost``, ``task``...) and
  how to validate each (:meth:`Adapter.validate_submission`, in the request: a bad one is a 422 and
  nothing is stored);
* what participants need to know before submitting (:meth:`Adapter.plan`, e.g. how many points the
  broker asks each contributor for);
* optionally, whether a new submission fits with the participant's earlier unconsumed ones
  (``check_submission(params, mine, new)``, in the request: e.g. a broker participant cannot both
  bid and report a cost), so that no accepted input can make a round fail;
* whether a round can be cleared from a snapshot of inputs (:meth:`Adapter.check_inputs`, in the
  request that creates the round);
* how to clear it (:meth:`Adapter.clear`, in a worker process: it calls the library mechanism and
  returns an :class:`~datamarket.core.types.Outcome` plus, per participant, what it receives: a model,
  an estimate, a gain), as a pure, seeded computation. An adapter whose mechanism runs long loops
  may accept a keyword ``progress`` (:data:`datamarket.core.progress.Progress`) and pass it on; the
  worker then reports the stage and fraction done to the round's row (``GET /rounds/{id}``).

Adapters are registered by kind in :data:`ADAPTERS`; a worker process finds one again by its
``module:attribute`` reference (:func:`adapter_ref`, :func:`load_adapter`), so adapters must be module
level objects.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from datamarket.core.certificates import Certificate
from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset, Outcome


@dataclass(frozen=True)
class Input:
    """One participant's submission as the adapter sees it (validated payload, parsed dataset)."""

    participant: str
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None


@dataclass(frozen=True)
class Clearing:
    """What :meth:`Adapter.clear` returns: the outcome, per-participant deliverables (JSON-safe) and
    the certificate of the outcome's claims (:mod:`datamarket.core.certificates`): a round whose
    certificate fails (or is empty) is recorded with status ``unverified`` and books nothing."""

    outcome: Outcome
    deliverables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    certificate: Certificate = field(default_factory=Certificate)


@runtime_checkable
class Adapter(Protocol):
    """A market kind the service can clear (module docstring)."""

    kind: str
    description: str
    submission_kinds: Mapping[str, str]  # submission kind -> one-line description
    dataset_kinds: frozenset[str]  # the submission kinds that are file uploads

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]: ...

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None: ...

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]: ...

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing: ...


def require_kind(adapter: Adapter, kind: str, has_dataset: bool) -> None:
    """Raise a field-named error when ``kind`` is not a submission of ``adapter`` (or misses data)."""
    if kind not in adapter.submission_kinds:
        allowed = ", ".join(sorted(adapter.submission_kinds))
        raise InvalidMarketError("kind", f"{adapter.kind} markets accept {allowed}; got {kind!r}")
    if (kind in adapter.dataset_kinds) != has_dataset:
        where = "the datasets upload route" if kind in adapter.dataset_kinds else "the JSON submissions route"
        raise InvalidMarketError("kind", f"{kind!r} submissions go through {where}")


MAX_NUMBER = 1e9  # major units; x a scale of 10**6 minor units x 9000 still fits 64 bits


def number(
    payload: Mapping[str, Any], key: str, *, minimum: float | None = 0.0, maximum: float = MAX_NUMBER
) -> float:
    """``payload[key]`` as a finite float in [``minimum``, ``maximum``], else a field-named error.

    The default bound keeps every amount a mechanism derives from inputs (prices, payments) finite
    and bookable in 64-bit minor units, so a number accepted here cannot make a round fail later.

    >>> number({"cost": 10**400}, "cost")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: cost: must be at most 1e+09
    """
    if key not in payload:
        raise InvalidMarketError(key, "is required")
    v = payload[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidMarketError(key, f"must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        f = float("inf") if v > 0 else float("-inf")
    if f != f:
        raise InvalidMarketError(key, "must be finite")
    if minimum is not None and f < minimum:
        raise InvalidMarketError(key, f"must be >= {minimum:g}")
    if abs(f) > maximum:
        raise InvalidMarketError(key, f"must be at most {maximum:g}" + (" in magnitude" if f < 0 else ""))
    return f


def only_keys(payload: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Reject unknown keys (typos must not be silently ignored)."""
    extra = sorted(set(payload) - set(allowed))
    if extra:
        raise InvalidMarketError(f"{where}.{extra[0]}", f"unknown field (allowed: {', '.join(allowed)})")


def latest_by(inputs: Sequence[Input], kind: str) -> dict[str, Input]:
    """The last input of ``kind`` per participant (inputs arrive in submission order)."""
    out: dict[str, Input] = {}
    for i in inputs:
        if i.kind == kind:
            out[i.participant] = i
    return out


_REFS: dict[str, str] = {
    "balanced_market": "datamarket.service.adapters.balanced_market:ADAPTER",
    "broker": "datamarket.service.adapters.broker:ADAPTER",
    "collaborative": "datamarket.service.adapters.collaborative:ADAPTER",
    "competing_buyers": "datamarket.service.adapters.competing_buyers:ADAPTER",
    "truthful_payments": "datamarket.service.adapters.truthful_payments:ADAPTER",
}


def load_adapter(ref: str) -> Adapter:
    """Import ``module:attribute`` and return the adapter it names."""
    module, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if not isinstance(obj, Adapter):
        raise TypeError(f"{ref} is not an Adapter")
    return obj


def builtin_adapters() -> dict[str, str]:
    """Kinds whose library mechanism is importable here -> their adapter reference."""
    out = {}
    for kind, ref in _REFS.items():
        try:
            load_adapter(ref)
        except ImportError:
            continue
        out[kind] = ref
    return out


def adapter_ref(adapter: Adapter) -> str:
    """The ``module:attribute`` under which ``adapter`` can be imported in a worker process."""
    module = importlib.import_module(type(adapter).__module__)
    for name, obj in vars(module).items():
        if obj is adapter:
            return f"{module.__name__}:{name}"
    raise ValueError(f"adapter {adapter.kind!r} is not a module-level object of {module.__name__}")
