"""The portal's forms, generated from one pydantic model per market kind and submission kind.

Each model lists the fields a form shows: their type (number, integer, choice, list, yes/no), the
paper's symbol and the unit beside each, and a one-line help. The models hold no bounds and no rules:
what the form collects goes, unchanged, to the same adapter validation as the JSON API (the
adapter's ``validate_params`` / ``validate_submission``), and the adapter's message is shown beside
the field it names. An empty field is left out, so the adapter's default applies. A nested parameter
(the collaborative market's learner) is a field named ``model__kind``, sent as ``{"model": {"kind":
...}}``.

``{currency}`` in a unit is replaced by the market's currency when the form is drawn.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field


def _f(title: str, symbol: str = "", unit: str = "", help: str = "") -> Any:
    return Field(default=None, title=title, json_schema_extra={"symbol": symbol, "unit": unit, "help": help})


# -- broker marketplace for mean estimation (Chen et al.) ---------------------------------------------
class BrokerParams(BaseModel):
    sigma: float | None = _f("noise of a data point", "σ", "data units", "standard deviation, default 1")
    solver: Literal["E1", "E2", "E3", "support"] | None = _f("price solver", help="default E1")
    delta: float | None = _f("failure probability", "δ", "probability", "default 0.1")


class BrokerBid(BaseModel):
    valuation: Literal["gaussian", "threshold", "exponential"] | None = _f(
        "valuation of the estimate's error", "v_j", help="how your value falls with the error"
    )
    width: float | None = _f("error width", "τ_j", "data units", "the error scale of your valuation, > 0")
    scale: float | None = _f("value scale", "α_j", "{currency}", "your value of a perfect estimate, (0, 1]")


class BrokerCost(BaseModel):
    cost: float | None = _f("cost per data point", "c_i", "{currency} per point", "> 0")


# -- collaborative ML market with replication-robust payments (Ohrimenko et al.) ---------------------------
class CollaborativeParams(BaseModel):
    characteristic: Literal["u", "v", "w"] | None = _f(
        "characteristic function", "v", help="u: accuracy, v: single task, w: multi-task; default v"
    )
    c: float | None = _f("fee constant", "c", "{currency}", "each party's fee scales with it; default 1")
    shapley: Literal["auto", "exact", "monte_carlo"] | None = _f("Shapley values", help="default auto")
    n_permutations: int | None = _f("Monte Carlo permutations", "T", "permutations", "default 200")
    tau: float | None = _f("data-selection threshold", "τ", "normalised Shapley value", "empty: none")
    guard: bool | None = _f("zero-element guard", help="default yes")
    max_exact: int | None = _f("exact Shapley up to", "", "parties", "default 12")
    model__kind: Literal["logreg", "mlp", "knn1"] | None = _f("learner", help="default logreg")
    model__max_iter: int | None = _f("learner iterations", "", "iterations", "default 200")
    model__C: float | None = _f("inverse L2 strength", "C", "", "logistic regression, default 1")


class CollaborativeFee(BaseModel):
    fee_scale: float | None = _f("fee multiplier", "s_i", "× c", "multiplies the fee constant, ≥ 0")


# -- online data market with Shapley revenue division (Chaintreau et al.) ------------------------------------
class BalancedParams(BaseModel):
    groups: list[int] | None = _f("groups", "g", "integers, comma-separated", "default 0, 1")
    tie: Literal["lowest", "highest"] | None = _f("tie-break", help="default lowest")


class BalancedCost(BaseModel):
    costs: list[float] | None = _f("unit cost per group", "c_g", "{currency} per sample, comma-separated")


class BalancedBid(BaseModel):
    values: list[float] | None = _f("value per group", "v_g", "{currency} per sample, comma-separated")


# -- competing buyers and strategic data sources (Westenbroek et al.) ---------------------------------
class CompetingParams(BaseModel):
    competition: float | None = _f("competition", "δ", "in [0, 1]", "default 0")


class CompetingSource(BaseModel):
    location: float | None = _f("location", "x_i", "feature units")
    effort_alpha: float | None = _f("effort cost", "α_i", "", "> 0, default 1")


class CompetingEstimator(BaseModel):
    degree: int | None = _f("polynomial degree", "d", "", "0 to 5, default 1")
    low: float | None = _f("domain low end", "a", "feature units", "default -1")
    high: float | None = _f("domain high end", "b", "feature units", "> a, default 1")
    eta: float | None = _f("learning weight", "η", "", "> 0, default 1")


# -- truthful payments to sellers with private costs (Fan et al.) --------------------------------------
class TruthfulParams(BaseModel):
    rule: Literal["myerson", "vcg", "loo", "shapley"] | None = _f("payment rule", help="default myerson")


class TruthfulTask(BaseModel):
    target: list[float] | None = _f("mean to estimate", "μ", "data units, comma-separated")


class TruthfulCost(BaseModel):
    cost: float | None = _f("private cost factor", "c_i", "{currency}", "≥ 0")


class JsonData(BaseModel):
    """Fallback for a kind without a form model: the JSON object itself."""

    data: dict[str, Any] | None = _f("JSON object", "", "", 'e.g. {"cost": 0.1}')


PARAMS: dict[str, type[BaseModel]] = {
    "broker": BrokerParams,
    "collaborative": CollaborativeParams,
    "balanced_market": BalancedParams,
    "competing_buyers": CompetingParams,
    "truthful_payments": TruthfulParams,
}
SUBMISSIONS: dict[tuple[str, str], type[BaseModel]] = {
    ("broker", "bid"): BrokerBid,
    ("broker", "cost"): BrokerCost,
    ("collaborative", "fee_scale"): CollaborativeFee,
    ("balanced_market", "cost"): BalancedCost,
    ("balanced_market", "bid"): BalancedBid,
    ("competing_buyers", "source"): CompetingSource,
    ("competing_buyers", "estimator"): CompetingEstimator,
    ("truthful_payments", "task"): TruthfulTask,
    ("truthful_payments", "cost"): TruthfulCost,
}


def params_model(kind: str) -> type[BaseModel]:
    """The input model the portal renders for a new market of ``kind`` (JSON fallback)."""
    return PARAMS.get(kind, JsonData)


def submission_model(kind: str, submission: str) -> type[BaseModel]:
    """The input model the portal renders for a ``submission`` to a market of ``kind``."""
    return SUBMISSIONS.get((kind, submission), JsonData)


@dataclass(frozen=True)
class FormField:
    """One input as a template draws it."""

    name: str
    label: str
    symbol: str
    unit: str
    help: str
    widget: str  # "number", "integer", "choice", "list", "bool", "json"
    choices: tuple[str, ...] = ()


def _base(annotation: Any) -> Any:
    """``X`` of ``X | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return args[0] if len(args) == 1 else annotation
    return annotation


