r"""Broker marketplace for normal mean estimation (Chen, Clinton & Kandasamy, "Incentivizing
Truthful Data Contributions in a Marketplace for Mean Estimation", arXiv:2502.16052).

Buyers ``j in B`` value data through ``v_j(m) = E v^e_j(sigma |Z| / sqrt m)`` (eqs. 6, 11;
:mod:`datamarket.pricing.valuations`); contributors ``i in C`` collect points of ``N(mu, sigma^2)`` at
per-sample cost ``c_i`` (sorted ``c_1 <= c_2 <= ...``, ties kept in input order).

**Algorithm 1** (non-strategic, :func:`~datamarket.mechanisms.broker._algorithm.algorithm1`): for each
``N <= floor(|B|/c_1)`` price with an ordered-item oracle, let buyers choose by eq. (4) and keep the
smallest ``N+`` maximising ``profit_N = sum_j q_N(m_j) - c_1 N``.

**Algorithm 2 = mechanism M*** (two phases, the service's entry points):

1. :func:`plan_collection` runs Algorithm 1 restricted to ``N >= 2`` and sets (13)
   ``N*_1 = N+ - 1``, ``N*_2 = 1``, ``N*_i = 0`` otherwise, ``m*_j = m_j+``, ``d_i = c_i N*_i^2 / sigma^2``
   and ``W = sum_j q_j+ - c_1 N*_1 - c_2 N*_2`` (**corrected**: the paper prints ``c_1 N+``, with which
   the budget does not balance: the broker's deficit is exactly ``c_2 - c_1``).
2. :func:`settle` takes the submissions ``Y_i`` and, with ``D = mu(Y_1) - mu(Y_2)``, charges (14)

   .. math:: p^*_j = \sum_{i=1,2} 1[|Y_i| = N^*_i]\Big(q^+_j \frac{N^*_i}{N^+} + \frac{d_i}{|B|}
             \big(\tfrac{\sigma^2}{N^*_{-i}} + \tfrac{\sigma^2}{N^*_i}\big)\Big) - \frac{d_1 + d_2}{|B|} D^2

   and pays (15)
   :math:`\pi^*_i = 1[|Y_i| = N^*_i](W N^*_i/N^+ + c_i N^*_i + d_i(\sigma^2/N^*_{-i} + \sigma^2/N^*_i))
   - d_i D^2`; buyer j receives ``min(m_j, |Y|)`` uniformly random pooled points.

Edge cases the paper leaves open (documented in ``docs/broker.md``):

* ``N+ < 2``: M* divides by ``N*_1 = N+ - 1``; Algorithm 1 is searched over ``N >= 2``.
* ``W < 0`` (i.e. ``OPT < c_2 - c_1``): IRC would fail, so :func:`plan_collection` raises
  :class:`~datamarket.core.errors.InfeasibleError` -- the broker should not run M*.
* equal minimum costs ``c_1 = c_2`` (paper Sec. 4 discussion): collection is split evenly,
  ``N*_1 = N+ - floor(N+/2)``, ``N*_2 = floor(N+/2)``; (14)-(15) and BB are unchanged since
  ``W = sum q+ - sum_i c_i N*_i``, profit reaches OPT and the variance of ``D`` shrinks.
* ``mu(empty) := 0``; contributors other than 1 and 2 are ignored and paid 0.

On path (everyone truthful) ``E p*_j = q_j+`` (16), ``E pi*_i = c_i N*_i + W N*_i / N+``, and
``sum_j p*_j = sum_i pi*_i`` on every realisation (BB). IRB/EFB hold for the expected prices, IRC for the
expected payments; ex post prices and payments may be negative or exceed values.

>>> import numpy as np
>>> from datamarket.pricing.valuations import Gaussian, Threshold
>>> market = BrokerMarket(buyers=("a", "b"), valuations=(Gaussian(0.5), Threshold(0.4)),
...                       contributors=("x", "y"), costs=(0.05, 0.06), sigma=1.0)
>>> plan = plan_collection(market)
>>> plan.n_plus, plan.n_star["x"], plan.n_star["y"]      # N+, N*_1 = N+ - 1, N*_2 = 1
(9, 8, 1)
>>> rng = np.random.default_rng(0)              # phase two: contributors submit their points
>>> data = {name: rng.normal(2.0, 1.0, n) for name, n in plan.n_star.items()}
>>> outcome = settle(market, plan, data, seed=1)
>>> abs(outcome.platform_take) < 1e-9            # budget balance on every realisation
True
>>> settle(market, plan, {"x": data["x"][:-1], "y": data["y"]}, seed=1)
Traceback (most recent call last):
...
datamarket.core.errors.InvalidMarketError: submissions.x: expected 8 points, got 7
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InfeasibleError, InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray, Offers, Outcome, Role, finite_array
from datamarket.mechanisms.broker._algorithm import Algorithm1Result, algorithm1, n_range_cap
from datamarket.pricing.valuations import Valuation, valuation_table

PAPER = "Chen, Clinton, Kandasamy: Incentivizing Truthful Data Contributions (mean estimation)"
#: Largest data range floor(|B|/c_1) accepted (the valuation table has this many columns).
MAX_N = 100_000
#: Accepted noise scales: ``sigma^2`` and ``d_i = c_i N*_i^2 / sigma^2`` stay finite and non-zero.
SIGMA_RANGE = (1e-100, 1e100)


@dataclass(frozen=True, eq=False)
class BrokerMarket:
    """Public information of a broker round: buyers' valuations, contributors' costs and sigma.

    ``solver`` picks Algorithm 1's ordered-item oracle: ``"E1"`` (exact enumeration), ``"E2"`` (MILP),
    ``"E3"`` (exact DP under increasing differences), ``"support"`` (``delta``) or
    ``"auto"`` (default: E1 while ``(floor(|B|/c_1) + 1)^|B| <= 5e6``, else E2).
    """

    buyers: tuple[str, ...]
    valuations: tuple[Valuation, ...]
    contributors: tuple[str, ...]
    costs: FloatArray | Sequence[float]
    sigma: float
    solver: str = "auto"
    delta: float = 0.1
    table: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buyers", tuple(self.buyers))
        object.__setattr__(self, "contributors", tuple(self.contributors))
        object.__setattr__(self, "valuations", tuple(self.valuations))
        for name, group in (("buyers", self.buyers), ("contributors", self.contributors)):
            if any(not isinstance(p, str) or not p for p in group):
                raise InvalidMarketError(name, "names must be non-empty strings")
            if len(set(group)) != len(group):
                raise InvalidMarketError(name, "names must be unique")
        if set(self.buyers) & set(self.contributors):
            raise InvalidMarketError("contributors", "a name cannot be both buyer and contributor")
        if not self.buyers:
            raise InvalidMarketError("buyers", "need at least one buyer")
        if len(self.valuations) != len(self.buyers):
            raise InvalidMarketError("valuations", f"need one per buyer ({len(self.buyers)})")
        if len(self.contributors) < 2:
            raise InvalidMarketError("contributors", "mechanism M* needs at least two contributors")
        costs = finite_array("costs", self.costs, ndim=1)
        if costs.shape != (len(self.contributors),):
            raise InvalidMarketError("costs", f"need one per contributor ({len(self.contributors)})")
        if np.any(costs <= 0):
            raise InvalidMarketError("costs", "per-sample costs must be positive")
        object.__setattr__(self, "costs", costs)
        sigma = float(self.sigma)
        if not np.isfinite(sigma) or sigma <= 0:
            raise InvalidMarketError("sigma", f"must be a positive finite number, got {self.sigma!r}")
        if not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
            # (14)-(15) divide by sigma^2 (d_i = c_i N*_i^2 / sigma^2): outside this range
            # sigma^2 or d_i leaves double precision (overflow / division by an underflowed zero).
            raise InvalidMarketError(
                "sigma", f"must lie in [{SIGMA_RANGE[0]:g}, {SIGMA_RANGE[1]:g}], got {self.sigma!r}"
            )
        object.__setattr__(self, "sigma", sigma)
        n_cap = n_range_cap(len(self.buyers), float(costs.min()))
        if n_cap > MAX_N:
            raise InvalidMarketError(
                "costs", f"floor(|B|/c_1) = {n_cap} exceeds {MAX_N}; the cheapest cost is too small"
            )
        object.__setattr__(self, "table", valuation_table(self.valuations, sigma, max(n_cap, 1)))

    @property
    def order(self) -> NDArray[np.intp]:
        """Contributor indices sorted by cost (stable: ties keep input order)."""
        return np.argsort(np.asarray(self.costs), kind="stable")


@dataclass(frozen=True, eq=False)
class CollectionPlan:
    """Phase one of M*: what to collect and the posted (expected) prices.

    Attributes
    ----------
    n_plus : ``N+`` (Algorithm 1 over ``N >= 2``).
    allocations, prices : ``m_j+`` and ``q_j+`` per buyer (in ``market.buyers`` order).
    curve : the posted ordered-item curve ``q_{N+}(0..N+)``.
    n_star : ``N*_i`` per contributor name (eq. 13, or the even split on equal minimum costs).
    contributor_1, contributor_2 : the two cheapest contributors; ``n1, n2, c1, c2, d1, d2`` theirs.
    w : ``W = sum q+ - c_1 N*_1 - c_2 N*_2``, the expected profit of M*.
    opt_profit, opt_n : OPT of eq. (3) (Algorithm 1 over ``N >= 1``) and its smallest argmax.
    profit_n_plus : ``profit_{N+}`` (Algorithm 1's profit at N+).
    split : whether collection was split evenly because ``c_1 = c_2``.
    """

    n_plus: int
    allocations: NDArray[np.int64]
    prices: FloatArray
    curve: FloatArray
    n_star: Mapping[str, int]
    contributor_1: str
    contributor_2: str
    n1: int
    n2: int
    c1: float
    c2: float
    d1: float
    d2: float
    w: float
    opt_profit: float
    opt_n: int
    profit_n_plus: float
    split: bool
    algorithm1: Algorithm1Result = field(repr=False, compare=False)

    @property
    def mechanism_profit(self) -> float:
        """Expected profit of M* on path, ``W`` (Thm 5.1)."""
        return self.w

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_plus": self.n_plus,
            "allocations": self.allocations.tolist(),
            "prices": self.prices.tolist(),
            "curve": self.curve.tolist(),
            "n_star": dict(self.n_star),
            "contributor_1": self.contributor_1,
            "contributor_2": self.contributor_2,
            "w": self.w,
            "opt_profit": self.opt_profit,
            "split": self.split,
        }


def plan_collection(market: BrokerMarket) -> CollectionPlan:
    """Phase one of Algorithm 2: run Algorithm 1 (``N >= 2``) and fix ``N*``, ``d_i`` and ``W``."""
    order = market.order
    costs = np.asarray(market.costs)
    i1, i2 = int(order[0]), int(order[1])
    c1, c2 = float(costs[i1]), float(costs[i2])
    alg = algorithm1(market.table, c1, n_min=2, solver=market.solver, delta=market.delta)
    n_plus = alg.n_plus
    split = abs(c2 - c1) <= 1e-12 * max(c1, 1.0)
    n1, n2 = (n_plus - n_plus // 2, n_plus // 2) if split else (n_plus - 1, 1)
    w = float(alg.prices.sum() - c1 * n1 - c2 * n2)
    if w < -1e-12:
        raise InfeasibleError(
            f"w: W = {w:.6g} < 0 (OPT - (c_2 - c_1) is negative): contributors' IRC would fail, "
            "the broker should not run M*"
        )
    s2 = market.sigma**2
    n_star = {name: 0 for name in market.contributors}
    n_star[market.contributors[i1]] = n1
    n_star[market.contributors[i2]] = n2
    return CollectionPlan(
        n_plus=n_plus,
        allocations=alg.allocations,
        prices=alg.prices,
        curve=alg.curve,
        n_star=n_star,
        contributor_1=market.contributors[i1],
        contributor_2=market.contributors[i2],
        n1=n1,
        n2=n2,
        c1=c1,
        c2=c2,
        d1=c1 * n1**2 / s2,
        d2=c2 * n2**2 / s2,
        w=max(w, 0.0),
        opt_profit=alg.opt_profit,
        opt_n=alg.opt_n,
        profit_n_plus=alg.profit,
        split=split,
        algorithm1=alg,
    )


def mstar_transfers(
    plan: CollectionPlan,
    n_buyers: int,
    sigma: float,
    ok1: Any,
    ok2: Any,
    mean1: Any,
    mean2: Any,
) -> tuple[FloatArray, FloatArray]:
    """Vectorised (14) and (15): prices ``(R, |B|)`` and payments ``(R, 2)`` for ``R`` realisations of
    size indicators ``ok_i`` and submitted means ``mean_i``."""
    s2 = sigma**2
    ok = np.stack([np.asarray(ok1, dtype=np.float64), np.asarray(ok2, dtype=np.float64)], axis=-1)
    dsq = (np.asarray(mean1, dtype=np.float64) - np.asarray(mean2, dtype=np.float64)) ** 2
    ns = np.array([plan.n1, plan.n2], dtype=np.float64)
    cs = np.array([plan.c1, plan.c2])
    ds = np.array([plan.d1, plan.d2])
    var_term = ds * (s2 / ns[::-1] + s2 / ns)  # d_i (sigma^2/N*_{-i} + sigma^2/N*_i)
    share = ns / plan.n_plus
    q = np.asarray(plan.prices)
    prices = (
        ok[..., 0:1] * (q * share[0] + var_term[0] / n_buyers)
        + ok[..., 1:2] * (q * share[1] + var_term[1] / n_buyers)
        - (ds.sum() / n_buyers) * dsq[..., None]
    )
    payments = ok * (plan.w * share + cs * ns + var_term) - ds * dsq[..., None]
    return prices, payments


def _mean(y: FloatArray) -> float:
    return float(y.mean()) if y.size else 0.0  # mu(empty) := 0


def settle(
    market: BrokerMarket,
    plan: CollectionPlan,
    submissions: Mapping[str, Any],
    *,
    seed: int,
    strict: bool = True,
) -> Outcome:
    """Phase two of Algorithm 2: prices (14), payments (15) and each buyer's random data subset.

    ``submissions`` maps every contributor's name to a 1-d array of points. With ``strict`` (the
    default, for the service) a missing or unknown contributor, a submission whose size differs from
    ``N*_i`` and non-finite data raise :class:`InvalidMarketError`; with ``strict=False`` a wrong size
    only switches off that contributor's bonus term, as in (14)-(15).
    """
    data = _submitted(market, plan, submissions, strict)
    y1, y2 = data[plan.contributor_1], data[plan.contributor_2]
    nb = len(market.buyers)
    prices, pays = mstar_transfers(
        plan, nb, market.sigma, y1.size == plan.n1, y2.size == plan.n2, _mean(y1), _mean(y2)
    )
    pooled = np.concatenate([y1, y2])
    rng = make_rng(seed)
    delivered = np.minimum(np.asarray(plan.allocations), pooled.size)
    subsets = [np.sort(rng.permutation(pooled.size)[:k]) for k in delivered]
    table = market.table
    values = table[np.arange(nb), np.minimum(delivered, table.shape[1] - 1)]
    payments = {plan.contributor_1: float(pays[0]), plan.contributor_2: float(pays[1])}
    names = (*market.buyers, *market.contributors)
    roles = (Role.BUYER,) * nb + (Role.SELLER,) * len(market.contributors)
    costs = np.asarray(market.costs)
    menu_values = table[np.arange(nb)[:, None], np.asarray(plan.allocations)[None, :]]
    return Outcome(
        mechanism="broker_mstar",
        participants=names,
        roles=roles,
        allocated=[*delivered.tolist(), *(data[c].size for c in market.contributors)],
        prices=[*prices.tolist(), *([0.0] * len(market.contributors))],
        payments=[*([0.0] * nb), *(payments.get(c, 0.0) for c in market.contributors)],
        values=[*values.tolist(), *([0.0] * len(market.contributors))],
        costs=[*([0.0] * nb), *(float(costs[k] * data[c].size) for k, c in enumerate(market.contributors))],
        offers=Offers(menu_values, np.asarray(plan.prices), np.arange(nb)),
        extra={
            "n_plus": plan.n_plus,
            "discrepancy": _mean(y1) - _mean(y2),
            "expected_prices": np.asarray(plan.prices).tolist(),
            "deliveries": {b: s.tolist() for b, s in zip(market.buyers, subsets, strict=True)},
            "buyer_estimates": {
                b: float(pooled[s].mean()) if s.size else None
                for b, s in zip(market.buyers, subsets, strict=True)
            },
        },
    )


def _submitted(
    market: BrokerMarket, plan: CollectionPlan, submissions: Mapping[str, Any], strict: bool
) -> dict[str, FloatArray]:
    """Each contributor's submitted points, validated (:func:`settle`)."""
    unknown = set(submissions) - set(market.contributors)
    if unknown:
        raise InvalidMarketError("submissions", f"unknown contributor(s): {', '.join(sorted(unknown))}")
    data: dict[str, FloatArray] = {}
    for name in market.contributors:
        if name not in submissions:
            raise InvalidMarketError(f"submissions.{name}", "missing submission")
        y = finite_array(f"submissions.{name}", np.atleast_1d(np.asarray(submissions[name])), ndim=1)
        if strict and y.size != plan.n_star[name]:
            raise InvalidMarketError(
                f"submissions.{name}", f"expected {plan.n_star[name]} points, got {y.size}"
            )
        data[name] = y
    return data


