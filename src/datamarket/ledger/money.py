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
This is bookkeeping, not a formula from the papers; it realises the issue's requirement that
"every round balances to the unit".

**Currencies.** Every market and every ledger entry names its unit (:class:`Currency`): an ISO 4217
code with its minor-unit exponent (``USD`` 2, ``JPY`` 0, ``KWD`` 3...) or a named unit written
``NAME:e`` (e.g. ``CREDIT:0``, ``TOKEN:6``), whose minor unit is ``10^-e`` of the major one. Amounts
in different currencies are never added: balances and round sums are kept per currency. Minor units
are 64-bit integers in the database, so every amount, and every balance, must lie in
``[-(2^63 - 1), 2^63 - 1]``; larger ones are refused with :class:`InvalidMarketError`.

**Bounded scales.** A currency given as input has at most :data:`MAX_EXPONENT` = 9 decimals (a legacy
``NAME/n`` at most :data:`MAX_SCALE` = ``10^9`` minor units per major unit), for two reasons that agree:

* the markets table stores the scale in a 32-bit ``INTEGER`` (PostgreSQL refuses
  ``10^10 > 2^31 - 1``; ``10^9`` fits);
* the service accepts input numbers up to ``10^9`` major units (``MAX_NUMBER`` of the adapters), and at
  ``10^9`` minor units per major unit such an amount is ``10^18 < 2^63 - 1 ~ 9.2 * 10^18`` minor
  units: every accepted input stays bookable as one 64-bit amount (a sum beyond it is refused by
  :func:`check_minor`: the round fails and the ledger is untouched). At 10 decimals it would not be.

:meth:`Currency.parse` checks both, for the JSON API and the portal alike (``currency`` named in the
422); codes read back from a database written before the bound (``stored=True``) keep the old limits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Outcome

PLATFORM = "platform"
"""Account name of the marketplace operator in the ledger."""

MAX_MINOR = 2**63 - 1
"""Largest magnitude of an amount or balance in minor units (the database stores 64-bit integers)."""

