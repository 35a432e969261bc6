"""Stopping rules for sampled valuations; they compose with ``|`` (any) and ``&`` (all).

A rule looks at the :class:`RunState` after each batch and says whether to stop; the result reports
which rules fired (``stop_reason``) and whether an *accuracy* rule fired (``converged``). Rules are
stateless values (pyDVL ``stopping.py`` style, without hidden state): the run keeps the history.

>>> rule = MaxEvaluations(1000) | StderrTarget(0.01)
>>> rule.budget()
1000
>>> s = RunState(evaluations=10, elapsed=0.1, stderr=np.array([0.005, 0.02]), counts=np.array([9, 9]),
...              rankings=())
>>> rule.check(s), rule.fired(s)
(False, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError


@dataclass(frozen=True)
class RunState:
    """What a stopping rule sees: evaluations so far, wall time, per-player stderr and sample counts,
    the rankings of the players after each batch (most recent last) and the current estimates."""

    evaluations: int
    elapsed: float
    stderr: NDArray[np.float64]
    counts: NDArray[np.int64]
    rankings: tuple[tuple[int, ...], ...] = field(default=())
    values: NDArray[np.float64] | None = None


class StoppingRule:
    """Base class; subclasses define ``name``, ``accuracy``, :meth:`check` and :meth:`fraction`."""

    name = "rule"
    accuracy = False  # True when firing means the accuracy target was met

    def check(self, state: RunState) -> bool:
        raise NotImplementedError

    def fraction(self, state: RunState) -> float:
        """Estimated share of the work done, in ``[0, 1]`` (drives the progress bar's ETA)."""
        return 0.0

    def fired(self, state: RunState) -> list[str]:
        """Names of the elementary rules that hold in ``state``."""
        return [self.name] if self.check(state) else []

    def converged(self, state: RunState) -> bool:
        """Whether an accuracy rule holds in ``state``."""
        return self.accuracy and self.check(state)

    def budget(self) -> int | None:
        """A hard cap on evaluations implied by the rule, if any."""
        return None

    def __or__(self, other: StoppingRule) -> StoppingRule:
        return AnyOf((self, other))

    def __and__(self, other: StoppingRule) -> StoppingRule:
        return AllOf((self, other))


@dataclass(frozen=True)
class MaxEvaluations(StoppingRule):
    """Stop after ``n`` evaluations of the characteristic function (model fits); a hard budget."""

    n: int
    name = "max_evaluations"

    def __post_init__(self) -> None:
        if not isinstance(self.n, int | np.integer) or self.n < 1:
            raise ConfigurationError("max_evaluations", f"must be a positive integer, got {self.n!r}")

    def check(self, state: RunState) -> bool:
        return state.evaluations >= self.n

    def fraction(self, state: RunState) -> float:
        return min(1.0, state.evaluations / self.n)

    def budget(self) -> int | None:
        return int(self.n)


@dataclass(frozen=True)
class MaxPermutations(StoppingRule):
    """Stop once every player has at least ``n`` sampled marginal contributions (permutations)."""

    n: int
    name = "max_permutations"

    def __post_init__(self) -> None:
        if not isinstance(self.n, int | np.integer) or self.n < 1:
            raise ConfigurationError("max_permutations", f"must be a positive integer, got {self.n!r}")

    def check(self, state: RunState) -> bool:
        return bool(state.counts.size and state.counts.min() >= self.n)

    def fraction(self, state: RunState) -> float:
        return min(1.0, float(state.counts.min(initial=0)) / self.n) if state.counts.size else 0.0


@dataclass(frozen=True)
class MaxTime(StoppingRule):
    """Stop after ``seconds`` of wall time (checked between batches; not reproducible across machines)."""

    seconds: float
    name = "max_time"

    def __post_init__(self) -> None:
        if not np.isfinite(self.seconds) or self.seconds <= 0:
            raise ConfigurationError("max_time", f"must be a positive number of seconds, got {self.seconds}")

    def check(self, state: RunState) -> bool:
        return state.elapsed >= self.seconds

    def fraction(self, state: RunState) -> float:
        return min(1.0, state.elapsed / self.seconds)


@dataclass(frozen=True)
class StderrTarget(StoppingRule):
    """Stop when every player's standard error is at most ``tol`` (with ``min_count`` samples each)."""

    tol: float
    min_count: int = 4
    name = "stderr_target"
    accuracy = True

    def __post_init__(self) -> None:
        if not np.isfinite(self.tol) or self.tol <= 0:
            raise ConfigurationError("stderr_target", f"must be a positive number, got {self.tol}")

    def check(self, state: RunState) -> bool:
        return bool(np.all(state.counts >= self.min_count) and np.all(state.stderr <= self.tol))

    def fraction(self, state: RunState) -> float:
        worst = float(np.max(state.stderr)) if state.stderr.size else np.inf
        if not np.isfinite(worst) or worst <= 0:
            return 0.0 if not np.isfinite(worst) else 1.0
        return min(1.0, (self.tol / worst) ** 2)  # stderr ~ 1/sqrt(samples)


@dataclass(frozen=True)
class RankStability(StoppingRule):
    """Stop when the ranking of the players has not changed over the last ``patience`` batches."""

    patience: int = 5
    name = "rank_stability"
    accuracy = True

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ConfigurationError("rank_stability", f"patience must be >= 1, got {self.patience}")

    def _streak(self, state: RunState) -> int:
        r = state.rankings
        k = 0
        while k + 1 < len(r) and r[-1 - k - 1] == r[-1]:
            k += 1
        return k

    def check(self, state: RunState) -> bool:
        return self._streak(state) >= self.patience

    def fraction(self, state: RunState) -> float:
        return min(1.0, self._streak(state) / self.patience)


@dataclass(frozen=True)
class AnyOf(StoppingRule):
    """Stops when any of ``rules`` does."""

    rules: tuple[StoppingRule, ...]
    name = "any"

    def check(self, state: RunState) -> bool:
        return any(r.check(state) for r in self.rules)

    def fired(self, state: RunState) -> list[str]:
        return [n for r in self.rules for n in r.fired(state)]

    def converged(self, state: RunState) -> bool:
        return any(r.converged(state) for r in self.rules)

    def fraction(self, state: RunState) -> float:
        return max(r.fraction(state) for r in self.rules)

    def budget(self) -> int | None:
        b = [x for x in (r.budget() for r in self.rules) if x is not None]
        return min(b) if b else None


@dataclass(frozen=True)
class AllOf(StoppingRule):
    """Stops when all of ``rules`` do."""

    rules: tuple[StoppingRule, ...]
    name = "all"

    def check(self, state: RunState) -> bool:
        return all(r.check(state) for r in self.rules)

    def fired(self, state: RunState) -> list[str]:
        return [n for r in self.rules for n in r.fired(state)] if self.check(state) else []

    def converged(self, state: RunState) -> bool:
        return self.check(state) and any(r.converged(state) for r in self.rules)

    def fraction(self, state: RunState) -> float:
        return min(r.fraction(state) for r in self.rules)

    def budget(self) -> int | None:
        b = [r.budget() for r in self.rules]
        return None if any(x is None for x in b) else max(x for x in b if x is not None)
