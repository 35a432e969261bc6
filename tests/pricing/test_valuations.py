"""Buyer valuations v^d(m) = E v^e(sigma |Z| / sqrt m) (Chen et al., eqs. 6, 11)."""

import numpy as np
import pytest

from datamarket.core.errors import InvalidMarketError
from datamarket.pricing.valuations import (
    ErrorFunction,
    Exponential,
    Gaussian,
    PiecewiseLinear,
    Tabulated,
    Threshold,
    check_value_table,
    valuation_table,
)

FAMILIES = [
    Threshold(0.4),
    Threshold(0.2, 0.6),
    Gaussian(2**-0.5),
    Gaussian(0.3, 0.9),
    Exponential(0.25),
    Exponential(1.0, 0.5),
    PiecewiseLinear([0.0, 0.2, 0.5, 1.0], [1.0, 0.8, 0.3, 0.1]),
]


@pytest.mark.parametrize("val", FAMILIES, ids=repr)
@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_closed_forms_match_quadrature(val, sigma) -> None:
    m = np.arange(0, 60)
    jumps = (val.t,) if isinstance(val, Threshold) else ()
    quad = ErrorFunction(val.error_value, breakpoints=jumps).data_value(m, sigma)
    np.testing.assert_allclose(val.data_value(m, sigma), quad, atol=1e-9)


@pytest.mark.parametrize("val", FAMILIES[:6], ids=repr)
def test_closed_forms_match_monte_carlo(val) -> None:
    rng = np.random.default_rng(0)
    sigma, m, reps = 1.1, 7, 40_000
    err = np.abs(rng.normal(0, sigma, (reps, m)).mean(axis=1))
    ve = val.error_value(err)
    se = ve.std(ddof=1) / np.sqrt(reps)
    assert abs(ve.mean() - val.data_value(m, sigma)) <= 4 * se + 1e-12


def test_paper_exp_minus_e_squared() -> None:
    # : v^e = exp(-e^2) gives (1 + 2 sigma^2 / m)^(-1/2)
    m = np.arange(1, 10)
    np.testing.assert_allclose(Gaussian(2**-0.5).data_value(m, 0.7), (1 + 2 * 0.49 / m) ** -0.5)


def test_table_is_monotone_in_unit_interval() -> None:
    t = valuation_table(FAMILIES, 1.0, 50)
    assert t.shape == (len(FAMILIES), 51)
    # exact: every family's value of zero data is defined as 0
    assert np.all(t[:, 0] == 0) and np.all(np.diff(t, axis=1) >= 0) and t.max() <= 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([[0.0, 0.5, 0.4]], "not monotone"),
        ([[0.0, 0.5, 1.2]], r"outside \[0, 1\]"),
        ([[0.1, 0.5, 0.6]], "v_j\\(0\\) must be 0"),
        ([[0.0, float("nan")]], "finite"),
    ],
)
def test_bad_tables(bad, match) -> None:
    with pytest.raises(InvalidMarketError, match=match):
        check_value_table(bad)


def test_bad_valuations() -> None:
    with pytest.raises(InvalidMarketError, match="not monotone"):
        Tabulated([0.2, 0.1])
    with pytest.raises(InvalidMarketError, match="outside"):
        Tabulated([0.2, 1.5])
    with pytest.raises(InvalidMarketError, match="non-increasing"):
        ErrorFunction(lambda e: np.minimum(e, 1.0))
    with pytest.raises(InvalidMarketError, match="non-increasing"):
        PiecewiseLinear([0, 1], [0.2, 0.5])
    with pytest.raises(InvalidMarketError, match="scale"):
        Threshold(0.3, 1.5)
    with pytest.raises(InvalidMarketError, match="sigma"):
        valuation_table([Threshold(0.3)], 0.0, 5)
