r"""Sellers in classes: the Shapley-Nash game of Chaintreau et al. over class counts.

Real online data markets have many sellers of a few kinds. Sellers with identical parameters (the same
unit-cost row; the buyers' curves are common to all sellers) form a *class*. In a profile where every
seller of a class produces the same quantity (*class-symmetric*), or where a class splits into a
producing part and a part at zero, a coalition of the other sellers is described by how many members of
each producing part it holds, :math:`t = (t_1, \dots, t_P)`; its total is :math:`S_t = \sum_b t_b y_b`
and its summed Shapley weight (7) is

.. math::
   c_t = \Bigl(\prod_b \binom{m'_b}{t_b}\Bigr) c'_{|t|}, \qquad
   c'_s = \sum_u \binom{n_0}{u} \frac{(s+u)!\,(M-s-u-1)!}{M!},

with :math:`m'_b` the other sellers of part :math:`b` and :math:`n_0` the other sellers at zero (summed
out: they change no total). This is the structured Shapley value of a quantity game (the dynamic
programme of :mod:`datamarket.valuation.structured` counts coalitions by total; here the totals are
indexed by the count vector), so the seller's payoff (7), its slope (42) and the Jacobian of the FOC
system cost :math:`\prod_b (m'_b + 1)` terms: polynomial in the class counts (26^4 for 100 sellers in
four classes of 25) instead of :math:`2^{M-1}`.

Algorithm (class engine of the equilibrium search)
--------------------------------------------------
1. Classes by exact equality of the sellers' parameter rows (:func:`seller_classes`).
2. Supports: every set of producing classes (class-symmetric profiles). When asked
   (``within_class=True``), or when all splits are few (:math:`\prod_k (m_k+1) \le` ``SPLIT_LIMIT``), a
   class may also split: its first :math:`a_k` sellers (by index) produce, the rest stay at zero
   (the general engine's supports "cheapest sellers first" for identical sellers). With many splits only
   one class splits at a time.
3. For each support, the FOC (42) of one seller per producing part, solved in log quantities with the
   analytic Jacobian from the general engine's starts. The system is evaluated on one grid of count
   vectors shared by all equations (:class:`datamarket.mechanisms.balanced_market._foc.GridFoc`: the
   Shapley weights built once per support, one evaluation of the slope terms per iteration for all
   parts). *Large* markets (more than ``IBR_LIMIT`` count vectors) start first from the symmetric root
   (the FOC of the support's sellers at their mean cost, one unknown, bracketed on a log grid: MINPACK
   stalls on the flat residual below the knots from the general engine's starts) and stop at the first
   verified candidate of a support.
4. Every candidate is verified by the exact global best response (breakpoint enumeration, pruned) of
   one seller of every part, producing or not: a class-symmetric profile is a Nash equilibrium iff no
   seller of any part gains more than ``tol`` times the payoff scale by deviating (sellers of a part face
   the same coalitions, so one check per part is exact).
5. When no candidate with production passes (or ``within_class``), and the market is not large, an
   iterated best response over the parts from the joint start, polished by the FOC.
6. Selection as in the general engine
   (:func:`datamarket.mechanisms.balanced_market._shapley.select_equilibria`).

7. When still no candidate with production passes, the classes are *refined*: the iterated best
   response of step 5 runs over a finer partition (every seller of small classes alone -- then it is
   the general engine's Gauss-Seidel best response, with the same global best responses; else one
   seller of a class apart from its peers), started from zero, from the joint start and from every
   candidate of steps 3-5, and each fixed point is verified as in step 4 (one seller per part: sellers
   of a part face the same coalitions). Equilibria in which identical sellers produce different
   positive amounts are found this way (e.g. two cheap sellers at 2.05 and 2.67 while a class of seven
   stays idle), at any market size whose refined grid stays within ``REFINE_LIMIT``.

Other asymmetric equilibria are not searched. When no candidate passes the check, the answer is the
candidate with the smallest regret, reported as such (``diagnostics["found"] == 0``): callers report
``no_equilibrium_found``, never an equilibrium. Cost: :math:`\prod_b (m_b+1)` grid points per FOC
evaluation and per best response; four classes of 25 sellers (457 thousand points) solve in seconds
when class-symmetric equilibria exist.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import FloatArray, IntArray
from datamarket.mechanisms.balanced_market._foc import FocAtoms, GridFoc, log_merged_size_weights
from datamarket.mechanisms.balanced_market._search import (
    CandidateCheck,
    Verdict,
    iterated_best_response,
    regret_allowance,
)
from datamarket.mechanisms.balanced_market._shapley import (
    MAX_COMBINATIONS,
    Coalitions,
    SellerEquilibria,
    Terms,
    best_response,
    find_equilibria,
    payoff,
    regrets,
    select_equilibria,
)

MAX_CLASSES = 12  # 2^12 class supports at most
GENERAL_FALLBACK = 8  # sellers up to which "auto" retries the general engine when no producing NE is found
SPLIT_LIMIT = 256  # enumerate every split of every class when there are at most this many
IBR_LIMIT = 4096  # iterated best response over the parts only up to this many class-count vectors
EVIDENCE_LIMIT = 16  # no verified profile: candidates whose regret is compared for the evidence
REFINE_LIMIT = 1 << 16  # step 7: refined partitions whose grid has at most this many count vectors


def seller_classes(params: ArrayLike) -> IntArray:
    """Class label of each seller: rows of ``params`` (one row per seller) equal element by element
    share a label; labels number the classes in order of first appearance.

    >>> seller_classes([[1.0, 2.0], [3.0, 2.0], [1.0, 2.0]]).tolist()
    [0, 1, 0]
    """
    arr = np.asarray(params, dtype=np.float64)
    rows = arr.reshape(arr.shape[0], -1)
    seen: dict[bytes, int] = {}
    out = np.empty(rows.shape[0], dtype=np.int64)
    for j, row in enumerate(rows):
        out[j] = seen.setdefault((row + 0.0).tobytes(), len(seen))  # + 0.0: -0.0 equals 0.0
    return out


@dataclass(frozen=True)
class Parts:
    """A class-structured profile: part ``b`` has ``count[b]`` sellers of cost ``cost[b]`` producing
    ``quantity[b]`` each."""

    cost: FloatArray
    count: IntArray
    quantity: FloatArray

    @property
    def n_sellers(self) -> int:
        return int(self.count.sum())


def part_atoms(parts: Parts, own: int, variables: Sequence[int]) -> tuple[FocAtoms, Coalitions]:
    """Coalitions of the others of one seller of part ``own``, by the counts of the producing parts.

    Returns the FOC atoms over ``variables`` (part indices; counts of producing parts outside
    ``variables`` are folded into nothing: all producing parts must be variables) and the coalitions
    (totals and weights) for payoffs and best responses.
    """
    others = parts.count.copy()
    others[own] -= 1
    producing = [b for b in range(others.size) if parts.quantity[b] > 0 and others[b] > 0]
    n_zero = int(others.sum() - sum(int(others[b]) for b in producing))
    n_comb = math.prod(int(others[b]) + 1 for b in producing)
    if n_comb > MAX_COMBINATIONS:
        raise InvalidMarketError(
            "sellers", f"{n_comb} distinct coalitions exceed the exact limit {MAX_COMBINATIONS}"
        )
    log_c = log_merged_size_weights(parts.n_sellers, n_zero)
    log_w = np.zeros(1)
    sizes = np.zeros(1, dtype=np.int64)
    counts = np.zeros((1, len(variables)))
    col = {b: i for i, b in enumerate(variables)}
    for b in producing:
        k = int(others[b])
        t = np.arange(k + 1)
        log_binom = gammaln(k + 1) - gammaln(t + 1) - gammaln(k - t + 1)
        log_w = (log_w[:, None] + log_binom[None, :]).ravel()
        sizes = (sizes[:, None] + t[None, :]).ravel()
        counts = np.repeat(counts, k + 1, axis=0)
        counts[:, col[b]] = np.tile(t, counts.shape[0] // (k + 1))
    weights = np.exp(log_w + log_c[sizes])
    sums = counts @ parts.quantity[list(variables)] if len(variables) else np.zeros(weights.size)
    return FocAtoms(counts, weights), Coalitions(sums, weights)


def _splits(counts: IntArray, stage: int, within_class: bool) -> list[tuple[int, ...]]:
    """Producing sellers per class of the supports of step 2: stage 1 the class-symmetric ones, stage 2
    the splits (all when few, else one class at a time when ``within_class``); never all-zero."""
    k = counts.size
    whole = [
        tuple(int(counts[i]) * f for i, f in enumerate(flags))
        for flags in itertools.product((0, 1), repeat=k)
    ]
    out: set[tuple[int, ...]] = set()
    if stage == 1:
        out = set(whole)
    elif math.prod(int(c) + 1 for c in counts) <= SPLIT_LIMIT:
        out = set(itertools.product(*(range(int(c) + 1) for c in counts))) - set(whole)
    elif within_class:
        for base in whole:
            for i in range(k):
                for a in range(1, int(counts[i])):
                    out.add((*base[:i], a, *base[i + 1 :]))
    out.discard((0,) * k)
    return sorted(out, key=lambda a: (-sum(a), a))


def merge_terms(terms: Terms) -> Terms:
    """The same value :math:`F` with terms of equal scale and curve merged (weights added): buyers who
    share a curve cost one term instead of one each."""
    if terms.empty:
        return terms
    keys = np.stack([terms.scale, terms.Z, terms.alpha, terms.beta], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    if uniq.shape[0] == keys.shape[0]:
        return terms
    weight = np.asarray(
        np.bincount(inv.ravel(), weights=terms.weight, minlength=uniq.shape[0]), dtype=np.float64
    )
    return Terms(weight, uniq[:, 0], uniq[:, 1], uniq[:, 2], uniq[:, 3])


def _expand(parts: Parts, members: list[IntArray], m: int) -> FloatArray:
    x = np.zeros(m)
    for b, idx in enumerate(members):
        x[idx] = parts.quantity[b]
    return x


def class_equilibria(
    costs: ArrayLike,
    terms: Terms,
    *,
    labels: ArrayLike | None = None,
    within_class: bool = False,
    tol: float = 1e-9,
    max_sweeps: int = 300,
    ibr_limit: int = IBR_LIMIT,
    refine_limit: int = REFINE_LIMIT,
    supports: Sequence[tuple[int, ...]] | None = None,
) -> SellerEquilibria:
    r"""Nash equilibria of the sellers' scalar game (7) over class counts (module docstring, steps 1-7).

    ``costs``: (M,) unit costs of the scalar game; ``labels``: class of each seller (default: equal
    costs); sellers of one class must have equal costs. ``within_class``: also search splits of a class
    into producing and idle sellers when there are too many to enumerate all. ``ibr_limit``: markets with
    more class-count vectors :math:`\prod_k (m_k+1)` are *large*: no iterated best response, and per
    support the symmetric start first and the other starts only until one candidate is verified.
    ``refine_limit``: the largest grid of a refined partition searched by step 7. ``supports``: search
    only these (producing sellers per class, the first of each class by index), instead of step 2's.

    When nothing passes the check (not even the all-zero profile), the result holds the candidate with
    the smallest regret as evidence, ``diagnostics["found"] == 0`` and its regret in ``regrets``.
    """
    c = np.asarray(costs, dtype=np.float64)
    lab = seller_classes(c) if labels is None else np.asarray(labels, dtype=np.int64)
    members, cls_cost, cls_count = _classes_of(c, lab)
    terms = merge_terms(terms)
    diag = {"classes": len(members), "supports": 0, "candidates": 0, "refined": 0}
    if terms.empty:
        z = np.zeros(c.size)
        return SellerEquilibria((z,), (z.copy(),), (0.0,), diag)
    lone = Coalitions(np.zeros(1), np.ones(1))
    mono = np.array([best_response(lone, float(k), terms).quantity for k in cls_cost])
    found = _Verified(c.size, terms, tol)
    grid_size = math.prod(int(k) + 1 for k in cls_count)
    splits = _search_supports(cls_count, within_class, supports)
    _foc_search(found, splits, members, cls_cost, mono, terms, within_class, grid_size > ibr_limit, diag)
    if (within_class or not found.producing) and grid_size <= ibr_limit:
        # FOC kinks can stop MINPACK: iterated best response over the parts from the joint start (the
        # general engine's IBR), polished by the FOC (step 5)
        whole = Parts(cls_cost, cls_count, np.maximum(mono, float(terms.knots.min())) / c.size)
        ibr = _part_ibr(whole, terms, max_sweeps)
        if ibr is not None:
            polished = _solve(ibr, terms) if np.any(ibr.quantity > 0) else None
            diag["candidates"] += 1
            found.check_parts(polished if polished is not None else ibr, members)
    if not found.producing:
        _refined_search(members, cls_cost, mono, terms, found.checked, found.check_parts, diag, refine_limit)
    if not found.producing:
        found.check_parts(Parts(cls_cost, cls_count, np.zeros(len(members))), members)
    eq = select_equilibria(found.kept, found.pays, found.regs, c, diag)
    if not found.kept:
        return _with_evidence(eq, found.checked, c, terms)
    return eq


def _foc_search(
    found: _Verified,
    splits: list[tuple[int, ...]],
    members: list[IntArray],
    cls_cost: FloatArray,
    mono: FloatArray,
    terms: Terms,
    within_class: bool,
    large: bool,
    diag: dict[str, int],
) -> None:
    """Steps 3-4 over the supports ``splits`` (more producing sellers first): FOC candidates, verified."""
    for n_act, group in itertools.groupby(splits, key=sum):
        if not within_class and any(int(np.sum(x > 0)) > n_act for x in found.kept):
            break  # more producing sellers rank first (selection rule): fewer cannot be selected
        for split in group:
            diag["supports"] += 1
            for parts, part_members in _support_candidates(split, members, cls_cost, mono, terms, large):
                diag["candidates"] += 1
                if found.check_parts(parts, part_members) and large:
                    break  # large markets: one equilibrium per support (the symmetric start first)


def _classes_of(c: FloatArray, lab: IntArray) -> tuple[list[IntArray], FloatArray, IntArray]:
    """Members, cost and size of each class (step 1), validated."""
    n_cls = int(lab.max()) + 1
    members = [np.flatnonzero(lab == k) for k in range(n_cls)]
    cls_cost = np.array([c[idx[0]] for idx in members])
    if any(np.any(c[idx] != cls_cost[k]) for k, idx in enumerate(members)):
        raise InvalidMarketError("labels", "sellers of one class must have equal costs")
    if n_cls > MAX_CLASSES:
        raise InvalidMarketError(
            "engine",
            f"{n_cls} seller classes: the class engine enumerates 2^classes supports (at most {MAX_CLASSES})",
        )
    return members, cls_cost, np.array([idx.size for idx in members], dtype=np.int64)


def _search_supports(
    cls_count: IntArray, within_class: bool, supports: Sequence[tuple[int, ...]] | None
) -> list[tuple[int, ...]]:
    """The supports of step 2 (or the given ones), more producing sellers first."""
    if supports is not None:
        chosen = {tuple(int(v) for v in a) for a in supports} - {(0,) * cls_count.size}
        return sorted(chosen, key=lambda a: (-sum(a), a))
    splits = _splits(cls_count, 1, within_class)
    if within_class or math.prod(int(k) + 1 for k in cls_count) <= SPLIT_LIMIT:
        splits = sorted(set(splits) | set(_splits(cls_count, 2, within_class)), key=lambda a: (-sum(a), a))
    return splits


class _Verified(CandidateCheck):
    """The candidates checked so far (step 4) and those that passed, as profiles of the ``m`` sellers."""

    def __init__(self, m: int, terms: Terms, tol: float) -> None:
        super().__init__()
        self.m, self.terms, self.tol = m, terms, tol

    def check_parts(self, parts: Parts, part_members: list[IntArray]) -> bool:
        """Verify a candidate (:func:`_verify`) unless it duplicates a checked one (:meth:`check`)."""

        def verify() -> Verdict:
            verdict = _verify(parts, self.terms, self.tol)
            if verdict is None:
                return None
            pay = _expand(Parts(parts.cost, parts.count, verdict[0]), part_members, self.m)
            return pay, verdict[1]

        return self.check(_expand(parts, part_members, self.m), verify)


def _refinements(members: list[IntArray], limit: int) -> Iterator[list[IntArray]]:
    r"""Partitions of the sellers finer than the classes (step 7), coarsest grid last: every seller of
    every class alone, then (per class) one seller apart from its peers; only those whose grid
    :math:`\prod_b (n_b + 1)` is at most ``limit``."""
    seen: set[tuple[int, ...]] = set()

    def grid(parts: list[IntArray]) -> int:
        return math.prod(p.size + 1 for p in parts)

    singles = [idx[i : i + 1] for idx in members for i in range(idx.size)]
    options = [singles]
    for k, idx in enumerate(members):
        if idx.size >= 2:
            options.append([*members[:k], idx[:1], idx[1:], *members[k + 1 :]])
    for parts in options:
        key = tuple(p.size for p in parts)
        if len(parts) > len(members) and grid(parts) <= limit and key not in seen:
            seen.add(key)
            yield parts


def _refined_search(
    members: list[IntArray],
    cls_cost: FloatArray,
    mono: FloatArray,
    terms: Terms,
    checked: list[FloatArray],
    check: Callable[[Parts, list[IntArray]], bool],
    diag: dict[str, int],
    limit: int,
    max_sweeps: int = 300,
) -> None:
    """Step 7: iterated best response over refined partitions, each fixed point verified by ``check``."""
    m = int(sum(idx.size for idx in members))
    seeds = [x.copy() for x in checked]
    for part_members in _refinements(members, limit):
        cost = np.array([cls_cost[_class_of(members, p[0])] for p in part_members])
        count = np.array([p.size for p in part_members], dtype=np.int64)
        joint = np.array(
            [max(float(mono[_class_of(members, p[0])]), float(terms.knots.min())) for p in part_members]
        )
        starts = [np.zeros(count.size), joint / m] + [
            np.array([x[p[0]] for p in part_members]) for x in seeds
        ]
        for q0 in starts:
            ibr = _part_ibr(Parts(cost, count, q0), terms, max_sweeps)
            if ibr is None:
                continue
            diag["refined"] += 1
            polished = _solve(ibr, terms) if np.any(ibr.quantity > 0) else None
            if check(polished if polished is not None else ibr, part_members) and np.any(ibr.quantity > 0):
                return


def _class_of(members: list[IntArray], seller: int) -> int:
    return next(k for k, idx in enumerate(members) if seller in idx)


def _with_evidence(
    eq: SellerEquilibria, checked: list[FloatArray], costs: FloatArray, terms: Terms
) -> SellerEquilibria:
    """No candidate passed: the candidate with the smallest regret (all-zero first on ties) as the
    reported fallback, with its regret, so that the caller can show the evidence (the
    ``EVIDENCE_LIMIT`` candidates of smallest total production are compared)."""
    best, best_reg = np.zeros(costs.size), math.inf
    for x in sorted(checked, key=lambda v: float(v.sum()))[:EVIDENCE_LIMIT]:
        try:
            reg = float(np.max(regrets(x, costs, terms)))
        except InvalidMarketError:  # too many distinct quantities to enumerate exactly
            continue
        if reg < best_reg:
            best, best_reg = x, reg
    return SellerEquilibria((best,), (np.zeros(costs.size),), (best_reg,), {**eq.diagnostics, "found": 0})


def _support_candidates(
    split: tuple[int, ...],
    members: list[IntArray],
    cls_cost: FloatArray,
    mono: FloatArray,
    terms: Terms,
    large: bool = False,
) -> Iterator[tuple[Parts, list[IntArray]]]:
    """FOC solutions (step 3) on the support where the first ``split[k]`` sellers of class ``k`` produce,
    from the general engine's two starts; ``large``: first from the symmetric start (the FOC of
    ``n_act`` equal sellers at the producing sellers' mean cost, one unknown, :class:`GridFoc`)."""
    part_cost: list[float] = []
    part_count: list[int] = []
    part_members: list[IntArray] = []
    start: list[float] = []
    variables: list[int] = []
    n_act = sum(split)
    for k, a in enumerate(split):
        for lo, hi, active in ((0, a, True), (a, members[k].size, False)):
            if hi > lo:
                if active:
                    variables.append(len(part_cost))
                    start.append(max(float(mono[k]), float(terms.knots.min())))
                part_cost.append(float(cls_cost[k]))
                part_count.append(hi - lo)
                part_members.append(members[k][lo:hi])
    cost, count = np.array(part_cost), np.array(part_count, dtype=np.int64)
    starts: list[FloatArray] = []
    if large:
        mean_cost = float(cost[variables] @ count[variables]) / n_act
        n_all = int(count.sum())
        sym = GridFoc([n_act], n_all - n_act, terms).symmetric_root(mean_cost, 2.0 * max(start))
        if sym is not None:
            starts.append(np.full(len(variables), sym))
    starts += [np.array(start) * scale for scale in (1.0 / n_act, 1.0)]  # the general engine's two starts
    for y0 in starts:
        q0 = np.zeros(cost.size)
        q0[variables] = y0
        got = _solve(Parts(cost, count, q0), terms)
        if got is not None:
            yield got, part_members


