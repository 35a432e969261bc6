r"""The two steps that both equilibrium engines of the sellers' game (7) share.

The general engine (:mod:`._shapley`, one entry per seller) and the class engine (:mod:`._classes`,
one entry per part of a class-structured profile) search the same way:

* :func:`iterated_best_response`: Gauss-Seidel iterated *global* best response from a start, entries
  updated in index order, each against the current values of all the others; the engine supplies the
  best response of entry ``j`` (the general engine builds the coalitions of the other sellers, the class
  engine those of one seller of part ``b``, its peers included). It stops at a fixed point (the largest
  step at most :math:`10^{-12}(1 + \max_j |x_j|)`), gives up on a cycle (a profile seen before, rounded
  to 7 decimals, while the step is still above :math:`10^{-6}(1 + \max_j |x_j|)`) or after
  ``max_sweeps`` sweeps.
* :class:`CandidateCheck`: every candidate profile is checked once (a candidate within
  ``np.allclose(rtol=1e-9, atol=1e-11)`` of a checked one, or with a negative entry, is skipped) by the
  engine's verifier, which returns the payoffs and the largest regret of a Nash equilibrium, or
  ``None``; the verified ones are kept in the order found, for the selection rule
  (:func:`._shapley.select_equilibria`).

>>> ibr = iterated_best_response(np.array([0.0, 4.0]), lambda x, j: 1.0 + x[1 - j] / 2, 300)
>>> ibr.round(9).tolist()   # x_j = 1 + x_k / 2 for both: the fixed point (2, 2)
[2.0, 2.0]
>>> check = CandidateCheck()
>>> check.check(np.array([1.0, 0.0]), lambda: (np.array([0.5, 0.0]), 0.0))
True
>>> check.check(np.array([1.0 + 1e-12, 0.0]), lambda: None)   # a duplicate: not verified again
False
>>> len(check.checked), len(check.kept), check.producing
(1, 1, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from datamarket.core.types import FloatArray

Verdict = tuple[FloatArray, float] | None
"""Payoffs and the largest regret of a verified equilibrium, ``None`` for a rejected candidate."""


def iterated_best_response(
    start: FloatArray, respond: Callable[[FloatArray, int], float], max_sweeps: int
) -> FloatArray | None:
    """Gauss-Seidel iterated best response from ``start``; ``None`` when it cycles or does not converge.

    ``respond(x, j)`` is entry ``j``'s best response to the current profile ``x`` (updated in place,
    entries in index order, so later entries respond to the new values of the earlier ones).
    """
    x = start.astype(np.float64).copy()
    seen: set[bytes] = set()
    for _ in range(max_sweeps):
        prev = x.copy()
        for j in range(x.size):
            x[j] = respond(x, j)
        step = float(np.max(np.abs(x - prev)))
        if step <= 1e-12 * (1.0 + np.max(np.abs(x))):
            return x
        key = np.round(x, 7).tobytes()
        if key in seen and step > 1e-6 * (1.0 + np.max(np.abs(x))):
            return None  # a cycle of best responses
        seen.add(key)
    return None


def regret_allowance(pay: FloatArray, tol: float) -> float:
    """The largest regret a Nash equilibrium may show: ``tol`` times the payoff scale (at least 1)."""
    return tol * max(1.0, float(np.max(np.abs(pay))))


class CandidateCheck:
    """The candidate profiles checked so far and those verified: profiles, payoffs, regrets."""

    def __init__(self) -> None:
        self.checked: list[FloatArray] = []
        self.kept: list[FloatArray] = []
        self.pays: list[FloatArray] = []
        self.regs: list[float] = []

    @property
    def producing(self) -> bool:
        """Some verified equilibrium has production."""
        return any(x.sum() > 0 for x in self.kept)

    def _seen(self, x: FloatArray) -> bool:
        if not self.checked:
            return False
        seen = np.array(self.checked)  # np.allclose(x, k, rtol=1e-9, atol=1e-11) for any checked k
        return bool(np.any(np.all(np.abs(x - seen) <= 1e-11 + 1e-9 * np.abs(seen), axis=1)))

    def check(self, x: FloatArray, verify: Callable[[], Verdict]) -> bool:
        """Verify ``x`` with ``verify`` unless it has a negative entry or duplicates a checked profile;
        ``True`` when it was verified as an equilibrium (and kept)."""
        if np.any(x < 0) or self._seen(x):
            return False
        self.checked.append(x)
        verdict = verify()
        if verdict is None:
            return False
        self.kept.append(x)
        self.pays.append(verdict[0])
        self.regs.append(verdict[1])
        return True
