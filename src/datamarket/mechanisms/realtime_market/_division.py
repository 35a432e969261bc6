r"""PD*, the division of a buyer's charge among the sellers (Agarwal, Dahleh, Sarkar, Sec. 4.2, 5.3).

Shapley values (eq. 2, Thm 3.1) of the game :math:`v(S) = \mathcal G(Y_n, \mathcal M(\tilde X_S))` on
the allocated streams:
:math:`\psi(m) = \sum_{T \subseteq [M]\setminus m} \frac{|T|!(M-|T|-1)!}{M!}[v(T \cup m) - v(T)]`.

PD*_A, Algorithm 2 (SHAPLEY-APPROX)
    For each seller :math:`m`, :math:`K` permutations drawn independently; :math:`\hat\psi(m)` is the mean
    of :math:`v(P \cup m) - v(P)` over them, :math:`P` the predecessors of :math:`m` (``2MK`` evaluations;
    a memo fits each distinct coalition once). Thm 5.3: :math:`K > M\log(2/\delta)/(2\varepsilon^2)`
    gives :math:`\|\hat\psi - \psi\|_\infty < \varepsilon` with probability :math:`\ge 1 - \delta`
    (:func:`theorem_5_3_samples`). For ``M <= exact_up_to`` the values are exact instead, by the
    valuation engine (:func:`datamarket.valuation.value_table` and
    :func:`~datamarket.valuation.shapley_from_table`: ``2^M`` coalitions, each fitted once).
Fast PD*_A and PD*_B (``shapley = "engine"``, the default above ``exact_up_to`` sellers)
    The same accuracy target, :math:`\|\hat\psi - \psi\|_\infty < \varepsilon` (PD*_A; Thm 5.4's
    :math:`\varepsilon/3` for PD*_B) at level :math:`\delta`, by the valuation engine's Monte Carlo
    estimator, stopped when every seller's Student-t half-width at level :math:`\delta/M` is below it
    (:mod:`._fast`). A confidence statement from the central limit theorem, not Hoeffding's bound;
    at most Algorithm 2's ``2MK`` evaluations.
PD*_B, Algorithm 3 (SHAPLEY-ROBUST)
    :math:`\psi(m) = \hat\psi(m)\exp(-\lambda \sum_{j \ne m} \mathrm{SM}(X_m, X_j))`, not renormalised.
    Thm 5.4: with :math:`K \ge M\log(2/\delta)/(2(\varepsilon/3)^2)` (:func:`theorem_5_4_samples`) and
    :math:`\lambda = \log 2` the split is :math:`\varepsilon`-robust to replication (Property 3.4).

Choices where the paper is silent or inconsistent
-------------------------------------------------
* **Scale.** Algorithm 2 returns raw marginals, which sum to :math:`v([M]) - v(\emptyset)`, while balance
  (Property 3.3) asks for :math:`\sum_m \psi(m) = 1`. The shares are the Shapley values divided by
  :math:`v([M]) - v(\emptyset)` (all zero when the data add no gain): PD*_A is then balanced exactly with
  exact values and up to :math:`M\varepsilon/(v([M]) - v(\emptyset))` with sampled ones. Sampling runs on the
  raw game, whose marginals lie in :math:`[-1, 1]`.
* **Negative values.** A stream that makes the held-out gain worse has a negative Shapley value (the
  paper's :math:`\psi \in [0, 1]^M` presumes it cannot); it is kept, not clipped: clipping would break
  balance. The seller's payment is then negative.
* **Unassigned revenue.** Under PD*_B the fraction :math:`1 - \sum_m \psi(m)` of the charge is paid to no
  seller; it is reported (:attr:`Division.unassigned`) and never spread over the sellers, which would
  break Thm 5.4 (Prop. 5.1).
* **Similarity** (Def. 4.1) on the clean streams (not the allocated ones, whose independent noise would
  hide copies): ``cosine`` is the paper's :math:`|\cos|` (Ex. 4.3); ``pearson`` the absolute centred
  correlation. Neither meets Def. 4.1 in full: both score a scaled copy 1 (which a linear learner
  rightly treats as a copy) and both break the triangle inequality of :math:`1 - \mathrm{SM}` (streams
  at 0, 45 and 90 degrees give 0.586 < 1). :math:`|\cos|` also scores independent positive streams
  near 0.75 (uniform on [0, 1]: exactly 3/4 in the limit), penalising honest sellers, and drops to
  about 0.1 when a copier adds a constant 10 to a centred stream, which a model with an intercept
  ignores: the copy evades the penalty. The centred correlation has neither fault. Streams of one
  content have similarity 1; a constant stream has similarity 0 with any other content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import spawn_generators
from datamarket.core.types import FloatArray
from datamarket.mechanisms.realtime_market._data import CoalitionGame
from datamarket.mechanisms.realtime_market._fast import engine_values
from datamarket.valuation import shapley_from_table, value_table

Rule = Literal["pd_a", "pd_b"]
Similarity = Literal["cosine", "pearson"]
ShapleyMethod = Literal["auto", "exact", "sampled", "engine"]

LOG_2 = math.log(2.0)
"""Thm 5.4's lambda: the least with :math:`c\\,e^{-\\lambda(c-1)} \\le 1` for every integer ``c >= 1``."""


