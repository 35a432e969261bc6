r"""Exact Shapley values of training points for a K-nearest-neighbour classifier, O(N log N) per test point.

Jia, Dao, Wang, Hubis, Gurel, Li, Zhang, Spanos & Song 2019, "Efficient task-specific data valuation
for nearest neighbor algorithms", PVLDB 12(11), Theorem 1. The utility of a training subset
:math:`S` on a test point :math:`(x, y)` is the likelihood that the unweighted K-NN classifier
trained on :math:`S` gives the right label,
:math:`v(S) = \frac1K \sum_{k=1}^{\min(K,|S|)} \mathbb 1[y_{\alpha_k(S)} = y]`.
With the training points sorted by distance to :math:`x` (:math:`\alpha_1` the nearest), the exact
Shapley values satisfy the recursion

.. math::
   s_{\alpha_N} = \frac{\mathbb 1[y_{\alpha_N} = y]}{\max(N, K)}, \qquad
   s_{\alpha_i} = s_{\alpha_{i+1}} + \frac{\mathbb 1[y_{\alpha_i} = y] - \mathbb 1[y_{\alpha_{i+1}} = y]}{K}
                  \cdot \frac{\min(K, i)}{i},

and the value for a test set is the mean over its points (linearity). (Jia et al. write
:math:`1/N` for the farthest point, which assumes :math:`N \ge K`; in general the farthest point
changes the utility, by :math:`1/K`, only when fewer than :math:`K` others precede it, which a uniform
coalition size does with probability :math:`\min(K, N)/N`.)

Tie rule
--------
Training points at exactly equal (computed) distance to a test point are ordered by training index,
ascending: :math:`\alpha` sorts by the key (distance, index). This fixes :math:`\alpha_k(S)` and so the
utility itself (the K-NN classifier "takes the lower index first"), and makes the values independent
of the sorting algorithm, the block size and the number of threads. Every distance sort in this module
follows it: the vectorised kernel and the reference loop :func:`knn_shapley_reference` agree to
rounding (1e-12) on data with tied distances. Ties are exact equalities of the squared distances of
step 1; with features whose squared distances are exactly representable (integer features of
moderate size, duplicated points), geometric ties are exact ties.

Algorithm (vectorised over blocks of test points)
-------------------------------------------------
1. Squared Euclidean distances of a block of test points to all training points
   (:math:`\|a\|^2 + \|b\|^2 - 2 a^\top b`, one matrix product).
2. Argsort of each row by (distance, index): numpy's default sort, then a stable sort of the rows
   that hold a tie (rows without a tie have one sorted order, so the fast unstable sort is exact there;
   real-valued data rarely pays for the stable sort).
3. The recursion as a reversed cumulative sum of the increments, for all rows at once.
4. Scatter each row back to training order and add it up (one weighted ``bincount``).
5. Blocks run on ``n_jobs`` threads (numpy releases the GIL in sorting and ufuncs); the block sums
   are added in block order, so the result does not depend on ``n_jobs``.

Cost :math:`O(N \log N)` per test point and :math:`O(B N)` memory for a block of :math:`B` rows.

Certificate: the result records :math:`v(N)` (the mean over test points of the label matches among
the :math:`\min(K, N)` nearest, computed directly from the sorted labels, not by the recursion) and
:math:`v(\emptyset) = 0`, so ``result.certificate`` checks efficiency,
:math:`\sum_i s_i = v(N) - v(\emptyset)` (:mod:`datamarket.valuation.certificate`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.valuation.result import ValuationResult, exact_result


def sq_distances(
    xb: NDArray[np.float64], xtr: NDArray[np.float64], sq_tr: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared distances of the rows of ``xb`` to the training rows (step 1; ``sq_tr`` = their norms²)."""
    d2: NDArray[np.float64] = sq_tr[None, :] - 2.0 * (xb @ xtr.T) + np.einsum("ij,ij->i", xb, xb)[:, None]
    return d2


def neighbour_order(d2: NDArray[np.float64]) -> NDArray[np.intp]:
    """Per row, the training indices sorted by (distance, index): the module's tie rule (step 2).

    Equal to ``np.argsort(d2, axis=1, kind="stable")``; the stable sort only runs on rows with a tie.

    >>> neighbour_order(np.array([[1.0, 0.0, 1.0, 0.0]])).tolist()
    [[1, 3, 0, 2]]
    """
    order: NDArray[np.intp] = np.argsort(d2, axis=1)
    srt = np.take_along_axis(d2, order, axis=1)
    tied = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    if np.any(tied):
        order[tied] = np.argsort(d2[tied], axis=1, kind="stable")
    return order


def _knn_block(
    d2: NDArray[np.float64], y_train: NDArray[Any], y_test: NDArray[Any], k: int
) -> tuple[NDArray[np.float64], float]:
    """Sum over the block's test points of the exact values (steps 2-4), and of ``v(N)``."""
    b, n = d2.shape
    order = neighbour_order(d2)  # ties by training index, ascending
    match = (y_train[order] == y_test[:, None]).astype(np.float64)  # (b, n), rank order
    i = np.arange(1, n, dtype=np.float64)  # ranks 1..N-1 (1-based)
    inc = (match[:, :-1] - match[:, 1:]) * (np.minimum(k, i) / (k * i))
    s = np.empty((b, n))
    s[:, -1] = match[:, -1] / max(n, k)  # min(K, N) / (K N) = 1 / max(N, K)
    # s_i = s_N + sum_{j >= i} inc_j: reversed cumulative sum
    s[:, :-1] = s[:, -1:] + np.cumsum(inc[:, ::-1], axis=1)[:, ::-1]
    total: NDArray[np.float64] = np.bincount(order.ravel(), weights=s.ravel(), minlength=n).astype(np.float64)
    # v(N) on each test point, straight from its definition (the labels of the min(K, N) nearest)
    v_full = float(match[:, : min(k, n)].sum()) / k
    return total, v_full


