r"""Competing buyers and strategic, effort-averse data sources (Westenbroek et al.).

Westenbroek, Dong, Ratliff and Sastry, "Statistical Estimation with Strategic Data Sources in
Competitive Settings" (IEEE CDC 2017, arXiv:1704.01195), with the corrections stated below. Parameter
names are explicit (``effort_alpha``, ``competition``, ``eta``) because Chaintreau et al. use alpha, beta,
gamma
for other things.

Model (Section II)
------------------
* Sources :math:`i = 1..N` at common-knowledge locations :math:`x_i`; effort :math:`e_i` gives a
  report :math:`y_i = f(x_i) + \epsilon_i`, :math:`\epsilon_i \sim N(0, \sigma_i^2(e_i))`,
  :math:`\sigma_i(e) = e^{-\alpha_i e}` (Assumption 2, eq. 16); utility :math:`E[\sum_j p_i^j] - e_i` (1).
* Buyers :math:`j = 1..M` with a separable estimator (Assumption 3;
  :mod:`~datamarket.mechanisms.competing_buyers._models`), an evaluation distribution :math:`F_j`, competition
  levels :math:`\delta_k^j = \delta_j^k \in [0, 1]` and a conversion :math:`\eta^j > 0`; loss (2).
* Contracts :math:`p_i^j = c_i^j - d_i^j (y_i - \hat f^j_{-i}(x_i))^2` (Assumption 1, eq. 8).

Weights, computed from the estimator, never from the printed Section IV formulas
---------------------------------------------------------------------------------------------
1. :math:`\beta_i^j = E_{x^*\sim F_j}[H^j_i(x^*)^2]` where :math:`H^j` is buyer ``j``'s smoother on all
   sources (for OLS :math:`W[:, i]^\top E[\phi\phi^\top] W[:, i]`, :math:`W = \operatorname{pinv}(X)`).
2. :math:`\xi_{i,l}^j = (H^j_{-i}(x_i)_l)^2` for :math:`l\ne i` (leave-``i``-out fit at :math:`x_i`,
   minimum-norm when under-determined), :math:`\xi_{i,i}^j = 1`.
3. :math:`\gamma_i^k = (\beta_i^k - \sum_{j\ne k}\delta_j^k\beta_i^j)/\eta^k`: the paper's
   :math:`\gamma` (after Assumption 3) with the :math:`\eta^k = 1` normalisation it applies after (23)
   ("normalizing the :math:`\gamma_i^k` accordingly"). The printed Section IV
   :math:`\gamma` swaps the sources' indices; computing it from the estimator avoids that misprint.

The equilibrium, social optimum and price of anarchy (Theorems 1-2) are
:func:`._gne.solve_gne`. With :math:`\eta \ne 1` the social loss (27) is taken in
money units, :math:`\sum_i (\sum_j\gamma_i^j)\sigma_i^2 + e_i` with the normalised :math:`\gamma`; this
is Definition 2 when :math:`\eta = 1` (the only case the paper defines) and keeps payments lossless
transfers otherwise.

Mechanism declaration
---------------------
At a GNE with the canonical split :math:`\theta`, buyer ``k`` pays source ``i`` the expected amount
:math:`\theta_i^k e_i^*` and each source's expected payments equal its effort cost (Lemma 1), so
seller IR holds ex ante (with equality; ex post a payment can be negative), transfers are direct
(strong budget balance), and :math:`e_i^*` is a dominant strategy with the same report to every buyer
optimal (17-18, Proposition 1): the IC probes sweep a source's effort and a common shift of its
report. Buyers' IR is not a property of this mechanism (the paper gives buyers no money value) and is
not declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from datamarket.core.audits import ICProbe, MechanismInfo, Property, Sample, Scope
from datamarket.core.errors import InvalidMarketError
from datamarket.core.progress import Progress, report
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray, Outcome, Role, finite_array
from datamarket.mechanisms.competing_buyers._gne import GNEResult, effort_variance, solve_gne
from datamarket.mechanisms.competing_buyers._models import (
    EvaluationDistribution,
    PolynomialRegression,
    SeparableEstimator,
    UniformInterval,
)

PAPER = "Westenbroek, Dong, Ratliff, Sastry: Statistical Estimation with Strategic Data Sources"
MECHANISM_NAME = "competing_buyers"


def _competition_matrix(competition: object, m: int) -> FloatArray:
    arr = (
        np.asarray(competition, dtype=np.float64) if not isinstance(competition, np.ndarray) else competition
    )
    if arr.ndim == 0:
        mat = np.full((m, m), float(arr))
    else:
        mat = np.array(finite_array("competition", arr, ndim=2))
        if mat.shape != (m, m):
            raise InvalidMarketError("competition", f"must be a scalar or a ({m}, {m}) matrix")
    mat = np.array(finite_array("competition", mat))
    if np.any((mat < 0) | (mat > 1)):  # the unused diagonal too: every entry is a level in [0, 1]
        raise InvalidMarketError("competition", "delta must lie in [0, 1] (Section II-C)")
    if not np.allclose(mat, mat.T):
        raise InvalidMarketError("competition", "delta must be symmetric (delta_k^j = delta_j^k)")
    np.fill_diagonal(mat, 0.0)
    mat.setflags(write=False)
    return mat


@dataclass(frozen=True)
class CompetingMarket:
    """A market of ``N`` sources and ``M`` buyers (validated, immutable).

    Parameters
    ----------
    locations : ``(N,)`` source locations :math:`x_i` (N >= 2: contracts use leave-one-out fits).
    effort_alpha : ``(N,)`` effort sensitivities :math:`\\alpha_i > 0` (Assumption 2).
    estimators : one :class:`SeparableEstimator` per buyer.
    evaluations : one evaluation distribution :math:`F_j` per buyer.
    competition : :math:`\\delta` in [0, 1], a scalar (every pair) or a symmetric ``(M, M)`` matrix
        (diagonal ignored).
    eta : ``(M,)`` conversions :math:`\\eta^j > 0` (default 1).

    >>> m = section_iv_market(0.0)
    >>> m.n_sources, m.n_buyers
    (2, 2)
    """

    locations: FloatArray
    effort_alpha: FloatArray
    estimators: tuple[SeparableEstimator, ...]
    evaluations: tuple[EvaluationDistribution, ...]
    competition: FloatArray | float = 0.0
    eta: FloatArray | None = None
    source_names: tuple[str, ...] = ()
    buyer_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        x = finite_array("locations", self.locations, ndim=1)
        n = x.shape[0]
        if n < 2:
            raise InvalidMarketError("locations", "need at least 2 sources (payments use leave-one-out fits)")
        a = finite_array("effort_alpha", np.broadcast_to(self.effort_alpha, (n,)), ndim=1)
        if np.any(a <= 0):
            raise InvalidMarketError("effort_alpha", "must be > 0 (Assumption 2)")
        ests, evals = tuple(self.estimators), tuple(self.evaluations)
        m = len(ests)
        if m < 1:
            raise InvalidMarketError("estimators", "need at least one buyer")
        if len(evals) != m:
            raise InvalidMarketError("evaluations", f"need one evaluation distribution per buyer ({m})")
        for est in ests:
            if not isinstance(est, SeparableEstimator):
                raise InvalidMarketError("estimators", f"{est!r} is not a separable estimator")
            est.check_design(x)
        eta = finite_array("eta", np.ones(m) if self.eta is None else np.broadcast_to(self.eta, (m,)), ndim=1)
        if np.any(eta <= 0):
            raise InvalidMarketError("eta", "conversions must be > 0")
        snames = tuple(self.source_names) or tuple(f"source{i + 1}" for i in range(n))
        bnames = tuple(self.buyer_names) or tuple(f"buyer{j + 1}" for j in range(m))
        if len(snames) != n or len(bnames) != m or len(set(snames + bnames)) != n + m:
            raise InvalidMarketError("names", "need unique names, one per source and per buyer")
        object.__setattr__(self, "locations", x)
        object.__setattr__(self, "effort_alpha", a)
        object.__setattr__(self, "estimators", ests)
        object.__setattr__(self, "evaluations", evals)
        object.__setattr__(self, "competition", _competition_matrix(self.competition, m))
        object.__setattr__(self, "eta", eta)
        object.__setattr__(self, "source_names", snames)
        object.__setattr__(self, "buyer_names", bnames)

    @property
    def n_sources(self) -> int:
        return int(np.asarray(self.locations).shape[0])

    @property
    def n_buyers(self) -> int:
        return len(self.estimators)


def section_iv_market(
    x1: float,
    x2: float = 1.0,
    n_buyers: int = 2,
    competition: float = 0.0,
    effort_alpha: float = 1.0,
) -> CompetingMarket:
    """The Section IV example : sources at ``x1, x2``, alpha = 1, OLS on [x, 1], U[-1, 1].

    ``n_buyers`` identical buyers (2 in the paper) with competition ``competition`` (0 in the paper);
    ``effort_alpha`` is 1 in the paper.
    """
    return CompetingMarket(
        locations=np.array([x1, x2]),
        effort_alpha=np.full(2, float(effort_alpha)),
        estimators=tuple(PolynomialRegression(1) for _ in range(n_buyers)),
        evaluations=tuple(UniformInterval(-1.0, 1.0) for _ in range(n_buyers)),
        competition=competition,
    )


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------
def variance_weights(market: CompetingMarket) -> FloatArray:
    r""":math:`\beta_i^j = E_{F_j}[H^j_i(x^*)^2]`, shape ``(N, M)`` (Assumption 3).

    >>> b = variance_weights(section_iv_market(0.0))
    >>> np.round(b[:, 0], 10).tolist()   # (1/3 + x_other^2)/(x1 - x2)^2: not the printed formula
    [1.3333333333, 0.3333333333]
    """
    x = np.asarray(market.locations)
    out = np.empty((market.n_sources, market.n_buyers))
    for k, (est, dist) in enumerate(zip(market.estimators, market.evaluations, strict=True)):
        nodes, w = dist.quadrature()
        h = est.weights(x, nodes)
        out[:, k] = w @ h**2
    return out


def loo_prediction_matrices(market: CompetingMarket) -> FloatArray:
    r"""``P[i, l, k]`` :math:`= H^k_{-i}(x_i)_l`: buyer ``k``'s leave-``i``-out prediction at
    :math:`x_i` is :math:`\sum_l P[i,l,k]\, y_l` (zero diagonal)."""
    x = np.asarray(market.locations)
    n = market.n_sources
    out = np.zeros((n, n, market.n_buyers))
    for k, est in enumerate(market.estimators):
        for i in range(n):
            rest = np.delete(np.arange(n), i)
            out[i, rest, k] = est.weights(x[rest], x[i : i + 1])[0]
    return out


def loo_weights(market: CompetingMarket) -> FloatArray:
    r""":math:`\xi_{i,l}^k = (H^k_{-i}(x_i)_l)^2`, :math:`\xi_{i,i}^k = 1`; shape ``(N, N, M)``.

    >>> xi = loo_weights(section_iv_market(0.0))
    >>> round(float(xi[0, 1, 0]), 12), round(float(xi[1, 0, 0]), 12)   # Section IV closed forms
    (0.25, 1.0)
    """
    return _xi_from_loo(loo_prediction_matrices(market))


def _xi_from_loo(loo: FloatArray) -> FloatArray:
    xi = loo**2
    idx = np.arange(loo.shape[0])
    xi[idx, idx, :] = 1.0
    return np.asarray(xi, dtype=np.float64)


def competition_weights(beta: FloatArray, competition: FloatArray, eta: FloatArray) -> FloatArray:
    r""":math:`\gamma_i^k = (\beta_i^k - \sum_{j\ne k}\delta_j^k \beta_i^j)/\eta^k` (the
    division by :math:`\eta^k` is the paper's normalisation after (23)).

    >>> competition_weights(np.array([[2.0, 1.0]]), np.array([[0, .5], [.5, 0]]), np.ones(2)).tolist()
    [[1.5, 0.0]]
    """
    delta = np.array(competition, dtype=np.float64)
    np.fill_diagonal(delta, 0.0)
    return np.asarray((beta - beta @ delta) / np.asarray(eta)[None, :], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# analysis facade
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompetingAnalysis:
    """A market with its weights and its equilibrium (``gne``: :class:`GNEResult`)."""

    market: CompetingMarket
    beta: FloatArray
    xi: FloatArray
    gamma: FloatArray
    loo: FloatArray
    gne: GNEResult
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def variances(self) -> FloatArray | None:
        """Equilibrium report variances :math:`\\sigma_i^2(e_i^*)` (18)."""
        e = self.gne.effort_equilibrium
        return None if e is None else effort_variance(e, self.market.effort_alpha)


def analyse_market(
    market: CompetingMarket,
    theta: FloatArray | None = None,
    *,
    cross_check: bool = True,
    progress: Progress | None = None,
) -> CompetingAnalysis:
    """Weights and the equilibrium (:func:`~datamarket.equilibrium.gne.solve_gne`) for ``market``.

    ``progress`` (:mod:`datamarket.core.progress`) is told each stage: the variance weights, the
    leave-one-out fits, the equilibrium; it does not change the result.

    >>> a = analyse_market(section_iv_market(0.0))
    >>> round(a.gne.spectral_radius, 12), a.gne.gne_exists
    (0.5, True)
    >>> np.round(a.gne.d, 4).tolist()    # d_1 = (g1 + xi21 g2)/(1 - xi12 xi21)
    [[2.2222, 2.2222], [0.8889, 0.8889]]
    """
    report(progress, "variance weights", 0.0)
    beta = variance_weights(market)
    report(progress, "leave-one-out fits", 0.2)
    loo = loo_prediction_matrices(market)
    xi = _xi_from_loo(loo)
    gamma = competition_weights(beta, np.asarray(market.competition), np.asarray(market.eta))
    report(progress, "equilibrium", 0.7)
    gne = solve_gne(gamma, xi, np.asarray(market.effort_alpha), theta, cross_check=cross_check)
    report(progress, "equilibrium", 1.0)
    return CompetingAnalysis(market, beta, xi, gamma, loo, gne)


def source_expected_utility(
    analysis: CompetingAnalysis,
    source: int,
    effort: float,
    *,
    shift: float | Sequence[float] = 0.0,
    extra_std: float | Sequence[float] = 0.0,
) -> float:
    r"""Exact expected utility (1) of ``source`` under the equilibrium contracts, others at :math:`e^*`.

    The source exerts ``effort`` and reports :math:`y_i + b_k + \tau_k z_k` to buyer ``k``
    (``shift`` :math:`b`, ``extra_std`` :math:`\tau`, scalars or one per buyer; 0 = the same truthful
    report to all, Proposition 1). With an unbiased leave-one-out fit (text before (9)):

    .. math:: \sum_k \big[c_i^k - d_i^k(\sigma_i^2(e) + b_k^2 + \tau_k^2
              + \textstyle\sum_{l\ne i}\xi_{i,l}^k\sigma_l^2(e_l^*))\big] - e.
    """
    g = analysis.gne
    if not g.gne_exists or g.c is None or g.d is None:
        raise InvalidMarketError("analysis", "no GNE: contracts are undefined")
    var = analysis.variances
    assert var is not None
    m = analysis.market.n_buyers
    b = np.broadcast_to(np.asarray(shift, dtype=np.float64), (m,))
    tau = np.broadcast_to(np.asarray(extra_std, dtype=np.float64), (m,))
    alpha = float(np.asarray(analysis.market.effort_alpha)[source])
    others = np.einsum("lk,l->k", np.delete(analysis.xi[source], source, axis=0), np.delete(var, source))
    own = float(np.exp(-2 * alpha * effort))
    pay = g.c[source] - g.d[source] * (own + b**2 + tau**2 + others)
    return float(np.sum(pay) - effort)


def market_outcome(analysis: CompetingAnalysis) -> Outcome:
    """The round's :class:`Outcome`: buyers pay sources the expected contract payments.

    Buyer ``k``'s price is :math:`\\sum_i E[p_i^k]`, source ``i`` receives :math:`\\sum_k E[p_i^k]`
    and its cost is its effort :math:`e_i^*`. ``allocated`` holds each source's report precision
    :math:`1/\\sigma_i^2` (buyers: 0). Requires an existing GNE.
    """
    g, mk = analysis.gne, analysis.market
    if not g.gne_exists or g.expected_payments is None or g.effort_equilibrium is None:
        raise InvalidMarketError("market", g.status)
    pay = g.expected_payments
    var = analysis.variances
    assert var is not None
    n, m = mk.n_sources, mk.n_buyers
    return Outcome(
        mechanism=MECHANISM_NAME,
        participants=tuple(mk.buyer_names) + tuple(mk.source_names),
        roles=(Role.BUYER,) * m + (Role.SELLER,) * n,
        allocated=np.concatenate([np.zeros(m), 1.0 / var]),
        prices=np.concatenate([pay.sum(axis=0), np.zeros(n)]),
        payments=np.concatenate([np.zeros(m), pay.sum(axis=1)]),
        costs=np.concatenate([np.zeros(m), g.effort_equilibrium]),
        extra={
            "spectral_radius": g.spectral_radius,
            "price_of_anarchy": g.price_of_anarchy,
            "ir": "ex ante: expected payments equal effort cost (Lemma 1)",
        },
    )


# --------------------------------------------------------------------------------------------------
# mechanism declaration (tests/mechanisms/test_contract.py)
# --------------------------------------------------------------------------------------------------
def _random_market(seed: int) -> CompetingMarket:
    """A small random market with a GNE: 3-4 sources in [-1, 1], 2-3 OLS buyers."""
    rng = make_rng(seed)
    for _ in range(100):
        n = int(rng.integers(3, 5))
        m = int(rng.integers(2, 4))
        x = np.sort(rng.uniform(-1, 1, n))
        if np.min(np.diff(x)) < 0.2:
            continue
        market = CompetingMarket(
            locations=x,
            effort_alpha=rng.uniform(1.0, 3.0, n),
            estimators=tuple(PolynomialRegression(int(rng.integers(0, 2))) for _ in range(m)),
            evaluations=tuple(UniformInterval(-1.0, float(rng.uniform(0.0, 1.0))) for _ in range(m)),
            competition=float(rng.uniform(0.0, 0.3)),
        )
        if analyse_market(market).gne.gne_exists:
            return market
    raise InvalidMarketError("seed", "no market with a GNE found")  # pragma: no cover


def _utility_of_effort(analysis: CompetingAnalysis, source: int, effort: float) -> float:
    return source_expected_utility(analysis, source, effort)


def _utility_of_shift(analysis: CompetingAnalysis, source: int, effort: float, shift: float) -> float:
    return source_expected_utility(analysis, source, effort, shift=shift)


def ic_probes(analysis: CompetingAnalysis) -> tuple[ICProbe, ...]:
    r"""Per source: its exact expected utility vs its effort (truth :math:`e^*`, grid
    :math:`e^* \pm 2`) and vs a common shift of its report (truth 0), eq. (1), (17), Prop. 1."""
    e = analysis.gne.effort_equilibrium
    assert e is not None
    probes: list[ICProbe] = []
    for i, name in enumerate(analysis.market.source_names):
        ei = float(e[i])
        probes.append(
            ICProbe(
                f"{name}/effort",
                partial(_utility_of_effort, analysis, i),
                ei,
                tuple(ei + np.linspace(-2.0, 2.0, 41)),
            )
        )
        probes.append(
            ICProbe(
                f"{name}/report-shift",
                partial(_utility_of_shift, analysis, i, ei),
                0.0,
                tuple(np.linspace(-1.0, 1.0, 21)),
            )
        )
    return tuple(probes)


def sample(seed: int) -> Sample:
    """Run the mechanism on a random market with a GNE; probes sweep effort and report shifts."""
    analysis = analyse_market(_random_market(seed))
    return Sample(market_outcome(analysis), ic_probes(analysis), tol=1e-9)


MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name=MECHANISM_NAME,
        paper=PAPER,
        guarantees=frozenset(
            {
                Property.IR_SELLER,
                Property.BUDGET_BALANCE_STRONG,
                Property.BUDGET_BALANCE_WEAK,
                Property.INCENTIVE_COMPATIBLE,
            }
        ),
        scopes={Property.IR_SELLER: Scope.EX_ANTE},
        sample=sample,
        description="Buyers' contracts p = c - d (y - f_-i(x_i))^2 at the generalized Nash equilibrium",
        notes={
            "ir_seller": "ex ante, with equality (Lemma 1); ex post payments can be negative",
            "incentive_compatible": "effort e* is a dominant strategy (17); one common report (Prop. 1)",
            "ir_buyer": "not declared: buyers have no money value in the paper",
        },
    ),
)
