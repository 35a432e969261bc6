"""Valuation results: values with diagnostics, mergeable like ``scipy.optimize.OptimizeResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ValuationResult:
    """Values of each player plus diagnostics.

    Attributes
    ----------
    method : "exact_shapley", "loo", "banzhaf", "permutation_shapley", ...
    names : player names, aligned with ``values``.
    values : estimated (or exact) values.
    stderr : per-player standard errors (zeros for exact methods).
    counts : per-player number of samples behind each estimate (0 for exact methods).
    evaluations : characteristic-function evaluations (model fits) actually performed.
    cache_hits : evaluations answered from the memo cache.
    converged : whether the stopping rule's accuracy target was met (always True for exact).
    stop_reason : which stopping criterion fired.
    elapsed : wall-clock seconds.
    """

    method: str
    names: tuple[str, ...]
    values: NDArray[np.float64]
    stderr: NDArray[np.float64]
    counts: NDArray[np.int64]
    evaluations: int = 0
    cache_hits: int = 0
    converged: bool = True
    stop_reason: str = "exact"
    elapsed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.values, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "names": list(self.names),
            "values": self.values.tolist(),
            "stderr": self.stderr.tolist(),
            "counts": self.counts.tolist(),
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "converged": self.converged,
            "stop_reason": self.stop_reason,
            "elapsed": self.elapsed,
        }


def exact_result(
    method: str,
    names: tuple[str, ...],
    values: NDArray[np.float64],
    *,
    evaluations: int,
    cache_hits: int = 0,
    elapsed: float = 0.0,
) -> ValuationResult:
    """Result of an exact method (zero standard errors)."""
    n = len(names)
    return ValuationResult(
        method,
        names,
        np.asarray(values, dtype=np.float64),
        np.zeros(n),
        np.zeros(n, dtype=np.int64),
        evaluations=evaluations,
        cache_hits=cache_hits,
        elapsed=elapsed,
    )
