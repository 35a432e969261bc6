r"""Certificate of the competing-buyers equilibrium (Westenbroek et al.), checked apart from the
Leontief solve.

Westenbroek, Dong, Ratliff and Sastry, "Statistical Estimation with Strategic Data Sources in
Competitive Settings" (IEEE CDC 2017, arXiv:1704.01195); equation numbers are the paper's, as in
:mod:`._gne`. :func:`certify_gne` checks the claims of a :class:`~._gne.GNEResult` without trusting the
path that produced them ((I - A) d = gamma, eq. 25-26, and the closed forms (17), (18), (28)):

Existence (Theorem 1)
    ``gne.spectral_radius``: :math:`\rho(A) \le 1 - \mathrm{RHO\_TOL}` with :math:`A` rebuilt from
    :math:`\xi` by its definition (25); ``gne.leontief_conditioning``: :math:`\operatorname{cond}(I-A)`
    below ``COND_MAX``; ``gne.contracts_nonnegative``: :math:`d \ge 0` (23); ``gne.feasibility``:
    :math:`2\alpha_i D_i \ge 1`, the condition the paper omits (otherwise the polytope of :math:`c`'s is
    empty). A market without a GNE fails one of these: the certificate is the evidence.
Sources (eq. 1, 16-17)
    ``gne.source_best_response``: each source's effort is a best response to the contracts: the
    largest gain in its expected utility :math:`-D_i\sigma_i^2(e) - e` (+ terms free of :math:`e`)
    over a bounded Brent search around the reported effort (the utility is concave, so a local
    search is global), never the closed form (17).
Buyers (eq. 19-23)
    ``gne.buyer_stationarity``: the KKT residual of buyer ``k``'s cost (19) in :math:`d^k \ge 0` by its
    analytic gradient (Lemma 1's cheapest :math:`c^k`);
    ``gne.buyer_payment_minimal``: :math:`c^k` is the cheapest meeting (20)-(21) given :math:`d`;
    ``gne.buyer_deviation``: no buyer lowers its cost by an L-BFGS-B search over :math:`d^k`
    (:func:`~._gne.best_response`).
Social optimum (Theorem 2, eq. 27-28)
    ``social.optimum``: no source's socially optimal effort can be improved (bounded Brent on
    :math:`\Gamma_i\sigma_i^2(e) + e`); ``social.loss_optimum``, ``social.loss_equilibrium``: the closed
    forms of :math:`L(\hat e)`, :math:`L(e^*)` equal the sum (27) at the reported efforts;
    ``social.price_of_anarchy``: the ratio of those sums.

Tolerances are rounding bounds of the computation checked, relative to the magnitude of the terms
(:math:`\varepsilon` = machine epsilon): a sum of :math:`n` terms carries an error of at most
:math:`n\varepsilon\sum|x|` (recursive summation), an ``exp`` of an argument of size :math:`a` a relative
error :math:`\varepsilon(1 + a)`. Residuals are made dimensionless by the same magnitudes, so a single
tolerance serves all participants; ``detail`` holds the per-participant numbers.

>>> from datamarket.mechanisms.competing_buyers import analyse_market, section_iv_market
>>> cert = certify_gne(analyse_market(section_iv_market(0.0)).gne)
>>> cert.passed, round(cert["gne.spectral_radius"].residual, 12), len(cert.checks)
(True, 0.5, 12)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize

from datamarket.core.certificates import Certificate, Check, max_residual
from datamarket.core.types import FloatArray
from datamarket.mechanisms.competing_buyers._gne import (
    COND_MAX,
    RHO_TOL,
    BestResponse,
    GNEResult,
    best_response,
    effort_variance,
    social_loss,
)

EPS = float(np.finfo(np.float64).eps)

#: relative rounding bound of one scalar deviation gain :math:`D(\sigma^2(e) - \sigma^2(e')) + e - e'`:
#: the exp (argument error included through the magnitude), two products and two subtractions each
#: contribute at most one :math:`\varepsilon` of the magnitude; 8 leaves a factor of ~1.5 for the
#: closed form :math:`e^*` whose own rounding moves the gain only at second order (:math:`\alpha\delta^2`).
GAIN_ROUNDING = 8 * EPS

__all__ = ["GAIN_ROUNDING", "certify_gne"]


def _list(a: FloatArray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


# --------------------------------------------------------------------------------------------------
# existence (Theorem 1)
# --------------------------------------------------------------------------------------------------
def _coupling_matrix(xi: FloatArray) -> FloatArray:
    r""":math:`A[(q,k),(l,j)] = \xi_{l,q}^j [l \ne q][j \ne k]` (25), written as one product of masks."""
    n, _, m = xi.shape
    a4 = np.einsum("lqj,ql,kj->qklj", xi, 1.0 - np.eye(n), 1.0 - np.eye(m))
    return np.asarray(a4.reshape(n * m, n * m), dtype=np.float64)


def _existence_checks(result: GNEResult) -> list[Check]:
    n, m = result.n_sources, result.n_buyers
    a = _coupling_matrix(result.xi)
    rho = float(np.max(np.abs(np.linalg.eigvals(a)))) if a.size else 0.0
    with np.errstate(all="ignore"):
        cond = float(np.linalg.cond(np.eye(n * m) - a))
    cond = cond if np.isfinite(cond) else float("inf")
    checks = [
        Check(
            "gne.spectral_radius",
            "rho(A) < 1: the Leontief system (26) has a unique non-negative-monotone solution (Theorem 1)",
            "eigenvalues of A rebuilt from xi by its definition (25); residual = rho(A)",
            rho,
            # eigenvalues of an (N M)-matrix carry ~1e-16 rounding; RHO_TOL (1e-14) is the margin the
            # solver uses, so rho within it of 1 counts as 1 (no GNE)
            1.0 - RHO_TOL,
            {
                "spectral_radius": rho,
                "solver_spectral_radius": float(result.spectral_radius),
                "max_abs_a_minus_solver": float(np.max(np.abs(a - result.leontief))) if a.size else 0.0,
            },
        ),
        Check(
            "gne.leontief_conditioning",
            "I - A is far enough from singular for its solution to carry a significant digit",
            "2-norm condition number of I - A (SVD); residual = cond(I - A)",
            cond,
            # cond * eps >= 0.2 at COND_MAX: no digit of d would be reliable
            COND_MAX,
            {"condition_number": cond if np.isfinite(cond) else None},
        ),
    ]
    if result.d is None:
        return checks
    return checks + _profile_existence_checks(result.d, result.alpha)


def _profile_existence_checks(d: FloatArray, alpha: FloatArray) -> list[Check]:
    m = d.shape[1]
    neg = np.maximum(0.0, -d.min(axis=0))
    two_ad = 2 * alpha * d.sum(axis=1)
    short = np.maximum(0.0, 1.0 - two_ad)
    return [
        Check(
            "gne.contracts_nonnegative",
            "every d_i^k >= 0 (constraint (23))",
            "smallest entry of d per buyer; residual = largest negative part",
            max_residual(neg),
            # d >= 0 is imposed exactly (round-off negatives are clipped to 0 by the solver)
            0.0,
            {"per_buyer": _list(neg)},
        ),
        Check(
            "gne.feasibility",
            "2 alpha_i D_i >= 1 for every source: the polytope of c's is non-empty (omitted by the paper)",
            "sum of each source's d over buyers; residual = max(0, 1 - 2 alpha_i D_i)",
            max_residual(short),
            # summing M entries and two products: (M + 2) eps relative, at the boundary 2 alpha D = 1
            (m + 2) * EPS,
            {"two_alpha_d": _list(two_ad), "per_source": _list(short)},
        ),
    ]


# --------------------------------------------------------------------------------------------------
# sources: effort is a best response to the contracts (eq. 1, 16)
# --------------------------------------------------------------------------------------------------
def _source_gain(total_d: float, alpha: float, e: float, e_dev: float) -> tuple[float, float]:
    """Utility gain of effort ``e_dev`` over ``e`` and its rounding magnitude."""
    s, s_dev = np.exp(-2 * alpha * e), np.exp(-2 * alpha * e_dev)
    gain = float(total_d * (s - s_dev) + (e - e_dev))
    mag = abs(total_d) * (s + s_dev) * (1 + 2 * alpha * max(abs(e), abs(e_dev))) + abs(e) + abs(e_dev)
    return gain, float(mag) if mag > 0 else 1.0


def _best_gain(total_d: float, alpha: float, e: float) -> tuple[float, float, float]:
    """Largest relative gain of a deviation in ``[e - w, e + w]``: (relative gain, gain, effort)."""
    w = 2.0 * (1.0 + abs(e)) + 1.0 / alpha
    res = optimize.minimize_scalar(
        lambda t: -_source_gain(total_d, alpha, e, float(t))[0],
        bounds=(e - w, e + w),
        method="bounded",
        options={"xatol": 1e-12 * (1.0 + abs(e))},
    )
    best = (0.0, 0.0, e)
    for t in (float(res.x), e - w, e + w):
        gain, mag = _source_gain(total_d, alpha, e, t)
        if gain / mag > best[0]:
            best = (gain / mag, gain, t)
    return best


def _source_check(d: FloatArray, alpha: FloatArray, effort: FloatArray) -> Check:
    total = d.sum(axis=1)
    found = [_best_gain(float(total[i]), float(alpha[i]), float(effort[i])) for i in range(len(alpha))]
    foc = np.abs(2 * alpha * total * effort_variance(effort, alpha) - 1.0)
    return Check(
        "gne.source_best_response",
        "each source's effort maximises its expected utility (1) under the contracts",
        "bounded Brent search of the utility gain of a deviation (concave: local = global), "
        "relative to the magnitude of the utility terms",
        max_residual([f[0] for f in found]),
        GAIN_ROUNDING,
        {
            "gain": [f[1] for f in found],
            "relative_gain": [f[0] for f in found],
            "best_deviation": [f[2] for f in found],
            "first_order_residual": _list(foc),
        },
    )


# --------------------------------------------------------------------------------------------------
# buyers: d^k and c^k are a best response to the other buyers (eq. 19-23)
# --------------------------------------------------------------------------------------------------
def _slack_terms(d: FloatArray, c: FloatArray, xi: FloatArray, var: FloatArray) -> FloatArray:
    """``u[i, k] = c_i^k - d_i^k S_i^k`` with :math:`S_i^k = \\sum_l \\xi_{i,l}^k\\sigma_l^2`."""
    return np.asarray(c - d * np.einsum("ilk,l->ik", xi, var), dtype=np.float64)


def _buyer_gradient(
    k: int, d: FloatArray, c: FloatArray, gamma: FloatArray, xi: FloatArray, alpha: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""Analytic gradient of buyer ``k``'s cost (19) in :math:`d^k` and its rounding magnitude.

    With :math:`\sigma_q^2 = 1/(2\alpha_q D_q)` and the active slacks
    :math:`h_i = e_i^* + \sum_{j\ne k}(d_i^j S_i^j - c_i^j) \ge 0`:
    :math:`\partial J^k/\partial d_q^k = \sigma_q^2 [h_q \ge 0] - 2\alpha_q\sigma_q^4
    (\gamma_q^k + \sum_{i:\,h_i\ge 0}\sum_{j\ne k} d_i^j\xi_{i,q}^j)`.
    """
    total = d.sum(axis=1)
    var = 1.0 / (2 * alpha * total)
    u = _slack_terms(d, c, xi, var)
    h = np.log(2 * alpha * total) / (2 * alpha) - np.delete(u, k, axis=1).sum(axis=1)
    hmag = np.abs(np.delete(c, k, axis=1)).sum(axis=1) + np.abs(np.log(2 * alpha * total)) / (2 * alpha)
    active = (h >= -(d.size + 2) * EPS * (hmag + 1 / (2 * alpha))).astype(np.float64)
    others = np.delete(d, k, axis=1)
    coup = np.einsum("i,ij,iqj->q", active, others, np.delete(xi, k, axis=2))
    grad = var * active - 2 * alpha * var**2 * (gamma[:, k] + coup)
    mag = var * (1.0 + 2 * alpha * var * (np.abs(gamma[:, k]) + coup))
    return np.asarray(grad, dtype=np.float64), np.asarray(mag, dtype=np.float64)