def _solve(parts: Parts, terms: Terms) -> Parts | None:
    """FOC (42) of one seller per producing part, from ``parts.quantity`` (step 3)."""
    variables = [b for b in range(parts.count.size) if parts.quantity[b] > 0]
    n_zero = parts.n_sellers - int(parts.count[variables].sum())
    grid = GridFoc(parts.count[variables], n_zero, terms)
    y = grid.solve(parts.cost[variables], parts.quantity[variables])
    if y is None:
        return None
    q = np.zeros(parts.count.size)
    q[variables] = y
    return Parts(parts.cost, parts.count, q)


def _part_ibr(parts: Parts, terms: Terms, max_sweeps: int) -> Parts | None:
    """Gauss-Seidel over parts (:func:`._search.iterated_best_response`): every seller of part ``b`` moves
    to one seller's global best response to the others (its peers included); ``None`` when it cycles or
    does not converge. A fixed point is a class-symmetric Nash equilibrium of the parts."""

    def respond(q: FloatArray, b: int) -> float:
        producing = [k for k in range(q.size) if q[k] > 0]
        coal = part_atoms(Parts(parts.cost, parts.count, q), b, producing)[1]
        return best_response(coal, float(parts.cost[b]), terms, hint=float(q[b])).quantity

    q = iterated_best_response(parts.quantity, respond, max_sweeps)
    return None if q is None else Parts(parts.cost, parts.count, q)


