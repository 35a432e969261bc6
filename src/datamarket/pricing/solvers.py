r"""More ordered-item pricing solvers (Chen et al., Sec. 2.2): E2, E3 and approximations.

* :func:`solve_milp` (E2, exact, any valuations): binaries ``x_{j,m}`` (one-hot allocation) and prices
  ``p_j in [0, 1]`` with ``sum_m x_jm = 1``, IRB ``sum_m v_j(m) x_jm - p_j >= 0`` and EFB
  ``sum_m v_j(m)(x_jm - x_km) - p_j + p_k >= 0`` (linear because ``v_j(m_k) = sum_m v_j(m) x_km``);
  maximise ``sum_j p_j`` with HiGHS (``scipy.optimize.milp``), whose dual bound certifies optimality.
  :func:`milp_profit` adds one-hot ``z_N`` and capacity ``x_jm <= sum_{N >= m} z_N`` and maximises
  ``sum_j p_j - c_1 sum_N N z_N`` (eq. 3) directly.
* :func:`dp_revenue_curve` / :func:`solve_dp` (E3, exact **only** under increasing differences: buyers can
  be ordered so that ``v_{(i+1)} - v_{(i)}`` is non-decreasing in m; checked, else ``InvalidMarketError``).
  Then allocations are monotone in that order and only local downward IC binds, so
  ``rev = sum_i (n - i + 1)[v_(i)(m_i) - v_(i)(m_{i-1})]`` and
  ``F_i(m) = max_{m' <= m}[F_{i-1}(m') - w_i v_(i)(m')] + w_i v_(i)(m)``, ``w_i = n - i + 1``:
  ``O(n N)`` for all N at once.
* :func:`solve_support` (approximation): allocations restricted to
  ``Q_delta = {0} U {ceil((1 + delta)^i)} U {N}``, priced exactly by E1 (a feasible EF scheme, hence a
  lower bound). Its gap is certified by an upper bound: ``sum_j v_j(N)`` and, when ``certify_seconds``
  is given, the MILP's dual bound after that time.

>>> import numpy as np
>>> h = np.array([0, .3, .5, .6, .65])
>>> values = np.vstack([0.5 * h, 0.8 * h, h])      # v_j = alpha_j h: increasing differences
>>> round(solve_dp(values, 4).revenue, 6) == round(solve_milp(values, 4).revenue, 6)
True
"""

from __future__ import annotations

from itertools import product

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, IntArray
from datamarket.pricing.ordered_item import (
    REV_TOL,
    PricingResult,
    _table,
    ef_prices_batch,
    price_allocation,
)


def _milp_model(
    table: FloatArray, n: int, cost: float | None
) -> tuple[FloatArray, LinearConstraint, IntArray, Bounds, int]:
    nb = table.shape[0]
    nm = n + 1
    nx = nb * nm
    nz = n if cost is not None else 0  # z_1..z_n
    nvar = nx + nb + nz
    c = np.zeros(nvar)
    c[nx : nx + nb] = -1.0
    if cost is not None:
        c[nx + nb :] = cost * np.arange(1, n + 1)
    rows = nb + nb + nb * (nb - 1) + (nx + 1 if cost is not None else 0)
    a = lil_matrix((rows, nvar))
    lo, hi = np.zeros(rows), np.zeros(rows)
    r = 0
    v = table[:, :nm]
    for j in range(nb):  # one-hot
        a[r, j * nm : (j + 1) * nm] = 1.0
        lo[r] = hi[r] = 1.0
        r += 1
    for j in range(nb):  # IRB
        a[r, j * nm : (j + 1) * nm] = v[j]
        a[r, nx + j] = -1.0
        lo[r], hi[r] = 0.0, np.inf
        r += 1
    for j in range(nb):  # EFB
        for k in range(nb):
            if j == k:
                continue
            a[r, j * nm : (j + 1) * nm] = v[j]
            a[r, k * nm : (k + 1) * nm] = -v[j]
            a[r, nx + j] = -1.0
            a[r, nx + k] = 1.0
            lo[r], hi[r] = 0.0, np.inf
            r += 1
    if cost is not None:
        for j in range(nb):  # capacity x_jm <= sum_{N >= m} z_N (m >= 1)
            for m in range(1, nm):
                a[r, j * nm + m] = 1.0
                a[r, nx + nb + m - 1 : nx + nb + n] = -1.0
                lo[r], hi[r] = -np.inf, 0.0
                r += 1
        a[r, nx + nb :] = 1.0
        lo[r] = hi[r] = 1.0
        r += 1
    cons = LinearConstraint(a[:r].tocsr(), lo[:r], hi[:r])
    integrality = np.ones(nvar, dtype=np.int64)
    integrality[nx : nx + nb] = 0
    bounds = Bounds(np.zeros(nvar), np.ones(nvar))
    return c, cons, integrality, bounds, nx


