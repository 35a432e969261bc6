"""The value of a scalar sub-game of the balanced market's Shapley game, shared by the general engine
(:mod:`._shapley`), the class engine (:mod:`._classes`) and the first-order conditions (:mod:`._foc`).

Paper: A. Chaintreau, R. Maio, J. Ziani, "The Cost of Balanced Training-Data Production in an Online
Data Market" (WWW 2025, arXiv:2501.19294): the revenue a group brings as a function of the aggregate
quantity, eqs. (7)/(9) with learning curves (2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from datamarket.core.types import FloatArray
from datamarket.learning.curves import learning_ante


def inverse_power(u: FloatArray, p: float) -> FloatArray:
    """:math:`u^{-p}` elementwise; small integer ``p`` by reciprocal and products (a fraction of the
    cost of ``np.power``, equal to it within a few ulp)."""
    if p == 1.0:
        out: FloatArray = 1.0 / u
    elif p == 2.0:
        out = 1.0 / (u * u)
    elif p == 3.0:
        out = 1.0 / (u * u * u)
    else:
        out = np.power(u, -p)
    return out


@dataclass(frozen=True)
class ExponentGroup:
    r"""Terms of one exponent :math:`\beta`, sorted by knot, with prefix sums (index ``n``: the first
    ``n`` terms) of :math:`w_t Z_t` (``cum_z``), :math:`w_t \alpha_t a_t^{-\beta}` (``cum_lead``) and
    :math:`w_t \alpha_t \beta a_t^{-\beta}` (``cum_slope``: :math:`F'(s) = \sum` ``cum_slope``
    :math:`s^{-\beta-1}` over the paying terms)."""

    beta: float
    knots: FloatArray
    cum_z: FloatArray
    cum_lead: FloatArray
    cum_slope: FloatArray


@dataclass(frozen=True)
class Terms:
    r"""The value :math:`F(S) = \sum_t w_t (Z_t - \alpha_t (a_t S)^{-\beta_t})_+` of a scalar sub-game."""

    weight: FloatArray
    scale: FloatArray
    Z: FloatArray
    alpha: FloatArray
    beta: FloatArray

    def __post_init__(self) -> None:
        arrs = [np.atleast_1d(np.asarray(getattr(self, k), dtype=np.float64)) for k in self._fields()]
        arrs = list(np.broadcast_arrays(*arrs))
        keep = (arrs[0] > 0) & (arrs[1] > 0)  # terms with zero weight or zero scale never pay
        for k, a in zip(self._fields(), arrs, strict=True):
            object.__setattr__(self, k, np.ascontiguousarray(a[keep]))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("weight", "scale", "Z", "alpha", "beta")

    @property
    def empty(self) -> bool:
        return self.weight.size == 0

    @property
    def knots(self) -> FloatArray:
        """Aggregate quantity at which each term starts paying: :math:`n_{0,t}/a_t`."""
        out: FloatArray = learning_ante(self.Z, self.alpha, self.beta) / self.scale
        return out

    @cached_property
    def groups(self) -> tuple[ExponentGroup, ...]:
        r"""The terms grouped by exponent :math:`\beta` (:class:`ExponentGroup`), built once."""
        out = []
        knots = self.knots
        for b in np.unique(self.beta):
            idx = np.flatnonzero(self.beta == b)
            idx = idx[np.argsort(knots[idx], kind="stable")]
            lead = self.weight[idx] * self.alpha[idx] * np.power(self.scale[idx], -b)
            out.append(
                ExponentGroup(
                    float(b),
                    np.ascontiguousarray(knots[idx]),
                    np.concatenate([[0.0], np.cumsum(self.weight[idx] * self.Z[idx])]),
                    np.concatenate([[0.0], np.cumsum(lead)]),
                    np.concatenate([[0.0], np.cumsum(lead * b)]),
                )
            )
        return tuple(out)

    def value(self, s: NDArray[np.float64] | float) -> FloatArray:
        r""":math:`F(s)` for an array of aggregate quantities ``s``.

        Per exponent group (:attr:`groups`): the terms paying at ``s`` are those with knot below ``s``
        (a prefix of the sorted knots), so :math:`F(s) = \sum_\beta A_\beta(s) - B_\beta(s) s^{-\beta}`
        with prefix sums :math:`A = \sum w_t Z_t`, :math:`B = \sum w_t \alpha_t a_t^{-\beta}`: one
        power per group instead of one per term (the value of
        :func:`datamarket.learning.curves.curve_value` summed per term, to rounding).
        """
        s = np.asarray(s, dtype=np.float64)
        out: FloatArray = np.zeros(s.shape)
        if self.empty:
            return out
        pos = np.where(s > 0, s, 1.0)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # unpaid: discarded below
            for grp in self.groups:
                n = np.searchsorted(grp.knots, s, side="left")
                out += np.where(n > 0, grp.cum_z[n] - grp.cum_lead[n] * inverse_power(pos, grp.beta), 0.0)
        return out

    def sup_ratio(self) -> float:
        r""":math:`\sup_{S>0} F(S)/S`: the largest unit cost at which a lone seller breaks even."""
        if self.empty:
            return 0.0
        grid = np.geomspace(self.knots.min() * 0.999, self.knots.max() * 1e3, 4000)
        i = int(np.argmax(self.value(grid) / grid))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(
            lambda s: -float(self.value(s)) / s, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}
        )
        return float(max(-res.fun, self.value(grid[i]) / grid[i]))