def _verify(parts: Parts, terms: Terms, tol: float) -> tuple[FloatArray, float] | None:
    """Payoffs per part and the largest regret, or ``None`` when some seller gains more than ``tol``
    times the payoff scale by its global best response (step 4)."""
    producing = [b for b in range(parts.count.size) if parts.quantity[b] > 0]
    coals = [part_atoms(parts, b, producing)[1] for b in range(parts.count.size)]
    pay = np.array(
        [payoff(float(parts.quantity[b]), coals[b], float(parts.cost[b]), terms) for b in range(len(coals))]
    )
    allowed = regret_allowance(pay, tol)
    worst = 0.0
    for b, coal in enumerate(coals):
        q = float(parts.quantity[b])
        br = best_response(coal, float(parts.cost[b]), terms, hint=q, stop_above=pay[b] + allowed)
        reg = br.payoff - pay[b]
        if reg > allowed:
            return None
        worst = max(worst, reg)
    return pay, worst


def seller_equilibria(
    costs: ArrayLike,
    terms: Terms,
    *,
    labels: ArrayLike | None = None,
    seed: int = 0,
    engine: str = "auto",
    within_class: bool = False,
    tol: float = 1e-9,
) -> SellerEquilibria:
    """Equilibria of the sellers' scalar game with the engine that applies.

    ``engine="auto"``: the class engine (:func:`class_equilibria`) when some class has two or more
    sellers and there are at most ``MAX_CLASSES`` classes, else the general engine
    (:func:`datamarket.mechanisms.balanced_market._shapley.find_equilibria`, the reference path);
    ``"classes"`` / ``"general"`` force one. ``labels`` default to classes of equal costs. When the class
    engine finds no verified equilibrium with production (its own refinement, step 7, included), it is
    run again on the supports where the first sellers of one class produce and every other seller is
    idle (any size), then with every split of a class (``within_class``) when the class grid has at
    most ``REFINE_LIMIT`` count vectors; for ``M <= GENERAL_FALLBACK`` ``"auto"`` also runs the general
    engine and selects over the equilibria of both (a support can hold several equilibria).
    ``diagnostics["found"] == 0`` on the result means no profile passed the regret check.
    """
    c = np.asarray(costs, dtype=np.float64)
    lab = seller_classes(c) if labels is None else np.asarray(labels, dtype=np.int64)
    if engine not in ("auto", "classes", "general"):
        raise ConfigurationError("engine", f"must be 'auto', 'classes' or 'general', got {engine!r}")
    n_cls = int(lab.max()) + 1
    if engine == "general" or (engine == "auto" and (n_cls == c.size or n_cls > MAX_CLASSES)):
        return find_equilibria(c, terms, seed=seed, tol=tol)
    eq = class_equilibria(c, terms, labels=lab, within_class=within_class, tol=tol)
    grid = math.prod(int(np.sum(lab == k)) + 1 for k in range(n_cls))
    if not _verified_production(eq) and not within_class:
        # try harder: the first a sellers of one class produce, every other seller idle (cheap at any
        # size: the grid spans the producing part only); then, on enumerable grids, every split
        lone = [
            tuple(a if i == k else 0 for i in range(n_cls))
            for k in range(n_cls)
            for a in range(1, _size(lab, k))
        ]
        tries: list[dict[str, Any]] = [{"supports": lone}]
        if grid <= REFINE_LIMIT:
            tries.append({"within_class": True})
        for extra in tries:
            split = class_equilibria(c, terms, labels=lab, tol=tol, **extra)
            if _verified_production(split) or (
                split.diagnostics.get("found") and not eq.diagnostics.get("found")
            ):
                eq = split
            if _verified_production(eq):
                break
    if engine == "auto" and c.size <= GENERAL_FALLBACK:
        # small markets: the general engine's candidates as well (a support can hold several
        # equilibria, and each engine's starts find some of them); one selection over both
        return _union(eq, find_equilibria(c, terms, seed=seed, tol=tol), c)
    return eq


def _union(a: SellerEquilibria, b: SellerEquilibria, costs: FloatArray) -> SellerEquilibria:
    """The verified equilibria of both searches, selected by one rule."""
    keep = [
        (x, p, r)
        for eq in (a, b)
        if eq.diagnostics.get("found", 1)
        for x, p, r in zip(*_lists(eq), strict=True)
    ]
    if not keep:
        return a if math.isfinite(a.regrets[0]) else b
    diag = {
        "found_classes": int(a.diagnostics.get("found", 1)),
        "found_general": int(b.diagnostics.get("found", 1)),
    }
    return select_equilibria([k[0] for k in keep], [k[1] for k in keep], [k[2] for k in keep], costs, diag)


def _lists(eq: SellerEquilibria) -> tuple[list[FloatArray], list[FloatArray], list[float]]:
    return list(eq.profiles), list(eq.payoffs), list(eq.regrets)


def _size(labels: IntArray, k: int) -> int:
    return int(np.sum(labels == k))


def _verified_production(eq: SellerEquilibria) -> bool:
    """The selected profile passed the regret check and has production."""
    return bool(eq.diagnostics.get("found", 1)) and eq.forms
