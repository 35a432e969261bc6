"""The bounds on a currency's scale: why 9 decimals, and that input beyond them is
refused by :meth:`Currency.parse` with an error naming ``currency`` while stored codes stay readable."""

from __future__ import annotations

import pytest

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger.money import MAX_EXPONENT, MAX_MINOR, MAX_SCALE, Currency, check_minor
from datamarket.service.adapters import MAX_NUMBER

INT32_MAX = 2**31 - 1  # markets.scale is an INTEGER column


def test_the_bound_is_where_the_scale_column_and_64_bit_amounts_both_end() -> None:
    assert MAX_SCALE == 10**MAX_EXPONENT <= INT32_MAX < 10 * MAX_SCALE
    # an accepted input of MAX_NUMBER major units is one bookable amount at the largest scale...
    assert check_minor(int(MAX_NUMBER) * MAX_SCALE) == 10**18
    # ...and would not be at one more decimal
    with pytest.raises(InvalidMarketError):
        check_minor(int(MAX_NUMBER) * MAX_SCALE * 10)
    assert int(MAX_NUMBER) * MAX_SCALE * 10 > MAX_MINOR


@pytest.mark.parametrize(
    "code",
    ["TOKEN:10", "TOKEN:18", "token:99", "EUR:10", "UNIT/1000000001", "UNIT/2147483648", f"UNIT/{MAX_MINOR}",
     "UNIT/0", "UNIT/99999999999999999999", "TOKEN:100"],
)  # fmt: skip
def test_parse_refuses_scales_beyond_the_bound(code: str) -> None:
    with pytest.raises(InvalidMarketError) as err:
        Currency.parse(code)
    assert err.value.field == "currency"


@pytest.mark.parametrize(
    ("code", "scale"),
    [("TOKEN:9", 10**9), ("CREDIT:0", 1), ("UNIT/1000000000", 10**9), ("UNIT/7", 7), ("KWD", 1000)],
)
def test_parse_accepts_scales_up_to_the_bound(code: str, scale: int) -> None:
    assert Currency.parse(code).scale == scale


def test_stored_codes_from_before_the_bound_stay_readable() -> None:
    """A SQLite database may hold a market created before the bound (SQLite's INTEGER is 64-bit)."""
    assert Currency.parse("TOKEN:18", stored=True).format(-(10**18) - 5) == "-1.000000000000000005 TOKEN:18"
    assert Currency.parse(f"UNIT/{MAX_MINOR}", stored=True).scale == MAX_MINOR
    with pytest.raises(InvalidMarketError):
        Currency.parse("TOKEN:19", stored=True)
