r"""Exact Shapley-Nash model of Chaintreau et al.: the sellers' game under the Shapley rule (7).

Every seller decision in the balanced market reduces to one scalar :math:`s_j \ge 0` per independent
sub-game: the samples of one group in the baseline (the baseline is separable across groups)
or the total :math:`n^{(j)}` under the intervention (then group :math:`g` receives
:math:`\gamma_g n^{(j)}`, Def 3.6). The value of a coalition :math:`T` with total
:math:`S_T = \sum_{k\in T} s_k` is

.. math::
   F(S_T) = \sum_t w_t\, \mathcal G_t(a_t S_T),

a sum of *terms* :math:`t` (one per buyer task sold: weight :math:`w_t = p_g`, scale :math:`a_t = 1` in the
baseline and :math:`\gamma_g` under the intervention, curve :math:`(Z_t, \alpha_t, \beta_t)`). Seller
:math:`j`'s payoff (eq. 49/53) is

.. math::
   v_j(s; s_{-j}) = \sum_{T \subseteq [M]\setminus j} c_T \bigl(F(S_T + s) - F(S_T)\bigr) - k_j s,
   \qquad c_T = \frac{|T|!(M-|T|-1)!}{M!}.                                    \tag{7}

Coalitions of the other sellers are enumerated once per best response; sellers with equal production
are grouped so that only the multiset of counts is enumerated (weight :math:`\prod_k \binom{m_k}{t_k}
c_{t}`), which makes symmetric profiles cheap for large :math:`M`.

Algorithms
----------
Global best response (breakpoint enumeration): the payoff is not concave because of the positive part in
:math:`\mathcal G`; its breakpoints are :math:`n_{0,t}/a_t - S_T > 0`; between consecutive breakpoints the
payoff is concave, so the FOC (42) is solved by ``brentq`` where the derivative changes sign; all
stationary points, interval ends and :math:`s = 0` are compared (ties keep the smaller quantity, so
:math:`s = 0` wins a tie at zero profit).

Nash equilibria: (a) support enumeration, solving (42) on the support with ``scipy.optimize.root``
from several starts; (b) Gauss-Seidel iterated global best response from several starts, with cycle
detection; (c) every candidate is accepted only if the global best-response check passes for every
seller (the largest unilateral gain, the *regret*, is at most ``tol`` relative to the payoff scale).
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import gammaln

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray
from datamarket.mechanisms.balanced_market._foc import FocAtoms, merged_size_weights, solve_foc
from datamarket.mechanisms.balanced_market._search import (
    CandidateCheck,
    Verdict,
    iterated_best_response,
    regret_allowance,
)
from datamarket.mechanisms.balanced_market._terms import Terms, inverse_power

MAX_COMBINATIONS = 1 << 20
_RTOL = 4 * np.finfo(float).eps


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


PREFIX_SUPPORTS = 10  # general engine, many sellers: supports of the cheapest k <= 10 sellers
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
    """Derivative of the payoff at ``s`` with the set of paying (coalition, term) pairs fixed to ``mask``.

    Unpaid pairs may have a zero argument: callers hold ``np.errstate(divide="ignore", over="ignore")``
    around their loops (entering it per call cost 7% of an equilibrium search).
    """
    arg = (coal.sums[:, None] + s) * terms.scale
    d = terms.weight * terms.scale * terms.alpha * terms.beta * np.power(arg, -terms.beta - 1.0)
    d = np.where(mask, d, 0.0)
    return float(coal.weights @ d.sum(axis=1) - cost)


class _FixedSlope:
    r"""The payoff's slope on one interval between breakpoints, the paying (coalition, term) pairs fixed
    to those with breakpoint :math:`n_{0,t}/a_t - S_T \le` ``lo`` (the mask of :func:`_slope`).

    Per exponent group of the terms (:attr:`Terms.groups`, knots sorted) the paying terms of a coalition
    are a prefix, so the slope is :math:`\sum_\beta \sum_T e_{T,\beta} (S_T + s)^{-\beta-1} - k` with
    :math:`e_{T,\beta} = c_T \sum_{t \text{ paying}} w_t \alpha_t \beta a_t^{-\beta}` built once: one
    power per paying coalition and exponent per evaluation instead of one per pair (the same slope as
    :func:`_slope`, to rounding).
    """

    def __init__(self, coal: Coalitions, terms: Terms, lo: float, cost: float) -> None:
        self.cost = cost
        self.parts: list[tuple[FloatArray, FloatArray, float]] = []
        for grp in terms.groups:
            n = np.count_nonzero((grp.knots[None, :] - coal.sums[:, None]) <= lo, axis=1)
            rows = np.flatnonzero(n)
            if rows.size:
                coef = coal.weights[rows] * grp.cum_slope[n[rows]]
                self.parts.append((coal.sums[rows], coef, grp.beta + 1.0))

    def __call__(self, s: float) -> float:
        total = 0.0
        for sums, coef, p in self.parts:
            total += float(coef @ inverse_power(sums + s, p))
        return total - self.cost


@dataclass(frozen=True)
class BestResponse:
    """Global best response (breakpoint enumeration): quantity, payoff, and every candidate examined."""

    quantity: float
    payoff: float
    candidates: int


class _Pairs:
    r"""(coalition, term) pairs sorted by breakpoint :math:`n_{0,t}/a_t - S_T`, for prefix slope sums.

    Pair ``p`` pays on ``s`` iff its breakpoint is ``<= s``; sorted, the paying pairs at any ``s`` are a
    prefix, so the slope (derivative of (7) in ``s``) at ``s`` with the pairs active up to a threshold is
    one vectorised sum over a prefix: no comparison of every breakpoint with every pair.
    """

    def __init__(self, coal: Coalitions, terms: Terms) -> None:
        brk = (terms.knots[None, :] - coal.sums[:, None]).ravel()
        order = np.argsort(brk, kind="stable")
        self.brk = brk[order]
        w = coal.weights[:, None] * (terms.weight * terms.scale * terms.alpha * terms.beta)[None, :]
        self.coef = w.ravel()[order]
        self.base = (coal.sums[:, None] * terms.scale[None, :]).ravel()[order]
        self.scale = np.broadcast_to(terms.scale, w.shape).ravel()[order]
        self.expo = np.broadcast_to(-terms.beta - 1.0, w.shape).ravel()[order]
        self.power = float(terms.beta[0]) + 1.0 if np.all(terms.beta == terms.beta[0]) else None

    def count(self, threshold: float, strict: bool = False) -> int:
        """Number of pairs with breakpoint ``<= threshold`` (``< threshold`` when ``strict``)."""
        return int(np.searchsorted(self.brk, threshold, side="left" if strict else "right"))

    def slope(self, s: float, n: int, cost: float) -> float:
        """Slope at ``s`` with the first ``n`` pairs paying (their arguments are > 0, so no errstate)."""
        if n == 0:
            return -cost
        arg = self.base[:n] + self.scale[:n] * s
        if self.power is not None:  # one exponent: reciprocal powers (terms of equal beta)
            return float(self.coef[:n] @ inverse_power(arg, self.power) - cost)
        return float(self.coef[:n] @ np.exp(self.expo[:n] * np.log(arg)) - cost)


def revenue_bound(coal: Coalitions, terms: Terms) -> float:
    r"""The revenue there is to share with a newcomer: :math:`\sum_T c_T (\sup F - F(S_T))`.

    The payoff (7) of producing ``s`` is at most this minus ``cost * s``, so a best response never
    exceeds ``revenue_bound / cost`` (the pruning of the breakpoints).
    """
    if terms.empty:
        return 0.0
    top = float(terms.weight @ terms.Z)
    return float(coal.weights @ (top - terms.value(coal.sums)))


class _BreakpointSearch:
    """One pruned breakpoint enumeration of :func:`best_response`: the intervals between breakpoints, the
    memoised payoffs, the best value found so far and every candidate quantity examined."""

    def __init__(self, coal: Coalitions, cost: float, terms: Terms, tol: float) -> None:
        self.coal, self.cost, self.terms, self.tol = coal, cost, terms, tol
        self.pairs = _Pairs(coal, terms)
        s_max = revenue_bound(coal, terms) / cost
        brk = self.pairs.brk
        inner = brk[(brk > 0) & (brk < s_max)]
        self.edges = np.concatenate([[0.0], np.unique(inner), [max(s_max, 0.0)]])  # last entry: the cap
        self.counts = np.searchsorted(brk, self.edges, side="right")  # pairs paying on interval k: counts[k]
        self.memo: dict[float, float] = {}
        self.best, self.best_at = 0.0, 0.0
        self.cands: list[float] = [0.0]

    def pay(self, s: float) -> float:
        if s not in self.memo:
            self.memo[s] = payoff(s, self.coal, self.cost, self.terms)
        return self.memo[s]

    def see(self, s: float) -> None:
        if self.pay(s) > self.best:
            self.best, self.best_at = self.pay(s), s

    def _floor(self) -> float:
        """A payoff below this cannot win, even with the tie tolerance."""
        return self.best - self.tol * max(1.0, abs(self.best))

    def search(self, stop_above: float | None) -> bool:
        """Best first over runs of intervals ``[edges[i], edges[j]]`` (the pruning (ii) of
        :func:`best_response`); ``True`` when it stopped early because the best exceeds ``stop_above``."""
        n_int = self.edges.size - 1  # intervals [edges[k], edges[k+1]]
        heap: list[tuple[float, int, int]] = [(-np.inf, 0, n_int)] if n_int > 0 and self.edges[-1] > 0 else []
        while heap:
            neg_ub, i, j = heapq.heappop(heap)
            if -neg_ub < self._floor():
                continue
            if stop_above is not None and self.best > stop_above:
                return True
            if j == i + 1:
                for c in self._leaf(i):
                    self.cands.append(c)
                    self.see(c)
                continue
            ub = self._run_bound(i, j)
            if ub is None:
                continue
            mid = (i + j) // 2
            heapq.heappush(heap, (-ub, i, mid))
            heapq.heappush(heap, (-ub, mid, j))
        return False

    def _run_bound(self, i: int, j: int) -> float | None:
        """Upper bound of the payoff on the run ``[edges[i], edges[j]]`` (its ends seen), or ``None`` when
        the run cannot hold the maximum (monotone, or bounded below the best found)."""
        e_i, e_j = float(self.edges[i]), float(self.edges[j])
        upper = self.pairs.slope(e_i, int(self.counts[j - 1]), self.cost)  # slope <= upper on [e_i, e_j)
        lower = self.pairs.slope(e_j, int(self.counts[i]), self.cost)  # slope >= lower on (e_i, e_j]
        if lower > 0 or upper < 0:
            return None  # monotone run: no maximum inside (the slope only jumps up at edges)
        p_i, p_j = self.pay(e_i), self.pay(e_j)
        self.see(e_i)
        self.see(e_j)
        ub = np.inf
        if np.isfinite(upper) and np.isfinite(lower):
            # payoff <= min(p_i + upper (s - e_i), p_j - lower (e_j - s)) on the run
            s_x = min(max((p_j - lower * e_j - p_i + upper * e_i) / (upper - lower), e_i), e_j)
            ub = p_i + upper * (s_x - e_i)
            if ub < self._floor():
                return None
        return ub

    def _leaf(self, k: int) -> list[float]:
        """Interval ``k`` as the unpruned enumeration treats it (same mask, bracket and ``brentq``)."""
        lo = float(self.edges[k])
        slope = _FixedSlope(self.coal, self.terms, lo, self.cost)
        s_lo = slope(lo)
        left = self.pairs.slope(lo, int(self.counts[k - 1]), self.cost) if k > 0 else np.inf
        out = [lo] if s_lo <= 0 and left >= 0 else []
        if s_lo <= 0:
            return out
        hi = self._interval_end(lo, slope)
        s_hi = slope(hi)
        if s_hi >= 0:  # increasing throughout: no maximum inside
            return out
        # concave on [lo, hi]: below both tangent lines, so skip the root when that bound cannot win
        p_lo, p_hi = self.pay(lo), self.pay(hi)
        s_x = min(max((p_hi - s_hi * hi - p_lo + s_lo * lo) / (s_lo - s_hi), lo), hi)
        if p_lo + s_lo * (s_x - lo) < self._floor():
            return out
        out.append(float(brentq(slope, lo, hi, xtol=1e-15, rtol=_RTOL, maxiter=500)))
        return out

    def _interval_end(self, lo: float, slope: _FixedSlope) -> float:
        """The next breakpoint above ``lo``; past the last one, a point where the slope is <= 0."""
        brk = self.pairs.brk
        above = brk[brk > lo]
        if above.size:
            return float(above[0])
        hi = max(2.0 * lo, 1.0)  # the last interval is unbounded
        while slope(hi) > 0:
            hi *= 2.0
            if hi > 1e300:
                raise InvalidMarketError("costs", "best response is unbounded (cost too small)")
        return hi

    def result(self) -> BestResponse:
        """The best candidate; (near-)ties keep the smallest quantity."""
        cand = np.array(sorted(set(self.cands)))
        vals = np.array([self.pay(float(c)) for c in cand])
        scale = self.tol * max(1.0, float(np.max(np.abs(vals))))
        top = float(np.max(vals))
        i = int(np.flatnonzero(vals >= top - scale)[0])  # smallest quantity among (near-)ties
        return BestResponse(float(cand[i]), float(vals[i]), int(cand.size))


def best_response(
    coal: Coalitions,
    cost: float,
    terms: Terms,
    tol: float = 1e-12,
    *,
    hint: float | None = None,
    stop_above: float | None = None,
) -> BestResponse:
    """Exact global best response by breakpoint enumeration, pruned and bounded.

    Between consecutive breakpoints :math:`n_{0,t}/a_t - S_T` every paying term is a concave power
    function, so the payoff is concave there and its slope decreases; at a breakpoint the slope jumps
    *up* (convex kink). Hence a local maximum is either ``s = 0``, the root of the FOC (42) inside an
    interval whose slope changes sign from + to - (found with ``brentq``), or an edge whose right slope
    is <= 0 while the left slope is >= 0. All such candidates are compared; ties (within ``tol`` times the
    payoff scale) keep the smaller quantity, so ``s = 0`` wins a tie at zero profit.

    Work is cut three ways without losing the maximum: (i) breakpoints beyond
    ``revenue_bound / cost`` are dropped (the payoff is negative there); (ii) runs of consecutive
    intervals are examined together (best first) with bounds on the slope (the paying pairs at the run's
    start evaluated at its end, and those paying before its end evaluated at its start): a run whose slope
    is provably > 0 or < 0 holds no interior maximum, and a run whose payoff bound (two tangent lines)
    is below the best value found (less the tie tolerance) cannot hold the maximum; (iii) ``hint``, a
    quantity whose payoff seeds the best value (the current quantity in a regret check).

    ``stop_above``: return as soon as some quantity is known to pay more than this (a regret check that
    has already failed); the result is then that quantity, not necessarily the best response.
    """
    if terms.empty:
        return BestResponse(0.0, 0.0, 1)
    search = _BreakpointSearch(coal, cost, terms, tol)
    if hint is not None and hint > 0:
        search.see(hint)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if search.search(stop_above):
            return BestResponse(search.best_at, search.best, len(search.cands))
    return search.result()


def regrets(x: FloatArray, costs: FloatArray, terms: Terms) -> FloatArray:
    """Each seller's gain from its global best response against ``x`` (0 at a Nash equilibrium)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.size)
    seen: dict[tuple[float, float], float] = {}  # equal quantity and cost: the same others, same regret
    for j in range(x.size):
        key = (float(x[j]), float(costs[j]))
        if key not in seen:
            coal = coalitions_of(np.delete(x, j))
            br = best_response(coal, float(costs[j]), terms, hint=float(x[j]))
            seen[key] = br.payoff - payoff(float(x[j]), coal, float(costs[j]), terms)
        out[j] = seen[key]
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
    """Solve the FOC (42) for the sellers in ``support`` (others at 0): coalitions built once per call
    (the subsets of the other support members; the sellers at zero merged into the weights)."""
    m = costs.size
    k = len(support)
    if k - 1 > 20:
        raise InvalidMarketError(
            "sellers", f"{1 << (k - 1)} coalitions exceed the exact limit {MAX_COMBINATIONS}"
        )
    bits, sizes = _subsets(k - 1)
    weights = merged_size_weights(m, m - k)[sizes]
    atoms = []
    for r in range(k):
        cols = [c for c in range(k) if c != r]
        counts = np.zeros((bits.shape[0], k))
        counts[:, cols] = bits
        atoms.append(FocAtoms(counts, weights))
    y = solve_foc(atoms, costs[support], start[support], terms)
    if y is None:
        return None
    x = np.zeros(m)
    x[support] = y
    return x


