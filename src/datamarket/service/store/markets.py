"""Markets: creation (parameters validated by the kind's adapter, currency and scale checked), reading,
and the plan (what the mechanism asks of participants given the inputs so far).

The operator sees the adapter's plan as it is. A participant sees its own row of it and aggregates
(:func:`participant_plan`), never another participant's name or row: the filter works on any plan
dict, knowing only the names of the market's participants and, where the adapter declares them
(``plan_rows``), the lists that hold one value per participant of a list of names. A participant's
plan also says what it should do next (``next_steps``: the adapter's, or the default derived from
its submission kinds, its ``plan_quota`` and the participant's waiting inputs;
:mod:`datamarket.service.adapters.plans`), and a message saying why the plan is not determined yet
names no other participant. :func:`plan_table` lays a plan out as one row per participant and the
values shared by all, for the portal.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from datamarket.core.errors import DatamarketError, InvalidInputError, InvalidMarketError
from datamarket.ledger.models import Market
from datamarket.ledger.money import Currency
from datamarket.service.adapters import Adapter, Input, plan_rows_of
from datamarket.service.adapters.plans import next_steps
from datamarket.service.auth import Principal
from datamarket.service.store.db import Database
from datamarket.service.store.errors import NotReady
from datamarket.service.store.rows import get_or_404, window
from datamarket.service.store.submissions import load_inputs, unconsumed_ids
from datamarket.service.uploads import UploadLimits


def market_view(m: Market) -> dict[str, Any]:
    """A market's record, with the decimals of its currency."""
    return {
        "id": m.id,
        "kind": m.kind,
        "name": m.name,
        "params": m.params,
        "scale": m.scale,
        "currency": m.currency,
        "exponent": Currency.parse(m.currency, stored=True).exponent,
        "created_at": m.created_at,
    }