def _widget(annotation: Any) -> tuple[str, tuple[str, ...]]:
    t = _base(annotation)
    if typing.get_origin(t) is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(t))
    if t is bool:
        return "bool", ("yes", "no")
    if t is int:
        return "integer", ()
    if t is float:
        return "number", ()
    if typing.get_origin(t) is list:
        return ("list_int" if typing.get_args(t) == (int,) else "list"), ()
    return "json", ()


def fields(model: type[BaseModel], currency: str = "") -> list[FormField]:
    """The inputs of ``model``'s form, in declaration order."""
    out = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        widget, choices = _widget(info.annotation)
        out.append(
            FormField(
                name=name,
                label=info.title or name,
                symbol=str(extra.get("symbol", "")),
                unit=str(extra.get("unit", "")).replace("{currency}", currency),
                help=str(extra.get("help", "")),
                widget=widget,
                choices=choices,
            )
        )
    return out


def _number(raw: str) -> float:
    v = float(raw)
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def _convert(widget: str, raw: str) -> Any:
    if widget == "number":
        return _number(raw)
    if widget == "integer":
        return int(raw)
    if widget == "bool":
        if raw not in ("yes", "no"):
            raise ValueError("must be yes or no")
        return raw == "yes"
    if widget in ("list", "list_int"):
        parts = [p.strip() for p in raw.split(",")]
        if any(not p for p in parts):
            raise ValueError("must be numbers separated by commas")
        return [int(p) for p in parts] if widget == "list_int" else [_number(p) for p in parts]
    if widget == "json":
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return value
    return raw  # choice: the adapter checks it is one of the choices


MESSAGES = {
    "number": "must be a number",
    "integer": "must be an integer",
    "list": "must be numbers separated by commas",
    "list_int": "must be integers separated by commas",
    "json": "must be a JSON object",
}


def parse(model: type[BaseModel], form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON object a submitted form stands for, and the fields that could not be read (their
    messages); empty fields are left out."""
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields(model):
        raw = form.get(f.name)
        if not isinstance(raw, str) or not raw.strip():
            continue
        try:
            value = _convert(f.widget, raw.strip())
        except (ValueError, OverflowError) as exc:
            errors[f.name] = str(exc) if str(exc).startswith("must") else MESSAGES.get(f.widget, str(exc))
            continue
        if f.widget == "json":
            data.update(value)
            continue
        head, _, tail = f.name.partition("__")
        if tail:
            data.setdefault(head, {})[tail] = value
        else:
            data[f.name] = value
    return data, errors


def field_of(error_field: str | None, model: type[BaseModel] | None, message: str = "") -> str | None:
    """The form field an API error's ``field`` (``data.width``, ``params.model.kind``) names, if the
    form has it; an error on a nested object (``params.model``) goes to the first of its fields the
    message mentions (``kind``), else to its first field."""
    if not error_field or model is None:
        return None
    name = error_field
    for prefix in ("data.", "params."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.replace(".", "__")
    if name in model.model_fields:
        return name
    nested = [f for f in model.model_fields if f.startswith(name + "__")]
    if nested:
        said = [f for f in nested if f.split("__", 1)[1].lower() in message.lower()]
        return (said or nested)[0]
    if "data" in model.model_fields:  # the JSON fallback form
        return "data"
    return None
