"""Markets: creation (parameters validated by the kind's adapter, currency and scale checked), reading,
and the plan (what the mechanism asks of participants given the inputs so far)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger.models import Market
from datamarket.ledger.money import Currency
from datamarket.service.adapters import Adapter
from datamarket.service.store.db import Database
from datamarket.service.store.rows import get_or_404
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
        "exponent": Currency.parse(m.currency).exponent,
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


def list_markets(db: Database) -> list[dict[str, Any]]:
    """Every market, by id."""
    with db.read() as s:
        return [market_view(m) for m in s.execute(select(Market).order_by(Market.id)).scalars()]


def get_market(db: Database, mid: int) -> dict[str, Any]:
    """One market."""
    with db.read() as s:
        return market_view(get_or_404(s, Market, mid, "market"))


def plan(db: Database, adapters: Mapping[str, Adapter], limits: UploadLimits, mid: int) -> dict[str, Any]:
    """The adapter's plan for the market's unconsumed inputs (e.g. the broker's ``N*_i``); an
    :class:`~datamarket.core.errors.InvalidInputError` while the inputs do not determine it."""
    with db.read() as s:
        m = get_or_404(s, Market, mid, "market")
        inputs = load_inputs(s, unconsumed_ids(s, mid), limits)
    return adapters[m.kind].plan(m.params, inputs)