def _ibr(start: FloatArray, costs: FloatArray, terms: Terms, max_sweeps: int) -> FloatArray | None:
    """Gauss-Seidel iterated global best response of the sellers (:func:`._search.iterated_best_response`)."""

    def respond(x: FloatArray, j: int) -> float:
        coal = coalitions_of(np.delete(x, j))
        return best_response(coal, float(costs[j]), terms, hint=float(x[j])).quantity

    return iterated_best_response(start, respond, max_sweeps)


def _verify(x: FloatArray, costs: FloatArray, terms: Terms, tol: float) -> Verdict:
    """Payoffs and largest regret of ``x``, or ``None`` when some seller gains more than ``tol`` times the
    payoff scale by its global best response (:func:`regrets`)."""
    pay = _payoffs(x, costs, terms)
    reg = float(np.max(regrets(x, costs, terms)))
    return (pay, reg) if reg <= regret_allowance(pay, tol) else None


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
    """All Nash equilibria found of the sellers' scalar game.

    Candidates come from support enumeration (all supports when ``M <= max_support_sellers``; else one
    support per size up to ``PREFIX_SUPPORTS``, the cheapest sellers first) and from iterated best
    response started at zero, at each seller's monopoly quantity, at the joint optimum split equally and
    at ``n_random_starts`` seeded random profiles. A candidate is kept iff its largest regret
    (:func:`regrets`) is at most ``tol * max(1, payoff scale)``.

    Selection: the symmetric equilibrium if there is one with production; else the one with
    the most active sellers; ties go to the cheapest active sellers, then to larger total production.
    The all-zero profile is returned only when no equilibrium with production exists.
    """
    costs = np.asarray(costs, dtype=np.float64)
    m = costs.size
    if terms.empty:
        z = np.zeros(m)
        return SellerEquilibria((z,), (z.copy(),), (0.0,), {"candidates": 0})
    mono = np.array([best_response(coalitions_of([]), float(c), terms).quantity for c in costs])
    starts = _ibr_starts(mono, terms, seed, n_random_starts)
    supports = _supports(costs, max_support_sellers)
    cands = _support_candidates(supports, mono, costs, terms)
    n_ibr = 0
    for s in starts:
        got = _ibr(s, costs, terms, max_sweeps)
        if got is not None:
            n_ibr += 1
            active = [int(j) for j in np.flatnonzero(got > 0)]
            polished = _foc_solve(active, got, costs, terms) if active else got
            cands.append(polished if polished is not None else got)
    cands.append(np.zeros(m))
    found = CandidateCheck()
    for x in cands:
        found.check(x, partial(_verify, x, costs, terms, tol))
    return select_equilibria(
        found.kept,
        found.pays,
        found.regs,
        costs,
        {"candidates": len(cands), "ibr_converged": n_ibr, "supports": len(supports)},
    )


