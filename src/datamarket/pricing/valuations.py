r"""Buyer valuations of data for normal mean estimation (Chen, Clinton & Kandasamy, Sec. 3).

A buyer values its *estimation error* ``e`` through a non-increasing error valuation
:math:`v^e: \mathbb{R}_+ \to [0, 1]`. With ``m`` i.i.d. points from :math:`N(\mu, \sigma^2)` the sample
mean's error is :math:`\sigma |Z| / \sqrt{m}`, :math:`Z \sim N(0, 1)`, independent of :math:`\mu`, so the
infimum over :math:`\mu` in the paper's eqs. (6) and (11) is vacuous and the *data valuation* is


.. math::  v^d(m) = \mathbb{E}\, v^e(\sigma |Z| / \sqrt{m}), \qquad v^d(0) := 0.

Closed forms (each checked against quadrature in ``tests/pricing/test_valuations.py``):

* :class:`Threshold` ``v^e(e) = 1[e <= t]``: :math:`v^d(m) = \operatorname{erf}(t\sqrt{m}/(\sigma\sqrt 2))`;
* :class:`Gaussian` ``v^e(e) = exp(-e^2 / (2 tau^2))``: :math:`v^d(m) = (1 + \sigma^2/(m\tau^2))^{-1/2}`
  (the paper's ``exp(-e^2)`` is ``tau = 1/sqrt(2)``);
* :class:`Exponential` ``v^e(e) = exp(-e / tau)``: :math:`v^d(m) = \operatorname{erfcx}(a/\sqrt 2)` with
  :math:`a = \sigma / (\tau\sqrt m)`;
* :class:`PiecewiseLinear` (a tabulated non-increasing ``v^e``, linear between knots, constant after the
  last): exact, from the half-normal's partial moments
  :math:`P(z_0 \le |Z| < z_1) = 2(\Phi(z_1) - \Phi(z_0))` and
  :math:`E[|Z| 1\{z_0 \le |Z| < z_1\}] = 2(\varphi(z_0) - \varphi(z_1))`;
* :class:`ErrorFunction` (any non-increasing callable): adaptive quadrature
  :math:`\int_0^{12} v^e(\sigma z/\sqrt m)\, 2\varphi(z)\, dz` (``scipy.integrate.quad`` per m; the
  neglected tail ``P(|Z| > 12) < 1e-32``);
* :class:`Tabulated`: the data valuation ``v(1), v(2), ...`` given directly (pricing-only markets);
  constant after its last entry.

Every valuation carries a ``scale`` ``alpha`` in (0, 1] (``alpha v^e`` scales ``v^d``).

>>> import numpy as np
>>> table = valuation_table([Gaussian(tau=2 ** -0.5)], sigma=1.0, n_max=2)
>>> np.round(table, 4).tolist()     # (1 + 2/m)^(-1/2) for m = 1, 2
[[0.0, 0.5774, 0.7071]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import integrate, special

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, finite_array

#: Absolute tolerance for monotonicity and range checks of valuation tables.
TABLE_TOL = 1e-9


def _check_scale(name: str, scale: float) -> float:
    s = float(scale)
    if not np.isfinite(s) or s <= 0 or s > 1:
        raise InvalidMarketError(f"{name}.scale", f"must lie in (0, 1], got {scale!r}")
    return s


def _positive(field_name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise InvalidMarketError(field_name, f"must be a positive finite number, got {value!r}")
    return v


def _sample_sizes(m: Any) -> NDArray[np.int64]:
    arr = np.asarray(m)
    if arr.dtype.kind not in "iu" or np.any(arr < 0):
        raise InvalidMarketError("m", "sample sizes must be non-negative integers")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class Threshold:
    """``v^e(e) = scale * 1[e <= t]``; closed form ``scale * erf(t sqrt(m) / (sigma sqrt 2))``."""

    t: float
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "t", _positive("threshold.t", self.t))
        object.__setattr__(self, "scale", _check_scale("threshold", self.scale))

    def error_value(self, e: FloatArray) -> FloatArray:
        return self.scale * (np.asarray(e) <= self.t).astype(np.float64)

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m)
        out = self.scale * special.erf(self.t * np.sqrt(mm) / (sigma * np.sqrt(2.0)))
        return np.where(mm == 0, 0.0, out)


@dataclass(frozen=True)
class Gaussian:
    """``v^e(e) = scale * exp(-e^2 / (2 tau^2))``; closed form ``scale (1 + sigma^2/(m tau^2))^(-1/2)``."""

    tau: float
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _positive("gaussian.tau", self.tau))
        object.__setattr__(self, "scale", _check_scale("gaussian", self.scale))

    def error_value(self, e: FloatArray) -> FloatArray:
        return self.scale * np.exp(-(np.asarray(e, dtype=np.float64) ** 2) / (2 * self.tau**2))

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m).astype(np.float64)
        with np.errstate(divide="ignore"):
            out = self.scale / np.sqrt(1.0 + sigma**2 / (mm * self.tau**2))
        return np.where(mm == 0, 0.0, out)


@dataclass(frozen=True)
class Exponential:
    """``v^e(e) = scale * exp(-e / tau)``; closed form ``scale * erfcx(a / sqrt 2)``,
    ``a = sigma / (tau sqrt m)``."""

    tau: float
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _positive("exponential.tau", self.tau))
        object.__setattr__(self, "scale", _check_scale("exponential", self.scale))

    def error_value(self, e: FloatArray) -> FloatArray:
        return self.scale * np.exp(-np.asarray(e, dtype=np.float64) / self.tau)

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m).astype(np.float64)
        with np.errstate(divide="ignore"):
            a = sigma / (self.tau * np.sqrt(mm))
        out = self.scale * special.erfcx(a / np.sqrt(2.0))
        return np.where(mm == 0, 0.0, out)


@dataclass(frozen=True, eq=False)
class PiecewiseLinear:
    """A tabulated error valuation: knots ``errors`` (increasing, from 0) and ``values`` (non-increasing,
    in [0, 1]); linear in between, constant after the last knot. ``v^d`` is computed exactly."""

    errors: Sequence[float] | FloatArray
    values: Sequence[float] | FloatArray
    scale: float = 1.0

    def __post_init__(self) -> None:
        e = finite_array("piecewise_linear.errors", self.errors, ndim=1)
        v = finite_array("piecewise_linear.values", self.values, ndim=1)
        if e.size < 1 or e.shape != v.shape:
            raise InvalidMarketError("piecewise_linear", "errors and values need the same non-zero length")
        if e[0] != 0 or np.any(np.diff(e) <= 0):
            raise InvalidMarketError("piecewise_linear.errors", "must start at 0 and be strictly increasing")
        if np.any(v < 0) or np.any(v > 1):
            raise InvalidMarketError("piecewise_linear.values", "error valuations must lie in [0, 1]")
        if np.any(np.diff(v) > 0):
            raise InvalidMarketError("piecewise_linear.values", "error valuation must be non-increasing")
        object.__setattr__(self, "errors", e)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "scale", _check_scale("piecewise_linear", self.scale))

    def error_value(self, e: FloatArray) -> FloatArray:
        return self.scale * np.interp(np.asarray(e, dtype=np.float64), self.errors, self.values)

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m)
        flat = np.atleast_1d(mm).astype(np.float64)
        e, v = np.asarray(self.errors), np.asarray(self.values)
        root = np.sqrt(np.maximum(flat, 1.0))[:, None]
        z = e[None, :] * root / sigma  # knots in units of |Z|
        cdf, pdf = special.ndtr(z), np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
        prob = 2.0 * (cdf[:, 1:] - cdf[:, :-1])  # P(z_k <= |Z| < z_{k+1})
        mom = 2.0 * (pdf[:, :-1] - pdf[:, 1:])  # E[|Z| 1{z_k <= |Z| < z_{k+1}}]
        slope = np.diff(v) / np.diff(e)
        intercept = v[:-1] - slope * e[:-1]
        inner = (prob * intercept[None, :] + mom * slope[None, :] * sigma / root).sum(axis=1)
        tail = v[-1] * 2.0 * (1.0 - cdf[:, -1])
        out = np.where(flat == 0, 0.0, self.scale * (inner + tail))
        return out if mm.ndim else out.reshape(())


@dataclass(frozen=True)
class ErrorFunction:
    """Any non-increasing error valuation ``func: e -> [0, 1]`` (vectorised); ``v^d`` by quadrature.

    Declare the errors where ``func`` jumps in ``breakpoints``: adaptive quadrature may otherwise miss a
    jump (observed errors up to 1e-5 for an undeclared threshold; 1e-9 with the breakpoint declared).
    """

    func: Callable[[FloatArray], FloatArray]
    name: str = "custom"
    scale: float = 1.0
    breakpoints: tuple[float, ...] = ()
    epsabs: float = field(default=1e-12, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _check_scale(self.name, self.scale))
        grid = np.concatenate([[0.0], np.geomspace(1e-6, 1e3, 400)])
        vals = np.asarray(self.func(grid), dtype=np.float64)
        if vals.shape != grid.shape or not np.all(np.isfinite(vals)):
            raise InvalidMarketError(self.name, "error valuation must map an array to finite values")
        if np.any(vals < -TABLE_TOL) or np.any(vals > 1 + TABLE_TOL):
            raise InvalidMarketError(self.name, "error valuation must lie in [0, 1]")
        if np.any(np.diff(vals) > TABLE_TOL):
            raise InvalidMarketError(self.name, "error valuation must be non-increasing")

    def error_value(self, e: FloatArray) -> FloatArray:
        return self.scale * np.asarray(self.func(np.asarray(e, dtype=np.float64)), dtype=np.float64)

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m)
        flat = np.atleast_1d(mm)
        pos = flat > 0
        root = np.sqrt(np.where(pos, flat, 1).astype(np.float64))

        def integrand(z: float, r: float) -> float:
            dens = 2.0 * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
            return float(np.asarray(self.func(np.array([sigma * z / r])), dtype=np.float64)[0]) * dens

        # |Z| > 12 has probability < 1e-32; scalar adaptive quadrature per m copes with jumps
        val = np.array(
            [
                integrate.quad(
                    integrand,
                    0.0,
                    12.0,
                    args=(r,),
                    epsabs=self.epsabs,
                    epsrel=1e-10,
                    limit=500,
                    points=[b * r / sigma for b in self.breakpoints if 0 < b * r / sigma < 12] or None,
                )[0]
                for r in root
            ]
        )
        out = np.where(pos, self.scale * np.asarray(val), 0.0)
        return out if mm.ndim else out.reshape(())


@dataclass(frozen=True, eq=False)
class Tabulated:
    """The data valuation given directly: ``values[k] = v(k + 1)``; ``v(0) = 0``; constant after the end."""

    values: Sequence[float] | FloatArray

    def __post_init__(self) -> None:
        v = finite_array("tabulated.values", self.values, ndim=1)
        if v.size == 0:
            raise InvalidMarketError("tabulated.values", "needs at least one value")
        full = np.concatenate([[0.0], v])
        check_value_table(full[None, :], "tabulated.values")
        object.__setattr__(self, "values", v)

    def data_value(self, m: Any, sigma: float) -> FloatArray:
        mm = _sample_sizes(m)
        full = np.concatenate([[0.0], np.asarray(self.values)])
        return full[np.minimum(mm, full.size - 1)]


Valuation = Threshold | Gaussian | Exponential | PiecewiseLinear | ErrorFunction | Tabulated


def check_value_table(values: Any, field_name: str = "valuations") -> FloatArray:
    """Validate a table ``values[j, m] = v_j(m)``: finite, in [0, 1], non-decreasing in m, ``v_j(0) = 0``.

    Returns it as a read-only float array (tiny numerical non-monotonicity below ``TABLE_TOL`` is
    removed by a running maximum).

    >>> check_value_table([[0.0, 0.5, 0.4]])
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: valuations: buyer 0's valuation is not monotone (v(2) < v(1))
    """
    v = finite_array(field_name, values, ndim=2)
    if v.shape[0] == 0 or v.shape[1] < 2:
        raise InvalidMarketError(field_name, "need at least one buyer and one sample size m >= 1")
    if np.any(v < -TABLE_TOL) or np.any(v > 1 + TABLE_TOL):
        j = int(np.argwhere((v < -TABLE_TOL) | (v > 1 + TABLE_TOL))[0, 0])
        raise InvalidMarketError(field_name, f"buyer {j}'s valuation lies outside [0, 1]")
    if np.any(np.abs(v[:, 0]) > TABLE_TOL):
        raise InvalidMarketError(field_name, "v_j(0) must be 0")
    drops = np.diff(v, axis=1) < -TABLE_TOL
    if np.any(drops):
        j, k = (int(x) for x in np.argwhere(drops)[0])
        raise InvalidMarketError(field_name, f"buyer {j}'s valuation is not monotone (v({k + 1}) < v({k}))")
    out = np.clip(np.maximum.accumulate(v, axis=1), 0.0, 1.0)
    out[:, 0] = 0.0
    out.setflags(write=False)
    return out


def valuation_table(valuations: Sequence[Valuation], sigma: float, n_max: int) -> FloatArray:
    """Table ``T[j, m] = v^d_j(m)`` for ``m = 0..n_max``, validated by
    :func:`check_value_table`."""
    s = _positive("sigma", sigma)
    if int(n_max) < 1:
        raise InvalidMarketError("n_max", f"must be at least 1, got {n_max}")
    if len(valuations) == 0:
        raise InvalidMarketError("valuations", "need at least one buyer")
    m = np.arange(int(n_max) + 1)
    rows = [np.asarray(val.data_value(m, s), dtype=np.float64) for val in valuations]
    return check_value_table(np.vstack(rows))
