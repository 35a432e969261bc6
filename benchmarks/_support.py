"""Helpers shared by the benchmark scripts (imported as ``_support``: the scripts run from this folder).

``make bench`` runs every ``benchmarks/*.py`` except those starting with ``_``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from datamarket.valuation import RunState, StoppingRule


class TargetMet(StoppingRule):
    """Benchmark-only rule: stop once ``met(estimates)`` holds (an accuracy target against a reference)."""

    accuracy = True

    def __init__(self, met: Callable[[np.ndarray], bool], name: str = "target_met") -> None:
        self.met, self.name = met, name

    def check(self, state: RunState) -> bool:
        return state.values is not None and bool(self.met(state.values))


class ErrorBelow(TargetMet):
    """Benchmark-only rule: stop once max |estimate - exact| <= tol."""

    def __init__(self, exact: np.ndarray, tol: float) -> None:
        super().__init__(lambda v: float(np.abs(v - exact).max()) <= tol, "error_below")
        self.exact, self.tol = exact, tol