def algorithm1_outcome(market: BrokerMarket) -> Outcome:
    """Lemma 2's non-strategic mechanism: contributor 1 collects ``N+`` (over ``N >= 1``) and is
    reimbursed ``c_1 N+``; buyers pay ``q_j+``; the broker keeps the profit (no trade if it is <= 0)."""
    order = market.order
    c1 = float(np.asarray(market.costs)[order[0]])
    alg = algorithm1(market.table, c1, n_min=1, solver=market.solver, delta=market.delta)
    trade = alg.profit > 0
    nb, nc = len(market.buyers), len(market.contributors)
    m = alg.allocations if trade else np.zeros(nb, dtype=np.int64)
    p = alg.prices if trade else np.zeros(nb)
    collected = np.zeros(nc)
    collected[order[0]] = alg.n_plus if trade else 0
    costs = np.asarray(market.costs) * collected
    table = market.table
    return Outcome(
        mechanism="broker_alg1",
        participants=(*market.buyers, *market.contributors),
        roles=(Role.BUYER,) * nb + (Role.SELLER,) * nc,
        allocated=[*m.tolist(), *collected.tolist()],
        prices=[*p.tolist(), *([0.0] * nc)],
        payments=[*([0.0] * nb), *costs.tolist()],
        values=[*table[np.arange(nb), m].tolist(), *([0.0] * nc)],
        costs=[*([0.0] * nb), *costs.tolist()],
        offers=Offers(table[np.arange(nb)[:, None], m[None, :]], p, np.arange(nb)),
        extra={"n_plus": alg.n_plus if trade else 0, "profit": alg.profit if trade else 0.0},
    )


