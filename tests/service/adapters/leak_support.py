"""Whether a participant's receipt explanations give away another participant's amount.

What is checked, precisely (:func:`leaked_amounts`): take every number a participant's charges show
(each charge's amount, the values of its terms, the subtotal of the terms about one counterpart --
those whose labels share the text before ": ", e.g. "buyer 1 of 2" --, every number in its inputs,
lists and mappings included, booleans and strings not) and, unless ``combined`` is false, every
product and quotient of two of them (two different positions); none of these may equal, to 1e-9
relative, a non-zero money field (price, payment, value, cost, utility) of the outcome's row of
**one** other participant, unless it also equals one of the participant's own amounts: its own money
fields (a budget-balanced round makes a price another's payment: with one buyer and one seller they
are the same amount), the inputs its charges label as its own submission ("your reported cost c_j")
and the amounts the caller states it owns anyway (``own``: the expected payments of its own
contracts). An aggregate over at least two others does not equal any one of
them, except by coincidence, so it passes; one that reduces to a single other's amount does not.
Products and quotients find a share shown beside its product (eta_ij and eta_ij P_j give P_j); in a
symmetric market (two identical sources, a report of 0.5) they also meet another's amount by the
symmetry alone, so the tests over generated markets check the values only (``combined=False``) and
the tests over fixed generic markets check both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

MONEY_FIELDS = ("prices", "payments", "values", "costs", "utility")
RELATIVE = 1e-9


def numbers(value: Any) -> list[float]:
    """Every finite number in ``value`` (mappings' values and sequences, recursively)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, Mapping):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, Iterable):
        return [x for v in value for x in numbers(v)]
    return []


def subtotals(terms: Sequence[Mapping[str, Any]]) -> list[float]:
    """The sums of the terms about one counterpart: labels sharing the text before ": " (two or more)."""
    groups: dict[str, list[float]] = {}
    for t in terms:
        head, sep, _ = str(t["label"]).partition(": ")
        if sep:
            groups.setdefault(head, []).append(float(t["value"]))
    return [math.fsum(v) for v in groups.values() if len(v) >= 2]


def shown(charges: Sequence[Mapping[str, Any]]) -> list[float]:
    """The numbers a participant's charges show (module docstring)."""
    out: list[float] = []
    for c in charges:
        out += [float(c["amount"]), *(float(t["value"]) for t in c["terms"]), *subtotals(c["terms"])]
        out += numbers(c["inputs"])
    return out


def stated_own(charges: Sequence[Mapping[str, Any]]) -> list[float]:
    """The numbers of the inputs a charge labels as the participant's own submission ("your ..."):
    its reported cost or target, which it knows anyway (two sellers who both report the same cost
    would otherwise "leak" each other's)."""
    return [x for c in charges for k, v in c["inputs"].items() if k.startswith("your ") for x in numbers(v)]


def _derived(xs: list[float], combined: bool) -> np.ndarray:
    a = np.abs(np.array([x for x in xs if x != 0.0], dtype=float))
    if a.size == 0 or not combined:
        return a
    off = ~np.eye(a.size, dtype=bool)
    products, quotients = np.outer(a, a)[off], (a[:, None] / a[None, :])[off]
    return np.concatenate([a, products, quotients])


def _near(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each target, whether some value equals it to :data:`RELATIVE` (targets non-zero)."""
    if values.size == 0 or targets.size == 0:
        return np.zeros(targets.size, dtype=bool)
    return np.any(np.abs(values[:, None] - targets[None, :]) <= RELATIVE * targets[None, :], axis=0)


def leaked_amounts(
    charges: Sequence[Mapping[str, Any]],
    me: str,
    rows: Sequence[Mapping[str, Any]],
    own: Iterable[float] = (),
    combined: bool = True,
) -> list[tuple[str, str, float]]:
    """``(participant, field, amount)`` of every other participant's non-zero money field that
    ``me``'s charges give away (module docstring); ``rows`` are the outcome's participant rows,
    ``own`` amounts ``me`` owns besides its own row's."""
    mine = [float(r[f]) for r in rows if r["name"] == me for f in MONEY_FIELDS]
    owned = np.abs(np.array([*mine, *own, *stated_own(charges)], dtype=float))
    owned = owned[owned > 0]
    derived = _derived(shown(charges), combined)
    derived = derived[~_near(owned, derived)]  # equal to one of my own amounts: nothing new
    others = [(str(r["name"]), f, float(r[f])) for r in rows if r["name"] != me for f in MONEY_FIELDS]
    others = [o for o in others if o[2] != 0.0]
    hit = _near(derived, np.array([abs(o[2]) for o in others]))
    return [o for o, h in zip(others, hit, strict=True) if h]