def _stationarity_check(
    d: FloatArray, c: FloatArray, gamma: FloatArray, xi: FloatArray, alpha: FloatArray
) -> Check:
    n, m = d.shape
    grads, rel = [], []
    for k in range(m):
        g, mag = _buyer_gradient(k, d, c, gamma, xi, alpha)
        kkt = np.where(d[:, k] > 0, np.abs(g), np.maximum(0.0, -g))  # at d = 0 only g < 0 violates
        grads.append(_list(g))
        rel.append(_list(kkt / mag))
    return Check(
        "gne.buyer_stationarity",
        "each buyer's d^k satisfies the KKT conditions of its cost (19) over d^k >= 0",
        "analytic gradient of the cost with the cheapest c^k (not the Leontief system); "
        "residual = |gradient| (or its negative part at d = 0) over the magnitude of its terms",
        max_residual(rel),
        # the gradient is sigma_q^2/D_q times row (q, k) of (I - A) d - gamma: a backward-stable LU
        # solve leaves it at ~N M eps of |I - A| |d| + |gamma| (Higham Thm 9.4), and evaluating it adds
        # ~N M eps more; 8 (N M + 1) eps covers both with the LU growth factor of this M-matrix
        8 * (n * m + 1) * EPS,
        {"gradient": grads, "relative_residual": rel},
    )