def create_market(
    db: Database,
    adapters: Mapping[str, Adapter],
    kind: str,
    name: str,
    params: Mapping[str, Any],
    *,
    scale: int | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """A new market of ``kind`` (a kind of ``adapters``); ``scale`` (minor units per major unit, default
    100) and ``currency`` must agree: ledger format 2 fixes the scale by the currency."""
    adapter = adapters.get(kind)
    if adapter is None:
        raise InvalidMarketError("kind", f"unknown market kind {kind!r} (available: {sorted(adapters)})")
    valid = adapter.validate_params(params)
    cur = (
        Currency.for_scale(100 if scale is None else scale) if currency is None else Currency.parse(currency)
    )
    if scale is not None and scale != cur.scale:
        raise InvalidMarketError("scale", f"{scale} does not match {cur.code} ({cur.scale} minor units)")
    with db.write() as s:
        m = Market(kind=kind, name=name, params=valid, scale=cur.scale, currency=cur.code)
        s.add(m)
        s.flush()
        return market_view(m)


def list_markets(db: Database, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The markets by id, after ``after`` (:func:`~datamarket.service.store.rows.window`)."""
    with db.read() as s:
        return [market_view(m) for m in s.execute(window(select(Market), Market.id, after, limit)).scalars()]


def get_market(db: Database, mid: int) -> dict[str, Any]:
    """One market."""
    with db.read() as s:
        return market_view(get_or_404(s, Market, mid, "market"))


def plan(
    db: Database, adapters: Mapping[str, Adapter], limits: UploadLimits, mid: int, who: Principal
) -> dict[str, Any]:
    """The adapter's plan for the market's unconsumed inputs (e.g. the broker's ``N*_i``), as ``who``
    may see it (module docstring: a participant's has ``aggregates`` and ``next_steps``);
    :class:`NotReady` (409) while the inputs do not determine it: the request is fine, the market's
    state is not."""
    m, adapter, inputs = _market_inputs(db, adapters, limits, mid)
    names = {i.participant for i in inputs}
    try:
        full = adapter.plan(m.params, inputs)
    except InvalidInputError as exc:
        raise _not_ready(exc, who, names) from None
    if who.is_admin:
        return full
    seen = participant_plan(full, who.name, names, plan_rows_of(adapter))
    seen["next_steps"] = _steps(adapter, m.params, seen, who, inputs)
    return seen


def plan_page(
    db: Database, adapters: Mapping[str, Adapter], limits: UploadLimits, mid: int, who: Principal
) -> dict[str, Any]:
    """The plan of a market's page for ``who``: ``plan`` (as :func:`plan` answers it, or ``None``),
    ``problem`` (why the inputs do not determine it, or ``None``), ``table`` (:func:`plan_table` of
    what ``who`` sees, or ``None``) and ``next_steps`` (a participant's, also while the plan is not
    determined; ``None`` for the operator)."""
    m, adapter, inputs = _market_inputs(db, adapters, limits, mid)
    names = {i.participant for i in inputs}
    out: dict[str, Any] = {"plan": None, "problem": None, "table": None, "next_steps": None}
    try:
        full = adapter.plan(m.params, inputs)
    except DatamarketError as exc:
        out["problem"] = _not_ready(exc, who, names).message
        full = None
    if who.is_admin:
        if full is not None:
            out.update(plan=full, table=plan_table(full, names, plan_rows_of(adapter)))
        return out
    seen = None if full is None else participant_plan(full, who.name, names, plan_rows_of(adapter))
    out["next_steps"] = _steps(adapter, m.params, seen, who, inputs)
    if seen is not None:
        per = set(seen["aggregates"]["counts"])
        own = {k: v for k, v in seen.items() if k != "aggregates"}
        out["table"] = plan_table(own, {who.name}, plan_rows_of(adapter), per_participant=per)
        out["plan"] = {**seen, "next_steps": out["next_steps"]}
    return out


def _market_inputs(
    db: Database, adapters: Mapping[str, Adapter], limits: UploadLimits, mid: int
) -> tuple[Market, Adapter, list[Input]]:
    """Market ``mid``, its adapter and its unconsumed inputs."""
    with db.read() as s:
        m = get_or_404(s, Market, mid, "market")
        inputs = load_inputs(s, unconsumed_ids(s, mid), limits)
    return m, adapters[m.kind], inputs


def _not_ready(exc: Exception, who: Principal, names: Collection[str]) -> NotReady:
    """:class:`NotReady` with ``exc``'s message and field, another participant's name in them
    replaced (for a participant) by "another participant"."""
    message, field = str(exc), getattr(exc, "field", None)
    if not who.is_admin:
        others = set(names) - {who.name}
        message = _scrub_text(message, others)
        field = None if field is None else _scrub_text(str(field), others)
    return NotReady(message, field)


def _scrub_text(text: str, others: Collection[str]) -> str:
    """``text`` with each of ``others`` (whole words, the longest first) replaced by "another
    participant".

    >>> _scrub_text("bob submitted both a bid and a cost", {"bob", "bo"})
    'another participant submitted both a bid and a cost'
    """
    for name in sorted(others, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "another participant", text)
    return text


def _steps(
    adapter: Adapter,
    params: Mapping[str, Any],
    seen: Mapping[str, Any] | None,
    who: Principal,
    inputs: Sequence[Input],
) -> list[str]:
    """What participant ``who`` should do next (:func:`datamarket.service.adapters.plans.next_steps`),
    from its view of the plan and its own waiting inputs; never another participant's name."""
    mine = [i for i in inputs if i.participant == who.name]
    others = {i.participant for i in inputs} - {who.name}
    return [_scrub_text(step, others) for step in next_steps(adapter, params, seen, who.name, mine)]


def plan_table(
    plan: Mapping[str, Any],
    names: Collection[str],
    rows: Mapping[str, Sequence[str]] | None = None,
    per_participant: Collection[str] = (),
) -> dict[str, Any]:
    """``plan`` as one row per participant of ``names`` and the values shared by all.

    ``roles``: the keys of the lists of names (:func:`_owners`); ``columns``: the keys of the
    per-participant lists and of the dicts keyed by names, in plan order; ``rows``: per name (in
    order of appearance) its ``roles`` and its ``values`` by column; ``other``: every other key, but
    those of ``per_participant`` (a participant's view: the keys its aggregates count, where it has
    no row).

    >>> plan = {"buyers": ["a", "b"], "prices": [1.5, 2.0], "n_star": {"x": 3}, "curve": [0.0, 1.0]}
    >>> t = plan_table(plan, {"a", "b", "x"}, {"buyers": ("prices",)})
    >>> t["columns"], t["other"]
    (['prices', 'n_star'], {'curve': [0.0, 1.0]})
    >>> [(r["name"], r["roles"], r["values"]) for r in t["rows"]]
    [('a', ['buyers'], {'prices': 1.5}), ('b', ['buyers'], {'prices': 2.0}), ('x', [], {'n_star': 3})]
    """
    names = set(names)
    owners, lists = _owners(plan, names, rows), _name_lists(plan, names)
    roles: dict[str, list[str]] = {}
    values: dict[str, dict[str, Any]] = {}
    columns: list[str] = []
    other: dict[str, Any] = {}
    for key, value in plan.items():
        if key in lists:
            for n in value:
                roles.setdefault(n, []).append(key)
                values.setdefault(n, {})
        elif isinstance(value, list) and owners.get(key) is not None:
            columns.append(key)
            for v, n in zip(value, owners[key] or [], strict=False):
                values.setdefault(n, {})[key] = v
        elif isinstance(value, Mapping) and names & set(value):
            columns.append(key)
            for n, v in value.items():
                if n in names:
                    values.setdefault(n, {})[key] = v
            rest = {k: v for k, v in value.items() if k not in names}
            if rest:
                other[key] = rest
        elif key not in per_participant:
            other[key] = value
    table = [{"name": n, "roles": roles.get(n, []), "values": v} for n, v in values.items()]
    return {"roles": list(lists), "columns": columns, "rows": table, "other": other}


def participant_plan(
    plan: Mapping[str, Any],
    me: str,
    names: Collection[str],
    rows: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``plan`` as participant ``me`` may see it, ``names`` being the market's participants.

    1. a list of names keeps ``me`` only; a dict keyed by names keeps ``me``'s key only;
    2. a list holding one value per name of such a list (``rows``: name-list key -> those keys;
       without a declaration, any list as long as a list of names) keeps ``me``'s values only, and
       is emptied when its owners are ambiguous (undeclared, two lists of names of its length);
    3. any other string that is another participant's name becomes ``None``;
    4. ``aggregates``: per filtered key, ``counts`` (rows before filtering) and ``totals`` (the sum
       of numeric rows).

    >>> plan = {"buyers": ["a", "b"], "prices": [1.5, 2.0], "n_star": {"x": 3, "y": 4},
    ...         "first": "x", "curve": [0.0, 1.0, 3.0]}
    >>> seen = participant_plan(plan, "a", {"a", "b", "x", "y"}, {"buyers": ("prices",)})
    >>> seen["buyers"], seen["prices"], seen["n_star"], seen["first"], seen["curve"]
    (['a'], [1.5], {}, None, [0.0, 1.0, 3.0])
    >>> seen["aggregates"]
    {'counts': {'buyers': 2, 'prices': 2, 'n_star': 2}, 'totals': {'prices': 3.5, 'n_star': 7}}
    """
    names = set(names)
    others = names - {me}
    owners = _owners(plan, names, rows)
    out: dict[str, Any] = {}
    counts: dict[str, int] = {}
    totals: dict[str, Any] = {}
    for key, value in plan.items():
        if key in owners and isinstance(value, list):
            who = owners[key] or []
            out[key] = [v for v, n in zip(value, who, strict=False) if n == me]
            counts[key] = len(value)
            _total(totals, key, value)
        elif isinstance(value, Mapping) and names & set(value):
            out[key] = {k: _scrub(v, others) for k, v in value.items() if k not in others}
            counts[key] = sum(1 for k in value if k in names)
            _total(totals, key, [v for k, v in value.items() if k in names])
        else:
            out[key] = _scrub(value, others)
    out["aggregates"] = {"counts": counts, "totals": totals}
    return out


def _name_lists(plan: Mapping[str, Any], names: Collection[str]) -> dict[str, list[str]]:
    """The values of ``plan`` that are non-empty lists of participant names."""
    return {
        k: v
        for k, v in plan.items()
        if isinstance(v, list) and v and all(isinstance(n, str) and n in names for n in v)
    }


def _owners(
    plan: Mapping[str, Any], names: Collection[str], rows: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str] | None]:
    """Per key of a list of names or of a per-name list: the owner of each item (``None``: unknown)."""
    lists = _name_lists(plan, names)
    owners: dict[str, list[str] | None] = dict(lists)
    if rows is not None:
        for key, cols in rows.items():
            for col in cols:
                value = plan.get(col)
                ok = key in lists and isinstance(value, list) and len(value) == len(lists[key])
                owners[col] = lists[key] if ok else None
        return owners
    for col, value in plan.items():
        if col in lists or not isinstance(value, list):
            continue
        match = [who for who in lists.values() if len(who) == len(value)]
        if match:
            owners[col] = match[0] if len(match) == 1 else None
    return owners


def _total(totals: dict[str, Any], key: str, values: Sequence[Any]) -> None:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if nums and len(nums) == len(values):
        totals[key] = sum(nums)


def _scrub(value: Any, others: Collection[str]) -> Any:
    """``value`` with every string that is another participant's name replaced by ``None`` (and
    dropped as a key)."""
    if isinstance(value, str):
        return None if value in others else value
    if isinstance(value, Mapping):
        return {k: _scrub(v, others) for k, v in value.items() if k not in others}
    if isinstance(value, list | tuple):
        return [_scrub(v, others) for v in value]
    return value
