"""The one formatter of amounts and quantities (datamarket.core.display)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import get_decimal_symbol, get_group_symbol, get_minus_sign_symbol
from hypothesis import given
from hypothesis import strategies as st

from datamarket.core.display import Formatter
from datamarket.core.errors import ConfigurationError

LOCALES = ["en_US", "de_DE", "fr_FR", "de_CH", "en_IN", "ja_JP"]


def _read_back(text: str, locale: str) -> Decimal:
    """The number a formatted amount writes, read with the locale's own symbols."""
    number = text.rsplit(" ", 1)[0]
    number = number.replace(get_group_symbol(locale), "").replace(get_decimal_symbol(locale), ".")
    return Decimal(number.replace(get_minus_sign_symbol(locale), "-"))


@given(
    amount=st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    e=st.integers(min_value=0, max_value=9),
    locale=st.sampled_from(LOCALES),
)
def test_money_is_exact_in_every_locale(amount: int, e: int, locale: str) -> None:
    """What is written reads back to exactly the minor units divided by the scale, with e decimals."""
    text = Formatter(locale).money(amount, f"TOKEN:{e}", 10**e)
    assert text.endswith(" TOKEN")
    assert _read_back(text, locale) == Decimal(amount).scaleb(-e)
    if e:
        assert text.rsplit(" ", 1)[0].split(get_decimal_symbol(locale))[-1].isdigit()


def test_money_uses_iso_decimals_code_and_symbol() -> None:
    f = Formatter()
    assert f.money(-6300, "USD", 100) == "-63.00 USD"
    assert f.money(0, "USD", 100) == "0.00 USD"
    assert f.money(123456789, "JPY", 1) == "123,456,789 JPY"
    assert f.money(1234, "KWD", 1000) == "1.234 KWD"
    assert Formatter("de_DE").money(123456, "EUR", 100) == "1.234,56 EUR"
    assert Formatter(style="symbol").money(-63, "USD", 100) == "-$0.63"
    assert Formatter(style="symbol").money(5, "CREDIT:0", 1) == "5 CREDIT"  # a named unit has no symbol


def test_quantities_round_to_significant_digits() -> None:
    f = Formatter()
    assert f.quantity(2.3519943519257707) == "2.352"
    assert f.quantity(12345.678) == "12,350"
    assert f.quantity(7) == "7"
    assert f.quantity(None) == "-"
    assert Formatter(digits=2).quantity(0.987) == "0.99"
    assert Formatter("fr_FR").quantity(0.5) == "0,5"


def test_unknown_locale_and_style_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="locale"):
        Formatter("xx_QQ")
    with pytest.raises(ConfigurationError, match="money_style"):
        Formatter(style="emoji")  # type: ignore[arg-type]
