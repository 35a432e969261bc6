"""Round-clearing adapters: map a market kind to "validate inputs -> call the library -> Outcome".

The service is mechanism-agnostic. For each market kind an :class:`Adapter` says

* which parameters a market of that kind takes (:meth:`Adapter.validate_params`, in the request);
* which submissions participants may make (``dataset`` uploads, ``bid``, ``cost``, ``task``...) and
  how to validate each (:meth:`Adapter.validate_submission`, in the request: a bad one is a 422 and
  nothing is stored). A family's adapter validates with the family's input models
  (:mod:`datamarket.scenarios.inputs`), the ones its scenario nests, through :func:`validate_input`,
  and exposes them as the optional attributes ``params_model`` (a pydantic model) and
  ``submission_models`` (JSON submission kind -> model), which the portal renders as forms;
* what participants need to know before submitting (:meth:`Adapter.plan`, e.g. how many points the
  broker asks each contributor for). A participant sees only its own row of the plan and aggregates
  (:func:`datamarket.service.store.markets.participant_plan`): names of participants are found by
  value; a list holding one value per name of another list is declared in the optional attribute
  ``plan_rows`` (key of the list of names -> keys of its per-name lists; :func:`plan_rows_of`).
  How the plan reads and what it asks of each participant are optional declarations too
  (:mod:`datamarket.service.adapters.plans`): ``plan_labels`` and ``plan_money`` (labels of its
  keys, which values are money), ``plan_quota`` (upload kind -> the plan key of the rows it asks of
  each participant: an upload of another size is refused), ``cumulative_kinds`` (the kinds of which
  every waiting submission counts; of the others only each participant's latest, :func:`latest_by`,
  and the store marks the earlier ones superseded) and ``next_steps(params, plan, me, mine)`` (what
  a participant should do next; a default is derived from ``submission_kinds`` and ``plan_quota``);
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

Optionally, ``round_figure(outcome, names, paid, received)`` returns the title and the bar series of
a cleared round's figure (the portal draws it; without it, the amounts booked).

Receipts explain every line (:mod:`datamarket.service.adapters.charges`): ``clear`` returns, in
:attr:`Clearing.charges`, each participant's price and payment as a rule of the adapter's ``rules``
(id -> :class:`~datamarket.service.adapters.charges.Rule`: the paper's equation and what it means),
the exact amount, the terms it adds up to and the inputs it used (the participant's own submission,
posted prices, quantities). The worker checks that they reconcile with the outcome.

Built-in adapters are found through the family registry (:mod:`datamarket.families`: each family's
``adapter`` reference, ``datamarket.service.adapters.<kind>:ADAPTER`` by convention;
:func:`builtin_adapters`); a worker process finds one again by its ``module:attribute`` reference
(:func:`adapter_ref`, :func:`load_adapter`), so adapters must be module level objects.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import pydantic
from pydantic import BaseModel

from datamarket.core.certificates import Certificate
from datamarket.core.errors import InvalidInputError, InvalidMarketError
from datamarket.core.types import Dataset, Outcome
from datamarket.families import families
from datamarket.service.adapters.charges import Charge

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Input:
    """One participant's submission as the adapter sees it (validated payload, parsed dataset)."""

    participant: str
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None


@dataclass(frozen=True)
class Clearing:
    """What :meth:`Adapter.clear` returns: the outcome, per-participant deliverables (JSON-safe), the
    certificate of the outcome's claims (:mod:`datamarket.core.certificates`: a round whose
    certificate fails, or is empty, is recorded with status ``unverified`` and books nothing) and,
    per participant, the explanation of each of its receipt lines
    (:class:`~datamarket.service.adapters.charges.Charge`, rules in the adapter's ``rules``)."""

    outcome: Outcome
    deliverables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    certificate: Certificate = field(default_factory=Certificate)
    charges: Mapping[str, Sequence[Charge]] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """A market kind the service can clear (module docstring).

    Optional members (read with ``getattr``): ``params_model`` and ``submission_models`` (the input
    models), ``plan_rows`` (the plan's per-participant lists), ``plan_labels``, ``plan_money``,
    ``plan_quota``, ``cumulative_kinds`` and ``next_steps(params, plan, me, mine)``
    (:mod:`datamarket.service.adapters.plans`), ``check_submission(params, mine, new)``,
    ``answer_kinds`` with ``answer(params, inputs, new, previous)`` (:func:`answer_kinds_of`) and
    ``standing_kinds`` (:func:`standing_kinds_of`),
    ``round_figure(outcome, names, paid, received)`` and ``rules`` (the rules of
    :attr:`Clearing.charges`).
    """

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


