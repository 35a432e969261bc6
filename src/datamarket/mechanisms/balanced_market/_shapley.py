r"""Exact Shapley-Nash model of paper 000 (seed 0): the sellers' game under the Shapley rule (7).

Every seller decision in the balanced market reduces to one scalar :math:`s_j \ge 0` per independent
sub-game: the samples of one group in the baseline (the baseline is separable across groups, spec S0-F8)
or the total :math:`n^{(j)}` under the intervention (then group :math:`g` receives
:math:`\gamma_g n^{(j)}`, spec S0-O7). The value of a coalition :math:`T` with total
:math:`S_T = \sum_{k\in T} s_k` is

.. math::
   F(S_T) = \sum_t w_t\, \mathcal G_t(a_t S_T),

a sum of *terms* :math:`t` (one per buyer task sold: weight :math:`w_t = p_g`, scale :math:`a_t = 1` in the
baseline and :math:`\gamma_g` under the intervention, curve :math:`(Z_t, \alpha_t, \beta_t)`). Seller
:math:`j`'s payoff (eq. 49/53, spec S0-F8) is

.. math::
   v_j(s; s_{-j}) = \sum_{T \subseteq [M]\setminus j} c_T \bigl(F(S_T + s) - F(S_T)\bigr) - k_j s,
   \qquad c_T = \frac{|T|!(M-|T|-1)!}{M!}.                                    \tag{7}

Coalitions of the other sellers are enumerated once per best response; sellers with equal production
are grouped so that only the multiset of counts is enumerated (weight :math:`\prod_k \binom{m_k}{t_k}
c_{t}`), which makes symmetric profiles cheap for large :math:`M`.

Algorithms
----------
S0-A2 (global best response): breakpoints :math:`n_{0,t}/a_t - S_T > 0`; between consecutive breakpoints
the payoff is concave, so the FOC (42) is solved by ``brentq`` where the derivative changes sign; all
stationary points, interval ends and :math:`s = 0` are compared (ties keep the smaller quantity, so
:math:`s = 0` wins a tie at zero profit).

S0-A3 (Nash equilibria): (a) support enumeration, solving (42) on the support with ``scipy.optimize.root``
from several starts; (b) Gauss-Seidel iterated global best response from several starts, with cycle
detection; (c) every candidate is accepted only if the global best-response check passes for every
seller (the largest unilateral gain, the *regret*, is at most ``tol`` relative to the payoff scale).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq, root
from scipy.special import gammaln

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.learning.curves import curve_value, learning_ante

FloatArray = NDArray[np.float64]
MAX_COMBINATIONS = 1 << 20
_RTOL = 4 * np.finfo(float).eps


@dataclass(frozen=True)
class Terms:
    r"""The value :math:`F(S) = \sum_t w_t (Z_t - \alpha_t (a_t S)^{-\beta_t})_+` of a scalar sub-game."""

    weight: FloatArray
    scale: FloatArray
    Z: FloatArray
    alpha: FloatArray
    beta: FloatArray

    def __post_init__(self) -> None:
        arrs = [np.atleast_1d(np.asarray(getattr(self, k), dtype=np.float64)) for k in self._fields()]
        arrs = list(np.broadcast_arrays(*arrs))
        keep = (arrs[0] > 0) & (arrs[1] > 0)  # terms with zero weight or zero scale never pay
        for k, a in zip(self._fields(), arrs, strict=True):
            object.__setattr__(self, k, np.ascontiguousarray(a[keep]))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("weight", "scale", "Z", "alpha", "beta")

    @property
    def empty(self) -> bool:
        return self.weight.size == 0

    @property
    def knots(self) -> FloatArray:
        """Aggregate quantity at which each term starts paying: :math:`n_{0,t}/a_t`."""
        out: FloatArray = learning_ante(self.Z, self.alpha, self.beta) / self.scale
        return out

    def value(self, s: NDArray[np.float64] | float) -> FloatArray:
        """:math:`F(s)` for an array of aggregate quantities ``s``."""
        s = np.asarray(s, dtype=np.float64)
        g = curve_value(s[..., None] * self.scale, self.Z, self.alpha, self.beta)
        out: FloatArray = g @ self.weight
        return out

    def sup_ratio(self) -> float:
        r""":math:`\sup_{S>0} F(S)/S`: the largest unit cost at which a lone seller breaks even."""
        if self.empty:
            return 0.0
        grid = np.geomspace(self.knots.min() * 0.999, self.knots.max() * 1e3, 4000)
        i = int(np.argmax(self.value(grid) / grid))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(
            lambda s: -float(self.value(s)) / s, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}
        )
        return float(max(-res.fun, self.value(grid[i]) / grid[i]))


@dataclass(frozen=True)
class Coalitions:
    """Coalitions of the *other* sellers: their totals and summed Shapley weights :math:`c_T`."""

    sums: FloatArray
    weights: FloatArray


@lru_cache(maxsize=256)
def _size_weights(n_players: int) -> FloatArray:
    t = np.arange(n_players, dtype=np.float64)
    out: FloatArray = np.exp(gammaln(t + 1) + gammaln(n_players - t) - gammaln(n_players + 1))
    out.setflags(write=False)
    return out


def shapley_size_weights(n_players: int) -> FloatArray:
    """``c[t] = t! (M-t-1)! / M!`` for ``t = 0..M-1`` (eq. 7), in log space."""
    return _size_weights(int(n_players))


@lru_cache(maxsize=32)
def _subsets(n: int) -> tuple[FloatArray, NDArray[np.int64]]:
    """Membership matrix (2^n, n) and sizes of every subset of ``n`` players."""
    masks = np.arange(1 << n, dtype=np.int64)
    bits = ((masks[:, None] >> np.arange(n)) & 1).astype(np.float64)
    sizes = bits.sum(axis=1).astype(np.int64)
    bits.setflags(write=False)
    sizes.setflags(write=False)
    return bits, sizes


DIRECT_LIMIT = 10  # enumerate subsets directly up to 2**10 coalitions when all quantities differ


def coalitions_of(others: FloatArray | list[float], decimals: int = 14) -> Coalitions:
    """All coalitions of ``others`` (the other sellers' quantities), grouped by equal quantities.

    Quantities equal to ``decimals`` places form one class (its first member's value is used); a class of
    ``m_k`` sellers contributes ``t_k`` members in :math:`\binom{m_k}{t_k}` ways.

    >>> c = coalitions_of([1.0, 1.0])   # M = 3: T = {}, {k}, {k'}, {k, k'}
    >>> c.sums.tolist(), [round(w, 6) for w in c.weights.tolist()]
    ([0.0, 1.0, 2.0], [0.333333, 0.333333, 0.333333])
    """
    x = np.asarray(others, dtype=np.float64)
    m = x.size + 1
    c = shapley_size_weights(m)
    if x.size == 0:
        return Coalitions(np.zeros(1), np.ones(1))
    classes: dict[float, list[float]] = {}
    for v in x.tolist():
        classes.setdefault(round(v, decimals), []).append(v)
    if len(classes) == x.size and x.size <= DIRECT_LIMIT:
        bits, sizes = _subsets(x.size)
        return Coalitions(bits @ x, c[sizes])
    reps = [members_[0] for members_ in classes.values()]
    counts = [len(members_) for members_ in classes.values()]
    n_comb = math.prod(int(k) + 1 for k in counts)
    if n_comb > MAX_COMBINATIONS:
        raise InvalidMarketError(
            "sellers", f"{n_comb} distinct coalitions exceed the exact limit {MAX_COMBINATIONS}"
        )
    sums = np.zeros(1)
    sizes_ = np.zeros(1, dtype=np.int64)
    mult = np.ones(1)
    for v, k in zip(reps, counts, strict=True):
        t = np.arange(k + 1)
        binom = np.exp(gammaln(k + 1) - gammaln(t + 1) - gammaln(k - t + 1))
        sums = (sums[:, None] + v * t[None, :]).ravel()
        sizes_ = (sizes_[:, None] + t[None, :]).ravel()
        mult = (mult[:, None] * binom[None, :]).ravel()
    return Coalitions(sums, mult * c[sizes_])


def payoff(s: float, coal: Coalitions, cost: float, terms: Terms) -> float:
    """Seller payoff (7)/(9) of producing ``s`` against the coalitions ``coal`` of the others."""
    if terms.empty:
        return -cost * s
    gain = terms.value(coal.sums + s) - terms.value(coal.sums)
    return float(coal.weights @ gain - cost * s)


def shapley_payment(s: float, coal: Coalitions, terms: Terms) -> float:
    """Seller's Shapley payment (eq. 7 summed over the terms), without the production cost."""
    return payoff(s, coal, 0.0, terms)


def _slope(s: float, coal: Coalitions, cost: float, terms: Terms, mask: NDArray[np.bool_]) -> float:
    """Derivative of the payoff at ``s`` with the set of paying (coalition, term) pairs fixed to ``mask``."""
    arg = (coal.sums[:, None] + s) * terms.scale
    with np.errstate(divide="ignore", over="ignore"):
        d = terms.weight * terms.scale * terms.alpha * terms.beta * np.power(arg, -terms.beta - 1.0)
    d = np.where(mask, d, 0.0)
    return float(coal.weights @ d.sum(axis=1) - cost)


@dataclass(frozen=True)
class BestResponse:
    """Global best response (S0-A2): quantity, payoff, and every candidate examined."""

    quantity: float
    payoff: float
    candidates: int


def _edge_slopes(
    coal: Coalitions, cost: float, terms: Terms, edges: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Right slope at each edge and left slope at the next edge, with each interval's paying pairs.

    Pair ``p = (T, t)`` pays on interval ``k`` iff its breakpoint ``n0_t/a_t - S_T <= edges[k]``.
    Vectorised over edges in blocks (memory ``O(block x pairs)``).
    """
    brk = (terms.knots[None, :] - coal.sums[:, None]).ravel()
    base = (coal.sums[:, None] * terms.scale[None, :]).ravel()
    coef = (coal.weights[:, None] * (terms.weight * terms.scale * terms.alpha * terms.beta)[None, :]).ravel()
    expo = np.broadcast_to(-terms.beta - 1.0, (coal.sums.size, terms.beta.size)).ravel()
    scale = np.broadcast_to(terms.scale, (coal.sums.size, terms.scale.size)).ravel()
    n_e = edges.size
    right = np.empty(n_e)
    left_next = np.full(n_e, -np.inf)  # last interval is unbounded
    block = max(1, 2_000_000 // max(brk.size, 1))
    nxt = np.append(edges[1:], np.inf)
    for i0 in range(0, n_e, block):
        e = edges[i0 : i0 + block]
        act = brk[None, :] <= e[:, None]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            f_lo = np.where(act, coef * np.power(base + scale * e[:, None], expo), 0.0)
            en = nxt[i0 : i0 + block]
            f_hi = np.where(
                act & np.isfinite(en)[:, None], coef * np.power(base + scale * en[:, None], expo), 0.0
            )
        right[i0 : i0 + block] = f_lo.sum(axis=1) - cost
        fin = np.isfinite(en)
        left_next[i0 : i0 + block] = np.where(fin, f_hi.sum(axis=1) - cost, -np.inf)
    return right, left_next


def best_response(coal: Coalitions, cost: float, terms: Terms, tol: float = 1e-12) -> BestResponse:
    """Exact global best response by breakpoint enumeration (spec S0-A2).

    Between consecutive breakpoints :math:`n_{0,t}/a_t - S_T` every paying term is a concave power
    function, so the payoff is concave there and its slope decreases; at a breakpoint the slope jumps
    *up* (convex kink). Hence a local maximum is either ``s = 0``, the root of the FOC (42) inside an
    interval whose slope changes sign from + to - (found with ``brentq``), or an edge whose right slope
    is <= 0 while the left slope is >= 0. All such candidates are compared; ties (within ``tol`` times the
    payoff scale) keep the smaller quantity, so ``s = 0`` wins a tie at zero profit.
    """
    if terms.empty:
        return BestResponse(0.0, 0.0, 1)
    knots = terms.knots
    brk = (knots[None, :] - coal.sums[:, None]).ravel()
    edges = np.concatenate([[0.0], np.unique(brk[brk > 0])])
    d_lo, d_hi = _edge_slopes(coal, cost, terms, edges)
    cands = [0.0]
    prev_hi = np.concatenate([[np.inf], d_hi[:-1]])
    for k in np.flatnonzero((d_lo <= 0) & (prev_hi >= 0)):
        cands.append(float(edges[k]))
    brk2 = brk.reshape(coal.sums.size, knots.size)
    for k in np.flatnonzero((d_lo > 0) & (d_hi < 0)):
        lo = float(edges[k])
        mask = brk2 <= lo  # the same paying pairs as in _edge_slopes
        if k + 1 < edges.size:
            hi = float(edges[k + 1])
        else:
            hi = max(2.0 * lo, 1.0)
            while _slope(hi, coal, cost, terms, mask) > 0:
                hi *= 2.0
                if hi > 1e300:
                    raise InvalidMarketError("costs", "best response is unbounded (cost too small)")
        s_lo = _slope(lo, coal, cost, terms, mask)
        s_hi = _slope(hi, coal, cost, terms, mask)
        if s_lo <= 0 or s_hi >= 0:  # a sign change lost to rounding: the maximum is at an end
            cands.append(lo if s_lo <= 0 else hi)
            continue
        root_s = brentq(
            lambda s, m=mask: _slope(s, coal, cost, terms, m),
            lo,
            hi,
            xtol=1e-15,
            rtol=_RTOL,
            maxiter=500,
        )
        cands.append(float(root_s))
    cand = np.array(sorted(set(cands)))
    vals = np.array([payoff(c, coal, cost, terms) for c in cand])
    scale = tol * max(1.0, float(np.max(np.abs(vals))))
    best = float(np.max(vals))
    i = int(np.flatnonzero(vals >= best - scale)[0])  # smallest quantity among (near-)ties
    return BestResponse(float(cand[i]), float(vals[i]), int(cand.size))


def regrets(x: FloatArray, costs: FloatArray, terms: Terms) -> FloatArray:
    """Each seller's gain from its global best response against ``x`` (0 at a Nash equilibrium)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.size)
    for j in range(x.size):
        coal = coalitions_of(np.delete(x, j))
        br = best_response(coal, float(costs[j]), terms)
        out[j] = br.payoff - payoff(float(x[j]), coal, float(costs[j]), terms)
    return out


@dataclass(frozen=True)
class SellerEquilibria:
    """Every Nash equilibrium found for one scalar sub-game, the selected one first."""

    profiles: tuple[FloatArray, ...]
    payoffs: tuple[FloatArray, ...]
    regrets: tuple[float, ...]
    diagnostics: dict[str, int] = field(default_factory=dict)

    @property
    def selected(self) -> FloatArray:
        return self.profiles[0]

    @property
    def forms(self) -> bool:
        return bool(np.sum(self.selected) > 0)


def _payoffs(x: FloatArray, costs: FloatArray, terms: Terms) -> FloatArray:
    return np.array(
        [payoff(float(x[j]), coalitions_of(np.delete(x, j)), float(costs[j]), terms) for j in range(x.size)]
    )


def _foc_solve(support: list[int], start: FloatArray, costs: FloatArray, terms: Terms) -> FloatArray | None:
    """Solve the FOC (42) for the sellers in ``support`` (others at 0) with ``scipy.optimize.root``."""
    m = costs.size

    def full(z: FloatArray) -> FloatArray:
        x = np.zeros(m)
        x[support] = np.exp(np.clip(z, -60.0, 60.0))
        return x

    def resid(z: FloatArray) -> FloatArray:
        x = full(z)
        out = np.empty(len(support))
        for r, j in enumerate(support):
            coal = coalitions_of(np.delete(x, j))
            mask = (coal.sums[:, None] + x[j]) > terms.knots[None, :]
            out[r] = _slope(float(x[j]), coal, float(costs[j]), terms, mask) / float(costs[j])
        return out

    z0 = np.log(np.maximum(start[support], 1e-12))
    sol = root(resid, z0, method="hybr", options={"xtol": 1e-14})
    if not np.all(np.isfinite(sol.x)) or np.max(np.abs(resid(sol.x))) > 1e-10:
        return None
    return full(sol.x)


def _ibr(start: FloatArray, costs: FloatArray, terms: Terms, max_sweeps: int) -> FloatArray | None:
    """Gauss-Seidel iterated global best response; ``None`` when it cycles or does not converge."""
    x = start.astype(np.float64).copy()
    seen: set[bytes] = set()
    for _ in range(max_sweeps):
        prev = x.copy()
        for j in range(x.size):
            x[j] = best_response(coalitions_of(np.delete(x, j)), float(costs[j]), terms).quantity
        step = float(np.max(np.abs(x - prev)))
        if step <= 1e-12 * (1.0 + np.max(np.abs(x))):
            return x
        key = np.round(x, 7).tobytes()
        if key in seen and step > 1e-6 * (1.0 + np.max(np.abs(x))):
            return None  # a cycle of best responses
        seen.add(key)
    return None


def find_equilibria(
    costs: FloatArray | list[float],
    terms: Terms,
    *,
    seed: int = 0,
    max_support_sellers: int = 5,
    n_random_starts: int = 2,
    max_sweeps: int = 300,
    tol: float = 1e-9,
) -> SellerEquilibria:
    """All Nash equilibria found of the sellers' scalar game (spec S0-A3).

    Candidates come from support enumeration (all supports when ``M <= max_support_sellers``; one
    support per size, cheapest sellers first, when all sellers have the same cost) and from iterated best
    response started at zero, at each seller's monopoly quantity, at the joint optimum split equally and
    at ``n_random_starts`` seeded random profiles. A candidate is kept iff its largest regret
    (:func:`regrets`) is at most ``tol * max(1, payoff scale)``.

    Selection (spec S0-A3): the symmetric equilibrium if there is one with production; else the one with
    the most active sellers; ties go to the cheapest active sellers, then to larger total production.
    The all-zero profile is returned only when no equilibrium with production exists.
    """
    costs = np.asarray(costs, dtype=np.float64)
    m = costs.size
    if terms.empty:
        z = np.zeros(m)
        return SellerEquilibria((z,), (z.copy(),), (0.0,), {"candidates": 0})
    mono = np.array([best_response(coalitions_of([]), float(c), terms).quantity for c in costs])
    starts: list[FloatArray] = [np.zeros(m), mono.copy()]
    if mono.max() > 0:
        starts.append(np.full(m, mono.max() / m))
    rng = make_rng(seed)
    for _ in range(n_random_starts):
        starts.append(rng.uniform(0.0, 1.5, m) * max(mono.max(), terms.knots.min()))
    cands: list[FloatArray] = []
    identical = bool(np.all(costs == costs[0]))
    order = list(np.argsort(costs, kind="stable"))
    if identical:
        supports = [order[:k] for k in range(1, m + 1)]
    elif m <= max_support_sellers:
        supports = [list(s) for k in range(1, m + 1) for s in itertools.combinations(range(m), k)]
    else:
        supports = []
    for sup in supports:
        for scale in (1.0 / len(sup), 1.0):
            base = np.zeros(m)
            base[sup] = np.maximum(mono[sup], terms.knots.min()) * scale
            got = _foc_solve(list(sup), base, costs, terms)
            if got is not None:
                cands.append(got)
    n_ibr = 0
    for s in starts:
        got = _ibr(s, costs, terms, max_sweeps)
        if got is not None:
            n_ibr += 1
            active = [int(j) for j in np.flatnonzero(got > 0)]
            polished = _foc_solve(active, got, costs, terms) if active else got
            cands.append(polished if polished is not None else got)
    cands.append(np.zeros(m))
    kept: list[FloatArray] = []
    pays: list[FloatArray] = []
    regs: list[float] = []
    checked: list[FloatArray] = []
    for x in cands:
        if np.any(x < 0) or any(np.allclose(x, k, rtol=1e-9, atol=1e-11) for k in checked):
            continue
        checked.append(x)
        pay = _payoffs(x, costs, terms)
        reg = float(np.max(regrets(x, costs, terms)))
        if reg <= tol * max(1.0, float(np.max(np.abs(pay)))):
            kept.append(x)
            pays.append(pay)
            regs.append(reg)

    def rank(i: int) -> tuple[float, ...]:
        x = kept[i]
        act = x > 0
        produces = float(act.any())
        symmetric = float(act.all() and np.allclose(x, x[0], rtol=1e-9))
        active_cost = float(np.sort(costs[act]).sum()) if act.any() else 0.0
        return (-produces, -symmetric, -float(act.sum()), active_cost, -float(x.sum()))

    if not kept:  # should not happen: IBR always converges on these games in practice
        z = np.zeros(m)
        return SellerEquilibria((z,), (z.copy(),), (math.inf,), {"candidates": len(cands), "found": 0})
    idx = sorted(range(len(kept)), key=rank)
    if kept[idx[0]].sum() > 0:
        idx = [i for i in idx if kept[i].sum() > 0]
    return SellerEquilibria(
        tuple(kept[i] for i in idx),
        tuple(pays[i] for i in idx),
        tuple(regs[i] for i in idx),
        {"candidates": len(cands), "found": len(idx), "ibr_converged": n_ibr, "supports": len(supports)},
    )