def _decode(x: FloatArray, nb: int, nm: int) -> IntArray:
    return np.argmax(x[: nb * nm].reshape(nb, nm), axis=1).astype(np.int64)


def solve_milp(values: object, n: int, *, time_limit: float | None = None) -> PricingResult:
    """E2: ``rev^OPT(n)`` by a mixed-integer program; the allocation is repriced by E1 and the
    result carries HiGHS's dual bound as ``upper_bound``."""
    table = _table(values)
    if not 1 <= n < table.shape[1]:
        raise InvalidMarketError("n", f"must lie in 1..{table.shape[1] - 1}")
    c, cons, integ, bounds, _ = _milp_model(table, n, None)
    opts: dict[str, float] = {"mip_rel_gap": 0.0}
    if time_limit is not None:
        opts["time_limit"] = float(time_limit)
    res = milp(c, constraints=cons, integrality=integ, bounds=bounds, options=opts)
    if res.x is None:
        raise InvalidMarketError("n", f"MILP found no solution ({res.message})")
    alloc = _decode(res.x, table.shape[0], n + 1)
    out = price_allocation(table, alloc, n, method="E2-milp")
    bound = -float(getattr(res, "mip_dual_bound", res.fun))
    return PricingResult(
        out.n, out.curve, out.allocations, out.prices, out.revenue, max(bound, out.revenue), out.method
    )


def milp_profit(values: object, cost: float, n_max: int) -> tuple[int, float, float]:
    """E2 with one-hot ``z_N``: ``(N_OPT, profit, certified upper bound)`` of eq. (3) over ``1..n_max``.

    The profit is that of the MILP's allocation repriced exactly by E1, as in
    :func:`solve_milp`: HiGHS accepts constraint violations up to its feasibility tolerance (1e-6), so
    its raw objective can exceed the true optimum (review: ``-0.0625`` against the exact
    ``-0.0625012`` when a price overshot ``v_j(m_j)`` by 4e-7)."""
    table = _table(values)
    if cost <= 0:
        raise InvalidMarketError("cost", "must be positive")
    c, cons, integ, bounds, nx = _milp_model(table, n_max, cost)
    res = milp(c, constraints=cons, integrality=integ, bounds=bounds, options={"mip_rel_gap": 0.0})
    if res.x is None:
        raise InvalidMarketError("n_max", f"MILP found no solution ({res.message})")
    nb = table.shape[0]
    n_opt = int(np.argmax(res.x[nx + nb :])) + 1
    alloc = _decode(res.x, nb, n_max + 1)
    profit = price_allocation(table, alloc, n_opt, method="E2-milp").revenue - cost * n_opt
    bound = -float(getattr(res, "mip_dual_bound", res.fun))
    return n_opt, profit, max(bound, profit)


# ---------------------------------------------------------------------------------------------------
# E3: single-crossing dynamic programme
# ---------------------------------------------------------------------------------------------------
def increasing_differences_order(values: object) -> IntArray | None:
    """An order of buyers with increasing differences (``v_(i+1) - v_(i)`` non-decreasing), or ``None``."""
    table = _table(values)
    order = np.lexsort((np.arange(table.shape[0]), table[:, -1] - table[:, 0]))
    diffs = np.diff(table[order], axis=0)  # v_(i+1) - v_(i), as functions of m
    if diffs.size and np.any(np.diff(diffs, axis=1) < -REV_TOL):
        return None
    return order.astype(np.int64)


