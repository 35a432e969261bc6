r"""Market type, reserve prices, revenue terms and settlement of Chaintreau et al.'s market.

Private helpers of :mod:`datamarket.mechanisms.balanced_market._equilibrium` (the public facade): the market
(:class:`BalancedMarket`), the marketplace's best response (Fact 4.2), the per-group and
intervention revenue terms of the sellers' game, and :func:`settle`, which turns a production profile
into utilities (8)-(10) and Shapley payments (7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, finite_array
from datamarket.learning.curves import LearningCurve, curve_value
from datamarket.mechanisms.balanced_market._shapley import Terms, coalitions_of, shapley_payment

Model = Literal["paper", "shapley_nash"]
Tie = Literal["lowest", "highest"]
SIMPLEX_TOL = 1e-9


def validate_gamma(gamma: ArrayLike, n_groups: int, field_name: str = "gamma") -> FloatArray:
    """``gamma`` must be a finite non-negative vector of length ``n_groups`` summing to 1."""
    g = finite_array(field_name, gamma, ndim=1)
    if g.shape != (n_groups,):
        raise InvalidMarketError(field_name, f"needs one entry per group ({n_groups}), got {g.size}")
    if np.any(g < 0) or abs(float(g.sum()) - 1.0) > SIMPLEX_TOL:
        raise InvalidMarketError(
            field_name, f"must lie on the simplex (entries >= 0 summing to 1), got sum {float(g.sum()):.6g}"
        )
    return g


@dataclass(frozen=True)
class BalancedMarket:
    """A market of Chaintreau et al.: buyers' values and curves, sellers' costs, optional target ``gamma``.

    Attributes
    ----------
    values : (N, G) values of accuracy :math:`\\mu_{i,g} \\ge 0` (truthful bids, Fact 4.1).
    costs : (M, G) unit costs :math:`\\kappa^{(j)}_g > 0`.
    Z, alpha, beta : (N, G) learning-curve parameters (> 0), broadcast from scalars.
    gamma : (G,) target demographics on the simplex, or ``None`` (no intervention analysis).
    tie : reserve-price tie rule, which Fact 4.2 leaves open (errata: reserve prices): ``"lowest"``
        (default, best for buyers) or ``"highest"``.
    """

    values: FloatArray
    costs: FloatArray
    Z: FloatArray
    alpha: FloatArray
    beta: FloatArray
    gamma: FloatArray | None = None
    groups: tuple[str, ...] = ()
    sellers: tuple[str, ...] = ()
    buyers: tuple[str, ...] = ()
    tie: Tie = "lowest"

    def __post_init__(self) -> None:
        mu = finite_array("values", self.values, ndim=2, nonneg=True)
        n, g = mu.shape
        if n == 0 or g == 0:
            raise InvalidMarketError("values", "need at least one buyer and one group")
        kappa = finite_array("costs", self.costs, ndim=2)
        if kappa.shape[0] == 0 or kappa.shape[1] != g:
            raise InvalidMarketError("costs", f"need shape (sellers >= 1, {g} groups), got {kappa.shape}")
        if np.any(kappa <= 0):
            raise InvalidMarketError("costs", "unit costs must be > 0")
        object.__setattr__(self, "values", mu)
        object.__setattr__(self, "costs", kappa)
        for name in ("Z", "alpha", "beta"):
            arr = finite_array(f"curves.{name}", getattr(self, name))
            try:
                arr = np.broadcast_to(arr, (n, g)).copy()
            except ValueError:
                raise InvalidMarketError(f"curves.{name}", f"cannot broadcast to ({n}, {g})") from None
            if np.any(arr <= 0):
                raise InvalidMarketError(f"curves.{name}", "learning-curve parameters must be > 0")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.gamma is not None:
            object.__setattr__(self, "gamma", validate_gamma(self.gamma, g))
        if self.tie not in ("lowest", "highest"):
            raise InvalidMarketError("tie", f"must be 'lowest' or 'highest', got {self.tie!r}")
        for attr, count, prefix in (("groups", g, "g"), ("sellers", kappa.shape[0], "s"), ("buyers", n, "b")):
            names = tuple(getattr(self, attr)) or tuple(f"{prefix}{k}" for k in range(count))
            if len(names) != count or len(set(names)) != count:
                raise InvalidMarketError(attr, f"need {count} unique names, got {list(names)}")
            object.__setattr__(self, attr, names)

    @classmethod
    def quasi_symmetric(
        cls,
        values: ArrayLike,
        kappa: ArrayLike,
        curve: LearningCurve | tuple[float, float, float],
        *,
        n_sellers: int,
        gamma: ArrayLike | None = None,
        **kw: Any,
    ) -> BalancedMarket:
        """Quasi-symmetric market (Def 4.1): one curve, one cost vector shared by ``n_sellers``."""
        c = curve if isinstance(curve, LearningCurve) else LearningCurve(*curve)
        if int(n_sellers) < 1:
            raise InvalidMarketError("n_sellers", "need at least one seller")
        k = finite_array("costs", kappa, ndim=1)
        return cls(
            np.asarray(values, dtype=float),
            np.tile(k, (int(n_sellers), 1)),
            np.array(c.Z),
            np.array(c.alpha),
            np.array(c.beta),
            None if gamma is None else np.asarray(gamma, dtype=float),
            **kw,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(M sellers, N buyers, G groups)``."""
        return self.costs.shape[0], self.values.shape[0], self.values.shape[1]

    @property
    def identical_curves(self) -> bool:
        return all(bool(np.all(a == a.flat[0])) for a in (self.Z, self.alpha, self.beta))

    @property
    def quasi_symmetric_setting(self) -> bool:
        """Def 4.1: all curves equal and all sellers share one cost vector."""
        return self.identical_curves and bool(np.all(self.costs == self.costs[0]))

    @property
    def curve(self) -> LearningCurve:
        """The common curve (only in the quasi-symmetric setting)."""
        if not self.identical_curves:
            raise InvalidMarketError("curves", "buyers' learning curves differ (not quasi-symmetric)")
        return LearningCurve(float(self.Z.flat[0]), float(self.alpha.flat[0]), float(self.beta.flat[0]))

    def first_buyers(self, n: int) -> BalancedMarket:
        """The market of the first ``n`` buyers (a growth sequence, Section 6)."""
        return replace(
            self,
            values=self.values[:n],
            Z=self.Z[:n],
            alpha=self.alpha[:n],
            beta=self.beta[:n],
            buyers=self.buyers[:n],
        )

    def accuracy(self, totals: FloatArray) -> FloatArray:
        """(N, G) accuracies :math:`\\mathcal G_{i,g}(x_g^{([M])})` of aggregate ``totals``."""
        out: FloatArray = curve_value(np.asarray(totals)[None, :], self.Z, self.alpha, self.beta)
        return out


