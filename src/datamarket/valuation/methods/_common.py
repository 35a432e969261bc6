"""Shared plumbing of the sampled estimators: memo + backend + budget, and the switch to enumeration.

Every sampled method asks for the values of *sampling units* (the coalitions one sample needs: a
permutation's prefixes, a coalition and its complement, ...). :class:`Evaluator` evaluates the units'
coalitions that are not memoised yet on the backend, admitting whole units in order while the budget
of new evaluations (model fits) allows, so a budget is never exceeded and cuts a batch at a unit
boundary (the same seed then gives the same values on every backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError
from datamarket.core.random import seed_sequence
from datamarket.valuation.backends import Backend, evaluate, resolve_backend
from datamarket.valuation.certificate import certified
from datamarket.valuation.exact import MAX_EXACT_PLAYERS, exact_from_kernel
from datamarket.valuation.games import CoalitionGame, MemoCache
from datamarket.valuation.result import ValuationResult


def check_seed_and_budget(seed: Any, max_evaluations: Any) -> tuple[np.random.SeedSequence, int]:
    """Validated seed sequence and positive integer budget (clear field errors)."""
    try:
        ss = seed_sequence(seed)
    except ValueError as exc:
        raise ConfigurationError("seed", str(exc).split(": ", 1)[-1]) from None
    if not isinstance(max_evaluations, int | np.integer) or isinstance(max_evaluations, bool):
        raise ConfigurationError("max_evaluations", "must be an integer")
    if max_evaluations < 2:
        raise ConfigurationError("max_evaluations", f"must be >= 2, got {max_evaluations}")
    return ss, int(max_evaluations)


class Evaluator:
    """Coalition values through the game's memo (or a private one), on a backend, under a budget."""

    def __init__(self, game: CoalitionGame, backend: Any, budget: int) -> None:
        self.game = game
        cached = getattr(game, "cache", None)
        self.memo = cached if isinstance(cached, MemoCache) else MemoCache()
        self.hits0, self.misses0 = self.memo.hits, self.memo.misses
        self.owned = backend is None or isinstance(backend, str)
        self.backend: Backend = resolve_backend(backend)
        self.budget = budget
        self.t0 = time.perf_counter()

    @property
    def used(self) -> int:
        """New evaluations (model fits) so far."""
        return self.memo.misses - self.misses0

    @property
    def hits(self) -> int:
        return self.memo.hits - self.hits0

    def admit(self, units: list[list[int]]) -> int:
        """Evaluate the coalitions of the leading units that fit in the budget; returns how many units.

        A unit is admitted only if all its new coalitions fit, so every admitted unit is complete.
        """
        pending: dict[int, None] = {}
        left = self.budget - self.used
        n_ok = 0
        lookups = 0
        for unit in units:
            new = {x: None for x in unit if x not in self.memo and x not in pending}
            if len(pending) + len(new) > left:
                break
            pending.update(new)
            lookups += len(unit)
            n_ok += 1
        evaluate(self.game, list(pending), self.backend, self.memo)
        self.memo.hits += lookups - len(pending)
        return n_ok

    def values(self, masks: list[int]) -> NDArray[np.float64]:
        """Memoised values of ``masks`` (which must all have been admitted)."""
        return np.fromiter((self.memo.peek(x) for x in masks), dtype=np.float64, count=len(masks))

    def close(self) -> None:
        if self.owned:
            self.backend.close()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def result(
        self,
        method: str,
        values: NDArray[np.float64],
        stderr: NDArray[np.float64],
        counts: NDArray[np.int64],
        extra: dict[str, Any],
    ) -> ValuationResult:
        """The certified result of a sampling run that spent its budget (``converged=False``)."""
        return certified(
            ValuationResult(
                method,
                self.game.player_names,
                values,
                stderr,
                counts,
                evaluations=self.used,
                cache_hits=self.hits,
                converged=False,
                stop_reason="max_evaluations",
                elapsed=self.elapsed(),
                extra=extra,
            ),
            self.game,
        )


def exact_if_affordable(
    game: CoalitionGame,
    budget: int,
    kernel: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    method: str,
    backend: Any,
) -> ValuationResult | None:
    """Exact values by enumeration when the budget reaches ``2**M`` (sampling could not do better).

    Returns ``None`` when the budget is below ``2**M`` (or ``M`` exceeds the enumeration limit).
    The result's ``extra["switched_to_exact"]`` is ``True``.
    """
    m = game.n_players
    if m > MAX_EXACT_PLAYERS or budget < (1 << m):
        return None
    res = exact_from_kernel(method, kernel, game, backend)
    res.extra["switched_to_exact"] = True
    return res


def masks_from_rows(z: NDArray[np.bool_]) -> list[int]:
    """Bitmasks (Python ints, any number of players) of the rows of a boolean membership matrix.

    >>> masks_from_rows(np.array([[True, False, True], [False, True, False]]))
    [5, 2]
    """
    packed = np.packbits(np.asarray(z, dtype=bool), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def random_subsets(rng: np.random.Generator, m: int, sizes: NDArray[np.int64]) -> NDArray[np.bool_]:
    """One uniformly random subset of ``range(m)`` of each size in ``sizes`` (membership rows)."""
    ranks = np.argsort(rng.random((sizes.size, m)), axis=1).argsort(axis=1)
    out: NDArray[np.bool_] = ranks < sizes[:, None]
    return out
