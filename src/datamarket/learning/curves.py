r"""Parametric learning curves of Chaintreau et al. (seed 0), Definition 3.3.

.. math::
   \mathcal G(n) = (Z - \alpha n^{-\beta})_+ \quad (n > 0), \qquad \mathcal G(0) = 0     \tag{eq. 2}

with :math:`Z, \alpha, \beta > 0`. The **learning ante** :math:`n_0 = (\alpha/Z)^{1/\beta}` is the
sample count below which the accuracy is zero; above it the curve is strictly increasing and concave
with :math:`\mathcal G'(n) = \alpha\beta n^{-\beta-1}`. At :math:`n_0` the curve has a
convex kink (slope jumps from 0 to :math:`\alpha\beta n_0^{-\beta-1}`), so seller payoffs built from it
are not concave (a global best response must compare the pieces).

The break-even constant of eq. (19) (Claim 4.1),

.. math::
   c_{\mathcal G} = \frac{Z^{(\beta+1)/\beta}}
       {\alpha^{1/\beta}(\beta^{-\beta/(\beta+1)} + \beta^{1/(\beta+1)})^{(\beta+1)/\beta}}
     = \frac{\beta Z^{(\beta+1)/\beta}}{\alpha^{1/\beta}(1+\beta)^{(\beta+1)/\beta}},

is :math:`\max_{n>0} \mathcal G(n)/n`: one seller facing potential value :math:`\rho` breaks even at cost
:math:`\rho c_{\mathcal G}`. :meth:`LearningCurve.c_k` is the exact-Shapley
generalisation :math:`c(K)` (:math:`c(1) = c_{\mathcal G}`).

>>> g = LearningCurve(1.0, 1.0, 1.0)
>>> float(g(2.0)), g.ante, g.c_g
(0.5, 1.0, 0.25)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray


def _positive(field: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidMarketError(field, f"must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise InvalidMarketError(field, f"must be a finite number > 0, got {value!r}")
    return v


def curve_value(n: ArrayLike, Z: ArrayLike, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
    r"""Vectorised :math:`(Z - \alpha n^{-\beta})_+`, :math:`\mathcal G(0) = 0` (Chaintreau et al., eq. 2).

    Broadcasts over all arguments; ``n`` must be non-negative.

    >>> curve_value([0.0, 0.5, 1.0, 4.0], 1.0, 1.0, 1.0).tolist()
    [0.0, 0.0, 0.0, 0.75]
    """
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        raw = np.asarray(Z, dtype=np.float64) - np.asarray(alpha, dtype=np.float64) * np.power(
            np.where(n > 0, n, 1.0), -np.asarray(beta, dtype=np.float64)
        )
    out: FloatArray = np.where(n > 0, np.maximum(raw, 0.0), 0.0)
    return out


def curve_derivative(n: ArrayLike, Z: ArrayLike, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
    r"""Right derivative :math:`\alpha\beta n^{-\beta-1}\,\mathbf 1[n > n_0]`.

    >>> curve_derivative([0.5, 2.0], 1.0, 1.0, 1.0).tolist()
    [0.0, 0.25]
    """
    n = np.asarray(n, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)
    with np.errstate(over="ignore"):
        slope = alpha * beta * np.power(safe, -beta - 1.0)
    active = (n > 0) & (Z - alpha * np.power(safe, -beta) > 0)
    out: FloatArray = np.where(active, slope, 0.0)
    return out


def learning_ante(Z: ArrayLike, alpha: ArrayLike, beta: ArrayLike) -> FloatArray:
    r"""Learning ante :math:`n_0 = (\alpha/Z)^{1/\beta}`.

    >>> round(float(learning_ante(5.0, 1 / 3, 3.0)), 5)  # Example A.1
    0.40548
    """
    out: FloatArray = np.power(np.asarray(alpha, float) / np.asarray(Z, float), 1.0 / np.asarray(beta, float))
    return out


def c_k(K: float, Z: float, alpha: float, beta: float) -> float:
    r"""Threshold constant
    :math:`c(K) = \beta K Z^{(\beta+1)/\beta} / (\alpha^{1/\beta}(1+\beta K)^{(\beta+1)/\beta})`.

    ``K = 1`` gives :math:`c_{\mathcal G}` of Chaintreau et al., eq. (19) in its simplified form.

    >>> round(c_k(2.5, 1, 1, 1), 9), round(c_k(1.0, 5, 1 / 3, 3), 5)
    (0.204081633, 5.82606)
    """
    # Same value written as beta K Z/(1+beta K) * (Z/(alpha(1+beta K)))^(1/beta): one power, so small beta
    # gives the correct 0 or inf instead of an OverflowError from intermediate powers.
    base = np.float64(Z) / (alpha * (1 + beta * K))
    with np.errstate(over="ignore", under="ignore"):
        return float(beta * K * Z / (1 + beta * K) * np.power(base, 1 / beta))


@dataclass(frozen=True)
class LearningCurve:
    r"""Learning curve :math:`\mathcal G(n) = (Z - \alpha n^{-\beta})_+` (Chaintreau et al., Def. 3.3, eq. 2).

    Parameters
    ----------
    Z, alpha, beta : strictly positive, finite curve parameters (asymptotic accuracy, scale, decay).
    name : field name used in error messages.
    """

    Z: float
    alpha: float
    beta: float
    name: str = "curve"

    def __post_init__(self) -> None:
        for attr in ("Z", "alpha", "beta"):
            object.__setattr__(self, attr, _positive(f"{self.name}.{attr}", getattr(self, attr)))

    def __call__(self, n: ArrayLike) -> Any:
        out = curve_value(n, self.Z, self.alpha, self.beta)
        return float(out) if out.ndim == 0 else out

    def derivative(self, n: ArrayLike) -> Any:
        """Right derivative (0 at and below the ante)."""
        out = curve_derivative(n, self.Z, self.alpha, self.beta)
        return float(out) if out.ndim == 0 else out

    @property
    def ante(self) -> float:
        """Learning ante :math:`n_0 = (\\alpha/Z)^{1/\\beta}`."""
        return float(learning_ante(self.Z, self.alpha, self.beta))

    @property
    def c_g(self) -> float:
        """:math:`c_{\\mathcal G}` of eq. (19) (= :math:`\\max_n \\mathcal G(n)/n`)."""
        return c_k(1.0, self.Z, self.alpha, self.beta)

    def c_g_printed(self) -> float:
        """eq. (19) exactly as printed (equal to :attr:`c_g`; kept for the test that they agree)."""
        Z, a, b = self.Z, self.alpha, self.beta
        return float(
            Z ** ((b + 1) / b) / (a ** (1 / b) * (b ** (-b / (b + 1)) + b ** (1 / (b + 1))) ** ((b + 1) / b))
        )

    def c_k(self, K: float) -> float:
        """:math:`c(K)`, the participation threshold of the exact symmetric Shapley equilibrium."""
        return c_k(K, self.Z, self.alpha, self.beta)

    def params(self) -> tuple[float, float, float]:
        return (self.Z, self.alpha, self.beta)
