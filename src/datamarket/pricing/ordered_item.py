r"""Envy-free pricing through ordered-item pricing (Chen, Clinton & Kandasamy, Sec. 2.1-2.3).

Buyers ``j`` have non-decreasing data valuations ``v_j: {0..N} -> [0, 1]`` with ``v_j(0) = 0``, given as a
table ``values[j, m]``. An envy-free scheme ``(m_j, p_j)`` satisfies IRB ``v_j(m_j) - p_j >= 0`` and EFB
``v_j(m_j) - p_j >= v_j(m_k) - p_k`` (Sec. 2.1); ``rev^OPT(N)`` (eq. 2) is the best revenue with
``max_j m_j <= N``. An ordered-item pricing curve ``q: {0..N} -> [0, 1]``, ``q(0) = 0``, lets each buyer
choose (eq. 4)

.. math::  \tilde m_j(N, q) = \max \operatorname{argmax}_{m \le N} v_j(m) - q(m)

(ties to the **largest** m, compared with absolute tolerance ``TIE_TOL = 1e-9``) and earns
``rev(N, q) = sum_j q(m~_j)`` (eq. 5). Lemma 1: both optima coincide; :func:`lemma1_curve` builds the
curve from a scheme (top step extended to N) and :func:`scheme_from_curve` the converse.

Exact solver E1, :func:`exact_revenue_curve`:

1. For a fixed allocation ``m`` build the constraint graph on nodes ``0`` (outside option) and buyers,
   arcs ``k -> j`` of weight ``v_j(m_j) - v_j(m_k)`` and ``0 -> j`` of weight ``v_j(m_j)``.
2. The componentwise-maximal feasible prices are the shortest-path distances ``p_j = d(0 -> j)``
   (Bellman-Ford, vectorised over a batch of allocations); the allocation is feasible iff there is no
   negative cycle and ``d >= 0``.
3. ``rev^OPT(N) = max_{m in {0..N}^n} sum_j d_j``: every allocation is enumerated once, grouped by
   ``max_j m_j = N'``, and ``rev^OPT(N) = max_{N' <= N} best(N')`` for **all N at once**.
   Ties: the first maximiser in enumeration order, compared with tolerance 1e-12.
4. Optional rigorous pruning: with a per-sample cost ``c`` the profit at N is at most
   ``sum_j sup_m v_j(m) - c N``, so enumeration stops once that bound falls below the best profit found.

Cost ``O((N+1)^n n^3)``: polynomial for a fixed number of buyers n, exponential in n (OIP is NP-hard).

>>> import numpy as np
>>> values = np.array([[0, .5, .6, .65], [0, .2, .6, .9]])
>>> res = solve_exact(values, 3)
>>> res.allocations.tolist(), np.round(res.prices, 3).tolist(), round(res.revenue, 3)
([2, 3], [0.6, 0.9], 1.5)
>>> audit_scheme(values, res.allocations, res.prices) <= 1e-12
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, IntArray
from datamarket.pricing.valuations import check_value_table

#: Tolerance of buyers' argmax ties in eq. (4).
TIE_TOL = 1e-9
#: Tolerance for revenue ties between allocations and for negative-cycle / sign checks.
REV_TOL = 1e-12
#: Allocations evaluated per vectorised batch.
BATCH = 1 << 14


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class PricingResult:
    """An ordered-item pricing solution at data amount ``n``.

    Attributes
    ----------
    n : data available (``N``); the curve has ``n + 1`` entries.
    curve : the non-decreasing posted curve ``q(0..n)``, ``q(0) = 0``.
    allocations : buyers' choices ``m~_j(n, q)`` (eq. 4, ties to the largest m).
    prices : ``q(m~_j)``.
    revenue : ``sum_j q(m~_j)`` (eq. 5).
    upper_bound : a certified upper bound on ``rev^OPT(n)`` (equal to ``revenue`` for exact solvers).
    method : the solver that produced it.
    """

    n: int
    curve: FloatArray
    allocations: IntArray
    prices: FloatArray
    revenue: float
    upper_bound: float
    method: str

    @property
    def gap(self) -> float:
        """Certified optimality gap ``upper_bound - revenue`` (0 for exact solvers)."""
        return max(0.0, self.upper_bound - self.revenue)


def _table(values: object) -> FloatArray:
    return check_value_table(values)


# ---------------------------------------------------------------------------------------------------
# E1 kernel: shortest-path prices for a batch of allocations
# ---------------------------------------------------------------------------------------------------
def ef_prices_batch(values: FloatArray, allocs: IntArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Max EF prices ``d(0 -> j)`` for each row of ``allocs`` (shape ``(K, n)``) and feasibility.

    Bellman-Ford from node 0, vectorised over the batch: arrays are laid out ``(node, node, K)`` so each
    relaxation is one contiguous length-K operation. In-place (Gauss-Seidel) relaxation reaches the
    shortest simple paths after ``n - 1`` rounds after the one-arc paths; one more round detects a
    negative cycle.
    """
    n = allocs.shape[1]
    cols = np.ascontiguousarray(allocs.T)  # (n, K)
    v = np.stack([values[j][cols] for j in range(n)])  # v[j, k] = v_j(m_k), shape (n, n, K)
    own = np.stack([v[j, j] for j in range(n)])  # v_j(m_j)
    w = own[None, :, :] - np.transpose(v, (1, 0, 2))  # w[k, j] = v_j(m_j) - v_j(m_k)
    d = own.copy()  # one-arc paths 0 -> j
    buf = np.empty(cols.shape[1])
    for _ in range(n - 1):
        for j in range(n):
            for k in range(n):
                if k != j:
                    np.add(d[k], w[k, j], out=buf)
                    np.minimum(d[j], buf, out=d[j])
    cycle = np.zeros(cols.shape[1], dtype=bool)
    for j in range(n):
        for k in range(n):
            if k != j:
                np.add(d[k], w[k, j], out=buf)
                cycle |= buf < d[j] - REV_TOL
    feasible = ~cycle & np.all(d >= -REV_TOL, axis=0)
    return np.maximum(d.T, 0.0), feasible


