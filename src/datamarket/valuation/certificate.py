r"""The certificate of a valuation result: what its values claim, and the check of each claim.

Checks (:class:`~datamarket.core.certificates.Check`, by name):

* ``values_finite`` (every result): every value is a finite number (residual 0, or ``inf``; tolerance 0).
  For methods that are not efficient (Banzhaf, LOO, Beta Shapley, MSR Banzhaf, Data-OOB) this is the
  only check of the values themselves: efficiency does not hold for them, so it is not checked (its
  ``detail`` says so).
* ``efficiency`` (Shapley-type methods: exact, Monte Carlo, TMC, K-NN, structured, control-variate,
  regression and stratified Shapley): :math:`|\sum_i \phi_i - (v(N) - v(\emptyset))|`. Tolerance:

  - rounding, :math:`2 (T + M)\,\varepsilon\,s`, with :math:`T` the floating-point terms behind the
    values (``efficiency_terms``, else the coalitions evaluated or looked up plus the marginal samples:
    :math:`2^M` for exact Shapley, each :math:`\phi_i` being a dot product of :math:`2^{M-1}`
    marginals whose weights sum to 1), :math:`M` the players (the final sum), :math:`\varepsilon` the
    machine epsilon and :math:`s = \max(1, |v(N)|, |v(\emptyset)|, \sum_i |\phi_i|)` the scale (a
    marginal is at most :math:`2 s`). This is the worst-case bound of recursive summation (Higham
    2002, eq. 4.4), not a fitted number.
  - for estimates, plus :math:`z \sum_i \mathrm{se}_i` with :math:`z = 4` (``Z_EFFICIENCY``): the
    standard error of :math:`\sum_i \hat\phi_i` is at most :math:`\sum_i \mathrm{se}_i` (Minkowski),
    whatever the correlation of the estimates; with TMC's truncation also
    :math:`t\,|v(N)|` (each truncated permutation's marginals sum to within :math:`t |v(N)|` of
    :math:`v(N) - v(\emptyset)`).

  It needs :math:`v(N)` and :math:`v(\emptyset)` (``utility_full``, ``utility_empty``; K-NN Shapley
  records them, :func:`certify` reads them from the game). Without them, an exact method's own recorded
  gap (``extra["efficiency_gap"]``, from its value table) is checked; otherwise the check cannot be made
  and fails (residual ``nan``): a claim that was not checked is not passed.
* ``stderr`` (estimates: results with sampled marginals, ``counts > 0``): the residual is the largest
  per-player standard error (the quantity the :class:`~datamarket.valuation.stopping.StderrTarget`
  rule stops on). With a target (``stderr_target``), the tolerance is the target; without one, the
  check records the standard errors and passes iff they are finite (tolerance: the largest float).

>>> from datamarket.valuation import FunctionGame, exact_shapley
>>> g = FunctionGame(lambda s: float(len(s)) ** 2, 3)
>>> r = certify(exact_shapley(g), g)
>>> r.certificate.passed, [c.name for c in r.certificate.checks]
(True, ['values_finite', 'efficiency'])
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from datamarket.core.certificates import Certificate, Check, scaled_tol
from datamarket.core.errors import InvalidMarketError
from datamarket.valuation.games import CoalitionGame, MemoCache

# result.py reads its certificate from here, so this module does not import result.py (no cycle):
# a ValuationResult is typed by the attributes read from it.
ValuationResult = Any

EPS = float(np.finfo(np.float64).eps)
Z_EFFICIENCY = 4.0
"""Standard errors (of the sum, bounded by the sum of the players' ones) allowed for an estimate's gap."""

EFFICIENT = frozenset(
    {
        "exact_shapley",
        "permutation_shapley",
        "tmc_shapley",
        "knn_shapley",
        "quantity_shapley",
        "grouped_quantity_shapley",
        "control_variate_shapley",
        "leverage_regression_shapley",
        "kernel_regression_shapley",
        "stratified_shapley",
    }
)
"""Methods whose values are (estimates of) an efficient value: the Shapley value."""

_DETAIL_PLAYERS = 200  # per-player standard errors in the check's detail up to this many players


def is_efficient(method: str) -> bool:
    """Whether ``method`` computes (an estimate of) the Shapley value, which is efficient."""
    return method in EFFICIENT


def _finite_check(r: ValuationResult) -> Check:
    bad = int(np.sum(~np.isfinite(r.values)))
    detail: dict[str, Any] = {"non_finite": bad}
    if not is_efficient(r.method):
        detail["efficiency"] = f"not applicable: {r.method} is not an efficient value (not checked)"
    return Check(
        "values_finite",
        "every value is a finite number",
        "np.isfinite on the values",
        0.0 if bad == 0 else math.inf,
        0.0,
        detail,
    )


def _sampled(r: ValuationResult) -> bool:
    return int(r.counts.sum()) > 0


def _efficiency_check(r: ValuationResult) -> Check | None:
    if not is_efficient(r.method):
        return None
    m = len(r.names)
    total = float(np.sum(r.values))
    abs_sum = float(np.sum(np.abs(r.values)))
    terms = r.efficiency_terms
    if terms is None:
        terms = int(r.evaluations) + int(r.cache_hits) + int(r.counts.sum())
    claim = "the values add up to v(N) - v(empty) (efficiency of the Shapley value)"
    if r.utility_full is not None and r.utility_empty is not None:
        uf, ue = float(r.utility_full), float(r.utility_empty)
        gap = total - (uf - ue)
        # rounding of T + M accumulated terms of magnitude <= 2 s (module docstring)
        tol = scaled_tol([uf, ue, abs_sum], rel=2.0 * (terms + m) * EPS)
        detail: dict[str, Any] = {
            "sum_values": total,
            "v_full": uf,
            "v_empty": ue,
            "gap": gap,
            "terms": terms,
        }
        method = "sum of the values against v(N) - v(empty) of the game"
        if _sampled(r):
            se = np.asarray(r.stderr, dtype=np.float64)
            if np.all(np.isfinite(se)):
                stat = Z_EFFICIENCY * float(np.sum(se))
                tol += stat
                detail["statistical_allowance"] = stat
                method += f", allowing {Z_EFFICIENCY:g} x the sum of the standard errors (an estimate)"
            else:
                detail["statistical_allowance"] = "none: a standard error is not finite"
            trunc = r.extra.get("truncation_tol")
            if isinstance(trunc, int | float) and trunc > 0:
                tol += float(trunc) * abs(uf)
                detail["truncation_allowance"] = float(trunc) * abs(uf)
        return Check("efficiency", claim, method, abs(gap), tol, detail)
    gap_rec = r.extra.get("efficiency_gap")
    if isinstance(gap_rec, int | float):
        return Check(
            "efficiency",
            claim,
            "gap recorded by the method from its value table (v(N), v(empty) not attached to the "
            "result: certify(result, game) checks the values against the game)",
            abs(float(gap_rec)),
            scaled_tol([abs_sum], rel=2.0 * (terms + m) * EPS),
            {"gap": float(gap_rec), "terms": terms},
        )
    return Check(
        "efficiency",
        claim,
        "not checkable: v(N) and v(empty) were not recorded (certify(result, game) records them)",
        math.nan,
        0.0,
        {"sum_values": total},
    )


def _stderr_check(r: ValuationResult) -> Check:
    se = np.asarray(r.stderr, dtype=np.float64)
    resid = float(np.max(se)) if se.size else 0.0
    if np.any(np.isnan(se)):
        resid = math.inf
    detail: dict[str, Any] = {
        "max": resid if math.isfinite(resid) else None,
        "non_finite": int(np.sum(~np.isfinite(se))),
    }
    if se.size <= _DETAIL_PLAYERS:
        detail["stderr"] = {
            n: (float(x) if math.isfinite(x) else None) for n, x in zip(r.names, se, strict=True)
        }
    if r.stderr_target is not None:
        return Check(
            "stderr",
            f"every value's standard error is at most the requested target {r.stderr_target:g}",
            "largest per-player standard error of the estimate",
            resid,
            float(r.stderr_target),
            detail,
        )
    return Check(
        "stderr",
        "every value's standard error is finite (no target was set: the check records the standard "
        "errors and passes iff they are finite)",
        "largest per-player standard error of the estimate",
        resid,
        sys.float_info.max,
        detail,
    )


def valuation_certificate(result: ValuationResult) -> Certificate:
    """The checks of ``result``'s claims (module docstring), from its fields alone."""
    checks = [_finite_check(result)]
    eff = _efficiency_check(result)
    if eff is not None:
        checks.append(eff)
    if _sampled(result):
        checks.append(_stderr_check(result))
    return Certificate.of(*checks)


def _game_value(game: CoalitionGame, mask: int) -> float:
    cache = getattr(game, "cache", None)
    if isinstance(cache, MemoCache) and mask in cache:
        return float(cache.peek(mask))
    return float(game.value(mask))


def certify(
    result: ValuationResult, game: CoalitionGame, *, stderr_target: float | None = None
) -> ValuationResult:
    """``result`` with ``v(N)`` and ``v(empty)`` of ``game`` recorded (and the requested standard error).

    The values are read from the game's memo when it holds them (the run evaluated both), else the game
    is evaluated (two coalitions). The certificate then checks efficiency against the game.
    """
    if game.n_players != len(result.names):
        raise InvalidMarketError("game", f"has {game.n_players} players, the result {len(result.names)}")
    full = (1 << game.n_players) - 1
    return replace(
        result,
        extra=dict(result.extra),
        utility_full=_game_value(game, full),
        utility_empty=_game_value(game, 0),
        stderr_target=result.stderr_target if stderr_target is None else float(stderr_target),
    )


def certified(result: ValuationResult, game: CoalitionGame) -> ValuationResult:
    """:func:`certify` for efficient methods (their estimators call it on return), ``result`` as is for
    the others (efficiency is not their claim: no extra evaluation)."""
    return certify(result, game) if is_efficient(result.method) else result
