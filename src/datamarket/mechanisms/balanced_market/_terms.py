"""The value of a scalar sub-game of the balanced market's Shapley game, shared by the general engine
(:mod:`._shapley`), the class engine (:mod:`._classes`) and the first-order conditions (:mod:`._foc`).

Paper: A. Chaintreau, R. Maio, J. Ziani, "The Cost of Balanced Training-Data Production in an Online
Data Market" (WWW 2025, arXiv:2501.19294): the revenue a group brings as a function of the aggregate
quantity, eqs. (7)/(9) with learning curves (2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from datamarket.learning.curves import curve_value, learning_ante

FloatArray = NDArray[np.float64]


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

    def value(self, s: NDArray[np.float64] | float) -> FloatArray:
        """:math:`F(s)` for an array of aggregate quantities ``s``."""
        s = np.asarray(s, dtype=np.float64)
        g = curve_value(s[..., None] * self.scale, self.Z, self.alpha, self.beta)
        out: FloatArray = g @ self.weight
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
