r"""Exact Shapley values of training points for a K-nearest-neighbour classifier, O(N log N) per test point.

Jia, Dao, Wang, Hubis, Gurel, Li, Zhang, Spanos & Song 2019, "Efficient task-specific data valuation
for nearest neighbor algorithms", PVLDB 12(11), Theorem 1. The utility of a training subset
:math:`S` on a test point :math:`(x, y)` is the likelihood that the unweighted K-NN classifier
trained on :math:`S` gives the right label,
:math:`v(S) = \frac1K \sum_{k=1}^{\min(K,|S|)} \mathbb 1[y_{\alpha_k(S)} = y]`.
With the training points sorted by distance to :math:`x` (:math:`\alpha_1` the nearest), the exact
Shapley values satisfy the recursion

.. math::
   s_{\alpha_N} = \frac{\mathbb 1[y_{\alpha_N} = y]}{N}, \qquad
   s_{\alpha_i} = s_{\alpha_{i+1}} + \frac{\mathbb 1[y_{\alpha_i} = y] - \mathbb 1[y_{\alpha_{i+1}} = y]}{K}
                  \cdot \frac{\min(K, i)}{i},

and the value for a test set is the mean over its points (linearity).

Algorithm (vectorised over blocks of test points)
-------------------------------------------------
1. Squared Euclidean distances of a block of test points to all training points
   (:math:`\|a\|^2 + \|b\|^2 - 2 a^\top b`, one matrix product).
2. Argsort of each row (introsort: deterministic; points at exactly equal distance, where the
   utility itself depends on an arbitrary order, are ordered arbitrarily but reproducibly).
3. The recursion as a reversed cumulative sum of the increments, for all rows at once.
4. Scatter each row back to training order and add it up (one weighted ``bincount``).
5. Blocks run on ``n_jobs`` threads (numpy releases the GIL in sorting and ufuncs); the block sums
   are added in block order, so the result does not depend on ``n_jobs``.

Cost :math:`O(N \log N)` per test point and :math:`O(B N)` memory for a block of :math:`B` rows.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.valuation.result import ValuationResult, exact_result


def _knn_block(
    d2: NDArray[np.float64], y_train: NDArray[Any], y_test: NDArray[Any], k: int
) -> NDArray[np.float64]:
    """Sum over the block's test points of the exact values (steps 2-4)."""
    b, n = d2.shape
    order = np.argsort(d2, axis=1)  # introsort: deterministic; equal distances in arbitrary fixed order
    match = (y_train[order] == y_test[:, None]).astype(np.float64)  # (b, n), rank order
    i = np.arange(1, n, dtype=np.float64)  # ranks 1..N-1 (1-based)
    inc = (match[:, :-1] - match[:, 1:]) * (np.minimum(k, i) / (k * i))
    s = np.empty((b, n))
    s[:, -1] = match[:, -1] / n
    # s_i = s_N + sum_{j >= i} inc_j: reversed cumulative sum
    s[:, :-1] = s[:, -1:] + np.cumsum(inc[:, ::-1], axis=1)[:, ::-1]
    total: NDArray[np.float64] = np.bincount(order.ravel(), weights=s.ravel(), minlength=n).astype(np.float64)
    return total


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
    xtr = np.asarray(x_train, dtype=np.float64)
    xte = np.asarray(x_test, dtype=np.float64)
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise InvalidMarketError("x", "training and test features must be 2-d with the same columns")
    if ytr.shape != (xtr.shape[0],) or yte.shape != (xte.shape[0],) or xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise InvalidMarketError("y", "need one label per (non-empty) training and test row")
    if not (np.all(np.isfinite(xtr)) and np.all(np.isfinite(xte))):
        raise InvalidMarketError("x", "features must be finite")
    if not isinstance(k, int | np.integer) or k < 1 or block < 1:
        raise InvalidMarketError("k", f"k and block must be positive integers, got k={k!r}")
    if n_jobs < 1:
        raise InvalidMarketError("n_jobs", f"must be >= 1, got {n_jobs}")
    n = xtr.shape[0]
    sq_tr = np.einsum("ij,ij->i", xtr, xtr)

    def one(lo: int) -> NDArray[np.float64]:
        xb = xte[lo : lo + block]
        d2 = sq_tr[None, :] - 2.0 * (xb @ xtr.T) + np.einsum("ij,ij->i", xb, xb)[:, None]
        return _knn_block(d2, ytr, yte[lo : lo + block], int(k))

    starts = range(0, xte.shape[0], block)
    if n_jobs == 1:
        parts = [one(lo) for lo in starts]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_jobs) as pool:
            parts = list(pool.map(one, starts))
    total = np.zeros(n)
    for p in parts:  # fixed order: bitwise the same for any n_jobs
        total += p
    values = total / xte.shape[0]
    names = tuple(f"point_{i}" for i in range(n))
    res = exact_result("knn_shapley", names, values, evaluations=0, elapsed=time.perf_counter() - t0)
    res.extra["k"] = int(k)
    return res
