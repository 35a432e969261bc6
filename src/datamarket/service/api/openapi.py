"""The OpenAPI schema says what each market kind takes: ``POST /markets`` and ``POST
/markets/{mid}/submissions`` are documented per kind, from the adapters' input models.

One request model serves every kind (:class:`~datamarket.service.api.schemas.MarketIn`,
:class:`~datamarket.service.api.schemas.SubmissionIn`: ``params``/``data`` any JSON object), and the
kind's adapter validates the object with its input model (``params_model``, ``submission_models``;
:func:`~datamarket.service.adapters.validate_input`). :func:`document_kinds` replaces the two
components by the union over the kinds this service clears, so that a client (or a fuzzer) reads the
rules the adapter applies: one branch per market kind (``kind`` a constant, ``params`` its model's
schema) and one per JSON submission kind and model. Every number is bounded by
:data:`~datamarket.service.adapters.MAX_NUMBER` in magnitude, as the adapters check. A market's
``currency`` is documented by the regular expression of exactly the codes
:class:`~datamarket.ledger.money.Currency` accepts (:func:`currency_pattern`), and its ``scale``
with it (:func:`currency_and_scale`: a scale given with a currency must be the currency's).

What no JSON Schema can state stays in the models' validators (for example two fields compared with
each other); an adapter without input models is documented with a free object.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from datamarket.ledger.money import ISO_4217, MAX_EXPONENT, MAX_SCALE
from datamarket.service.adapters import MAX_NUMBER, Adapter

MAX_MARKET_SCALE = 1_000_000  # MarketIn.scale's bound


def bounded(node: Any) -> Any:
    """A JSON schema with every ``number``/``integer`` bounded by ``MAX_NUMBER`` in magnitude."""
    if isinstance(node, list):
        return [bounded(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: bounded(v) for k, v in node.items()}
    if out.get("type") in ("number", "integer"):
        top = int(MAX_NUMBER) if out["type"] == "integer" else MAX_NUMBER
        out["maximum"] = min(out.get("maximum", top), top)
        out["minimum"] = max(out.get("minimum", -top), -top)
    return out


def model_schema(model: type[BaseModel], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON schema, bounded, its nested models added to ``components`` as ``prefix`` +
    their name (so that two kinds' ``Bid`` models do not collide)."""
    schema = model.model_json_schema(ref_template=f"#/components/schemas/{prefix}{{model}}")
    for name, sub in schema.pop("$defs", {}).items():
        components[prefix + name] = bounded(sub)
    return bounded(schema)  # type: ignore[no-any-return]