def reserve_prices(values: ArrayLike, tie: Tie = "lowest") -> tuple[FloatArray, FloatArray]:
    r"""Marketplace best response (Fact 4.2, eq. 15).

    Sort the positive :math:`\mu_{\cdot,g}` descending; :math:`\rho^*_g = \max_k k\mu_{(k)}` attained at
    :math:`p_g = \mu_{(k^*)}`; ties (which the paper leaves open) take the lowest maximising price by
    default. A group with no positive value gets :math:`p_g = 0`, :math:`\rho_g = 0` (nobody pays).

    >>> p, rho = reserve_prices([[3.0], [2.0], [1.0]])
    >>> p.tolist(), rho.tolist()            # rho(3)=3, rho(2)=4, rho(1)=3
    ([2.0], [4.0])
    >>> reserve_prices([[2.0], [1.0]])[0].tolist(), reserve_prices([[2.0], [1.0]], "highest")[0].tolist()
    ([1.0], [2.0])
    """
    mu = np.asarray(values, dtype=np.float64)
    n_groups = mu.shape[1]
    p = np.zeros(n_groups)
    rho = np.zeros(n_groups)
    for g in range(n_groups):
        col = mu[:, g]
        cand = np.unique(col[col > 0])
        if cand.size == 0:
            continue
        counts = np.array([(col >= c).sum() for c in cand])
        r = cand * counts
        best = r.max()
        hits = np.flatnonzero(r >= best * (1 - 1e-12))
        k = hits[0] if tie == "lowest" else hits[-1]
        p[g], rho[g] = cand[k], r[k]
    return p, rho


def marketplace_best_response(market: BalancedMarket, totals: FloatArray) -> FloatArray:
    r"""Reserve prices maximising :math:`p_g\sum_{i:\mu_{i,g}\ge p_g}\mathcal G_{i,g}(x_g)` (Section 4's
    general setting: with heterogeneous curves Fact 4.2 does not apply, the best price depends on
    production); candidates are the distinct bids. A group with zero accuracy for everybody keeps the
    :math:`\rho`-maximiser (any price is optimal there; this one keeps the sellers' incentives defined)."""
    p0, _ = reserve_prices(market.values, market.tie)
    acc = market.accuracy(totals)
    p = p0.copy()
    for g in range(market.shape[2]):
        col = market.values[:, g]
        cand = np.unique(col[col > 0])
        if cand.size == 0 or not np.any(acc[:, g] > 0):
            continue
        rev = np.array([c * acc[col >= c, g].sum() for c in cand])
        best = rev.max()
        hits = np.flatnonzero(rev >= best * (1 - 1e-12))
        p[g] = cand[hits[0] if market.tie == "lowest" else hits[-1]]
    return p


