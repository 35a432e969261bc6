r"""Exact Shapley values of quantity games by dynamic programming (no enumeration of ``2^M`` coalitions).

A *quantity game* values a coalition by its total quantity: :math:`v(T) = f(\sum_{j \in T} q_j)` with
non-negative integers :math:`q_j` (Chaintreau et al.'s learning-curve markets,
:math:`v_g(T) = \rho_g G_g(\sum_{j\in T} x_{j,g})`, the balanced market of Chaintreau, Maio and Ziani,
WWW 2025). Grouped games :math:`v = \sum_g v_g` split by linearity of the Shapley value (Shapley 1953,
axiom of additivity).

For player :math:`i`, with :math:`c_{-i}(s, t)` the number of coalitions of the *other* players of size
:math:`s` and total :math:`t`,

.. math::
   \phi_i = \sum_{s=0}^{M-1} \frac{s!\,(M-1-s)!}{M!} \sum_t c_{-i}(s,t)\,\bigl(f(t+q_i) - f(t)\bigr)
          = \frac1M \sum_{s,t} p^{-i}_s(t)\,\bigl(f(t+q_i) - f(t)\bigr),

where :math:`p^{-i}_s(t) = c_{-i}(s,t) / \binom{M-1}{s}` is the distribution of the total of a uniformly
random size-:math:`s` coalition of the others.

Algorithm
---------
1. Evaluate :math:`f` once on :math:`0..\sum_j q_j` (vectorised).
2. Work with the normalised tables :math:`p_s` directly: adding a player with quantity :math:`q` to a
   table over :math:`n` players is the convex combination
   :math:`p'_s(t) = \frac{n+1-s}{n+1} p_s(t) + \frac{s}{n+1} p_{s-1}(t-q)` — no binomial coefficient is
   ever formed, so nothing overflows (:math:`\binom{200}{100} \approx 10^{59}`) and no cancellation
   occurs (all terms are non-negative).
3. Leave-one-out tables by divide and conquer: a node for players ``[lo, hi)`` holds the table of all
   players outside it; its children get it extended by the other half. Each leaf holds exactly
   :math:`p^{-i}`. Work :math:`O(M^2 Q \log M)` for total quantity :math:`Q`, memory
   :math:`O(M Q \log M)`, instead of redoing the :math:`O(M^2 Q)` programme per player.
   The last levels (blocks of at most ``LEAF_BLOCK`` players) sum over sizes in closed form
   (:func:`_leaf_block`) instead of extending the tables player by player.
4. :math:`\phi_i` from step 2's formula with the column sums :math:`\sum_s p^{-i}_s(t)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from datamarket.core.errors import InvalidMarketError
from datamarket.valuation.games import _names
from datamarket.valuation.result import ValuationResult, exact_result

LEAF_BLOCK = 6  # players per divide-and-conquer leaf block (2^(LEAF_BLOCK-1) shifted vectors each)
ValueOfTotal = Callable[[NDArray[np.int64]], Any]


def _quantities(q: Any, ndim: int) -> NDArray[np.int64]:
    try:
        arr = np.asarray(q)
    except (TypeError, ValueError) as exc:  # pragma: no cover - numpy accepts almost anything
        raise InvalidMarketError("quantities", f"must be numeric ({exc})") from None
    if arr.ndim != ndim or arr.size == 0:
        raise InvalidMarketError("quantities", f"must be a non-empty {ndim}-d array, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        raise InvalidMarketError("quantities", "must be finite numbers")
    if np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise InvalidMarketError("quantities", "must be non-negative integers")
    return arr.astype(np.int64)


def _add(p: NDArray[np.float64], n: int, q: int) -> NDArray[np.float64]:
    """Table over ``n`` players (shape ``(n+1, W)``) extended by a player with quantity ``q``."""
    rows, w = p.shape
    s = np.arange(rows + 1, dtype=np.float64)[:, None] / (n + 1)
    out = np.empty((rows + 1, w + q))
    np.multiply(p, 1.0 - s[:-1], out=out[:-1, :w])  # (n + 1 - s) / (n + 1)
    out[-1, :w] = 0.0
    out[:, w:] = 0.0
    tmp = np.multiply(p, s[1:])
    out[1:, q : q + w] += tmp
    return out


def _leaf(
    col: NDArray[np.float64], i: int, q: NDArray[np.int64], f: NDArray[np.float64], phi: NDArray[np.float64]
) -> None:
    t = np.arange(col.size)
    phi[i] = np.dot(col, f[t + q[i]] - f[t]) / q.size


def _leaf_block(
    p: NDArray[np.float64],
    n: int,
    lo: int,
    hi: int,
    q: NDArray[np.int64],
    f: NDArray[np.float64],
    phi: NDArray[np.float64],
) -> None:
    r"""Leaves ``lo..hi-1`` at once, without forming the extended tables (step 3's last levels).

    Extending a table over ``n`` players by ``m`` players and summing over sizes gives
    :math:`\sum_{A} \sum_s w_{|A|}(s)\, p_s(t - q_A)` over subsets :math:`A` of the added players, with
    :math:`w_a(s) = \binom{n}{s} / \binom{n+m}{s+a}` (computed in log space): ``m + 1`` weighted
    column sums of ``p`` (one matrix product), then one shifted vector per subset.
    """
    m = hi - lo - 1
    s = np.arange(p.shape[0], dtype=np.float64)
    logc = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    w = np.exp(logc(n, s)[None, :] - logc(n + m, s[None, :] + np.arange(m + 1)[:, None]))
    c = w @ p  # c[a] = sum_s w_a(s) p_s
    width = c.shape[1]
    for i in range(lo, hi):
        others = [j for j in range(lo, hi) if j != i]
        col = np.zeros(width + int(q[others].sum()))
        for sub in range(1 << m):
            members = [others[k] for k in range(m) if sub >> k & 1]
            shift = int(q[members].sum())
            col[shift : shift + width] += c[len(members)]
        _leaf(col, i, q, f, phi)


def _dc(
    p: NDArray[np.float64],
    n: int,
    lo: int,
    hi: int,
    q: NDArray[np.int64],
    f: NDArray[np.float64],
    phi: NDArray[np.float64],
) -> None:
    if hi - lo == 1:
        _leaf(p.sum(axis=0), lo, q, f, phi)
        return
    if hi - lo <= LEAF_BLOCK:
        _leaf_block(p, n, lo, hi, q, f, phi)
        return
    mid = (lo + hi) // 2
    left = p
    for j in range(mid, hi):
        left = _add(left, n + j - mid, int(q[j]))
    _dc(left, n + hi - mid, lo, mid, q, f, phi)
    right = p
    for j in range(lo, mid):
        right = _add(right, n + j - lo, int(q[j]))
    _dc(right, n + mid - lo, mid, hi, q, f, phi)


def _f_table(value_of_total: ValueOfTotal, total: int, field: str) -> NDArray[np.float64]:
    if not callable(value_of_total):
        raise InvalidMarketError(field, "must be a callable of an array of totals")
    t = np.arange(total + 1, dtype=np.int64)
    f = np.asarray(value_of_total(t), dtype=np.float64)
    if f.shape != t.shape:
        raise InvalidMarketError(field, f"must return one value per total, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise InvalidMarketError(field, "returned a non-finite value")
    return f


def _quantity_kernel(q: NDArray[np.int64], f: NDArray[np.float64]) -> NDArray[np.float64]:
    phi = np.empty(q.size)
    _dc(np.ones((1, 1)), 0, 0, q.size, q, f, phi)
    return phi


def quantity_game_shapley(
    quantities: Any,
    value_of_total: ValueOfTotal,
    *,
    names: Sequence[str] | None = None,
) -> ValuationResult:
    """Exact Shapley values of ``v(T) = value_of_total(sum_{j in T} quantities[j])``.

    ``value_of_total`` is called once, on the array ``0..sum(quantities)``, and must return one finite
    value per total. ``evaluations`` counts those values.

    >>> r = quantity_game_shapley([1, 2, 3], lambda t: np.sqrt(t))
    >>> bool(abs(r.values.sum() - np.sqrt(6)) < 1e-12)
    True
    >>> quantity_game_shapley([2, 2], lambda t: t ** 2).values.tolist()   # symmetric players
    [8.0, 8.0]
    """
    t0 = time.perf_counter()
    q = _quantities(quantities, 1)
    player_names = _names(q.size, names)
    f = _f_table(value_of_total, int(q.sum()), "value_of_total")
    phi = _quantity_kernel(q, f)
    res = exact_result(
        "quantity_shapley", player_names, phi, evaluations=f.size, elapsed=time.perf_counter() - t0
    )
    res.extra["efficiency_gap"] = float(phi.sum() - (f[-1] - f[0]))
    return res


def grouped_quantity_game_shapley(
    quantities: Any,
    value_of_total: ValueOfTotal | Sequence[ValueOfTotal],
    *,
    names: Sequence[str] | None = None,
) -> ValuationResult:
    """Exact Shapley values of ``v(T) = sum_g f_g(sum_{j in T} quantities[j, g])`` (linearity).

    ``quantities`` has shape ``(M, G)``; ``value_of_total`` is one callable per group (or one callable
    used for every group). Per-group values are in ``extra["per_group"]`` (shape ``(M, G)``).

    >>> r = grouped_quantity_game_shapley([[1, 0], [0, 2]], [lambda t: 1.0 * t, lambda t: 3.0 * t])
    >>> r.values.tolist()
    [1.0, 6.0]
    """
    t0 = time.perf_counter()
    q = _quantities(quantities, 2)
    m, g = q.shape
    player_names = _names(m, names)
    fns = [value_of_total] * g if callable(value_of_total) else list(value_of_total)
    if len(fns) != g:
        raise InvalidMarketError("value_of_total", f"need one function per group ({g}), got {len(fns)}")
    per_group = np.empty((m, g))
    evals, gap = 0, 0.0
    for k in range(g):
        f = _f_table(fns[k], int(q[:, k].sum()), f"value_of_total[{k}]")
        per_group[:, k] = _quantity_kernel(q[:, k], f)
        evals += f.size
        gap += f[-1] - f[0]
    phi = per_group.sum(axis=1)
    res = exact_result(
        "grouped_quantity_shapley", player_names, phi, evaluations=evals, elapsed=time.perf_counter() - t0
    )
    res.extra["per_group"] = per_group
    res.extra["efficiency_gap"] = float(phi.sum() - gap)
    return res
