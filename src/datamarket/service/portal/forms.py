"""The portal's forms, generated from each family's input models.

A market kind's parameters and each of its JSON submissions are described once, by the pydantic models
of the family (:mod:`datamarket.scenarios.inputs`): the scenario nests them, the adapter validates with
them and this module draws them. :func:`params_model` and :func:`submission_model` find a kind's models
through the family registry (:mod:`datamarket.families`) and its adapter (``params_model``,
``submission_models``); a kind without them gets a JSON text area (:class:`JsonData`).

Each form field comes from a model field: its widget from the type (number, integer, choice, list,
yes/no), its label from the ``title``, the paper's symbol and the unit from ``json_schema_extra``, the
help from the ``description`` and the default. A nested model (the collaborative market's learner) is
drawn field by field, named ``model__kind`` and sent as ``{"model": {"kind": ...}}``. The form checks
only that a field can be read (a number is a number); the bounds and rules are the adapter's, whose
message is shown beside the field it names. An empty field is left out, so the model's default applies.
A JSON field is measured before it is parsed (:func:`json_depth`, one linear pass): nested deeper than
the JSON API's :data:`~datamarket.service.api.schemas.MAX_DEPTH` it is refused beside the field (422),
before ``json.loads`` could recurse.

The unit ``money`` is drawn as the market's currency.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import PydanticUndefined

from datamarket.service.adapters import params_model_of, registered_adapter, submission_model_of
from datamarket.service.api.schemas import MAX_DEPTH


class JsonData(BaseModel):
    """Fallback for a kind without input models: the JSON object itself."""

    data: dict[str, Any] | None = Field(
        default=None,
        title="JSON object",
        description='the submission as a JSON object, e.g. {"cost": 0.1}',
    )


def params_model(kind: str) -> type[BaseModel]:
    """The input model the portal renders for a new market of ``kind`` (JSON fallback)."""
    adapter = registered_adapter(kind)
    model = params_model_of(adapter) if adapter is not None else None
    return model or JsonData


def submission_model(kind: str, submission: str) -> type[BaseModel]:
    """The input model the portal renders for a ``submission`` to a market of ``kind`` (JSON
    fallback)."""
    adapter = registered_adapter(kind)
    model = submission_model_of(adapter, submission) if adapter is not None else None
    return model or JsonData


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
    """``X`` of ``X | None``, of ``Annotated[X, ...]`` and of ``X | Y`` (the form offers the first
    alternative: a competition level, not the matrix the JSON API also takes)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _base(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _base(args[0])
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
        return ("list_int" if [_base(a) for a in typing.get_args(t)] == [int] else "list"), ()
    return "json", ()


def _submodel(annotation: Any) -> type[BaseModel] | None:
    t = _base(annotation)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _help(info: Any) -> str:
    """The description and, where there is one, the default (``empty: ...`` for ``None``)."""
    text = info.description or ""
    default = info.get_default(call_default_factory=True) if not info.is_required() else PydanticUndefined
    if default is PydanticUndefined or isinstance(default, BaseModel):
        return text
    if isinstance(default, bool):
        shown = "yes" if default else "no"
    elif isinstance(default, list):
        shown = ", ".join(str(x) for x in default)
    else:
        shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else str(default)
    return f"{text}; default {shown}" if text else f"default {shown}"


def _walk(model: type[BaseModel], prefix: str = "", label: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(form name, label prefix, FieldInfo)`` of every leaf field, nested models flattened."""
    for name, info in model.model_fields.items():
        sub = _submodel(info.annotation)
        if sub is not None:
            yield from _walk(sub, f"{prefix}{name}__", f"{label}{info.title or name}: ")
        else:
            yield f"{prefix}{name}", label, info


def fields(model: type[BaseModel], currency: str = "") -> list[FormField]:
    """The inputs of ``model``'s form, in declaration order (nested models flattened)."""
    out = []
    for name, label, info in _walk(model):
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        widget, choices = _widget(info.annotation)
        unit = str(extra.get("unit", ""))
        if currency:
            unit = re.sub(r"\bmoney\b", currency, unit)
        out.append(
            FormField(
                name=name,
                label=label + (info.title or name),
                symbol=str(extra.get("symbol", "")),
                unit=unit,
                help=_help(info),
                widget=widget,
                choices=choices,
            )
        )
    return out


_JSON_TOKENS = re.compile(r'[\[\]{}"\\]')


def json_depth(text: str) -> int:
    r"""The deepest nesting of arrays and objects in JSON ``text`` (brackets inside strings do not
    count), in one pass over its structural characters, without recursion.

    >>> json_depth('{"a": [1, "]]]"]}'), json_depth(r'[""]", 1]'), json_depth("[" * 50_000)
    (2, 1, 50000)
    """
    depth = most = 0
    in_string, escaped = False, -1
    for m in _JSON_TOKENS.finditer(text):
        ch, at = m.group(), m.start()
        if at == escaped:
            continue
        if in_string:
            if ch == "\\":
                escaped = at + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            most = max(most, depth)
        elif ch in "]}":
            depth -= 1
    return most


def load_json_object(raw: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object nested at most :data:`MAX_DEPTH` deep (``ValueError`` else)."""
    if json_depth(raw) > MAX_DEPTH:
        raise ValueError(f"must be a JSON object nested at most {MAX_DEPTH} deep")
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


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
        return load_json_object(raw)
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
    names = [f.name for f in fields(model)]
    if name in names:
        return name
    nested = [f for f in names if f.startswith(name + "__")]
    if nested:
        said = [f for f in nested if f.split("__", 1)[1].lower() in message.lower()]
        return (said or nested)[0]
    if model is JsonData:
        return "data"
    return None