def validate_input(model: type[M], payload: Any, where: str) -> M:
    """``payload`` validated by ``model`` strictly (a string is not a number), else a field-named error.

    The error names the first offending field (``params.sigma``, ``data.costs``: an item of a list is
    reported on the list, ``item 2: ...``) with a one-line message: ``is required``, ``unknown field
    (allowed: ...)``, ``must be one of ...``, ``must be a number``, ``must be positive``, ``must be in
    (0, 1]``... Every number must also lie within :data:`MAX_NUMBER` in magnitude (:func:`number`).

    >>> from datamarket.scenarios.inputs.broker import Bid
    >>> validate_input(Bid, {"valuation": "gaussian", "width": 0.5}, "data").scale
    1.0
    >>> validate_input(Bid, {"valuation": "gaussian", "width": 0.5, "scale": 7}, "data")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: data.scale: must be in (0, 1]
    """
    if not isinstance(payload, Mapping):
        raise InvalidMarketError(where, "must be an object")
    try:
        obj = model.model_validate(dict(payload), strict=True)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        path = _field_path(model, err["loc"])
        message = _message(model, err)
        if len(path) < len(err["loc"]) and isinstance(err["loc"][len(path)], int):
            message = f"item {err['loc'][len(path)]}: {message}"
        raise InvalidMarketError(".".join([where, *path]), message) from None
    _within_max(obj.model_dump(), where)
    return obj