def _payment_check(
    d: FloatArray, c: FloatArray, xi: FloatArray, alpha: FloatArray, effort: FloatArray
) -> Check:
    n, m = d.shape
    var = effort_variance(effort, alpha)
    u = _slack_terms(d, c, xi, var)
    rest = u.sum(axis=1, keepdims=True) - u
    cheapest = np.maximum(0.0, effort[:, None] - rest)
    mag = np.abs(c) + np.abs(c - u) * (1 + 2 * np.max(alpha * np.abs(effort)))
    scale = mag.sum(axis=1, keepdims=True) + np.abs(effort)[:, None]
    rel = np.abs(u - cheapest) / np.where(scale > 0, scale, 1.0)
    return Check(
        "gne.buyer_payment_minimal",
        "each c_i^k is the cheapest meeting (20)-(21): c_i^k - d_i^k S_i^k = max(0, e_i - sum_{j!=k} ...)",
        "expected margins c - d S at the reported efforts' variances (16); residual relative to "
        "sum_j |c_i^j| + |d_i^j S_i^j| + |e_i|",
        max_residual(rel),
        # sums of N terms (S) and M terms, and exp(-2 alpha e) vs the solver's 1/(2 alpha D): (N + M + 4) eps
        # of the magnitude (the exp's argument error is in the magnitude), doubled for the difference
        2 * (n + m + 4) * EPS,
        {"relative_residual": [_list(r) for r in rel.T]},
    )