def ef_prices(values: object, allocations: object) -> FloatArray | None:
    """Revenue-maximising EF prices for a fixed allocation (solver E1), or ``None`` if none exist.

    >>> ef_prices([[0, .5, .6]], [2]).tolist()
    [0.6]
    """
    table = _table(values)
    alloc = np.asarray(allocations, dtype=np.int64).reshape(1, -1)
    if alloc.shape[1] != table.shape[0]:
        raise InvalidMarketError("allocations", f"need one per buyer ({table.shape[0]})")
    if np.any(alloc < 0) or np.any(alloc >= table.shape[1]):
        raise InvalidMarketError("allocations", f"must lie in 0..{table.shape[1] - 1}")
    prices, ok = ef_prices_batch(table, alloc)
    return prices[0] if bool(ok[0]) else None


def audit_scheme(values: object, allocations: object, prices: object) -> float:
    """Worst IRB/EFB violation of a scheme (0 when envy-free and individually rational)."""
    table = _table(values)
    m = np.asarray(allocations, dtype=np.int64)
    p = np.asarray(prices, dtype=np.float64)
    buyers = np.arange(table.shape[0])
    own = table[buyers, m] - p
    other = table[buyers[:, None], m[None, :]] - p[None, :]
    return float(max(0.0, -own.min(), (other.max(axis=1) - own).max()))


# ---------------------------------------------------------------------------------------------------
# Lemma 1 and the buyers' choice rule (4)
# ---------------------------------------------------------------------------------------------------
def lemma1_curve(allocations: object, prices: object, n: int) -> FloatArray:
    """Lemma 1's curve: ``q(m) = p_k`` on ``(m_{k-1}, m_k]`` (buyers sorted by m), top step extended to n.

    >>> lemma1_curve([1, 3], [0.5, 0.9], 4).tolist()
    [0.0, 0.5, 0.9, 0.9, 0.9]
    """
    m = np.asarray(allocations, dtype=np.int64)
    p = np.asarray(prices, dtype=np.float64)
    if np.any(m > n):
        raise InvalidMarketError("allocations", f"exceed the data available ({n})")
    curve = np.zeros(n + 1)
    order = np.argsort(m, kind="stable")
    prev = 0
    for j in order:
        if m[j] > prev:
            curve[prev + 1 : m[j] + 1] = p[j]
            prev = int(m[j])
    top = p[order[-1]] if m.size and m[order[-1]] > 0 else 0.0
    curve[prev + 1 :] = top
    curve = np.maximum.accumulate(curve)  # non-decreasing (EF prices already are; guards rounding)
    return curve


def buyer_choices(values: object, curve: object) -> IntArray:
    """Eq. (4): ``max argmax_{m <= N} v_j(m) - q(m)`` with ties (within ``TIE_TOL``) to the largest m."""
    table = _table(values)
    q = np.asarray(curve, dtype=np.float64)
    n = q.size - 1
    if n >= table.shape[1]:
        raise InvalidMarketError("curve", f"longer than the valuation table ({table.shape[1] - 1})")
    util = table[:, : n + 1] - q[None, :]
    best = util.max(axis=1, keepdims=True)
    ok = util >= best - TIE_TOL
    return (n - np.argmax(ok[:, ::-1], axis=1)).astype(np.int64)


def scheme_from_curve(values: object, curve: object) -> tuple[IntArray, FloatArray]:
    """Lemma 1, converse direction: ``m_j = m~_j(N, q)`` and ``p_j = q(m_j)`` (an EF scheme)."""
    m = buyer_choices(values, curve)
    return m, np.asarray(curve, dtype=np.float64)[m]


def price_allocation(values: object, allocations: object, n: int, method: str = "E1") -> PricingResult:
    """E1 prices for an allocation, the Lemma-1 curve at ``n`` and the buyers' choices under it."""
    table = _table(values)
    prices = ef_prices(table, allocations)
    if prices is None:
        raise InvalidMarketError("allocations", "no envy-free prices exist for this allocation")
    curve = lemma1_curve(allocations, prices, n)
    choice = buyer_choices(table, curve)
    realised = curve[choice]
    rev = float(realised.sum())
    return PricingResult(n, curve, choice, realised, rev, rev, method)