def _field_path(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names ``loc`` walks through (nested models included, an unknown key named), up to a
    list index or a union member's tag."""
    path: list[str] = []
    current: Any = model
    for part in loc:
        if not isinstance(part, str) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            break
        path.append(part)
        info = current.model_fields.get(part)
        current = info.annotation if info is not None else None
    return path


def _field_info(model: type[BaseModel], loc: Sequence[Any]) -> Any:
    """The FieldInfo at ``loc`` (through nested models), or None."""
    info = None
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            model = sub
    return info


def _bounds(info: Any) -> tuple[str, str] | None:
    """The interval a field's number must lie in, as text, when it has both bounds."""
    lo = hi = None
    for m in getattr(info, "metadata", []):
        for attr, text in (("gt", "({:g}"), ("ge", "[{:g}")):
            if getattr(m, attr, None) is not None:
                lo = text.format(getattr(m, attr))
        for attr, text in (("lt", "{:g})"), ("le", "{:g}]")):
            if getattr(m, attr, None) is not None:
                hi = text.format(getattr(m, attr))
    return (lo, hi) if lo and hi else None


_TYPES = {
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "finite_number": "must be finite",
    "missing": "is required",
}


def _message(model: type[BaseModel], err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        choices = typing.get_args(getattr(_field_info(model, err["loc"]), "annotation", None))
        if choices and all(isinstance(c, str) for c in choices):  # a Literal: say what to choose
            return "is required: must be one of " + ", ".join(choices)
    if kind in _TYPES:
        return _TYPES[kind]
    if kind == "extra_forbidden":
        parent = _field_info(model, err["loc"][:-1]) if len(err["loc"]) > 1 else None
        sub = getattr(parent, "annotation", None) if parent is not None else model
        allowed = list(sub.model_fields) if isinstance(sub, type) and issubclass(sub, BaseModel) else []
        return f"unknown field (allowed: {', '.join(allowed)})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        interval = _bounds(_field_info(model, err["loc"]))
        if interval is not None:
            return f"must be in {interval[0]}, {interval[1]}"
        bound = next(iter(ctx.values()))
        if kind == "greater_than" and bound == 0:
            return "must be positive"
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        return f"must be {sign[kind]} {bound:g}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    return str(err["msg"]).removeprefix("Value error, ")


def _within_max(data: Any, where: str) -> None:
    """Every number of validated ``data`` within :data:`MAX_NUMBER` in magnitude (see :func:`number`)."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            _within_max(v, f"{where}.{k}")
    elif isinstance(data, list):
        for v in data:
            _within_max(v, where)
    elif isinstance(data, int | float) and not isinstance(data, bool) and abs(data) > MAX_NUMBER:
        raise InvalidMarketError(
            where, f"must be at most {MAX_NUMBER:g}" + (" in magnitude" if data < 0 else "")
        )


def latest_by(inputs: Sequence[Input], kind: str) -> dict[str, Input]:
    """The last input of ``kind`` per participant (inputs arrive in submission order)."""
    out: dict[str, Input] = {}
    for i in inputs:
        if i.kind == kind:
            out[i.participant] = i
    return out


def answer_kinds_of(adapter: Adapter) -> frozenset[str]:
    """The submission kinds ``adapter`` answers at once, in the request that stores them
    (:mod:`datamarket.service.store.submissions`)."""
    return frozenset(getattr(adapter, "answer_kinds", None) or ())


def standing_kinds_of(adapter: Adapter) -> frozenset[str]:
    """The submission kinds of ``adapter`` that no round consumes (they stay for every later round)."""
    return frozenset(getattr(adapter, "standing_kinds", None) or ())


def load_adapter(ref: str) -> Adapter:
    """Import ``module:attribute`` and return the adapter it names."""
    module, _, attr = ref.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if not isinstance(obj, Adapter):
        raise TypeError(f"{ref} is not an Adapter")
    return obj


def builtin_adapters() -> dict[str, str]:
    """Kinds whose library mechanism is importable here -> their adapter reference, for every family
    of the registry (:mod:`datamarket.families`) that has an adapter, in kind order."""
    out = {}
    for fam in sorted(families(), key=lambda f: f.kind):
        if fam.adapter is None:
            continue
        try:
            load_adapter(fam.adapter)
        except ImportError:
            continue
        out[fam.kind] = fam.adapter
    return out


def registered_adapter(kind: str) -> Adapter | None:
    """The adapter of ``kind``'s family in the registry, or None (no such family, no adapter, or its
    mechanism cannot be imported here)."""
    ref = next((f.adapter for f in families() if f.kind == kind), None)
    if ref is None:
        return None
    try:
        return load_adapter(ref)
    except ImportError:
        return None


def params_model_of(adapter: Adapter) -> type[BaseModel] | None:
    """The model of a market's ``params`` the adapter validates with, if it declares one."""
    model = getattr(adapter, "params_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def submission_model_of(adapter: Adapter, submission: str) -> type[BaseModel] | None:
    """The model of a JSON ``submission``'s ``data`` the adapter validates with, if it declares one."""
    model = (getattr(adapter, "submission_models", None) or {}).get(submission)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def documented(adapters: Mapping[str, Adapter], kind: str, data: Mapping[str, Any]) -> bool:
    """Whether ``{"kind": kind, "data": data}`` is a JSON submission some market kind of ``adapters``
    takes (the union the OpenAPI schema documents, :mod:`datamarket.service.api.openapi`): a body
    that is, but that one market refuses, conflicts with that market (409), not malformed (422)."""
    for adapter in adapters.values():
        if kind not in adapter.submission_kinds or kind in adapter.dataset_kinds:
            continue
        model = submission_model_of(adapter, kind)
        if model is None:
            return True
        try:
            validate_input(model, data, "data")
        except InvalidInputError:
            continue
        return True
    return False


def plan_rows_of(adapter: Adapter) -> Mapping[str, tuple[str, ...]] | None:
    """The adapter's ``plan_rows`` (module docstring), or ``None`` when it declares none: the plan
    filter then takes any list as long as a list of names for that list's rows (hiding more)."""
    rows = getattr(adapter, "plan_rows", None)
    return None if rows is None else {str(k): tuple(v) for k, v in rows.items()}


def adapter_ref(adapter: Adapter) -> str:
    """The ``module:attribute`` under which ``adapter`` can be imported in a worker process."""
    module = importlib.import_module(type(adapter).__module__)
    for name, obj in vars(module).items():
        if obj is adapter:
            return f"{module.__name__}:{name}"
    raise ValueError(f"adapter {adapter.kind!r} is not a module-level object of {module.__name__}")


class ModelAdapter:
    """The part every family's adapter shares: its inputs are the family's input models.

    A subclass sets ``params_model`` and ``submission_models`` (``scenarios.inputs.<kind>``);
    :meth:`validate_params` and :meth:`validate_json` validate through them with :func:`validate_input`,
    so the scenario, the service and the portal read one description of each input.
    """

    params_model: ClassVar[type[pydantic.BaseModel]]
    submission_models: ClassVar[Mapping[str, type[pydantic.BaseModel]]]
    plan_rows: ClassVar[Mapping[str, tuple[str, ...]]] = {}  # no per-participant lists in the plan

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The market parameters, validated by ``params_model`` (defaults filled in)."""
        return validate_input(self.params_model, params, "params").model_dump()

    def validate_json(self, kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON submission of ``kind``, validated by its model in ``submission_models``."""
        return validate_input(self.submission_models[kind], payload, "data").model_dump()