def knn_shapley(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    k: int = 5,
    block: int = 64,
    n_jobs: int = 1,
) -> ValuationResult:
    """Exact K-NN Shapley value of every training point (Jia et al. 2019, Theorem 1).

    Deterministic (no sampling); ``evaluations`` is 0 (no model is fitted).

    >>> x = np.array([[0.0], [1.0], [2.0]]); y = np.array([0, 0, 1])
    >>> knn_shapley(x, y, np.array([[0.1]]), np.array([0]), k=1).values.round(4).tolist()
    [0.5, 0.5, 0.0]
    """
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = _checked(x_train, y_train, x_test, y_test, k)
    if block < 1:
        raise ConfigurationError("k", f"k and block must be positive integers, got block={block!r}")
    if n_jobs < 1:
        raise ConfigurationError("n_jobs", f"must be >= 1, got {n_jobs}")
    n = xtr.shape[0]
    sq_tr = np.einsum("ij,ij->i", xtr, xtr)

    def one(lo: int) -> tuple[NDArray[np.float64], float]:
        return _knn_block(sq_distances(xte[lo : lo + block], xtr, sq_tr), ytr, yte[lo : lo + block], int(k))

    starts = range(0, xte.shape[0], block)
    if n_jobs == 1:
        parts = [one(lo) for lo in starts]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_jobs) as pool:
            parts = list(pool.map(one, starts))
    total = np.zeros(n)
    v_full = 0.0
    for p, v in parts:  # fixed order: bitwise the same for any n_jobs
        total += p
        v_full += v
    m = xte.shape[0]
    return _result(total / m, v_full / m, int(k), m, time.perf_counter() - t0)


def _result(values: NDArray[np.float64], v_full: float, k: int, m: int, elapsed: float) -> ValuationResult:
    n = values.size
    names = tuple(f"point_{i}" for i in range(n))
    res = exact_result("knn_shapley", names, values, evaluations=0, elapsed=elapsed)
    res = replace(
        res,
        utility_full=v_full,
        utility_empty=0.0,
        # rounding: per test point, each s_i is a running sum of up to N terms of magnitude <= 1
        # (N^2 terms in all over the N values), then a mean over the m test points and a sum of N values
        efficiency_terms=n * n + n * m + n,
    )
    res.extra["k"] = k
    return res


def _checked(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, k: Any
) -> tuple[NDArray[np.float64], NDArray[Any], NDArray[np.float64], NDArray[Any]]:
    xtr = np.asarray(x_train, dtype=np.float64)
    xte = np.asarray(x_test, dtype=np.float64)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise InvalidMarketError("x", "training and test features must be 2-d with the same columns")
    if ytr.shape != (xtr.shape[0],) or yte.shape != (xte.shape[0],) or xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise InvalidMarketError("y", "need one label per (non-empty) training and test row")
    if not (np.all(np.isfinite(xtr)) and np.all(np.isfinite(xte))):
        raise InvalidMarketError("x", "features must be finite")
    if not isinstance(k, int | np.integer) or k < 1:
        raise ConfigurationError("k", f"k must be a positive integer, got k={k!r}")
    return xtr, ytr, xte, yte


def knn_shapley_reference(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, k: int = 5
) -> ValuationResult:
    """The same values by Jia et al. 2019's Algorithm 1 as usually written: one test point at a time,
    the recursion in a Python loop (slow; the reference the vectorised kernel is tested against).

    The neighbour order is ``np.lexsort((index, distance))``: the tie rule stated directly, not through
    a stable sort. Distances are those of step 1 (:func:`sq_distances`, one test point at a time).

    >>> x = np.array([[0.0], [1.0], [2.0]]); y = np.array([0, 0, 1])
    >>> knn_shapley_reference(x, y, np.array([[0.1]]), np.array([0]), k=1).values.round(4).tolist()
    [0.5, 0.5, 0.0]
    """
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = _checked(x_train, y_train, x_test, y_test, k)
    n, kk = xtr.shape[0], int(k)
    sq_tr = np.einsum("ij,ij->i", xtr, xtr)
    idx = np.arange(n)
    out = np.zeros(n)
    v_full = 0.0
    for t in range(xte.shape[0]):
        d2 = sq_distances(xte[t : t + 1], xtr, sq_tr)[0]
        order = np.lexsort((idx, d2))  # last key first: by distance, then by index
        match = [float(ytr[j] == yte[t]) for j in order]
        s = [0.0] * n
        s[n - 1] = match[n - 1] / max(n, kk)
        for i in range(n - 2, -1, -1):  # 0-based position i is rank i + 1
            s[i] = s[i + 1] + (match[i] - match[i + 1]) / kk * min(kk, i + 1) / (i + 1)
        for pos, j in enumerate(order):
            out[j] += s[pos]
        v_full += sum(match[: min(kk, n)]) / kk
    m = xte.shape[0]
    return _result(out / m, v_full / m, kk, m, time.perf_counter() - t0)
