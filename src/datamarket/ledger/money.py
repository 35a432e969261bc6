"""Exact money: float outcomes in major units become integer minor-unit postings that balance.

A mechanism's :class:`~datamarket.core.types.Outcome` holds prices and payments as floats in major
units (e.g. euros). The ledger stores integer minor units (cents for ``scale=100``). Rounding every
amount independently does not preserve a zero sum, so a round is converted with the
**largest-remainder (Hamilton) rule**:

1. write each amount exactly as a rational ``q_k = Fraction(x_k) * scale`` (floats are dyadic
   rationals, so this is exact);
2. the target total is ``T = round(sum_k q_k)`` (half to even; ``0`` for a balanced round);
3. give every amount its floor ``f_k = floor(q_k)``; the deficit ``D = T - sum_k f_k`` satisfies
   ``0 <= D < K``;
4. add one minor unit to the ``D`` amounts with the largest remainders ``q_k - f_k``, ties broken by
   position (the earlier posting first), so the rule is deterministic.

Each posting then differs from its exact value by less than one minor unit and the postings sum to
``T`` exactly. :func:`outcome_postings` applies it to an outcome: buyers are debited their price,
sellers credited their payment and the platform books the difference
``sum(prices) - sum(payments)`` computed exactly, so the round's postings sum to zero to the unit.
This is bookkeeping, not a formula from the five papers; it realises the issue's requirement that
"every round balances to the unit".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Outcome

PLATFORM = "platform"
"""Account name of the marketplace operator in the ledger."""


def largest_remainder(amounts: Sequence[float], scale: int = 100, total: int | None = None) -> list[int]:
    """Integer minor units for ``amounts`` (major units) that sum exactly to ``total``.

    Parameters
    ----------
    amounts : finite floats in major units (any sign).
    scale : minor units per major unit (100 for cents).
    total : required sum in minor units; defaults to ``round(scale * sum(amounts))`` computed exactly.

    Returns
    -------
    list of int, each within one minor unit of ``scale * amounts[k]`` when ``total`` is the default.

    Examples
    --------
    >>> largest_remainder([1 / 3, 1 / 3, 1 / 3], total=100)
    [34, 33, 33]
    >>> largest_remainder([-0.005, 0.0025, 0.0025])
    [0, 0, 0]
    >>> sum(largest_remainder([0.1, 0.2, -0.3]))
    0
    """
    if not isinstance(scale, int) or scale <= 0:
        raise InvalidMarketError("scale", f"must be a positive integer, got {scale!r}")
    exact: list[Fraction] = []
    for k, x in enumerate(amounts):
        if not math.isfinite(float(x)):
            raise InvalidMarketError(f"amounts[{k}]", "must be finite (no NaN or inf)")
        exact.append(Fraction(float(x)) * scale)
    target = round(sum(exact, Fraction(0))) if total is None else int(total)
    return _hamilton(exact, target)


def _hamilton(exact: list[Fraction], target: int) -> list[int]:
    """Steps 3-4 of the module docstring: floors, then +1 to the largest remainders."""
    floors = [math.floor(q) for q in exact]
    deficit = target - sum(floors)
    if not 0 <= deficit <= len(exact) or (not exact and target != 0):
        raise InvalidMarketError("total", f"{target} is not reachable by rounding {len(exact)} amounts")
    order = sorted(range(len(exact)), key=lambda k: (-(exact[k] - floors[k]), k))
    out = list(floors)
    for k in order[:deficit]:
        out[k] += 1
    return out


@dataclass(frozen=True)
class Posting:
    """One ledger line of a round: ``account`` gains ``amount_minor`` (negative: pays)."""

    account: str
    amount_minor: int
    memo: str

    def __post_init__(self) -> None:
        if not self.account:
            raise InvalidMarketError("account", "must be non-empty")
        if not isinstance(self.amount_minor, int):
            raise InvalidMarketError("amount_minor", "must be an integer number of minor units")


def outcome_postings(outcome: Outcome, scale: int = 100) -> list[Posting]:
    """The balanced postings of one round: buyer debits, seller credits and the platform take.

    Every participant with a non-zero price is debited it (memo ``price``), every one with a non-zero
    payment credited it (memo ``payment``; a party of paper 004 may have both), and the platform books
    ``sum(prices) - sum(payments)`` (memo ``platform take``). Amounts are converted together by
    :func:`largest_remainder` with total zero, so ``sum(p.amount_minor for p in postings) == 0``.
    Postings that round to zero minor units are dropped.

    >>> from datamarket.core.types import Role
    >>> o = Outcome("t", ("b", "s1", "s2"), (Role.BUYER, Role.SELLER, Role.SELLER),
    ...             prices=[1.0, 0, 0], payments=[0, 1 / 3, 1 / 3])
    >>> [(p.account, p.amount_minor) for p in outcome_postings(o)]
    [('b', -100), ('s1', 33), ('s2', 33), ('platform', 34)]
    """
    if PLATFORM in outcome.participants:
        raise InvalidMarketError("participants", f"{PLATFORM!r} is reserved for the operator's account")
    prices = np.asarray(outcome.prices, dtype=float)
    payments = np.asarray(outcome.payments, dtype=float)
    lines: list[tuple[str, float, str]] = []
    for i, name in enumerate(outcome.participants):
        if prices[i] != 0.0:
            lines.append((name, -float(prices[i]), "price"))
        if payments[i] != 0.0:
            lines.append((name, float(payments[i]), "payment"))
    exact_take = sum((Fraction(float(p)) for p in prices), Fraction(0)) - sum(
        (Fraction(float(q)) for q in payments), Fraction(0)
    )
    # The take is kept as an exact rational (a float take could be off by one ulp), so the exact
    # amounts sum to zero and the Hamilton rule with target 0 never needs to move more than K-1 units.
    exact = [Fraction(x) * scale for _, x, _ in lines] + [exact_take * scale]
    minor = _hamilton(exact, 0)
    postings = [Posting(acc, m, memo) for (acc, _, memo), m in zip(lines, minor[:-1], strict=True) if m != 0]
    if minor[-1] != 0:
        postings.append(Posting(PLATFORM, minor[-1], "platform take"))
    return postings


def format_minor(amount_minor: int, scale: int = 100) -> str:
    """Human-readable major units, exact: ``format_minor(-12345) == '-123.45'``.

    >>> format_minor(-12345), format_minor(7), format_minor(5, scale=1)
    ('-123.45', '0.07', '5')
    """
    digits = len(str(scale)) - 1 if scale > 1 and str(scale).strip("0") == "1" else None
    if scale == 1:
        return str(amount_minor)
    if digits is None:
        return str(Fraction(amount_minor, scale))
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), scale)
    return f"{sign}{whole}.{frac:0{digits}d}"