def theorem_5_3_samples(n_sellers: int, eps: float, delta: float) -> int:
    """Thm 5.3: the least integer ``K > M log(2/delta) / (2 eps^2)``.

    >>> theorem_5_3_samples(10, 0.1, 0.05)
    1845
    """
    _check_accuracy(eps, delta)
    return math.floor(n_sellers * math.log(2 / delta) / (2 * eps * eps)) + 1


def theorem_5_4_samples(n_sellers: int, eps: float, delta: float) -> int:
    """Thm 5.4: the least integer ``K >= M log(2/delta) / (2 (eps/3)^2)``.

    >>> theorem_5_4_samples(10, 0.3, 0.05)
    1845
    """
    _check_accuracy(eps, delta)
    return math.ceil(n_sellers * math.log(2 / delta) / (2 * (eps / 3) ** 2) - 1e-9)


def _check_accuracy(eps: float, delta: float) -> None:
    if not (0 < eps and 0 < delta < 1):
        raise InvalidMarketError("division", f"need eps > 0 and 0 < delta < 1, got {eps}, {delta}")


def algorithm2(game: CoalitionGame, samples: int, seed: int) -> tuple[FloatArray, FloatArray]:
    """Algorithm 2's estimates of the Shapley values (raw game) and their standard errors.

    Seller ``m``'s ``samples`` permutations come from its own stream (spawned from ``seed``); a uniform
    permutation is drawn as the order of ``M`` uniform keys, the predecessors of ``m`` being the sellers
    with a smaller key.
    """
    m = game.n_players
    est, se = np.empty(m), np.empty(m)
    for i, rng in enumerate(spawn_generators(seed, m)):
        keys = rng.random((samples, m))
        before = keys < keys[:, [i]]
        packed = np.packbits(before, axis=1, bitorder="little")
        marg = np.empty(samples)
        for k in range(samples):
            mask = int.from_bytes(packed[k].tobytes(), "little")
            marg[k] = game.value(mask | (1 << i)) - game.value(mask)
        est[i] = marg.mean()
        se[i] = marg.std(ddof=1) / math.sqrt(samples) if samples > 1 else math.inf
    return est, se


def similarity_matrix(values: FloatArray, ids: tuple[str, ...], kind: Similarity) -> FloatArray:
    """``SM[i, j]`` of Def. 4.1 between the (clean) streams: ``|cos|`` or ``|Pearson|``, in [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    if kind == "pearson":
        x = x - x.mean(axis=0)
    elif kind != "cosine":
        raise InvalidMarketError("division.similarity", "must be 'cosine' or 'pearson'")
    norm = np.linalg.norm(x, axis=0)
    safe = np.where(norm > 0, norm, 1.0)
    sm = np.abs(x.T @ x) / np.outer(safe, safe)
    sm[(norm == 0)[:, None] | (norm == 0)[None, :]] = 0.0
    same = np.array(ids)[:, None] == np.array(ids)[None, :]
    out: FloatArray = np.where(same, 1.0, np.clip(sm, 0.0, 1.0))
    return out


def robust_factors(sm: FloatArray, lam: float) -> FloatArray:
    """Algorithm 3's penalty :math:`\\exp(-\\lambda \\sum_{j \\ne m} \\mathrm{SM}(X_m, X_j))`."""
    out: FloatArray = np.exp(-lam * (sm.sum(axis=1) - np.diag(sm)))
    return out


