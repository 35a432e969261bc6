"""Validation errors of scenario and valuation files, worded for the person who wrote the file.

Conventions (also in ``docs/reference/scenarios.md``):

* A location is the path of keys from the top of the file, joined by ``.``; a position in a list
  (an array, or a ``[[sellers]]`` table) is written in brackets and **counts from 1**, as a reader
  counts the tables in the file: ``sellers[1].cost`` is the ``cost`` of the first seller.
* One problem is ``LOCATION: message``; several are joined by ``; `` on the same line.
* A key the model does not know is ``LOCATION: unknown key`` followed by ``(did you mean 'KEY'?)`` when
  a field of the model at that level is close (:func:`difflib.get_close_matches`).

>>> from datamarket.scenarios._base import StrictModel
>>> class Seller(StrictModel):
...     cost: float
>>> class Market(StrictModel):
...     sellers: list[Seller]
>>> try:
...     Market.model_validate({"sellers": [{"cots": 1.0}]})
... except pydantic.ValidationError as exc:
...     print(format_validation_error(exc, Market))
sellers[1].cost: missing; sellers[1].cots: unknown key (did you mean 'cost'?)
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Sequence
from typing import Any

import pydantic

# pydantic's location segments that name a type (a union member, a validator), not a key
_TYPE_SEGMENT = re.compile(r"^\w+(-\w+)+(\[.*\])?$|^\w+\[.*\]$|^(int|float|str|bool|list|dict|tuple|none)$")
_PREFIXES = ("Value error, ", "Assertion failed, ")


def suggest(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is dict:  # a mapping's keys are data, not fields
        return found
    for arg in typing.get_args(annotation):
        found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _fields(models: Sequence[type[pydantic.BaseModel]]) -> dict[str, Any]:
    return {name: f.annotation for m in models for name, f in m.model_fields.items()}


def _locate(loc: Sequence[int | str], model: type[pydantic.BaseModel] | None) -> tuple[str, list[str]]:
    """The 1-based location text and the field names of the model at the last segment's level."""
    models = [model] if model is not None else []
    text = ""
    for i, seg in enumerate(loc):
        if isinstance(seg, int):
            text += f"[{seg + 1}]"
            continue
        fields = _fields(models)
        if seg not in fields and (_TYPE_SEGMENT.match(seg) or (models and i < len(loc) - 1)):
            continue  # a union member's tag or type name: not something the file spells
        text += f".{seg}" if text else seg
        if seg in fields:
            models = _models_in(fields[seg])
    return text or "scenario", sorted(_fields(models))


def describe_error(err: Any, model: type[pydantic.BaseModel] | None = None) -> str:
    """One problem of a :class:`pydantic.ValidationError` as ``LOCATION: message``."""
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        where, _ = _locate(loc, model)
        _, fields = _locate(loc[:-1], model)
        return f"{where}: unknown key{suggest(loc[-1], fields)}"
    where, _ = _locate(loc, model)
    if kind == "missing":
        return f"{where}: missing"
    message = str(err["msg"])
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return f"{where}: {message}"


def format_validation_error(
    exc: pydantic.ValidationError, model: type[pydantic.BaseModel] | None = None
) -> str:
    """One line naming each offending key with a 1-based location, e.g. ``sellers[1].cost: ...``.

    ``model`` (the validated class) lets an unknown key get a "did you mean" among the fields at its
    level; repeated problems (one per member of a union) are stated once.
    """
    parts = dict.fromkeys(describe_error(err, model) for err in exc.errors())
    return "; ".join(parts)
