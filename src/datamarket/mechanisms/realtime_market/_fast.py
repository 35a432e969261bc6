r"""Fast PD*: the buyer's Shapley values by the valuation engine, stopped at Thm 5.3's accuracy.

Algorithm 2 (SHAPLEY-APPROX, Agarwal, Dahleh, Sarkar, Sec. 5.3) spends :math:`2MK` game evaluations
with Thm 5.3's :math:`K > M\log(2/\delta)/(2\varepsilon^2)`: :math:`O(M^2 K)` fits per buyer, fixed in
advance by Hoeffding's inequality for marginals in :math:`[0, 1]`. Here the same target,
:math:`\|\hat\psi - \psi\|_\infty < \varepsilon` with probability :math:`\ge 1 - \delta`, is pursued by
the engine's Monte Carlo estimator (:func:`datamarket.valuation.monte_carlo_shapley`) and a stopping
rule that reads the estimator's own standard errors.

The estimator (see :mod:`datamarket.valuation.montecarlo`)
    Blocks of the :math:`M` rotations of a uniformly random permutation, each with its reverse
    (antithetic): every seller visits every position twice per block, the :math:`M` positions are strata
    (Maleki et al. 2013), coalitions are memoised (the game's content cache fits each distinct set of
    streams once). The blocks are i.i.d.; the standard error :math:`s_m` of seller :math:`m` is the
    spread of the per-block means over the :math:`b` blocks drawn, divided by :math:`\sqrt b`.

The stopping rule (:class:`HalfWidth`), checked after each block
    Stop when every seller's two-sided Student-t half-width at level :math:`\delta/M` is below the
    target: :math:`t_{b-1}(1 - \delta/(2M))\, s_m \le \varepsilon` for all :math:`m`, with :math:`b \ge 2`
    blocks. The level :math:`\delta/M` is the union bound over the :math:`M` sellers that Thm 5.3's
    proof uses (App. C); the Student quantile with :math:`b - 1` degrees of freedom pays for an
    estimated :math:`s_m` (a rule with the normal quantile stops too early at two or three blocks).
    A cap of :math:`2MK` new evaluations (Algorithm 2's own count of calls) bounds the run; the run is
    exact (and stops) once the memo holds all :math:`2^M` coalitions.

What the rule does not guarantee
    It is a confidence statement from the central limit theorem, not Hoeffding's inequality: the
    block means are approximately normal (each averages :math:`2M` marginals), the interval is
    approximate, and stopping when an estimated standard error first crosses a threshold is
    optional stopping, which can lower the coverage. Thm 5.3's probability :math:`1 - \delta` is
    therefore *targeted*, not proven; the benchmark ``benchmarks/realtime_market_fast.py`` measures
    the rate at which :math:`\|\hat\psi - \psi\|_\infty \ge \varepsilon` against exact values.
    Algorithm 2 keeps the proven guarantee (``shapley = "sampled"``).

Cost: the engine's evaluations stop when the data allow, typically far below Algorithm 2's: its
:math:`K` is set for the worst game with marginals in :math:`[0, 1]`, while a learning game's marginal
contributions spread over a small part of that range. Deterministic under ``seed`` (the engine's
permutation stream); serial evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray
from datamarket.valuation import (
    CoalitionGame,
    MaxEvaluations,
    RunState,
    StoppingRule,
    ValuationResult,
    monte_carlo_shapley,
)


@dataclass(frozen=True)
class HalfWidth(StoppingRule):
    """Stop when :math:`t_{b-1}(1 - \\delta/(2M))\\, s_m \\le \\varepsilon` for every seller ``m`` (module
    docstring); ``block`` is the number of samples one block gives each seller (``2M``).

    >>> rule = HalfWidth(eps=0.1, delta=0.1, n_players=2, block=4)
    >>> s = RunState(evaluations=9, elapsed=0.0, stderr=np.array([0.01, 0.02]), counts=np.array([40, 40]))
    >>> round(rule.quantile(10), 3), rule.check(s)        # ten blocks: t_9(0.975) * 0.02 < 0.1
    (2.262, True)
    """

    eps: float
    delta: float
    n_players: int
    block: int
    name = "half_width"
    accuracy = True

    def __post_init__(self) -> None:
        if not (self.eps > 0 and 0 < self.delta < 1 and self.n_players >= 1 and self.block >= 1):
            raise InvalidMarketError("division", "need eps > 0, 0 < delta < 1, n_players >= 1, block >= 1")

    def quantile(self, blocks: int) -> float:
        """:math:`t_{b-1}(1 - \\delta/(2M))` for ``b = blocks`` (infinite below two blocks)."""
        from scipy.stats import t as student_t

        if blocks < 2:
            return math.inf
        return float(student_t.ppf(1.0 - self.delta / (2 * self.n_players), blocks - 1))

    def blocks(self, state: RunState) -> int:
        return int(state.counts.min()) // self.block if state.counts.size else 0

    def check(self, state: RunState) -> bool:
        q = self.quantile(self.blocks(state))
        return bool(math.isfinite(q) and np.all(q * state.stderr <= self.eps))

    def fraction(self, state: RunState) -> float:
        q = self.quantile(self.blocks(state))
        worst = float(np.max(state.stderr)) if state.stderr.size else math.inf
        if not (math.isfinite(q) and math.isfinite(worst)) or worst <= 0:
            return 1.0 if worst == 0 else 0.0
        return min(1.0, (self.eps / (q * worst)) ** 2)


def engine_shapley(game: CoalitionGame, eps: float, delta: float, cap: int, seed: int) -> ValuationResult:
    """Shapley values of ``game`` by the engine's Monte Carlo estimator, stopped by :class:`HalfWidth`
    at accuracy ``eps`` and level ``delta`` or after ``cap`` new evaluations (module docstring).

    >>> from datamarket.valuation import FunctionGame, exact_shapley
    >>> w = np.linspace(0.1, 0.5, 14)
    >>> game = FunctionGame(lambda s: float(np.sqrt(w[list(s)].sum())) / 2, 14)
    >>> r = engine_shapley(game, eps=0.01, delta=0.1, cap=100_000, seed=0)
    >>> r.converged, r.evaluations < 2**14, bool(np.abs(r.values - exact_shapley(game).values).max() < 0.01)
    (True, True, True)
    """
    m = game.n_players
    rule = HalfWidth(eps, delta, m, 2 * m) | MaxEvaluations(int(max(cap, 2)))
    return monte_carlo_shapley(
        game, seed=seed, stopping=rule, antithetic=True, sampler="cyclic", batch_size=m
    )


def engine_values(
    game: CoalitionGame, eps: float, delta: float, cap: int, seed: int
) -> tuple[FloatArray, FloatArray, int]:
    """:func:`engine_shapley`'s values, standard errors and samples per seller (its permutations)."""
    r = engine_shapley(game, eps, delta, cap, seed)
    return r.values, r.stderr, int(r.counts.min())