@dataclass(frozen=True)
class Division:
    """One buyer's split: the Shapley values of the gain game, the shares and what is paid.

    ``shapley`` (raw, summing to ``grand`` = v([M]) - v(empty) when exact), ``shares`` = shapley / grand
    (PD*_A's split), ``paid`` the fractions of the charge paid to each seller (``shares`` under ``pd_a``,
    ``shares * penalty`` under ``pd_b``), ``unassigned`` = 1 - sum(paid); ``method`` is ``exact``,
    ``sampled`` (``samples`` permutations per seller, Algorithm 2) or ``engine`` (``samples``: the
    permutations the engine drew, each giving every seller one marginal), ``calls`` the game evaluations
    asked for (2 M K when sampled) and ``fits`` the models fitted; ``similarity`` is SM between the clean
    streams, ``eps`` the accuracy targeted by Algorithm 2 and ``table`` the game's value on every coalition
    (exact values only, for the certificate).
    """

    rule: Rule
    names: tuple[str, ...]
    shapley: FloatArray
    stderr: FloatArray
    grand: float
    shares: FloatArray
    penalty: FloatArray
    paid: FloatArray
    unassigned: float
    method: str
    samples: int
    calls: int
    fits: int
    similarity: FloatArray
    eps: float
    table: FloatArray | None = None

    def payments(self, charge: float) -> FloatArray:
        """Each seller's payment out of ``charge``."""
        out: FloatArray = charge * self.paid
        return out


@dataclass(frozen=True)
class DivisionSpec:
    """PD*'s parameters: ``rule``, ``similarity``, ``lam`` (lambda), how Shapley values are computed
    (``exact``, ``sampled`` by Algorithm 2, ``engine`` by the valuation engine under a stopping rule;
    ``auto``: exact up to ``exact_up_to`` sellers, else ``engine``) and the accuracy ``eps``, ``delta``
    (``samples``: a fixed K for Algorithm 2 instead of the theorem's)."""

    rule: Rule = "pd_b"
    similarity: Similarity = "cosine"
    lam: float = LOG_2
    shapley: ShapleyMethod = "auto"
    exact_up_to: int = 12
    eps: float = 0.1
    delta: float = 0.1
    samples: int | None = None

    def __post_init__(self) -> None:
        if self.rule not in ("pd_a", "pd_b"):
            raise InvalidMarketError("division.rule", "must be 'pd_a' or 'pd_b'")
        if self.shapley not in ("auto", "exact", "sampled", "engine"):
            raise InvalidMarketError("division.shapley", "must be 'auto', 'exact', 'sampled' or 'engine'")
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise InvalidMarketError("division.lam", "must be finite and >= 0")
        _check_accuracy(self.eps, self.delta)

    def sample_count(self, n_sellers: int) -> int:
        """K: ``samples``, else Thm 5.3's (pd_a) or Thm 5.4's (pd_b) count."""
        if self.samples is not None:
            return int(self.samples)
        count = theorem_5_3_samples if self.rule == "pd_a" else theorem_5_4_samples
        return count(n_sellers, self.eps, self.delta)

    def exact(self, n_sellers: int) -> bool:
        return self.shapley == "exact" or (self.shapley == "auto" and n_sellers <= self.exact_up_to)

    def method(self, n_sellers: int) -> str:
        """``exact``, ``sampled`` (Algorithm 2) or ``engine`` for a game of ``n_sellers``."""
        if self.exact(n_sellers):
            return "exact"
        return "engine" if self.shapley in ("auto", "engine") else "sampled"

    def target(self) -> float:
        """The accuracy the Shapley values need: ``eps`` (Thm 5.3, PD*_A) or ``eps / 3`` (Thm 5.4)."""
        return self.eps if self.rule == "pd_a" else self.eps / 3


def divide(game: CoalitionGame, clean: FloatArray, spec: DivisionSpec, seed: int) -> Division:
    """PD*_A or PD*_B (``spec.rule``) of one buyer's game; ``clean`` are the streams before AF*."""
    m = game.n_players
    calls0, fits0 = game.calls, game.fits
    table = None
    method = spec.method(m)
    if method == "exact":
        table = value_table(game)  # the valuation engine's exact path: every coalition once
        values, stderr, k = shapley_from_table(table), np.zeros(m), 0
    elif method == "engine":  # at most Algorithm 2's 2MK evaluations
        cap = 2 * m * spec.sample_count(m)
        values, stderr, k = engine_values(game, spec.target(), spec.delta, cap, seed)
    else:
        k = spec.sample_count(m)
        values, stderr = algorithm2(game, k, seed)
    grand = game.value((1 << m) - 1) - game.value(0)
    shares = values / grand if grand > 0 else np.zeros(m)
    sm = similarity_matrix(clean, game.ids, spec.similarity)
    penalty = robust_factors(sm, spec.lam) if spec.rule == "pd_b" else np.ones(m)
    paid = shares * penalty
    return Division(
        rule=spec.rule,
        names=game.player_names,
        shapley=values,
        stderr=stderr,
        grand=float(grand),
        shares=shares,
        penalty=penalty,
        paid=paid,
        unassigned=1.0 - math.fsum(paid.tolist()),
        method=method,
        samples=k,
        calls=game.calls - calls0,
        fits=game.fits - fits0,
        similarity=sm,
        eps=spec.eps,
        table=table,
    )
