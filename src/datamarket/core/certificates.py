r"""Certificates: every claim a result makes, with the check that backs it.

A mechanism result claims things: "this production profile is a Nash equilibrium", "these prices are
envy-free", "these payments add up to the value of the grand coalition", "the revenue-optimal menu was
found (MILP gap 0)". A :class:`Certificate` lists one :class:`Check` per claim: what was claimed, how it
was checked (the method, independent of the path that produced the answer where one exists), the
*residual* (the largest violation found, :math:`\ge 0`, or an estimate's standard error) and the
tolerance it is compared with. A result's status follows its certificate (:func:`status_for`): a
result whose certificate fails is never ``"ok"``.

Tolerances follow from the computation, not from trial and error: a check of a quantity computed in
floating point with :math:`n` accumulated terms of scale :math:`s` uses a tolerance of the order of
:math:`n \varepsilon s` (``RELATIVE_TOL`` times the scale is the default for solvers stopped at
``1e-12`` relative accuracy), and a Monte Carlo check compares its error with a stated multiple of the
standard error. Each check records its own tolerance, so a reader can judge it.

>>> c = Certificate.of(
...     Check("equilibrium", "no seller gains by deviating", "exact global best response", 0.0, 1e-9),
...     Check("balance", "payments sum to revenue", "sum of the ledger", 3e-3, 1e-9),
... )
>>> c.passed, c.failures()
(False, ['balance'])
>>> c.to_dict()["checks"]["balance"]["passed"]
False
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

RELATIVE_TOL = 1e-9
"""Default relative tolerance of a check of a solver's answer (solvers stop at about 1e-12)."""

Status = Literal["ok", "unverified", "no_equilibrium", "no_equilibrium_found"]
"""A result's status.

* ``ok``: every check of the certificate passed;
* ``unverified``: a check failed (the answer is reported, but its claim does not hold within tolerance);
* ``no_equilibrium``: the market provably has no equilibrium (a result, with the reason);
* ``no_equilibrium_found``: the search found no equilibrium that passes its check; the reported profile
  is a fallback and the certificate holds the evidence (the best candidate's residual).
"""


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Check:
    """One claim and its check: ``passed`` iff the residual is finite and at most the tolerance.

    ``claim`` says what the result asserts, ``method`` how it was checked; ``residual`` is the worst
    violation found (or the error measure the claim bounds), ``tolerance`` the largest residual accepted.
    ``detail`` carries the per-participant residuals or the numbers behind them (JSON-safe values).
    """

    name: str
    claim: str
    method: str
    residual: float
    tolerance: float
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "residual", float(self.residual))
        object.__setattr__(self, "tolerance", float(self.tolerance))
        if not self.tolerance >= 0:
            raise ValueError(f"check {self.name!r}: tolerance must be >= 0, got {self.tolerance}")

    @property
    def passed(self) -> bool:
        return math.isfinite(self.residual) and self.residual <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an infinite or NaN residual is ``null`` (and the check fails)."""
        from datamarket.core.types import json_safe

        return {
            "claim": self.claim,
            "method": self.method,
            "residual": _finite_or_none(self.residual),
            "tolerance": self.tolerance,
            "passed": self.passed,
            "detail": json_safe(dict(self.detail)),
        }


@dataclass(frozen=True)
class Certificate:
    """The checks of one result, by name (names are stable, snake_case, dotted by scope)."""

    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate check names: {dup}")

    @classmethod
    def of(cls, *checks: Check) -> Certificate:
        return cls(tuple(checks))

    def merge(self, other: Certificate | Iterable[Check]) -> Certificate:
        extra = other.checks if isinstance(other, Certificate) else tuple(other)
        return Certificate(self.checks + tuple(extra))

    @property
    def empty(self) -> bool:
        return not self.checks

    @property
    def passed(self) -> bool:
        """Every check passed (an empty certificate certifies nothing and does not pass)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """One line: how many checks passed, and the failing ones with residual / tolerance."""
        bad = [c for c in self.checks if not c.passed]
        head = f"{len(self.checks) - len(bad)}/{len(self.checks)} checks passed"
        if not bad:
            return head
        worst = ", ".join(f"{c.name} ({c.residual:.3g} > {c.tolerance:.3g})" for c in bad)
        return f"{head}; failed: {worst}"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": {c.name: c.to_dict() for c in self.checks}}

    def rows(self) -> list[dict[str, Any]]:
        """One row per check for tables and DataFrames."""
        return [
            {
                "check": c.name,
                "claim": c.claim,
                "method": c.method,
                "residual": float(c.residual),
                "tolerance": c.tolerance,
                "passed": c.passed,
            }
            for c in self.checks
        ]


def max_residual(values: Any) -> float:
    """The largest entry of ``values`` clipped below at 0 (NaN propagates as ``inf``: a failed check).

    >>> max_residual([-1e-17, 2e-12]), max_residual([]), max_residual([float("nan")])
    (2e-12, 0.0, inf)
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        return 0.0
    if np.any(np.isnan(arr)):
        return math.inf
    return float(max(0.0, float(np.max(arr))))


def scaled_tol(scale: Any, rel: float = RELATIVE_TOL) -> float:
    """``rel * max(1, max |scale|)``: the tolerance of a check on numbers of magnitude ``scale``."""
    arr = np.abs(np.asarray(scale, dtype=np.float64)).ravel()
    top = float(np.max(arr[np.isfinite(arr)])) if arr.size and np.any(np.isfinite(arr)) else 0.0
    return rel * max(1.0, top)


def status_for(certificate: Certificate, claimed: Status = "ok") -> Status:
    """The status a result may report: ``claimed`` unless it is ``"ok"`` and the certificate fails."""
    if claimed == "ok" and not certificate.passed:
        return "unverified"
    return claimed