def _buyer_cost_scale(k: int, d: FloatArray, c: FloatArray, gamma: FloatArray, alpha: FloatArray) -> float:
    var = 1.0 / (2 * alpha * d.sum(axis=1))
    e_mag = np.abs(np.log(2 * alpha * d.sum(axis=1))) / (2 * alpha) + 1 / (2 * alpha)
    return float(np.sum(np.abs(gamma[:, k]) * var + e_mag) + 2 * np.abs(np.delete(c, k, axis=1)).sum())


def _deviation_check(result: GNEResult, brs: Sequence[BestResponse] | None) -> Check:
    assert result.d is not None and result.c is not None
    n, m = result.d.shape
    found = list(brs) if brs is not None else [best_response(k, result) for k in range(m)]
    mags = [_buyer_cost_scale(k, result.d, result.c, result.gamma, result.alpha) for k in range(m)]
    rel = [max(0.0, br.improvement) / mag for br, mag in zip(found, mags, strict=True)]
    return Check(
        "gne.buyer_deviation",
        "no buyer lowers its cost (19) by changing d^k (with its cheapest c^k), the others fixed",
        "L-BFGS-B from the equilibrium d^k, its halving and doubling (best_response); residual = "
        "cost decrease over the magnitude of the cost's terms",
        max_residual(rel),
        # two evaluations of nested sums of depth N (S), M (over buyers), N (over sources), plus the
        # log and exp: each at most (2 N + M + 5) eps of the magnitude
        2 * (2 * n + m + 5) * EPS,
        {
            "improvement": [float(br.improvement) for br in found],
            "relative_improvement": rel,
            "equilibrium_cost": [float(br.equilibrium_cost) for br in found],
            "cost_magnitude": mags,
            "max_abs_d_gap": [float(np.max(np.abs(br.d - result.d[:, k]))) for k, br in enumerate(found)],
        },
    )


# --------------------------------------------------------------------------------------------------
# social optimum and price of anarchy (Theorem 2, eq. 27-28)
# --------------------------------------------------------------------------------------------------
def _social_optimum_check(result: GNEResult) -> Check:
    big_gamma, alpha, e_soc = result.total_gamma, result.alpha, np.asarray(result.effort_social)
    rel: list[float] = []
    gains: list[float | None] = []
    for i in range(result.n_sources):
        if big_gamma[i] <= 0:  # L decreases without bound in e_i: the infimum is at e_i = -inf
            rel.append(0.0 if e_soc[i] == -np.inf else float("inf"))
            gains.append(None)
        elif not np.isfinite(e_soc[i]):
            rel.append(float("inf"))
            gains.append(None)
        else:  # the loss gain of moving e_i has the form of a source's utility gain, with D = Gamma
            r, gain, _t = _best_gain(float(big_gamma[i]), float(alpha[i]), float(e_soc[i]))
            rel.append(r)
            gains.append(gain)
    return Check(
        "social.optimum",
        "each socially optimal effort (28) minimises the social loss (27) in that source's effort",
        "bounded Brent search of the loss decrease of a deviation (convex for Gamma_i > 0); a source "
        "with Gamma_i <= 0 must be reported at -inf (L unbounded below)",
        max_residual(rel),
        GAIN_ROUNDING,
        {"loss_decrease": gains, "relative_decrease": rel},
    )


