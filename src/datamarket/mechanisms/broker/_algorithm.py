"""Algorithm 1 of Chen et al. (profit-optimal envy-free pricing with non-strategic contributors).

Line numbers refer to the paper's Algorithm 1:

2. for ``N in 1..floor(|B| / c_1)`` (with ``N >= n_min``; Algorithm 2 needs ``n_min = 2``):
3. ``q_N = A(v, N, eps)`` -- an ordered-item pricing oracle: E1 (exact enumeration), E2 (MILP), E3 (DP,
   increasing differences only), the support restriction with its certified gap, or
   ``auto`` (E1 when its pruned enumeration, ``e1_workload``, is small, else E2);
   the curve is Lemma 1's curve of the solver's scheme;
4. ``m_{N,j} = max argmax_{m <= N} v_j(m) - q_N(m)`` (eq. 4, ties to the largest m);
5. ``profit_N = sum_j q_N(m_{N,j}) - c_1 N``;
6. ``N+ =`` the **smallest** argmax of ``profit_N`` (the printed range ``|B|/N^tot`` to
   ``floor(|B|/c_1)``; ties compared with tolerance 1e-12);
7. ``m_j+ = m_{N+,j}``, ``q_j+ = q_{N+}(m_j+)``.

The range is pruned rigorously: with E1 ``profit_N <= sum_j sup v_j - c_1 N`` stops the
enumeration; with E2 and the support restriction ``N`` with ``sum_j v_j(N) - c_1 N`` below the best
profit found so far is skipped (its entry in ``profits`` is ``nan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.pricing.ordered_item import (
    REV_TOL,
    buyer_choices,
    ef_prices,
    exact_revenue_curve,
    lemma1_curve,
)
from datamarket.pricing.solvers import dp_revenue_curve, solve_milp, solve_support

SOLVERS = ("auto", "E1", "E2", "E3", "support")
#: ``auto`` uses E1 while the allocations it enumerates after pruning (``e1_workload``) stay below
#: ``max(AUTO_E1_LIMIT, AUTO_E1_WORK / |B|^2)``, else E2. Pricing one allocation costs about ``|B|^2``
#: operations (measured: 16M allocations/s with 2 buyers, 9M/s with 3, 2.6M/s with 5), while E2 solves
#: one MILP per N, which takes minutes when a few buyers meet thousands of N.
AUTO_E1_LIMIT = 5_000_000
AUTO_E1_WORK = 25 * AUTO_E1_LIMIT


@dataclass(frozen=True, eq=False)
class Algorithm1Result:
    """Output of Algorithm 1 plus its diagnostics.

    ``profits[N]`` is ``profit_N`` for ``N = 0..n_searched`` (``nan`` at 0; entries pruned by the bound
    ``profit_N <= sum_j v_j(N) - c_1 N`` are absent). ``n_plus``/``profit`` maximise over
    ``N >= n_min``; ``opt_n``/``opt_profit`` over ``N >= 1`` (OPT of eq. 3 with an exact oracle).
    ``gaps[N]`` is the oracle's certified revenue gap at N (0 if exact).
    """

    n_plus: int
    allocations: NDArray[np.int64]
    prices: NDArray[np.float64]
    curve: NDArray[np.float64]
    profit: float
    opt_profit: float
    opt_n: int
    profits: NDArray[np.float64]
    revenues: NDArray[np.float64]
    gaps: NDArray[np.float64]
    n_cap: int
    n_searched: int
    solver: str


def n_range_cap(n_buyers: int, c1: float) -> int:
    """Line 2's upper end ``floor(|B| / c_1)``."""
    return int(np.floor(n_buyers / c1 + 1e-12))


def e1_workload(values: NDArray[np.float64], c1: float, n_cap: int, n_min: int = 1) -> float:
    """Upper bound on the number of allocations E1 enumerates once its pruning applies.

    E1 stops at the first ``N`` with ``sum_j v_j(n_cap) - c_1 N`` below the best profit so far. Any
    feasible scheme's profit ``LB`` bounds that stop: here the best single bundle ``N`` offered to all
    buyers at one price (the ``k``-th highest ``v_j(N)``, sold to ``k`` buyers; IRB and EFB hold
    trivially). So E1 never looks past ``N = floor((sum_j v_j(n_cap) - LB) / c_1) + 1`` and enumerates at
    most ``(N + 1)^|B|`` allocations. With few buyers and a tiny ``c_1`` this is far below
    ``(n_cap + 1)^|B|``, where one MILP per ``N`` would take minutes.
    """
    nb = values.shape[0]
    v = values[:, : n_cap + 1]
    ranked = -np.sort(-v, axis=0)
    uniform = (ranked * np.arange(1, nb + 1)[:, None]).max(axis=0) - c1 * np.arange(n_cap + 1)
    lb = float(uniform[max(n_min, 1) :].max())
    stop = min(n_cap, int(np.floor((float(v[:, n_cap].sum()) - lb) / c1)) + 1)
    # in log space: (stop + 1)^|B| overflows a float (OverflowError) for hundreds of buyers
    return float(np.exp(min(nb * np.log(stop + 1.0), 700.0)))


