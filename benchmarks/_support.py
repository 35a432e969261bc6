"""Helpers shared by the benchmark scripts (imported as ``_support``: the scripts run from this folder).

``make bench`` runs every ``benchmarks/*.py`` except those starting with ``_``.
"""

from __future__ import annotations

import numpy as np

from datamarket.valuation import RunState, StoppingRule


class ErrorBelow(StoppingRule):
    """Benchmark-only rule: stop once max |estimate - exact| <= tol."""

    name = "error_below"
    accuracy = True

    def __init__(self, exact: np.ndarray, tol: float) -> None:
        self.exact, self.tol = exact, tol

    def check(self, state: RunState) -> bool:
        return state.values is not None and float(np.abs(state.values - self.exact).max()) <= self.tol