def _buyers_in(market: BalancedMarket, p: FloatArray, g: int) -> NDArray[np.bool_]:
    return (market.values[:, g] >= p[g]) & (p[g] > 0)


def group_terms(market: BalancedMarket, p: FloatArray, g: int, scale: float = 1.0) -> Terms:
    """Terms of group ``g``'s revenue :math:`\\sum_{i\\in B_g} p_g\\mathcal G_{i,g}(a S)` (scale ``a``)."""
    b = _buyers_in(market, p, g)
    return Terms(
        np.full(int(b.sum()), p[g]), np.array(scale), market.Z[b, g], market.alpha[b, g], market.beta[b, g]
    )


def intervention_terms(market: BalancedMarket, p: FloatArray, gamma: FloatArray) -> Terms:
    """All groups' terms with scales :math:`\\gamma_g` (one scalar decision :math:`n^{(j)}`: under
    the intervention :math:`x^{(j)} = \\gamma n^{(j)}`, Def 3.6)."""
    parts = [group_terms(market, p, g, float(gamma[g])) for g in range(market.shape[2])]
    return Terms(*(np.concatenate([getattr(t, k) for t in parts]) for k in Terms._fields()))


@dataclass(frozen=True)
class Utilities:
    """Utilities (8)-(10): marketplace revenue ``w``, sellers' ``v_j``, buyers' ``u_i``."""

    marketplace: float
    sellers: FloatArray
    buyers: FloatArray

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "sellers": self.sellers.tolist(),
            "buyers": self.buyers.tolist(),
        }


@dataclass(frozen=True)
class MarketSolution:
    """One scenario's equilibrium: production, active groups, utilities and diagnostics."""

    scenario: Literal["baseline", "intervention"]
    model: Model
    prices: FloatArray
    production: FloatArray  # (M, G)
    active: NDArray[np.bool_]  # formed groups F (baseline) or monetized groups H (intervention)
    utilities: Utilities
    payments: FloatArray  # Shapley payments per seller
    revenue: FloatArray  # price paid per buyer
    values_received: FloatArray  # per buyer: sum_g mu G
    production_cost: FloatArray  # per seller
    n_equilibria: int = 1
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> FloatArray:
        out: FloatArray = self.production.sum(axis=0)
        return out

    @property
    def forms(self) -> bool:
        """Def 5.1: samples are produced."""
        return bool(self.total.sum() > 0)

    @property
    def welfare(self) -> float:
        """Social welfare: buyers' value of accuracy minus production cost (money transfers cancel)."""
        return float(self.values_received.sum() - self.production_cost.sum())

    def to_dict(self, groups: Sequence[str]) -> dict[str, Any]:
        """The per-scenario JSON block of the ``balanced_market`` scenario."""
        return {
            "forms": self.forms,
            "production": self.production.tolist(),
            "total": self.total.tolist(),
            "active_groups": [g for g, a in zip(groups, self.active, strict=True) if a],
            "utilities": self.utilities.to_dict(),
        }


def _payments(x: FloatArray, terms: Terms) -> FloatArray:
    """Shapley payment (7) of every seller of quantities ``x``, computed once per distinct quantity
    (sellers with equal quantities get the same payment: deleting either leaves the same array)."""
    out = np.empty(x.size)
    done: dict[float, float] = {}
    for j in range(x.size):
        key = float(x[j])
        if key not in done:
            done[key] = shapley_payment(key, coalitions_of(np.delete(x, j)), terms)
        out[j] = done[key]
    return out


def settle(
    market: BalancedMarket,
    p: FloatArray,
    production: FloatArray,
    gamma: FloatArray | None = None,
) -> tuple[Utilities, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Utilities (8)-(10) and Shapley payments (7) of a production profile, exactly.

    Payments come from the quantity-game Shapley value (per group in the baseline; over the scalar
    totals with :math:`\\gamma`-scaled terms under the intervention), so they are efficient:
    ``sum(payments) == w`` up to rounding.
    """
    m, _, g_count = market.shape
    totals = production.sum(axis=0)
    acc = market.accuracy(totals)
    sold = np.stack([_buyers_in(market, p, g) for g in range(g_count)], axis=1)  # (N, G)
    revenue = (sold * p[None, :] * acc).sum(axis=1)
    received = (sold * market.values * acc).sum(axis=1)  # x~ = 0 for buyers below the reserve (4)
    pay = np.zeros(m)
    if gamma is None:
        for g in range(g_count):
            pay += _payments(production[:, g], group_terms(market, p, g))
    else:
        pay = _payments(production.sum(axis=1), intervention_terms(market, p, gamma))
    cost = (market.costs * production).sum(axis=1)
    util = Utilities(float(revenue.sum()), pay - cost, received - revenue)
    return util, pay, revenue, received, cost
