r"""Monte Carlo of the competing-buyers contracts (Westenbroek et al., eq. 8 and the text before (9)).

Sources draw reports under the equilibrium contracts, each buyer fits its leave-one-out estimator and
pays :math:`p_i^k = c_i^k - d_i^k (y_i^k - \hat f^k_{-i}(x_i))^2`. Everything is vectorised over
rounds; the noise is drawn from :func:`datamarket.core.random.make_rng` (seeded).

Exact moments (the oracle). The leave-one-out prediction is linear,
:math:`\hat f^k_{-i}(x_i) = \sum_l P_{i,l}^k y_l^k` (:func:`loo_prediction_matrices`), so the residual
:math:`r_i^k = y_i^k - \hat f^k_{-i}(x_i)` is Gaussian with mean :math:`\mu_i^k` (the fit's bias plus
any report shifts) and variance :math:`s_i^k = \sigma_i^2 + \tau_{ik}^2 +
\sum_l (P_{i,l}^k)^2(\sigma_l^2 + \tau_{lk}^2)`. Hence
:math:`E[p_i^k] = c_i^k - d_i^k(s_i^k + (\mu_i^k)^2)` (which is the paper's
:math:`c - d\sum_l \xi_{i,l}\sigma_l^2` when unbiased and truthful) and, exactly,
:math:`\operatorname{Var}[p_i^k] = (d_i^k)^2 (2 (s_i^k)^2 + 4 (\mu_i^k)^2 s_i^k)`.

Tolerance (stated bound): the sample mean of ``R`` independent payments is within
:math:`z\sqrt{\operatorname{Var}[p]/R}` of :math:`E[p]` except with probability about
:math:`2(1-\Phi(z))` by the central limit theorem (``z = 5``: 5.7e-7 per entry). Payments are unbounded
(squared Gaussians), so Hoeffding does not apply; the CLT bound uses the exact variance above, not a
sample estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import Seed, make_rng
from datamarket.core.types import FloatArray
from datamarket.mechanisms.competing_buyers._gne import effort_variance
from datamarket.mechanisms.competing_buyers._mechanism import CompetingAnalysis

#: CLT multiplier of the Monte Carlo bounds (two-sided normal tail 5.7e-7).
Z_BOUND = 5.0

__all__ = ["Z_BOUND", "PaymentSimulation", "effort_sweep", "simulate_payments"]


@dataclass(frozen=True)
class PaymentSimulation:
    """Monte Carlo payments vs their exact moments; arrays have shape ``(N, M)`` (source, buyer).

    Attributes
    ----------
    mean : sample mean of :math:`p_i^k` over ``rounds``.
    expected : exact :math:`E[p_i^k]`.
    std : exact standard deviation of one payment.
    bound : ``z * std / sqrt(rounds)``.
    utility : per source, mean of :math:`\\sum_k p_i^k` minus its effort (MC utility (1)).
    utility_expected : its exact value.
    utility_bound : CLT bound of ``utility`` using the exact variance of :math:`\\sum_k p_i^k`
        (the buyers' residuals for one source are correlated; its variance is computed exactly).
    """

    rounds: int
    efforts: FloatArray
    mean: FloatArray
    expected: FloatArray
    std: FloatArray
    bound: FloatArray
    utility: FloatArray
    utility_expected: FloatArray
    utility_bound: FloatArray

    @property
    def within_bound(self) -> bool:
        return bool(np.all(np.abs(self.mean - self.expected) <= self.bound))


def _as_matrix(name: str, v: object, n: int, m: int) -> FloatArray:
    arr = np.broadcast_to(np.asarray(0.0 if v is None else v, dtype=np.float64), (n, m))
    if not np.all(np.isfinite(arr)):
        raise InvalidMarketError(name, "must be finite")
    return np.array(arr)


def simulate_payments(
    analysis: CompetingAnalysis,
    rounds: int,
    seed: Seed,
    *,
    truth: Callable[[FloatArray], FloatArray] | None = None,
    efforts: FloatArray | None = None,
    shift: FloatArray | float | None = None,
    extra_std: FloatArray | float | None = None,
    z: float = Z_BOUND,
) -> PaymentSimulation:
    """Simulate ``rounds`` independent rounds of the equilibrium contracts.

    Parameters
    ----------
    truth : the function :math:`f` the sources measure (default :math:`f = 0`, for which every
        leave-one-out fit is unbiased).
    efforts : efforts of the sources (default :math:`e^*`).
    shift, extra_std : ``(N, M)`` (or broadcastable) deviation of source ``i``'s report to buyer
        ``k``: it sends :math:`y_i + b_{ik} + \\tau_{ik} z_{ik}` (default 0: one truthful report).
    """
    g, mk = analysis.gne, analysis.market
    if not g.gne_exists or g.c is None or g.d is None or g.effort_equilibrium is None:
        raise InvalidMarketError("analysis", "no GNE: contracts are undefined")
    if not isinstance(rounds, int | np.integer) or rounds < 2:
        raise InvalidMarketError("rounds", "need at least 2 Monte Carlo rounds")
    n, m = mk.n_sources, mk.n_buyers
    x = np.asarray(mk.locations)
    e = np.array(g.effort_equilibrium if efforts is None else efforts, dtype=np.float64)
    sigma2 = effort_variance(e, np.asarray(mk.effort_alpha))
    b = _as_matrix("shift", shift, n, m)
    tau = _as_matrix("extra_std", extra_std, n, m)
    fx = np.zeros(n) if truth is None else np.asarray(truth(x), dtype=np.float64)
    p_loo = analysis.loo  # (N, N, M), zero diagonal

    rng = make_rng(seed)
    eps = rng.standard_normal((rounds, n)) * np.sqrt(sigma2)[None, :]
    extra = rng.standard_normal((rounds, n, m)) * tau[None]
    reports = fx[None, :, None] + eps[:, :, None] + b[None] + extra  # (R, N, M)
    pred = np.einsum("ilk,rlk->rik", p_loo, reports)
    resid = reports - pred
    pay = g.c[None] - g.d[None] * resid**2
    mean = pay.mean(axis=0)

    mu = (fx[:, None] + b) - np.einsum("ilk,lk->ik", p_loo, fx[:, None] + b)
    s = sigma2[:, None] + tau**2 + np.einsum("ilk,lk->ik", p_loo**2, sigma2[:, None] + tau**2)
    expected = g.c - g.d * (s + mu**2)
    std = np.abs(g.d) * np.sqrt(2 * s**2 + 4 * mu**2 * s)
    bound = z * std / np.sqrt(rounds)
    var_sum = _payment_sum_variance(p_loo, sigma2, tau, mu, g.d)
    utility = pay.sum(axis=2).mean(axis=0) - e
    utility_expected = expected.sum(axis=1) - e
    utility_bound = z * np.sqrt(var_sum / rounds)
    return PaymentSimulation(
        int(rounds), e, mean, expected, std, bound, utility, utility_expected, utility_bound
    )


def effort_sweep(
    analysis: CompetingAnalysis,
    source: int,
    offsets: Sequence[float],
    rounds: int,
    seed: Seed,
) -> list[PaymentSimulation]:
    """Simulate with source ``source`` at :math:`e^*_i + \\delta` for each offset (others at
    :math:`e^*`), with common random numbers (the same ``seed``) so differences are sharp."""
    e_star = analysis.gne.effort_equilibrium
    if e_star is None:
        raise InvalidMarketError("analysis", "no GNE: efforts are undefined")
    out = []
    for off in offsets:
        e = np.array(e_star, dtype=np.float64)
        e[source] += float(off)
        out.append(simulate_payments(analysis, rounds, seed, efforts=e))
    return out


def _payment_sum_variance(
    p_loo: FloatArray, sigma2: FloatArray, tau: FloatArray, mu: FloatArray, d: FloatArray
) -> FloatArray:
    """Exact variance of :math:`\\sum_k p_i^k` per source ``i``.

    The residuals :math:`r_i^k` are jointly Gaussian across ``k`` with
    :math:`Cov(r_i^k, r_i^j) = \\sum_l (1[l=i] - P_{il}^k)(1[l=i] - P_{il}^j) \\sigma_l^2` (+ the
    ``tau`` terms when ``k == j``), and :math:`Cov(r_k^2, r_j^2) = 2 C_{kj}^2 + 4 \\mu_k \\mu_j C_{kj}`.
    """
    n, _, m = p_loo.shape
    lin = np.zeros((n, m, n))  # coefficient of eps_l in r_i^k
    lin[:, :, :] = -np.transpose(p_loo, (0, 2, 1))
    lin[np.arange(n), :, np.arange(n)] += 1.0
    cov = np.einsum("ikl,ijl,l->ikj", lin, lin, sigma2)
    # independent extra noises z_lk only correlate a buyer's residual with itself
    own_tau = tau**2 + np.einsum("ilk,lk->ik", p_loo**2, tau**2)
    cov_tau = own_tau[:, :, None] * np.eye(m)[None]
    cov = cov + cov_tau
    # Cov(r_k^2, r_j^2) = 2 C_kj^2 + 4 mu_k mu_j C_kj for jointly Gaussian r
    cov_sq = 2 * cov**2 + 4 * mu[:, :, None] * mu[:, None, :] * cov
    out: FloatArray = np.einsum("ik,ij,ikj->i", d, d, cov_sq)
    return out