def algorithm1(
    values: NDArray[np.float64],
    c1: float,
    *,
    n_min: int = 1,
    solver: str = "auto",
    delta: float = 0.1,
) -> Algorithm1Result:
    """Run Algorithm 1 on a valuation table ``values[j, m]`` (at least ``floor(|B|/c_1) + 1`` columns)."""
    if solver not in SOLVERS:
        raise ConfigurationError("solver", f"unknown solver {solver!r} (one of {', '.join(SOLVERS)})")
    nb = values.shape[0]
    n_cap = n_range_cap(nb, c1)
    if n_cap < n_min:
        raise InvalidMarketError(
            "costs", f"floor(|B|/c_1) = {n_cap} < {n_min}: the cheapest cost is too high to collect data"
        )
    if values.shape[1] < n_cap + 1:
        raise InvalidMarketError("values", f"need columns for m = 0..{n_cap}")
    if solver == "auto":
        limit = max(AUTO_E1_LIMIT, AUTO_E1_WORK / nb**2)
        solver = "E1" if e1_workload(values, c1, n_cap, n_min) <= limit else "E2"
    n_done, allocs, gaps, skipped = _oracle(values, c1, n_cap, n_min, solver, delta)
    profits, revenues, curves = _profits(values, c1, n_done, allocs, skipped)
    valid = np.where(np.isnan(profits), -np.inf, profits)
    opt_n = int(np.argmax(valid >= valid.max() - REV_TOL))
    valid[: max(n_min, 1)] = -np.inf
    best = valid.max()
    n_plus = int(np.argmax(valid >= best - REV_TOL))
    q_plus = curves[n_plus]
    m_plus = buyer_choices(values, q_plus)
    return Algorithm1Result(
        n_plus=n_plus,
        allocations=m_plus,
        prices=q_plus[m_plus],
        curve=q_plus,
        profit=float(profits[n_plus]),
        opt_profit=float(profits[opt_n]),
        opt_n=opt_n,
        profits=profits,
        revenues=revenues,
        gaps=gaps[: n_done + 1],
        n_cap=n_cap,
        n_searched=n_done,
        solver=solver,
    )


def _oracle(
    values: NDArray[np.float64], c1: float, n_cap: int, n_min: int, solver: str, delta: float
) -> tuple[int, NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    """Lines 2-3: the oracle's allocation for each ``N`` up to the last one searched, with its optimality
    gap; E2 and the support solver skip the ``N`` that cannot beat the best profit so far."""
    nb = values.shape[0]
    gaps = np.zeros(n_cap + 1)
    skipped = np.zeros(n_cap + 1, dtype=bool)
    if solver == "E1":
        rc = exact_revenue_curve(values, n_cap, cost=c1, n_min=n_min)
        return rc.n_done, rc.allocations, gaps, skipped
    if solver == "E3":
        _, allocs = dp_revenue_curve(values[:, : n_cap + 1])
        return n_cap, allocs, gaps, skipped
    allocs = np.zeros((n_cap + 1, nb), dtype=np.int64)
    lb = -np.inf
    for n in range(1, n_cap + 1):
        # : profit_N <= sum_j v_j(N) - c_1 N; skip N that cannot reach the best so far
        if n > n_min and values[:, n].sum() - c1 * n < lb - REV_TOL:
            skipped[n] = True
            continue
        res = solve_milp(values, n) if solver == "E2" else solve_support(values, n, delta)
        allocs[n], gaps[n] = res.allocations, res.gap
        if n >= n_min:
            lb = max(lb, res.revenue - c1 * n)
    return n_cap, allocs, gaps, skipped


def _profits(
    values: NDArray[np.float64],
    c1: float,
    n_done: int,
    allocs: NDArray[np.int64],
    skipped: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[int, NDArray[np.float64]]]:
    """Lines 4-5: the buyers' choices from each ``N``'s curve (Lemma 1), the revenue and the profit."""
    profits = np.full(n_done + 1, np.nan)
    revenues = np.full(n_done + 1, np.nan)
    curves: dict[int, NDArray[np.float64]] = {}
    for n in range(1, n_done + 1):
        if skipped[n]:
            continue
        prices = ef_prices(values, allocs[n])
        if prices is None:  # cannot happen for an oracle returning a feasible scheme
            raise InvalidMarketError("solver", f"oracle returned an infeasible allocation at N={n}")
        q = lemma1_curve(allocs[n], prices, n)
        m = buyer_choices(values, q)
        revenues[n] = float(q[m].sum())
        profits[n] = revenues[n] - c1 * n
        curves[n] = q
    return profits, revenues, curves