ISO_4217 = {
    "AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2,
    "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0,
    "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PLN": 2,
    "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip
"""Minor-unit exponents of the ISO 4217 codes accepted by name (a named unit ``NAME:e`` covers others)."""

MAX_EXPONENT = 9
"""Most decimals of a currency given as input (module docstring: the scale column and MAX_NUMBER)."""

MAX_SCALE = 10**MAX_EXPONENT
"""Most minor units per major unit of a currency given as input (``<= 2^31 - 1``, the column's range)."""

_STORED_EXPONENT = 18  # the bounds before MAX_EXPONENT: what a SQLite database may already hold
_NAMED = re.compile(r"^([A-Z][A-Z0-9_]{0,15}):(\d{1,2})$")
_LEGACY = re.compile(r"^([A-Z][A-Z0-9_]{0,15})/(\d{1,19})$")


_WHY = "(amounts are 64-bit integers of minor units; see datamarket.ledger.money)"


@dataclass(frozen=True)
class Currency:
    """A unit of account: ``code`` and ``scale`` minor units per major unit (``10^exponent``).

    >>> Currency.parse("usd"), Currency.parse("TOKEN:6").scale, Currency.parse("JPY").exponent
    (Currency(code='USD', scale=100), 1000000, 0)
    >>> Currency.parse("XYZ")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: currency: unknown currency 'XYZ' ...
    """

    code: str
    scale: int

    @property
    def exponent(self) -> int | None:
        """``e`` with ``scale == 10^e``; ``None`` for a legacy non-decimal scale."""
        e = len(str(self.scale)) - 1
        return e if 10**e == self.scale else None

    @classmethod
    def parse(cls, code: str, *, stored: bool = False) -> Currency:
        """An ISO 4217 code, ``NAME:e`` (named unit, ``0 <= e <=`` :data:`MAX_EXPONENT`) or ``NAME/n``
        (a unit with ``1 <= n <=`` :data:`MAX_SCALE` minor units per major unit: only markets created
        before currencies existed have one); :class:`InvalidMarketError` naming ``currency`` otherwise.

        ``stored=True`` reads a code already in a database, which may predate the bounds (up to 18
        decimals, ``n <= 2^63 - 1``): it is only formatted, never stored again.

        >>> Currency.parse("TOKEN:9").scale
        1000000000
        >>> Currency.parse("TOKEN:10")
        Traceback (most recent call last):
        ...
        datamarket.core.errors.InvalidMarketError: currency: TOKEN:10 has 10 decimals; at most 9 ...
        """
        c = str(code).strip().upper()
        if c in ISO_4217:
            return cls(c, 10 ** ISO_4217[c])
        named, legacy = _NAMED.match(c), _LEGACY.match(c)
        most_e, most_n = (_STORED_EXPONENT, MAX_MINOR) if stored else (MAX_EXPONENT, MAX_SCALE)
        if named:
            name, e = named[1], int(named[2])
            if e > most_e:
                raise InvalidMarketError("currency", f"{c} has {e} decimals; at most {most_e} {_WHY}")
            if name in ISO_4217 and ISO_4217[name] != e:
                raise InvalidMarketError("currency", f"{name} has {ISO_4217[name]} decimals, not {e}")
            return cls(name if name in ISO_4217 else f"{name}:{e}", 10**e)
        if legacy:
            if not 1 <= int(legacy[2]) <= most_n:
                raise InvalidMarketError(
                    "currency", f"{c}: minor units per major unit must be in 1..{most_n} {_WHY}"
                )
            return cls(c, int(legacy[2]))
        raise InvalidMarketError(
            "currency",
            f"unknown currency {code!r} (an ISO 4217 code such as USD, EUR, JPY, or a named unit "
            f"NAME:e with e decimals, 0 <= e <= {MAX_EXPONENT}, e.g. CREDIT:0 or TOKEN:6)",
        )

    @classmethod
    def for_scale(cls, scale: int) -> Currency:
        """The currency given to a market that only had a ``scale``: 100 -> ``USD`` (2 decimals),
        ``10^e`` -> the named unit ``UNIT:e``, any other ``n`` -> ``UNIT/n``.

        >>> [Currency.for_scale(n).code for n in (100, 1, 10**6, 7)]
        ['USD', 'UNIT:0', 'UNIT:6', 'UNIT/7']
        """
        if not isinstance(scale, int) or scale < 1:
            raise InvalidMarketError("scale", f"must be a positive integer, got {scale!r}")
        if scale == 100:
            return cls("USD", 100)
        e = len(str(scale)) - 1
        return cls(f"UNIT:{e}", scale) if 10**e == scale else cls(f"UNIT/{scale}", scale)

    def format(self, amount_minor: int) -> str:
        """Exact major units with the code: ``Currency.parse("EUR").format(-12345) == '-123.45 EUR'``."""
        return f"{format_minor(amount_minor, self.scale)} {self.code}"


def check_minor(value: object, what: str = "amount_minor") -> int:
    """``value`` as a Python int of at most 63 bits; :class:`InvalidMarketError` otherwise.

    >>> check_minor(2**63)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: amount_minor: 9223372036854775808 minor units overflow ...
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMarketError(what, f"must be an integer number of minor units, got {value!r}")
    if abs(value) > MAX_MINOR:
        raise InvalidMarketError(
            what,
            f"{value} minor units overflow the ledger's 64-bit range (|amount| <= 2^63 - 1 = {MAX_MINOR})",
        )
    return value


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


ENTRY_KINDS = {"price": "price", "payment": "payment", "platform take": "platform_take"}
"""Kind of entry recorded for each memo written by :func:`outcome_postings` (others: ``other``)."""


@dataclass(frozen=True)
class Posting:
    """One ledger line of a round: ``account`` gains ``amount_minor`` (negative: pays).

    ``kind`` defaults to the kind named by ``memo`` (:data:`ENTRY_KINDS`); ``amount_minor`` must fit
    in 63 bits (:func:`check_minor`).
    """

    account: str
    amount_minor: int
    memo: str
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.account:
            raise InvalidMarketError("account", "must be non-empty")
        check_minor(self.amount_minor)
        if not self.kind:
            object.__setattr__(self, "kind", ENTRY_KINDS.get(self.memo, "other"))


def outcome_postings(outcome: Outcome, scale: int = 100) -> list[Posting]:
    """The balanced postings of one round: buyer debits, seller credits and the platform take.

    Every participant with a non-zero price is debited it (memo ``price``), every one with a non-zero
    payment credited it (memo ``payment``; a party of Ohrimenko et al. may have both), and the platform books
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