def _ibr_starts(mono: FloatArray, terms: Terms, seed: int, n_random_starts: int) -> list[FloatArray]:
    """Starts of the iterated best response: zero, the monopoly quantities, the joint optimum split
    equally and ``n_random_starts`` seeded random profiles."""
    m = mono.size
    starts: list[FloatArray] = [np.zeros(m), mono.copy()]
    if mono.max() > 0:
        starts.append(np.full(m, mono.max() / m))
    rng = make_rng(seed)
    for _ in range(n_random_starts):
        starts.append(rng.uniform(0.0, 1.5, m) * max(mono.max(), terms.knots.min()))
    return starts


def _supports(costs: FloatArray, max_support_sellers: int) -> list[list[int]]:
    """Supports of the FOC candidates: every support when ``M <= max_support_sellers``, else (and for
    identical sellers) the cheapest ``k`` sellers for each size ``k``."""
    m = costs.size
    order = [int(j) for j in np.argsort(costs, kind="stable")]
    if bool(np.all(costs == costs[0])):
        return [order[:k] for k in range(1, m + 1)]
    if m <= max_support_sellers:
        return [list(s) for k in range(1, m + 1) for s in itertools.combinations(range(m), k)]
    # the cheapest k sellers (stable order: equal costs by index), as the class engine's splits
    return [order[:k] for k in range(1, min(m, PREFIX_SUPPORTS) + 1)]