# ---------------------------------------------------------------------------------------------------
# Declared guarantees (contract test) and generated sample markets
# ---------------------------------------------------------------------------------------------------
def random_market(seed: int, n_buyers: int = 3) -> BrokerMarket:
    """A small generated market (Gaussian / threshold / exponential buyers) on which M* is viable."""
    from datamarket.pricing.valuations import Exponential, Gaussian, Threshold

    rng = make_rng(seed)
    for _ in range(100):
        vals: list[Valuation] = []
        for _j in range(n_buyers):
            kind = int(rng.integers(3))
            scale = float(rng.uniform(0.5, 1.0))
            width = float(rng.uniform(0.2, 0.8))
            vals.append((Gaussian, Threshold, Exponential)[kind](width, scale))
        c1 = float(rng.uniform(0.1, 0.25))
        c2 = c1 + float(rng.uniform(0.0, 0.05))
        market = BrokerMarket(
            buyers=tuple(f"b{j}" for j in range(n_buyers)),
            valuations=tuple(vals),
            contributors=("c0", "c1", "c2"),
            costs=(c2, c1, c2 + 0.1),
            sigma=float(rng.uniform(0.5, 1.5)),
        )
        try:
            plan_collection(market)
        except InfeasibleError:
            continue
        return market
    raise InfeasibleError("no viable random broker market found")  # pragma: no cover