# ---------------------------------------------------------------------------------------------------
# E1: enumeration of every allocation, all N at once
# ---------------------------------------------------------------------------------------------------
def _allocs_with_max(n: int, top: int, batch: int) -> Iterator[IntArray]:
    """Every allocation in ``{0..top}^n`` with maximum exactly ``top``, in a fixed order, in batches."""
    if top == 0:
        yield np.zeros((1, n), dtype=np.int64)
        return
    for i in range(n):  # i = first coordinate equal to top
        radices = [top] * i + [1] + [top + 1] * (n - 1 - i)
        count = int(np.prod(radices, dtype=np.int64))
        for start in range(0, count, batch):
            idx = np.arange(start, min(count, start + batch), dtype=np.int64)
            out = np.empty((idx.size, n), dtype=np.int64)
            for pos in range(n - 1, -1, -1):
                idx, out[:, pos] = np.divmod(idx, radices[pos])
            out[:, i] = top
            yield out


@dataclass(frozen=True, eq=False)
class RevenueCurve:
    """``rev^OPT(N)`` for ``N = 0..n_done`` with a maximising allocation per N (solver E1).

    ``n_done`` may be below the requested maximum when pruning proved that larger N
    cannot be profit-optimal; ``evaluated`` counts the allocations priced.
    """

    revenue: FloatArray
    allocations: IntArray
    n_done: int
    evaluated: int


def exact_revenue_curve(
    values: object,
    n_max: int,
    *,
    cost: float | None = None,
    n_min: int = 1,
    batch: int = BATCH,
) -> RevenueCurve:
    """E1 for every ``N <= n_max`` at once; with ``cost`` prune N that cannot beat the best profit
    ``max_{n_min <= N} rev^OPT(N) - cost N``."""
    table = _table(values)
    nb = table.shape[0]
    if n_max < 0 or n_max >= table.shape[1]:
        raise InvalidMarketError("n_max", f"must lie in 0..{table.shape[1] - 1}")
    sup_total = float(table[:, n_max].sum())
    best_rev = np.zeros(n_max + 1)
    best_alloc = np.zeros((n_max + 1, nb), dtype=np.int64)
    lb = -np.inf
    evaluated = 0
    n_done = n_max
    for top in range(n_max + 1):
        if cost is not None and top > max(n_min, 1) and sup_total - cost * top < lb - REV_TOL:
            n_done = top - 1
            break
        cur, cur_alloc = -np.inf, np.zeros(nb, dtype=np.int64)
        for allocs in _allocs_with_max(nb, top, batch):
            prices, ok = ef_prices_batch(table, allocs)
            evaluated += allocs.shape[0]
            rev = np.where(ok, prices.sum(axis=1), -np.inf)
            mx = rev.max()
            if mx > cur + REV_TOL:
                first = int(np.argmax(rev >= mx - REV_TOL))
                cur, cur_alloc = float(rev[first]), allocs[first].copy()
        if top > 0 and best_rev[top - 1] >= cur - REV_TOL:
            best_rev[top], best_alloc[top] = best_rev[top - 1], best_alloc[top - 1]
        else:
            best_rev[top], best_alloc[top] = cur, cur_alloc
        if cost is not None and top >= n_min:
            lb = max(lb, best_rev[top] - cost * top)
    return RevenueCurve(best_rev[: n_done + 1], best_alloc[: n_done + 1], n_done, evaluated)


def solve_exact(values: object, n: int) -> PricingResult:
    """Exact ``rev^OPT(n)`` by E1 with the Lemma-1 curve and the buyers' choices (4)."""
    table = _table(values)
    rc = exact_revenue_curve(table, n)
    res = price_allocation(table, rc.allocations[n], n, method="E1")
    return res


def brute_force_lp(values: object, n: int) -> float:
    """Reference ``rev^OPT(n)`` by per-allocation linear programs (``scipy.optimize.linprog``).

    Independent of the shortest-path argument: for each allocation in ``{0..n}^|B|`` maximise
    ``sum p`` subject to IRB, EFB and ``0 <= p <= 1``. Tiny instances only.
    """
    from itertools import product

    from scipy.optimize import linprog

    table = _table(values)
    nb = table.shape[0]
    best = 0.0
    for alloc in product(range(n + 1), repeat=nb):
        m = np.array(alloc)
        own = table[np.arange(nb), m]
        rows, rhs = [], []
        for j in range(nb):
            r = np.zeros(nb)
            r[j] = 1.0
            rows.append(r)
            rhs.append(own[j])  # p_j <= v_j(m_j)
            for k in range(nb):
                if k != j:
                    r = np.zeros(nb)
                    r[j], r[k] = 1.0, -1.0
                    rows.append(r)
                    rhs.append(own[j] - table[j, m[k]])  # p_j - p_k <= v_j(m_j) - v_j(m_k)
        lp = linprog(-np.ones(nb), A_ub=np.array(rows), b_ub=np.array(rhs), bounds=[(0, 1)] * nb)
        if lp.status == 0:
            best = max(best, -float(lp.fun))
    return best