def _prefix(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def _branch(generic: dict[str, Any], **properties: dict[str, Any]) -> dict[str, Any]:
    """The generic request schema with some properties replaced (``kind`` made required)."""
    out = copy.deepcopy(generic)
    out.pop("title", None)
    out["properties"].update(properties)
    out["required"] = sorted({*out.get("required", []), "kind"})
    return out


def market_branches(
    generic: dict[str, Any], adapters: Mapping[str, Adapter], components: dict[str, Any]
) -> list[dict[str, Any]]:
    """One ``MarketIn`` per kind: ``kind`` that constant, ``params`` the kind's ``params_model``."""
    components["Currency"] = {"type": "string", "pattern": currency_pattern()}
    components["CurrencyAndScale"] = {"anyOf": currency_and_scale()}
    currency = {"anyOf": [{"$ref": "#/components/schemas/Currency"}, {"type": "null"}]}
    currency["description"] = generic["properties"]["currency"].get("description", "")
    out = []
    for kind, adapter in sorted(adapters.items()):
        model = getattr(adapter, "params_model", None)
        params = model_schema(model, _prefix(kind), components) if model else {"type": "object"}
        out.append(_branch(generic, kind={"type": "string", "const": kind}, params=params, currency=currency))
    return out


def submission_branches(
    generic: dict[str, Any], adapters: Mapping[str, Adapter], components: dict[str, Any]
) -> list[dict[str, Any]]:
    """One ``SubmissionIn`` per JSON submission kind and model of any market kind (a ``bid`` of a
    broker market and of a balanced market are two branches)."""
    out: list[dict[str, Any]] = []
    for kind, adapter in sorted(adapters.items()):
        models = getattr(adapter, "submission_models", None) or {}
        for sub in sorted(set(adapter.submission_kinds) - set(adapter.dataset_kinds)):
            model = models.get(sub)
            data = model_schema(model, _prefix(kind), components) if model else {"type": "object"}
            branch = _branch(generic, kind={"type": "string", "const": sub}, data=data)
            if data.get("required"):  # the default ``{}`` lacks them
                branch["required"] = sorted({*branch["required"], "data"})
            if branch not in out:
                out.append(branch)
    return out


# -- currency and scale (datamarket.ledger.money.Currency.parse on MarketIn's CURRENCY grammar) ---------
_NAME_CHARS = string.ascii_uppercase + string.digits + "_"


def _chars(allowed: str) -> str:
    """A character class of ``allowed`` (upper-case letters also in lower case: codes are read
    case-insensitively), runs written as ranges."""
    chars = sorted({ord(x) for c in allowed for x in (c, c.lower())})
    runs: list[list[int]] = []
    for o in chars:
        if runs and o == runs[-1][1] + 1:
            runs[-1][1] = o
        else:
            runs.append([o, o])
    body = "".join(
        chr(a) if a == b else f"{chr(a)}-{chr(b)}" if b > a + 1 else chr(a) + chr(b) for a, b in runs
    )
    return f"[{body}]"


def _name_except(forbidden: set[str]) -> str:
    """A regex of a unit name ``[A-Z][A-Z0-9_]{0,15}`` (any case) that is none of the three-letter
    codes ``forbidden`` (no lookahead: a JSON Schema pattern may not have one)."""
    first, rest = string.ascii_uppercase, _chars(_NAME_CHARS)
    parts = [f"{_chars(first)}(?:{rest}?|{rest}{{3,15}})"]  # 1, 2 or 4..16 characters
    heads = {code[0] for code in forbidden}
    if set(first) - heads:
        parts.append(_chars("".join(set(first) - heads)) + rest * 2)
    for h in sorted(heads):
        seconds = {code[1] for code in forbidden if code[0] == h}
        tails = [_chars(h)]
        alts = []
        if set(_NAME_CHARS) - seconds:
            alts.append(_chars("".join(set(_NAME_CHARS) - seconds)) + rest)
        for c in sorted(seconds):
            thirds = {code[2] for code in forbidden if code[:2] == h + c}
            if set(_NAME_CHARS) - thirds:
                alts.append(_chars(c) + _chars("".join(set(_NAME_CHARS) - thirds)))
        parts.append(tails[0] + "(?:" + "|".join(alts) + ")")
    return "(?:" + "|".join(parts) + ")"


def currency_pattern(exponent: int | None = None) -> str:
    """A regex of exactly the currency codes :class:`~datamarket.ledger.money.Currency` accepts on
    input as MarketIn writes them (:data:`~datamarket.service.api.schemas.CURRENCY`): an ISO 4217
    code, ``NAME:e`` (``e <= MAX_EXPONENT``; an ISO code's name only with its own decimals) or a
    legacy ``NAME/n`` (``1 <= n <= MAX_SCALE``), any case; with ``exponent``, only the first two
    with that many decimals."""
    exponents = range(MAX_EXPONENT + 1) if exponent is None else [exponent]
    alts = [_ci(code) for code, e in sorted(ISO_4217.items()) if e in exponents]
    by_forbidden: dict[frozenset[str], str] = {}  # decimals whose names exclude the same ISO codes
    for e in exponents:
        forbidden = frozenset(c for c, x in ISO_4217.items() if x != e)
        by_forbidden[forbidden] = by_forbidden.get(forbidden, "") + str(e)
    for forbidden, digits in by_forbidden.items():
        alts.append(_name_except(set(forbidden)) + f":0?{_chars(digits)}")
    if exponent is None:  # a legacy NAME/n, 1 <= n <= MAX_SCALE, in at most 19 digits
        most = len(str(MAX_SCALE))
        counts = [f"0{{0,{19 - k}}}[1-9][0-9]{{{k - 1}}}" for k in range(1, most)]
        counts.append(f"0{{0,{19 - most}}}{MAX_SCALE}")
        alts.append(_name_except(set()) + "/(?:" + "|".join(counts) + ")")
    return "^(?:" + "|".join(alts) + ")$"


def _ci(code: str) -> str:
    return "".join(_chars(c) for c in code)


def currency_and_scale() -> list[dict[str, Any]]:
    """How ``currency`` and ``scale`` go together: no currency (any scale), a currency alone (its
    scale), or both when the scale is the currency's ``10^e`` (a legacy ``NAME/n`` comes alone)."""
    out: list[dict[str, Any]] = [
        {"properties": {"currency": {"type": "null"}}},
        {"required": ["currency"], "properties": {"currency": {"type": "string"}, "scale": False}},
    ]
    for e in range(MAX_EXPONENT + 1):
        if 10**e <= MAX_MARKET_SCALE:
            pattern = currency_pattern(e)
            currency = {"type": "string", "pattern": pattern}
            both = {"currency": currency, "scale": {"const": 10**e}}
            out.append({"required": ["currency", "scale"], "properties": both})
    return out


BRANCHES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "MarketIn": market_branches,
    "SubmissionIn": submission_branches,
}


def document_kinds(app: FastAPI, adapters: Mapping[str, Adapter]) -> None:
    """Have ``app``'s OpenAPI schema document ``MarketIn`` and ``SubmissionIn`` per kind of
    ``adapters`` (module docstring); call it after the schema's other customisations."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        schema = base()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, branches in BRANCHES.items():
            generic = components.get(name)
            if generic is None or "properties" not in generic:  # absent, or documented already
                continue
            components[name] = {
                "title": name,
                "description": f"{generic.get('description', name)}: one branch per kind (``/kinds``)",
                "anyOf": branches(generic, adapters, components),
            }
            if name == "MarketIn":  # whatever the kind, currency and scale agree
                components[name]["allOf"] = [{"$ref": "#/components/schemas/CurrencyAndScale"}]
        _dataset_kinds(schema, adapters)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _dataset_kinds(schema: dict[str, Any], adapters: Mapping[str, Adapter]) -> None:
    """The upload route's ``kind`` query: one of the upload kinds of the market kinds served."""
    kinds = sorted({k for a in adapters.values() for k in a.dataset_kinds})
    op = schema.get("paths", {}).get("/markets/{mid}/datasets", {}).get("post", {})
    for param in op.get("parameters", []):
        if param.get("name") == "kind" and param.get("in") == "query" and kinds:
            default = param.get("schema", {}).get("default")
            param["schema"] = {"type": "string", "enum": kinds}
            if default in kinds:
                param["schema"]["default"] = default
