r"""Reference Shapley values for ``valuation_suite.py``, computed by neither library's estimator.

``exact_reference`` enumerates all :math:`2^M` coalitions (small ``M`` only: the tests). Otherwise
``sampled_reference`` stratifies by position (Maleki et al. 2013, "Bounding the estimation error of
sampling-based Shapley value approximation"): the Shapley value is the mean over positions of the
expected marginal contribution at that position (Shapley 1953),

.. math::
   \phi_i = \tfrac1M \bigl(v(\{i\}) - v(\emptyset)\bigr) + \tfrac1M \bigl(v(N) - v(N \setminus i)\bigr)
   + \tfrac{M-2}{M}\, \mathbb{E}\bigl[v(P \cup i) - v(P) \mid 1 \le |P| \le M-2\bigr],

with the two extreme positions computed exactly (the ``M`` singletons and the ``M`` leave-one-out
coalitions) and the interior stratum estimated from antithetic pairs of uniform permutations (a
permutation and its reverse place ``i`` at positions ``k`` and ``M-1-k``: both interior or both not).
Given that ``i`` is interior, its prefix is a uniform subset of a uniform interior size, so the mean
over the pairs in which ``i`` is interior is unbiased; pair means are i.i.d., and the standard error
is :math:`\tfrac{M-2}{M}\, s_i / \sqrt{n_i}` (``s_i`` the sample standard deviation of ``i``'s pair
means, ``n_i`` their number). Coalitions are memoised by bitmask; ``fits`` counts distinct
coalitions evaluated (the empty one excluded).

References are stored as JSON under ``benchmarks/results/valuation_refs/`` with the game, ``M``, the
data seed, the reference seed, the fits and the standard errors, and reused when the stored key
matches.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REFS = Path(__file__).resolve().parent / "results" / "valuation_refs"
Value = Callable[[int], float]  # v(bitmask)


def exact_reference(value: Value, m: int) -> np.ndarray:
    """Shapley values by full enumeration: phi_i = sum_S |S|!(M-|S|-1)!/M! (v(S u i) - v(S))."""
    table = np.array([value(s) for s in range(1 << m)])
    w = np.array([math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)])
    size = np.array([bin(s).count("1") for s in range(1 << m)])
    phi = np.zeros(m)
    for i in range(m):
        bit = 1 << i
        without = np.array([s for s in range(1 << m) if not s & bit])
        phi[i] = float(np.sum(w[size[without]] * (table[without | bit] - table[without])))
    return phi


def sampled_reference(value: Value, m: int, max_fits: int, seed: int) -> dict[str, Any]:
    """Position-stratified reference (module docstring) within about ``max_fits`` distinct coalitions."""
    if m < 4:
        raise ValueError("the sampled reference needs M >= 4 (use exact_reference)")
    memo: dict[int, float] = {}

    def v(mask: int) -> float:
        if mask not in memo:
            memo[mask] = float(value(mask))
        return memo[mask]

    full = (1 << m) - 1
    t0 = time.perf_counter()
    empty, whole = v(0), v(full)
    first = np.array([v(1 << i) - empty for i in range(m)])
    last = np.array([whole - v(full ^ (1 << i)) for i in range(m)])
    rng = np.random.default_rng(seed)
    sums, sq, counts = np.zeros(m), np.zeros(m), np.zeros(m)
    pairs = 0
    while len(memo) - 1 < max_fits:
        perm = rng.permutation(m)
        marg = np.zeros((2, m))
        for side, order in enumerate((perm, perm[::-1])):
            mask, prev = 0, empty
            for pos, i in enumerate(order):
                mask |= 1 << int(i)
                cur = v(mask)
                marg[side, i] = cur - prev
                prev = cur
                if pos == m - 2:  # the last position is exact: the rest is not needed
                    break
        pos_of = np.empty(m, dtype=int)
        pos_of[perm] = np.arange(m)
        interior = (pos_of >= 1) & (pos_of <= m - 2)
        mean = marg.mean(axis=0)
        sums[interior] += mean[interior]
        sq[interior] += mean[interior] ** 2
        counts[interior] += 1
        pairs += 1
    n = np.maximum(counts, 1)
    mu = sums / n
    var = np.maximum(sq / n - mu**2, 0.0) * counts / np.maximum(counts - 1, 1)
    scale = (m - 2) / m
    values = (first + last) / m + scale * mu
    stderr = scale * np.sqrt(var / n)
    return {
        "values": values,
        "stderr": stderr,
        "fits": len(memo) - 1,
        "pairs": pairs,
        "min_pairs_per_player": int(counts.min()),
        "seconds": time.perf_counter() - t0,
    }


def load_or_compute(key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The stored reference whose ``key`` matches, else ``compute()`` stored with ``key``."""
    path = REFS / f"{key['game']}_M{key['m']}.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            stored["values"] = np.asarray(stored["values"])
            stored["stderr"] = np.asarray(stored["stderr"])
            stored["reused"] = True
            return stored
    ref = compute()
    body = {
        "key": key,
        **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in ref.items()},
    }
    REFS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1) + "\n")
    ref["reused"] = False
    return ref


def members(mask: int, m: int) -> list[int]:
    """The players of a bitmask."""
    return [i for i in range(m) if mask >> i & 1]
