r"""Separable estimators and evaluation distributions for the competing-buyers market (Westenbroek et al.).

Assumption 3 of Westenbroek et al. asks for estimators whose integrated mean squared error is linear
in the sources' variances, :math:`g_k(x, F, \sigma^2) = \sum_i h_k(x_i, x, F)\sigma_i^2`, :math:`h\ge0`.
Every *linear smoother* :math:`\hat f(x^*) = \sum_i H_i(x^*)\, y_i` that is unbiased on the market's
:math:`f` has this form with :math:`h_k(x_i, x, F) = E_{x^*\sim F}[H_i(x^*)^2]`, because the reports'
noises are independent with variances :math:`\sigma_i^2`. So the general interface is the smoother
matrix (:class:`LinearSmoother`): ``weights(x_train, x_eval)[q, i]`` :math:`=H_i(x^*_q)`.
Ordinary least squares on a feature map :math:`\phi` (:class:`FeatureOLS`) has
:math:`H(x^*) = \phi(x^*)^\top \operatorname{pinv}(X)` with design rows :math:`\phi(x_i)^\top`
; polynomial regression (:class:`PolynomialRegression`) is the monomial feature map; the
paper's Section IV example is degree 1 (:math:`\phi = [x, 1]`).

The leave-``i``-out fit of buyer ``k`` uses the same smoother on the other sources; when it is
under-determined (one point for a line, Section IV) ``pinv`` gives the minimum-norm fit, which is
what the paper's printed :math:`\xi` assume. The *full* design must have full column rank
(otherwise the estimator is not identified, e.g. coincident source locations): :class:`FeatureOLS`
raises :class:`~datamarket.core.errors.InvalidMarketError` on a singular design.

Evaluation distributions :math:`F_j` are given as quadrature rules ``(nodes, weights)``:
:class:`UniformInterval` uses Gauss-Legendre nodes (64 by default: exact for polynomials of degree
<= 127, hence for :math:`H_i^2` of any polynomial regression of degree <= 63), :class:`DiscretePoints`
a finite distribution and :class:`EmpiricalSamples` equal weights on samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, finite_array

__all__ = [
    "DiscretePoints",
    "EmpiricalSamples",
    "EvaluationDistribution",
    "FeatureOLS",
    "LinearSmoother",
    "PolynomialRegression",
    "SeparableEstimator",
    "UniformInterval",
]


# --------------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------------
@runtime_checkable
class SeparableEstimator(Protocol):
    """A linear smoother: ``weights(x_train, x_eval)`` is ``H`` with ``f_hat(x_eval) = H @ y``."""

    @property
    def name(self) -> str: ...

    def weights(self, x_train: FloatArray, x_eval: FloatArray) -> FloatArray: ...

    def check_design(self, x_train: FloatArray) -> None: ...


@dataclass(frozen=True)
class LinearSmoother:
    """Any separable estimator given by its smoother-matrix function (the general interface).

    ``weight_fn(x_train, x_eval)`` returns an array of shape ``(len(x_eval), len(x_train))``.

    >>> mean = LinearSmoother(lambda xt, xe: np.full((len(xe), len(xt)), 1 / len(xt)), "mean")
    >>> mean.weights(np.array([0.0, 1.0]), np.array([0.5])).tolist()
    [[0.5, 0.5]]
    """

    weight_fn: Callable[[FloatArray, FloatArray], FloatArray]
    name: str = "linear-smoother"

    def weights(self, x_train: FloatArray, x_eval: FloatArray) -> FloatArray:
        h = np.asarray(self.weight_fn(np.asarray(x_train), np.asarray(x_eval)), dtype=np.float64)
        if h.shape != (len(x_eval), len(x_train)) or not np.all(np.isfinite(h)):
            raise InvalidMarketError(
                "estimator", f"{self.name}: weights must be finite, shape {(len(x_eval), len(x_train))}"
            )
        return h

    def check_design(self, x_train: FloatArray) -> None:
        """A general smoother has no design to check."""


def _design(features: Callable[[FloatArray], FloatArray], name: str, x: FloatArray) -> FloatArray:
    phi = np.asarray(features(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] != len(x) or not np.all(np.isfinite(phi)):
        raise InvalidMarketError("estimator", f"{name}: feature map must give finite (n, p) rows")
    return phi


def _check_rank(phi: FloatArray, x_train: FloatArray, name: str, rank_tol: float) -> None:
    sv = np.linalg.svd(phi, compute_uv=False)
    p = phi.shape[1]
    cut = rank_tol * max(1.0, float(sv[0])) if len(sv) else rank_tol
    rank = int(np.sum(sv > cut))
    if rank < p:
        with np.errstate(over="ignore", invalid="ignore"):  # huge locations: no stray warning
            distinct = len(np.unique(np.round(np.asarray(x_train, dtype=np.float64), 12)))
        raise InvalidMarketError(
            "locations",
            f"singular design for {name}: {p} parameters but rank {rank} "
            f"({distinct} distinct of {len(x_train)} source locations; coincident locations?)",
        )


@dataclass(frozen=True)
class FeatureOLS:
    r"""Ordinary least squares on a feature map: :math:`H(x^*) = \phi(x^*)^\top\operatorname{pinv}(X)`.

    ``features(x)`` maps locations of shape ``(n,)`` to a design of shape ``(n, p)``.

    >>> ols = FeatureOLS(lambda x: np.column_stack([x, np.ones_like(x)]), "line")
    >>> np.round(ols.weights(np.array([-1.0, 1.0]), np.array([0.0])), 12).tolist()
    [[0.5, 0.5]]
    """

    features: Callable[[FloatArray], FloatArray]
    name: str = "ols"
    rank_tol: float = 1e-9

    def design(self, x: FloatArray) -> FloatArray:
        return _design(self.features, self.name, x)

    def weights(self, x_train: FloatArray, x_eval: FloatArray) -> FloatArray:
        return np.asarray(self.design(x_eval) @ np.linalg.pinv(self.design(x_train)), dtype=np.float64)

    def check_design(self, x_train: FloatArray) -> None:
        """Raise when the design is singular (fewer distinct locations than features)."""
        _check_rank(self.design(x_train), x_train, self.name, self.rank_tol)


@dataclass(frozen=True)
class PolynomialRegression:
    """OLS on monomials ``1, x, ..., x**degree`` (degree 1: the paper's Section IV estimator).

    >>> PolynomialRegression(1).design(np.array([2.0])).tolist()
    [[1.0, 2.0]]
    """

    degree: int = 1
    rank_tol: float = 1e-9

    def __post_init__(self) -> None:
        if isinstance(self.degree, bool) or not isinstance(self.degree, int | np.integer) or self.degree < 0:
            raise InvalidMarketError("degree", f"must be a non-negative integer, got {self.degree!r}")

    @property
    def name(self) -> str:
        return f"polynomial(degree={self.degree})"

    def design(self, x: FloatArray) -> FloatArray:
        return np.vander(np.asarray(x, dtype=np.float64), int(self.degree) + 1, increasing=True)

    def weights(self, x_train: FloatArray, x_eval: FloatArray) -> FloatArray:
        return np.asarray(self.design(x_eval) @ np.linalg.pinv(self.design(x_train)), dtype=np.float64)

    def check_design(self, x_train: FloatArray) -> None:
        """Raise when fewer than ``degree + 1`` distinct locations make the design singular."""
        _check_rank(self.design(x_train), x_train, self.name, self.rank_tol)


# --------------------------------------------------------------------------------------------------
# evaluation distributions F_j
# --------------------------------------------------------------------------------------------------
class EvaluationDistribution(Protocol):
    """A distribution ``F_j`` as a quadrature rule: ``nodes`` and non-negative ``weights`` (sum 1)."""

    def quadrature(self) -> tuple[FloatArray, FloatArray]: ...


@lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[FloatArray, FloatArray]:
    t, w = np.polynomial.legendre.leggauss(n)
    t.setflags(write=False)
    w.setflags(write=False)
    return t, w


@dataclass(frozen=True)
class UniformInterval:
    """``U[low, high]`` through ``n_nodes``-point Gauss-Legendre quadrature.

    >>> nodes, w = UniformInterval(-1.0, 1.0).quadrature()
    >>> round(float(w @ nodes**2), 12)   # E[x^2] = 1/3
    0.333333333333
    """

    low: float = -1.0
    high: float = 1.0
    n_nodes: int = 64

    def __post_init__(self) -> None:
        lo, hi = finite_array("evaluation.low", [self.low, self.high])
        if not hi > lo:
            raise InvalidMarketError("evaluation.high", "must exceed low")
        if self.n_nodes < 1:
            raise InvalidMarketError("evaluation.n_nodes", "must be >= 1")

    def quadrature(self) -> tuple[FloatArray, FloatArray]:
        t, w = _gauss_legendre(self.n_nodes)
        half = (self.high - self.low) / 2
        return np.asarray(self.low + half * (t + 1)), np.asarray(w / 2)


@dataclass(frozen=True)
class DiscretePoints:
    """A finite distribution on ``points`` with probabilities ``weights`` (default uniform)."""

    points: FloatArray
    weights: FloatArray | None = None

    def __post_init__(self) -> None:
        p = finite_array("evaluation.points", self.points, ndim=1)
        if p.size == 0:
            raise InvalidMarketError("evaluation.points", "must be non-empty")
        object.__setattr__(self, "points", p)
        if self.weights is not None:
            w = finite_array("evaluation.weights", self.weights, ndim=1, nonneg=True)
            if w.shape != p.shape or not w.sum() > 0:
                raise InvalidMarketError("evaluation.weights", "one non-negative weight per point, sum > 0")
            object.__setattr__(self, "weights", w)

    def quadrature(self) -> tuple[FloatArray, FloatArray]:
        pts = np.asarray(self.points, dtype=np.float64)
        if self.weights is None:
            return pts, np.full(pts.shape, 1.0 / pts.size)
        w = np.asarray(self.weights, dtype=np.float64)
        return pts, w / w.sum()


@dataclass(frozen=True)
class EmpiricalSamples:
    """The empirical distribution of ``samples`` (equal weights)."""

    samples: FloatArray

    def __post_init__(self) -> None:
        s = finite_array("evaluation.samples", self.samples, ndim=1)
        if s.size == 0:
            raise InvalidMarketError("evaluation.samples", "must be non-empty")
        object.__setattr__(self, "samples", s)

    def quadrature(self) -> tuple[FloatArray, FloatArray]:
        s = np.asarray(self.samples, dtype=np.float64)
        return s, np.full(s.shape, 1.0 / s.size)
