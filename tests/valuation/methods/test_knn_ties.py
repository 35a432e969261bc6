"""K-NN Shapley on tied distances: the tie rule (distance, then training index ascending) in every path.

The vectorised kernel (``knn_shapley``, any block size and thread count) and the reference loop
(``knn_shapley_reference``: one test point at a time, ``lexsort`` by (distance, index), recursion in
Python) agree to 1e-12 on data with many tied distances (integer features on a 3-point grid, duplicated
rows: every squared distance is an exact small integer, so geometric ties are exact ties), and both
equal the exact Shapley value of the K-NN utility by enumeration (N <= 7; brute force written here).
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.valuation import knn_shapley
from datamarket.valuation.methods.knn_shapley import knn_shapley_reference, neighbour_order


@st.composite
def tied_data(draw, max_n: int = 60):
    """Integer features on a small grid, with rows duplicated: many exactly tied distances."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.integers(1, 2))
    n = draw(st.integers(2, max_n))
    n_distinct = draw(st.integers(1, n))
    base = rng.integers(0, 3, size=(n_distinct, d))
    xtr = base[rng.integers(0, n_distinct, size=n)].astype(np.float64)  # duplicated rows
    n_labels = draw(st.integers(2, 3))
    ytr = rng.integers(0, n_labels, size=n)
    m = draw(st.integers(1, 6))
    xte = rng.integers(0, 3, size=(m, d)).astype(np.float64)
    yte = rng.integers(0, n_labels, size=m)
    k = draw(st.integers(1, 6))
    return xtr, ytr, xte, yte, k


def _knn_utility(xtr, ytr, x, y, k):
    """v(S) = (1/K) #{right labels among the K nearest members of S}, ties by training index."""
    d = ((xtr - x) ** 2).sum(axis=1)  # exact integers here
    order = sorted(range(len(d)), key=lambda j: (d[j], j))

    def v(members: frozenset[int]) -> float:
        near = [j for j in order if j in members][:k]
        return sum(float(ytr[j] == y) for j in near) / k

    return v


def _brute_shapley(v, n: int) -> np.ndarray:
    """Exact Shapley value by enumerating every coalition S not containing i (weights |S|!(n-|S|-1)!/n!)."""
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            w = factorial(size) * factorial(n - size - 1) / factorial(n)
            for s in combinations(others, size):
                fs = frozenset(s)
                phi[i] += w * (v(fs | {i}) - v(fs))
    return phi


@settings(deadline=None, max_examples=80)
@given(tied_data(), st.integers(1, 5), st.integers(1, 2))
def test_vectorised_and_reference_paths_agree_on_ties(data, block, n_jobs) -> None:
    xtr, ytr, xte, yte, k = data
    fast = knn_shapley(xtr, ytr, xte, yte, k=k, block=block, n_jobs=n_jobs)
    ref = knn_shapley_reference(xtr, ytr, xte, yte, k=k)
    # both: per test point a running sum of <= 60 terms of magnitude <= 1, averaged over <= 6 points:
    # rounding is below 1e-14, so 1e-12 separates rounding from a different neighbour order
    np.testing.assert_allclose(fast.values, ref.values, rtol=0, atol=1e-12)
    assert abs(fast.utility_full - ref.utility_full) <= 1e-12
    assert fast.certificate.passed and ref.certificate.passed


@settings(deadline=None, max_examples=40)
@given(tied_data(max_n=7))
def test_both_paths_equal_brute_force_enumeration(data) -> None:
    xtr, ytr, xte, yte, k = data
    n = xtr.shape[0]
    games = [_knn_utility(xtr, ytr, xte[t], yte[t], k) for t in range(xte.shape[0])]
    exact = np.mean([_brute_shapley(g, n) for g in games], axis=0)
    fast = knn_shapley(xtr, ytr, xte, yte, k=k, block=2)
    ref = knn_shapley_reference(xtr, ytr, xte, yte, k=k)
    # sums of at most 7 * 2^6 terms of magnitude <= 1: agreement to 1e-12
    np.testing.assert_allclose(fast.values, exact, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.values, exact, rtol=0, atol=1e-12)
    v_full = float(np.mean([g(frozenset(range(n))) for g in games]))
    assert abs(fast.utility_full - v_full) <= 1e-12 and fast.utility_empty == 0.0


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(2, 200))
def test_neighbour_order_is_distance_then_index(seed, rows, n) -> None:
    d2 = np.random.default_rng(seed).integers(0, 4, size=(rows, n)).astype(np.float64)
    order = neighbour_order(d2)
    idx = np.arange(n)
    for r in range(rows):
        np.testing.assert_array_equal(order[r], np.lexsort((idx, d2[r])))


def test_ties_beyond_the_insertion_sort_threshold() -> None:
    """N = 100 duplicated points of two labels: numpy's default sort (unstable above 16 elements) used
    to order the ties arbitrarily, and the kernel differed from the stable reference."""
    rng = np.random.default_rng(7)
    xtr = np.repeat(np.array([[0.0], [1.0], [2.0], [3.0]]), 25, axis=0)
    ytr = rng.integers(0, 2, size=100)
    xte, yte = np.array([[1.0], [2.0], [0.0]]), np.array([0, 1, 1])
    for k in (1, 3, 10):
        fast = knn_shapley(xtr, ytr, xte, yte, k=k, block=2)
        ref = knn_shapley_reference(xtr, ytr, xte, yte, k=k)
        np.testing.assert_allclose(fast.values, ref.values, rtol=0, atol=1e-12)
