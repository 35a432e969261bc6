"""Valuation results: values with diagnostics, mergeable like ``scipy.optimize.OptimizeResult``.

Every result carries its :attr:`ValuationResult.certificate` (:mod:`datamarket.valuation.certificate`):
the checks of what it claims (efficiency for Shapley-type methods, the standard errors of estimates),
derived from the result's own fields each time it is read, so a result whose values were altered
afterwards fails its efficiency check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError

if TYPE_CHECKING:
    from datamarket.core.certificates import Certificate


@dataclass(frozen=True)
class ProgressInfo:
    """What a running valuation reports to a progress callback (the CLI's progress bar).

    ``total`` is the number of evaluations when known in advance (exact methods), ``fraction`` the
    stopping rule's estimate of the work done in ``[0, 1]`` (drives the ETA).
    """

    evaluations: int
    total: int | None
    max_stderr: float | None
    fraction: float
    elapsed: float


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
    utility_full, utility_empty : ``v(N)`` and ``v(empty)`` of the game, when recorded (by the method,
        or by :func:`datamarket.valuation.certificate.certify`); the efficiency check needs them.
    stderr_target : the standard error the user asked for (the stopping rule's target), if any.
    efficiency_terms : number of floating-point terms behind the sum of the values, when the method
        knows it better than ``evaluations + cache_hits + sum(counts)`` (rounding tolerance).
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
    utility_full: float | None = None
    utility_empty: float | None = None
    stderr_target: float | None = None
    efficiency_terms: int | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        values = np.asarray(self.values, dtype=np.float64)
        stderr = np.asarray(self.stderr, dtype=np.float64)
        counts = np.asarray(self.counts, dtype=np.int64)
        for name, arr in (("values", values), ("stderr", stderr), ("counts", counts)):
            if arr.shape != (n,):
                raise InvalidMarketError(name, f"must have one entry per player ({n}), got {arr.shape}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "stderr", stderr)
        object.__setattr__(self, "counts", counts)
        for name in ("utility_full", "utility_empty", "stderr_target"):
            x = getattr(self, name)
            if x is not None:
                object.__setattr__(self, name, float(x))

    @property
    def certificate(self) -> Certificate:
        """The checks of this result's claims (recomputed from its fields on every access)."""
        from datamarket.valuation.certificate import valuation_certificate

        return valuation_certificate(self)

    def merge(self, other: ValuationResult) -> ValuationResult:
        """Combine two independent runs (e.g. Monte Carlo with different seeds) of the same game.

        Per player, the values are averaged with weights ``counts`` (the samples behind each estimate)
        and standard errors combine as ``sqrt(n1**2 s1**2 + n2**2 s2**2) / (n1 + n2)``;
        evaluations, cache hits and elapsed time add up. Exact results merge only with equal values.
        """
        if not isinstance(other, ValuationResult):
            raise InvalidMarketError("other", "can only merge with another ValuationResult")
        if other.names != self.names:
            raise InvalidMarketError("names", "results are for different players")
        if other.method != self.method:
            raise InvalidMarketError("method", f"cannot merge {self.method} with {other.method}")
        n1, n2 = self.counts.astype(np.float64), other.counts.astype(np.float64)
        tot = n1 + n2
        if np.any(tot == 0):
            if not np.allclose(self.values, other.values, rtol=0, atol=1e-12):
                raise InvalidMarketError("values", "exact results with different values cannot merge")
            values, stderr = self.values.copy(), np.maximum(self.stderr, other.stderr)
        else:
            values = (n1 * self.values + n2 * other.values) / tot
            stderr = np.sqrt((n1 * self.stderr) ** 2 + (n2 * other.stderr) ** 2) / tot
        reasons = sorted({self.stop_reason, other.stop_reason})

        def same(name: str) -> Any:  # a recorded game quantity survives only if both runs agree on it
            a, b = getattr(self, name), getattr(other, name)
            return a if a == b else None

        return ValuationResult(
            self.method,
            self.names,
            values,
            stderr,
            self.counts + other.counts,
            evaluations=self.evaluations + other.evaluations,
            cache_hits=self.cache_hits + other.cache_hits,
            converged=self.converged and other.converged,
            stop_reason="+".join(reasons),
            elapsed=self.elapsed + other.elapsed,
            extra={"merged": 2},
            utility_full=same("utility_full"),
            utility_empty=same("utility_empty"),
            stderr_target=same("stderr_target"),
        )

    def __getitem__(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.values, strict=True)}

    # tabular export (pandas imported on first use)
    def to_dataframe(self) -> Any:
        """One row per seller: ``name``, ``value``, ``stderr``, ``count`` (samples of its marginal)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "name": list(self.names),
                "value": self.values,
                "stderr": self.stderr,
                "count": self.counts,
            }
        )

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
            "extra": {k: v for k, v in self.extra.items() if isinstance(v, int | float | str | bool)},
            "utility_full": self.utility_full,
            "utility_empty": self.utility_empty,
            "stderr_target": self.stderr_target,
            "certificate": self.certificate.to_dict(),
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