def _loss_sum(effort: FloatArray, big_gamma: FloatArray, alpha: FloatArray) -> tuple[float, float]:
    """The sum (27) at ``effort`` and the magnitude of its terms (exp argument error included)."""
    var = effort_variance(effort, alpha)
    mag = np.abs(big_gamma) * var * (1 + 2 * alpha * np.abs(effort)) + np.abs(effort)
    return social_loss(effort, big_gamma, alpha), float(np.sum(mag))


def _loss_check(name: str, which: str, closed: float, effort: FloatArray, result: GNEResult) -> Check:
    value, mag = _loss_sum(effort, result.total_gamma, result.alpha)
    return Check(
        name,
        f"the closed form of {which} equals the social loss (27) summed at the reported efforts",
        "sum over sources of Gamma_i exp(-2 alpha_i e_i) + e_i; residual relative to the terms' magnitude",
        abs(closed - value) / max(mag, EPS),
        # two sums of N terms of that magnitude, the log of (17)/(28) and the exp of (16): (N + 4) eps each
        2 * (result.n_sources + 4) * EPS,
        {"closed_form": closed, "sum": value, "magnitude": mag},
    )


def _poa_check(result: GNEResult) -> Check:
    assert result.effort_equilibrium is not None and result.price_of_anarchy is not None
    big_gamma, alpha = result.total_gamma, result.alpha
    l_eq, m_eq = _loss_sum(result.effort_equilibrium, big_gamma, alpha)
    l_soc, m_soc = _loss_sum(np.asarray(result.effort_social), big_gamma, alpha)
    ratio = l_eq / l_soc
    poa = float(result.price_of_anarchy)
    return Check(
        "social.price_of_anarchy",
        "the price of anarchy is L(e*) / L(e_social) (Theorem 2)",
        "ratio of the sums (27) at the reported equilibrium and social efforts; residual relative",
        abs(poa - ratio) / max(abs(ratio), EPS),
        # each loss carries 2 (N + 4) eps of its magnitude (see social.loss_*): relative to the loss
        # that is magnified by magnitude / |loss|; the division adds eps
        2 * (result.n_sources + 4) * EPS * (m_eq / abs(l_eq) + m_soc / abs(l_soc)) + 2 * EPS,
        {"reported": poa, "ratio_of_sums": ratio, "loss_equilibrium_sum": l_eq, "loss_social_sum": l_soc},
    )


def _social_checks(result: GNEResult) -> list[Check]:
    checks = [_social_optimum_check(result)]
    if result.loss_social is not None:
        checks.append(
            _loss_check(
                "social.loss_optimum", "L(e_social)", result.loss_social, result.effort_social, result
            )
        )
    if result.loss_equilibrium is not None and result.effort_equilibrium is not None:
        checks.append(
            _loss_check(
                "social.loss_equilibrium", "L(e*)", result.loss_equilibrium, result.effort_equilibrium, result
            )
        )
    if result.price_of_anarchy is not None and result.effort_equilibrium is not None:
        checks.append(_poa_check(result))
    return checks


# --------------------------------------------------------------------------------------------------
# the certificate
# --------------------------------------------------------------------------------------------------
def certify_gne(result: GNEResult, *, best_responses: Sequence[BestResponse] | None = None) -> Certificate:
    """The certificate of ``result``'s claims: existence, equilibrium, social optimum (module docstring).

    Where ``result`` has no GNE, the existence checks hold the evidence (one of them fails) and the
    social optimum, which exists regardless, is still checked. ``best_responses`` (one per buyer, from
    :func:`~._gne.best_response`) are reused for ``gne.buyer_deviation`` when given, else computed.
    Pure: no I/O, deterministic.
    """
    checks = _existence_checks(result)
    d, c, e = result.d, result.c, result.effort_equilibrium
    if result.gne_exists and d is not None and c is not None and e is not None:
        g, xi, a = result.gamma, result.xi, result.alpha
        checks += [
            _source_check(d, a, e),
            _stationarity_check(d, c, g, xi, a),
            _payment_check(d, c, xi, a, e),
            _deviation_check(result, best_responses),
        ]
    return Certificate.of(*checks, *_social_checks(result))