def dp_revenue_curve(values: object) -> tuple[FloatArray, IntArray]:
    """E3 for every N: ``rev^OPT(N)`` (N = 0..table width - 1) and a maximising allocation per N.

    Raises ``InvalidMarketError`` when the valuations lack increasing differences (the DP is then not
    exact)."""
    table = _table(values)
    order = increasing_differences_order(table)
    if order is None:
        raise InvalidMarketError(
            "valuations", "the DP solver needs increasing differences (single crossing); use E1 or E2"
        )
    nb, nm = table.shape
    w = nb - np.arange(nb)
    f = w[0] * table[order[0]]
    back = np.zeros((nb, nm), dtype=np.int64)
    for i in range(1, nb):
        vi = table[order[i]]
        g = f - w[i] * vi
        arg = np.zeros(nm, dtype=np.int64)
        best = np.empty(nm)
        cur, cur_arg = -np.inf, 0
        for m in range(nm):  # running max with the first maximiser
            if g[m] > cur + REV_TOL:
                cur, cur_arg = g[m], m
            best[m], arg[m] = cur, cur_arg
        back[i] = arg
        f = best + w[i] * vi
    rev = np.empty(nm)
    allocs = np.zeros((nm, nb), dtype=np.int64)
    cur, cur_arg = -np.inf, 0
    for n in range(nm):
        if f[n] > cur + REV_TOL:
            cur, cur_arg = f[n], n
        rev[n] = cur
        m = cur_arg
        for i in range(nb - 1, -1, -1):
            allocs[n, order[i]] = m
            m = back[i, m] if i > 0 else 0
    return rev, allocs


def solve_dp(values: object, n: int) -> PricingResult:
    """E3 at ``n`` (exact under increasing differences), repriced with E1 and the Lemma-1 curve."""
    table = _table(values)
    rev, allocs = dp_revenue_curve(table[:, : n + 1])
    out = price_allocation(table, allocs[n], n, method="E3-dp")
    return PricingResult(
        out.n, out.curve, out.allocations, out.prices, out.revenue, max(out.revenue, rev[n]), out.method
    )


# ---------------------------------------------------------------------------------------------------
# Approximation: support restriction with a certified gap
# ---------------------------------------------------------------------------------------------------
def support_grid(n: int, delta: float) -> IntArray:
    """``Q_delta = {0} U {ceil((1 + delta)^i)} U {n}``.

    >>> support_grid(10, 0.5).tolist()
    [0, 1, 2, 3, 4, 6, 8, 10]
    """
    if delta <= 0:
        raise InvalidMarketError("delta", "must be positive")
    pts = {0, n}
    i = 0
    while True:
        q = int(np.ceil((1 + delta) ** i - 1e-12))
        if q >= n:
            break
        pts.add(q)
        i += 1
    return np.array(sorted(pts), dtype=np.int64)


def solve_support(
    values: object, n: int, delta: float = 0.1, *, certify_seconds: float | None = None
) -> PricingResult:
    """Best E1 scheme over allocations in ``Q_delta^|B|``; ``upper_bound`` certifies the
    gap (``sum_j v_j(n)``, tightened by the MILP dual bound when ``certify_seconds`` is given)."""
    table = _table(values)
    nb = table.shape[0]
    grid = support_grid(n, delta)
    best, best_alloc = -np.inf, np.zeros(nb, dtype=np.int64)
    combos = np.array(list(product(range(grid.size), repeat=nb)), dtype=np.int64)
    for start in range(0, combos.shape[0], 1 << 16):
        allocs = grid[combos[start : start + (1 << 16)]]
        prices, ok = ef_prices_batch(table, allocs)
        rev = np.where(ok, prices.sum(axis=1), -np.inf)
        mx = rev.max()
        if mx > best + REV_TOL:
            first = int(np.argmax(rev >= mx - REV_TOL))
            best, best_alloc = float(rev[first]), allocs[first].copy()
    out = price_allocation(table, best_alloc, n, method=f"support(delta={delta})")
    upper = float(table[:, n].sum())
    if certify_seconds is not None:
        c, cons, integ, bounds, _ = _milp_model(table, n, None)
        res = milp(
            c, constraints=cons, integrality=integ, bounds=bounds, options={"time_limit": certify_seconds}
        )
        dual = getattr(res, "mip_dual_bound", None)
        if dual is not None and np.isfinite(dual):
            upper = min(upper, -float(dual))
    return PricingResult(
        out.n, out.curve, out.allocations, out.prices, out.revenue, max(upper, out.revenue), out.method
    )
