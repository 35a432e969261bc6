"""Why each line of a receipt is what it is: the rule that produced it and the inputs it used.

A round books at most two lines per participant (:func:`datamarket.ledger.money.outcome_postings`): a
``price`` it pays and a ``payment`` it receives. An adapter's ``clear`` explains them in
:attr:`~datamarket.service.adapters.Clearing.charges`: per participant, one :class:`Charge` per line,
naming

* the :class:`Rule` (a paper's equation, the family's own convention) by its id in the adapter's
  ``rules`` (the portal's guide, ``/portal/guide#<kind>-<rule>``, shows every rule in full);
* the exact ``amount`` before rounding to minor units (what is paid, or received; positive), and the
  ``terms`` it is the sum of, so that a participant reconciles the line from the receipt alone;
* the ``inputs`` the rule used: the participant's own submission, the posted prices and the
  quantities of the round. Never another participant's submission: a charge is shown to its
  participant only.

:func:`reconcile` checks each charge against the outcome the round books (the amount is the
outcome's price or payment of that participant, the terms add up to it) and records the result in
``reconciled``; a receipt states a line that does not reconcile instead of showing its terms as if
they did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datamarket.core.types import Outcome

MEMOS = ("price", "payment")
RELATIVE_TOLERANCE = 1e-9  # a sum of a few float terms vs the outcome's float: rounding only


@dataclass(frozen=True)
class Rule:
    """A rule that produces receipt lines: its ``title``, the ``formula`` (plain text, with the
    paper's symbols), where it comes from (``source``: authors, paper, equation) and what it means
    for the participant (``text``)."""

    title: str
    formula: str
    source: str
    text: str


@dataclass(frozen=True)
class Charge:
    """One line of a participant's receipt explained (module docstring)."""

    memo: str  # "price" (paid) or "payment" (received): the ledger line it explains
    rule: str  # id of the rule in the adapter's ``rules``
    amount: float  # exact, major units, >= 0 (what is paid or received)
    terms: tuple[tuple[str, float], ...] = ()  # (label, value) adding up to amount
    inputs: Mapping[str, Any] = field(default_factory=dict)  # label -> value the rule used
    money_inputs: tuple[str, ...] = ()  # which inputs are amounts of money (major units)

    def __post_init__(self) -> None:
        if self.memo not in MEMOS:
            raise ValueError(f"a charge explains a price or a payment, not {self.memo!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "memo": self.memo,
            "rule": self.rule,
            "amount": float(self.amount),
            "terms": [{"label": t, "value": float(v)} for t, v in self.terms],
            "inputs": dict(self.inputs),
            "money_inputs": list(self.money_inputs),
        }


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=RELATIVE_TOLERANCE * max(1.0, abs(b)))


def reconcile(outcome: Outcome, charges: Mapping[str, Sequence[Charge]]) -> dict[str, list[dict[str, Any]]]:
    """``charges`` as JSON, each with ``reconciled``: its amount is the outcome's price (or payment)
    of its participant and its terms (when given) add up to it."""
    index = {name: i for i, name in enumerate(outcome.participants)}
    booked = {"price": np.asarray(outcome.prices, float), "payment": np.asarray(outcome.payments, float)}
    out: dict[str, list[dict[str, Any]]] = {}
    for name, lines in charges.items():
        rows = []
        for c in lines:
            d = c.to_dict()
            i = index.get(name)
            ok = i is not None and _close(float(c.amount), float(booked[c.memo][i]))
            if c.terms:
                ok = ok and _close(math.fsum(v for _, v in c.terms), float(c.amount))
            d["reconciled"] = bool(ok)
            rows.append(d)
        out[str(name)] = rows
    return out


def rules_of(adapter: Any) -> Mapping[str, Rule]:
    """The adapter's rules (its optional ``rules`` attribute; none: empty)."""
    rules = getattr(adapter, "rules", None)
    return rules if isinstance(rules, Mapping) else {}