def _support_candidates(
    supports: list[list[int]], mono: FloatArray, costs: FloatArray, terms: Terms
) -> list[FloatArray]:
    """FOC (42) solutions on each support, from the monopoly quantities scaled by ``1 / |support|`` and 1."""
    cands: list[FloatArray] = []
    for sup in supports:
        for scale in (1.0 / len(sup), 1.0):
            base = np.zeros(costs.size)
            base[sup] = np.maximum(mono[sup], terms.knots.min()) * scale
            got = _foc_solve(list(sup), base, costs, terms)
            if got is not None:
                cands.append(got)
    return cands


def _canonical(
    kept: list[FloatArray], pays: list[FloatArray], regs: list[float], costs: FloatArray
) -> tuple[list[FloatArray], list[FloatArray], list[float]]:
    """Each profile with the quantities of equal-cost sellers in non-increasing order of their index
    (the game is symmetric in them, so this permutation is again an equilibrium with permuted
    payoffs), duplicates after the permutation dropped: both engines report the same profile."""
    out: tuple[list[FloatArray], list[FloatArray], list[float]] = ([], [], [])
    groups = [np.flatnonzero(costs == c) for c in np.unique(costs)]
    for x, pay, reg in zip(kept, pays, regs, strict=True):
        x, pay = x.copy(), pay.copy()
        for idx in groups:
            order = idx[np.argsort(-x[idx], kind="stable")]
            x[idx], pay[idx] = x[order], pay[order]
        if not any(np.allclose(x, k, rtol=1e-9, atol=1e-11) for k in out[0]):
            out[0].append(x)
            out[1].append(pay)
            out[2].append(reg)
    return out


