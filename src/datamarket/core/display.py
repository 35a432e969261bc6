"""How amounts and quantities are written for people: one formatter for the portal, receipts, the CLI
and the Markdown reports.

**Money** is exact. An amount is an integer of minor units of a currency (its ``code`` and ``scale``,
``10^e`` minor units per major unit: :class:`datamarket.ledger.money.Currency`), and
:meth:`Formatter.money` writes it with the currency's ``e`` decimals, the locale's decimal mark,
grouping and minus sign, and the code after the number (``style="code"``, the default:
``-1,234.50 USD`` in ``en_US``, ``-1.234,50 USD`` in ``de_DE``) or the locale's symbol
(``style="symbol"``: ``-$1,234.50``; named units such as ``CREDIT:0`` have no symbol and keep their
name). Only JSON and exports carry minor units, in fields named ``amount_minor``.

An amount in major units that is not booked (a price before rounding to minor units, a term of a
payment rule) is written by :meth:`Formatter.major` with two more decimals than the currency has, so
that a reader sees what the rounding to minor units did.

**Quantities** that are not money (utilities, Shapley shares, sample sizes, accuracies) are written
by :meth:`Formatter.quantity` to ``digits`` significant digits (4 by default) in the locale's
notation; integers stay whole. The exact value is :func:`exact`, for a hover title or the JSON.

>>> f = Formatter()
>>> f.money(-123456, "USD", 100), f.money(5, "JPY", 1), f.money(1500, "CREDIT:3", 1000)
('-1,234.56 USD', '5 JPY', '1.500 CREDIT')
>>> Formatter("de_DE").money(-123456, "EUR", 100), Formatter(style="symbol").money(-123456, "USD", 100)
('-1.234,56 EUR', '-$1,234.56')
>>> f.quantity(2.3519943519257707), f.quantity(0.000123456), f.quantity(12345678), f.quantity(True)
('2.352', '0.0001235', '12,345,678', 'yes')
>>> f.major(2.0412345, "EUR", 100)
'2.0412 EUR'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal

from datamarket.core.errors import ConfigurationError

DEFAULT_LOCALE = "en_US"
Style = Literal["code", "symbol"]


def check_locale(locale: str) -> str:
    """``locale`` (``en_US``, ``de-DE``...) in Babel's spelling; :class:`ConfigurationError` naming
    ``locale`` when CLDR does not know it."""
    try:
        return str(Locale.parse(str(locale).replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            "locale", f"unknown locale {locale!r} (a CLDR locale such as en_US, de_DE, fr_CH): {exc}"
        ) from None


def _exponent(scale: int) -> int | None:
    e = len(str(scale)) - 1
    return e if scale >= 1 and 10**e == scale else None


def _name(code: str) -> str:
    """A named unit ``NAME:e`` is written ``NAME``; an ISO code or a legacy ``NAME/n`` as it is."""
    return code.split(":", 1)[0]


def exact(value: Any) -> str:
    """The exact value of a number as text (``repr`` of a float: it reads back to the same float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return repr(value)


@dataclass(frozen=True)
class Formatter:
    """The one way amounts and quantities are written for people (module docstring)."""

    locale: str = DEFAULT_LOCALE
    style: Style = "code"
    digits: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "locale", check_locale(self.locale))
        if self.style not in ("code", "symbol"):
            raise ConfigurationError("money_style", f"must be 'code' or 'symbol', got {self.style!r}")
        if not 1 <= int(self.digits) <= 17:
            raise ConfigurationError("digits", f"must be in 1..17, got {self.digits!r}")

    def _decimal(self, value: Decimal, decimals: int) -> str:
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=self.locale, decimal_quantization=True)

    def money(self, amount_minor: int, code: str, scale: int) -> str:
        """``amount_minor`` minor units of currency ``code`` (``scale`` per major unit), exact."""
        amount_minor = int(amount_minor)
        e = _exponent(int(scale))
        if e is None:  # a legacy non-decimal unit (NAME/n): an exact fraction of the major unit
            return f"{Fraction(amount_minor, int(scale))} {code}"
        value = Decimal(amount_minor).scaleb(-e)
        if self.style == "symbol" and ":" not in code and "/" not in code:
            return format_currency(value, code, locale=self.locale, currency_digits=True)
        return f"{self._decimal(value, e)} {_name(code)}"

    def major(self, amount: float, code: str, scale: int, *, extra: int = 2) -> str:
        """An unbooked amount in major units, to ``extra`` more decimals than the currency has."""
        if not math.isfinite(float(amount)):
            return f"{amount} {_name(code)}"
        e = _exponent(int(scale))
        decimals = (e if e is not None else 6) + extra
        return f"{self._decimal(Decimal(repr(float(amount))), decimals)} {_name(code)}"

    def quantity(self, value: Any) -> str:
        """A value that is not money, to :attr:`digits` significant digits (integers whole)."""
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return format_decimal(value, format="#,##0", locale=self.locale)
        if not isinstance(value, float):
            return str(value)
        if not math.isfinite(value):
            return str(value)
        if value != 0 and not 1e-4 <= abs(value) < 1e15:
            return format_decimal(value, format="0." + "#" * (self.digits - 1) + "E0", locale=self.locale)
        rounded = Decimal(f"{value:.{self.digits}g}")  # significant digits, then the locale's notation
        return format_decimal(rounded, format="#,##0." + "#" * 20, locale=self.locale)