def select_equilibria(
    kept: list[FloatArray],
    pays: list[FloatArray],
    regs: list[float],
    costs: FloatArray,
    diagnostics: dict[str, int],
) -> SellerEquilibria:
    """Order the verified equilibria by the selection rule of :func:`find_equilibria` (the selected one
    first), each in canonical order (:func:`_canonical`: equal-cost sellers by decreasing quantity).

    The symmetric equilibrium if there is one with production; else the one with the most active
    sellers; ties go to the cheapest active sellers, then to larger total production. The all-zero
    profile is kept only when no equilibrium with production exists.
    """
    m = costs.size

    def rank(i: int) -> tuple[float, ...]:
        x = kept[i]
        act = x > 0
        produces = float(act.any())
        symmetric = float(act.all() and np.allclose(x, x[0], rtol=1e-9))
        active_cost = float(np.sort(costs[act]).sum()) if act.any() else 0.0
        return (-produces, -symmetric, -float(act.sum()), active_cost, -float(x.sum()))

    if not kept:  # no candidate passed the regret check: callers report no_equilibrium_found
        z = np.zeros(m)
        return SellerEquilibria((z,), (z.copy(),), (math.inf,), {**diagnostics, "found": 0})
    kept, pays, regs = _canonical(kept, pays, regs, costs)
    idx = sorted(range(len(kept)), key=rank)
    if kept[idx[0]].sum() > 0:
        idx = [i for i in idx if kept[i].sum() > 0]
    return SellerEquilibria(
        tuple(kept[i] for i in idx),
        tuple(pays[i] for i in idx),
        tuple(regs[i] for i in idx),
        {**diagnostics, "found": len(idx)},
    )
