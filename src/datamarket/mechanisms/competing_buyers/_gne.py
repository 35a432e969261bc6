r"""Generalized Nash equilibrium of buyers competing for effort-averse data sources (Westenbroek et al.).

Westenbroek, Dong, Ratliff and Sastry, "Statistical Estimation with Strategic Data Sources in
Competitive Settings" (equation numbers (1)-(31) are
the paper's). Corrections to the printed paper are stated where they apply.

This module is pure linear algebra on the game's weights; the estimators that produce them live in
:mod:`datamarket.mechanisms.competing_buyers`. Arrays are indexed **sources first, buyer last**:

* ``gamma[i, k]`` :math:`=\gamma_i^k` (competition-adjusted variance weight, already divided
  by the conversion :math:`\eta^k`, which the paper allows "without loss of generality" after (23));
* ``xi[i, l, k]`` :math:`=\xi_{i,l}^k` (weight of :math:`\sigma_l^2` in buyer ``k``'s leave-``i``-out
  prediction at :math:`x_i`; ``xi[i, i, k] = 1``);
* ``d[i, k]``, ``c[i, k]``: buyer ``k``'s contract with source ``i`` (Assumption 1, eq. 8);
* ``alpha[i]`` :math:`=\alpha_i`, the effort sensitivity, :math:`\sigma_i(e) = e^{-\alpha_i e}` (16).

Flattening ``d`` row-major gives the paper's source-major stacking (eq. 31), index ``i * M + k``.

Algorithm (Theorem 1)
----------------------------
1. Build :math:`A` with :math:`A[(q,k),(l,j)] = \xi_{l,q}^j` for :math:`j \ne k, l \ne q` (eq. 25-26);
   compute the spectral radius :math:`\rho(A)`.
2. If :math:`\rho(A) < 1` solve :math:`(I - A) d = \gamma` (26); cross-check with the Jacobi
   iteration :math:`d \leftarrow A d + \gamma` (:func:`jacobi_solve`).
3. Check :math:`d \ge 0` (the paper assumes :math:`\gamma > 0`; with zeros or negatives in
   :math:`\gamma` the Leontief "iff" can fail, so the sign is checked directly) and the feasibility condition
   :math:`2 \alpha_i D_i \ge 1`, :math:`D_i = \sum_j d_i^j`, which the paper omits: the
   polytope of :math:`c`'s is empty otherwise, so there is no GNE.
4. Efforts :math:`e_i^* = \ln(2\alpha_i D_i)/(2\alpha_i)` (17), variances
   :math:`\sigma_i^2 = 1/(2\alpha_i D_i)` (18); canonical contracts
   :math:`c_i^k = d_i^k \sum_l \xi_{i,l}^k \sigma_l^2 + \theta_i^k e_i^*` (Theorem 1's polytope, whose
   printed "sum over -B" is a sum over B), so that :math:`E[p_i^k] = \theta_i^k e_i^*`.
5. Social optimum :math:`\hat e_i = \ln(2\alpha_i\Gamma_i)/(2\alpha_i)` (28),
   :math:`\Gamma_i = \sum_j \gamma_i^j`; social loss :math:`L(e) = \sum_i \Gamma_i\sigma_i^2(e_i) + e_i`
   (27); price of anarchy :math:`L(e^*)/L(\hat e)` (Theorem 2), undefined when
   :math:`L(\hat e) \le 0` or some :math:`\Gamma_i \le 0` (then :math:`L` is unbounded below).
6. "No GNE" when :math:`\rho(A) \ge 1` (numerically: :math:`\rho(A) \ge 1 - 10^{-14}` or
   :math:`\operatorname{cond}(I - A) \ge 10^{15}`, see ``RHO_TOL``).

The numerical verifier :func:`best_response` minimises buyer ``k``'s cost (19) over ``d^k`` with the
others' contracts fixed (L-BFGS-B "Verification").

>>> import numpy as np
>>> xi = np.zeros((2, 2, 1)); xi[0, 0] = xi[1, 1] = 1.0   # one buyer: A = 0
>>> res = solve_gne(np.array([[1.0], [2.0]]), xi, np.array([1.0, 1.0]))
>>> res.d.ravel().tolist(), res.gne_exists, float(res.price_of_anarchy)
([1.0, 2.0], True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray, finite_array
from datamarket.equilibrium.leontief import jacobi_solve, spectral_radius

#: :math:`\rho(A)` within this of 1 counts as 1 (eigenvalues carry ~1e-16 rounding; the Section IV
#: example at x1 = 0.999999 has 1 - rho = 2.5e-13), as does a condition number of
#: :math:`I - A` above ``COND_MAX``.
RHO_TOL = 1e-14
COND_MAX = 1e15

__all__ = [
    "BestResponse",
    "GNEResult",
    "best_response",
    "buyer_cost",
    "canonical_contracts",
    "effort_variance",
    "equilibrium_loss",
    "jacobi_solve",
    "leontief_matrix",
    "social_effort",
    "social_loss",
    "social_optimum_loss",
    "solve_gne",
    "source_effort",
    "spectral_radius",
]


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def _check_shapes(gamma: object, xi: object, alpha: object) -> tuple[FloatArray, FloatArray, FloatArray]:
    g = finite_array("gamma", gamma, ndim=2)
    x = finite_array("xi", xi, ndim=3, nonneg=True)
    a = finite_array("effort_alpha", alpha, ndim=1)
    n, m = g.shape
    if n < 1 or m < 1:
        raise InvalidMarketError("gamma", f"need at least one source and one buyer, got shape {g.shape}")
    if x.shape != (n, n, m):
        raise InvalidMarketError("xi", f"must have shape (sources, sources, buyers) = {(n, n, m)}")
    if a.shape != (n,):
        raise InvalidMarketError("effort_alpha", f"need one value per source ({n}), got {a.shape}")
    if np.any(a <= 0):
        raise InvalidMarketError("effort_alpha", "must be > 0 (Assumption 2)")
    diag = x[np.arange(n), np.arange(n), :]
    if not np.allclose(diag, 1.0):
        raise InvalidMarketError("xi", "xi[i, i, k] must be 1 (convention after Assumption 3)")
    return g, x, a


# --------------------------------------------------------------------------------------------------
# Leontief system (25)-(26)
# --------------------------------------------------------------------------------------------------
def leontief_matrix(xi: FloatArray) -> FloatArray:
    r"""The matrix :math:`A` of (26): :math:`A[(q,k),(l,j)] = \xi_{l,q}^j` if :math:`j\ne k, l\ne q`.

    Rows and columns use the source-major index ``i * M + k`` . ``xi`` has shape
    ``(N, N, M)``. Equation (25) reads row ``(q, k)``:
    :math:`d_q^k = \gamma_q^k + \sum_{j\ne k}\sum_{l\ne q} d_l^j \xi_{l,q}^j`.

    >>> xi = np.ones((2, 2, 2)); xi[0, 1] = 0.5; xi[1, 0] = 0.25
    >>> leontief_matrix(xi)
    array([[0.  , 0.  , 0.  , 0.25],
           [0.  , 0.  , 0.25, 0.  ],
           [0.  , 0.5 , 0.  , 0.  ],
           [0.5 , 0.  , 0.  , 0.  ]])
    """
    n, _, m = xi.shape
    # block[q, k, l, j] = xi[l, q, j]
    block = np.broadcast_to(np.transpose(xi, (1, 0, 2))[:, None, :, :], (n, m, n, m)).copy()
    block[np.arange(n), :, np.arange(n), :] = 0.0  # l == q
    block[:, np.arange(m), :, np.arange(m)] = 0.0  # j == k
    return block.reshape(n * m, n * m)


# --------------------------------------------------------------------------------------------------
# sources' best response and the social loss
# --------------------------------------------------------------------------------------------------
def source_effort(total_d: FloatArray, alpha: FloatArray) -> FloatArray:
    r"""Dominant-strategy effort (17): :math:`e_i^* = \ln(2\alpha_i D_i)/(2\alpha_i)`.

    ``-inf`` where :math:`D_i \le 0` (no incentive: the source exerts no effort at all).

    >>> float(source_effort(np.array([0.5]), np.array([1.0]))[0])
    0.0
    """
    d = np.asarray(total_d, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(d > 0, np.log(np.maximum(2 * a * d, 1e-300)) / (2 * a), -np.inf)
    return np.asarray(out, dtype=np.float64)


def effort_variance(effort: FloatArray, alpha: FloatArray) -> FloatArray:
    r"""Report variance :math:`\sigma_i^2(e_i) = \exp(-2\alpha_i e_i)` (Assumption 2, eq. 16)."""
    return np.asarray(np.exp(-2 * np.asarray(alpha) * np.asarray(effort)), dtype=np.float64)


def social_effort(total_gamma: FloatArray, alpha: FloatArray) -> FloatArray:
    r"""Socially optimal effort (28): :math:`\hat e_i = \ln(2\alpha_i\Gamma_i)/(2\alpha_i)`.

    ``-inf`` where :math:`\Gamma_i \le 0`: then :math:`L` decreases without bound as
    :math:`e_i \to -\infty`.
    """
    return source_effort(total_gamma, alpha)


def social_loss(effort: FloatArray, total_gamma: FloatArray, alpha: FloatArray) -> float:
    r"""Ex-ante social loss (Definition 2, eq. 27) with :math:`\eta = 1`:
    :math:`L(e) = \sum_i \Gamma_i \sigma_i^2(e_i) + e_i`.

    >>> social_loss(np.zeros(2), np.array([1.0, 2.0]), np.ones(2))
    3.0
    """
    e = np.asarray(effort, dtype=np.float64)
    return float(np.sum(np.asarray(total_gamma) * effort_variance(e, alpha) + e))


def equilibrium_loss(total_d: FloatArray, total_gamma: FloatArray, alpha: FloatArray) -> float:
    r"""Closed form :math:`L(e^*) = \sum_i \Gamma_i/(2\alpha_i D_i) + \ln(2\alpha_i D_i)/(2\alpha_i)`
    (Theorem 2 with (17)-(18))."""
    d, g, a = (np.asarray(v, dtype=np.float64) for v in (total_d, total_gamma, alpha))
    return float(np.sum(g / (2 * a * d) + np.log(2 * a * d) / (2 * a)))


def social_optimum_loss(total_gamma: FloatArray, alpha: FloatArray) -> float:
    r"""Closed form :math:`L(\hat e) = \sum_i 1/(2\alpha_i) + \ln(2\alpha_i\Gamma_i)/(2\alpha_i)`;
    ``-inf`` when some :math:`\Gamma_i \le 0` (the infimum)."""
    g, a = np.asarray(total_gamma, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    if np.any(g <= 0):
        return float("-inf")
    return float(np.sum(1 / (2 * a) + np.log(2 * a * g) / (2 * a)))


def canonical_contracts(
    d: FloatArray, xi: FloatArray, alpha: FloatArray, theta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""Canonical point of Theorem 1's polytope of :math:`c`'s.

    :math:`c_i^k = d_i^k \sum_l \xi_{i,l}^k \sigma_l^2 + \theta_i^k e_i^*` with
    :math:`\sigma_l^2 = 1/(2\alpha_l D_l)`. Returns ``(c, s)`` where
    ``s[i, k]`` :math:`=\sum_l \xi_{i,l}^k \sigma_l^2` (expected squared residual, text before (9)).
    """
    total = d.sum(axis=1)
    var = 1.0 / (2 * alpha * total)
    s = np.einsum("ilk,l->ik", xi, var)
    c = d * s + theta * source_effort(total, alpha)[:, None]
    return c, s


# --------------------------------------------------------------------------------------------------
# the equilibrium
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GNEResult:
    r"""Everything :func:`solve_gne` computes; equilibrium arrays are ``None`` where they do not exist.

    Attributes
    ----------
    gamma, xi, alpha : the inputs (``(N, M)``, ``(N, N, M)``, ``(N,)``).
    leontief : :math:`A` of (26), shape ``(N M, N M)``.
    spectral_radius : :math:`\rho(A)`.
    d : solution of :math:`(I - A)d = \gamma`, shape ``(N, M)``, when :math:`\rho(A) < 1`.
    jacobi_iterations, jacobi_gap : Jacobi cross-check (iterations; max abs difference to ``d``).
    nonnegative : :math:`d \ge 0` componentwise.
    feasible : :math:`2\alpha_i D_i \ge 1` for every source; per source in ``feasible_sources``.
    gne_exists : :math:`\rho(A) < 1` and ``nonnegative`` and ``feasible``.
    effort_equilibrium : :math:`e^*` (17) for the candidate ``d`` (also when infeasible).
    theta, c : canonical split and contracts (only when ``gne_exists``).
    expected_payments : :math:`E[p_i^k] = \theta_i^k e_i^*` (only when ``gne_exists``).
    effort_social : :math:`\hat e` (28), ``-inf`` where :math:`\Gamma_i \le 0`.
    loss_equilibrium, loss_social : :math:`L(e^*)`, :math:`L(\hat e)` (27).
    price_of_anarchy : :math:`L(e^*)/L(\hat e)`, ``None`` when undefined (the social loss
        can be non-positive when the weights are small).
    status : one line explaining the verdict.
    """

    gamma: FloatArray
    xi: FloatArray
    alpha: FloatArray
    leontief: FloatArray
    spectral_radius: float
    d: FloatArray | None
    jacobi_iterations: int
    jacobi_gap: float
    nonnegative: bool
    feasible: bool
    feasible_sources: tuple[bool, ...]
    gne_exists: bool
    effort_equilibrium: FloatArray | None
    theta: FloatArray | None
    c: FloatArray | None
    expected_payments: FloatArray | None
    effort_social: FloatArray
    loss_equilibrium: float | None
    loss_social: float | None
    price_of_anarchy: float | None
    status: str

    @property
    def n_sources(self) -> int:
        return int(self.gamma.shape[0])

    @property
    def n_buyers(self) -> int:
        return int(self.gamma.shape[1])

    @property
    def total_gamma(self) -> FloatArray:
        r""":math:`\Gamma_i = \sum_j \gamma_i^j` (27)."""
        return np.asarray(self.gamma.sum(axis=1), dtype=np.float64)

    @property
    def total_d(self) -> FloatArray | None:
        """:math:`D_i = \\sum_j d_i^j` (22)."""
        return None if self.d is None else np.asarray(self.d.sum(axis=1), dtype=np.float64)


def _theta(theta: object | None, n: int, m: int) -> FloatArray:
    if theta is None:
        return np.full((n, m), 1.0 / m)
    t = finite_array("theta", theta, nonneg=True)
    if t.ndim == 1:
        t = np.broadcast_to(t, (n, m))
    if t.shape != (n, m):
        raise InvalidMarketError("theta", f"must have shape (buyers,) or (sources, buyers) = {(n, m)}")
    if not np.allclose(t.sum(axis=1), 1.0, atol=1e-9):
        raise InvalidMarketError("theta", "each source's shares over buyers must sum to 1")
    return np.array(t, dtype=np.float64)


def solve_gne(
    gamma: FloatArray,
    xi: FloatArray,
    alpha: FloatArray,
    theta: FloatArray | None = None,
    *,
    tol: float = 1e-10,
    cross_check: bool = True,
    jacobi_max_iter: int = 20_000,
) -> GNEResult:
    r"""The GNE of Theorem 1, the social optimum and the price of anarchy (Theorem 2).

    Parameters
    ----------
    gamma : ``(N, M)`` competition-adjusted weights :math:`\gamma_i^k` (divided by :math:`\eta^k`).
    xi : ``(N, N, M)`` leave-one-out weights :math:`\xi_{i,l}^k`, non-negative, unit diagonal.
    alpha : ``(N,)`` effort sensitivities, > 0.
    theta : canonical split of each source's effort cost among buyers, shape ``(M,)`` or ``(N, M)``,
        rows summing to 1; default the equal split :math:`1/M`.
    tol : tolerance of the sign and feasibility checks.
    cross_check : also run the Jacobi iteration (at most ``jacobi_max_iter`` steps; it converges at
        rate :math:`\rho(A)`, so near :math:`\rho = 1` it may stop early: ``jacobi_gap`` says how far).
    """
    g, x, a = _check_shapes(gamma, xi, alpha)
    th = _theta(theta, *g.shape)
    big_a = leontief_matrix(x)
    rho = spectral_radius(big_a)
    big_gamma = g.sum(axis=1)
    e_soc = social_effort(big_gamma, a)
    l_soc_raw = social_optimum_loss(big_gamma, a)
    l_soc = l_soc_raw if np.isfinite(l_soc_raw) else None
    eq, iters, gap = _steps_2_to_4(big_a, rho, g, x, a, th, tol, cross_check, jacobi_max_iter)
    eq = _step_5(eq, big_gamma, a, l_soc)
    return GNEResult(
        gamma=g,
        xi=x,
        alpha=a,
        leontief=big_a,
        spectral_radius=rho,
        d=eq.d,
        jacobi_iterations=iters,
        jacobi_gap=gap,
        nonnegative=eq.nonnegative,
        feasible=eq.feasible,
        feasible_sources=eq.feasible_sources,
        gne_exists=eq.exists,
        effort_equilibrium=eq.effort,
        theta=th if eq.exists else None,
        c=eq.c,
        expected_payments=eq.payments,
        effort_social=e_soc,
        loss_equilibrium=eq.loss,
        loss_social=l_soc,
        price_of_anarchy=eq.poa,
        status=eq.status,
    )


@dataclass(frozen=True)
class _Equilibrium:
    """What steps 2-5 establish about the GNE (defaults: not established)."""

    status: str
    feasible_sources: tuple[bool, ...]
    d: FloatArray | None = None
    nonnegative: bool = False
    feasible: bool = False
    effort: FloatArray | None = None
    exists: bool = False
    total: FloatArray | None = None  # D_i
    c: FloatArray | None = None
    payments: FloatArray | None = None
    loss: float | None = None
    poa: float | None = None


def _steps_2_to_4(
    big_a: FloatArray,
    rho: float,
    g: FloatArray,
    x: FloatArray,
    a: FloatArray,
    th: FloatArray,
    tol: float,
    cross_check: bool,
    jacobi_max_iter: int,
) -> tuple[_Equilibrium, int, float]:
    """Steps 2-4 (and 6): solve (26), cross-check by Jacobi, check the sign and feasibility, efforts and
    canonical contracts; also the Jacobi iterations and the largest gap to the direct solution."""
    n, m = g.shape
    iters, gap = 0, float("nan")
    if rho >= 1.0 - RHO_TOL or np.linalg.cond(np.eye(n * m) - big_a) >= COND_MAX:
        return _Equilibrium(f"no GNE: spectral radius {rho:.15g} >= 1 (Theorem 1)", (False,) * n), iters, gap
    flat = np.linalg.solve(np.eye(n * m) - big_a, g.reshape(-1))
    if cross_check:
        jac, iters, _conv = jacobi_solve(big_a, g.reshape(-1), max_iter=jacobi_max_iter)
        gap = float(np.max(np.abs(jac - flat)))
    dm: FloatArray = np.asarray(flat.reshape(n, m), dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(dm))))
    nonneg = bool(np.all(dm >= -tol * scale))
    if nonneg:
        # Only round-off negatives are clipped to 0 (constraint (23)). Small positive entries
        # are genuine: one buyer's d = gamma can span many orders of magnitude across sources,
        # and zeroing d_i^k below tol * max(d) would wrongly make D_i = 0 and fail 2 alpha D >= 1.
        dm = np.maximum(dm, 0.0)
    total = dm.sum(axis=1)
    feas = 2 * a * total >= 1 - tol
    feas_src = tuple(bool(f) for f in feas)
    feasible = bool(np.all(feas))
    e_star = source_effort(total, a) if np.all(total > 0) else None
    eq = _Equilibrium("", feas_src, dm, nonneg, feasible, e_star, nonneg and feasible, total)
    if not nonneg:
        return (
            replace(eq, status="no GNE: the solution of (I - A) d = gamma has negative entries"),
            iters,
            gap,
        )
    if not feasible:
        bad = [i for i, f in enumerate(feas_src) if not f]
        return (
            replace(eq, status=f"no GNE: 2 alpha_i D_i < 1 for sources {bad} (empty polytope of c)"),
            iters,
            gap,
        )
    c, _s = canonical_contracts(dm, x, a, th)
    assert e_star is not None
    eq = replace(
        eq, status="GNE exists: unique d, polytope of c (Theorem 1)", c=c, payments=th * e_star[:, None]
    )
    return eq, iters, gap


def _step_5(eq: _Equilibrium, big_gamma: FloatArray, a: FloatArray, l_soc: float | None) -> _Equilibrium:
    """Step 5 at an existing GNE: its social loss and the price of anarchy (when defined)."""
    if not eq.exists:
        return eq
    assert eq.total is not None
    l_eq = equilibrium_loss(eq.total, big_gamma, a)
    if l_soc is not None and l_soc > 0:
        return replace(eq, loss=l_eq, poa=l_eq / l_soc)
    return replace(
        eq, loss=l_eq, status=eq.status + "; price of anarchy undefined: L(e_social) <= 0 (small weights)"
    )


# --------------------------------------------------------------------------------------------------
# numerical best response of one buyer (an independent check of the equilibrium)
# --------------------------------------------------------------------------------------------------
def buyer_cost(
    k: int,
    d_k: FloatArray,
    d: FloatArray,
    c: FloatArray,
    gamma: FloatArray,
    xi: FloatArray,
    alpha: FloatArray,
) -> float:
    r"""Buyer ``k``'s cost (19) when it plays ``d_k`` and the cheapest feasible ``c^k``.

    The other buyers' ``(c^{-k}, d^{-k})`` are fixed at ``c`` and ``d``. With
    :math:`S_i^j = \sum_l \xi_{i,l}^j \sigma_l^2` and :math:`\sigma_l^2 = 1/(2\alpha_l D_l)`, the cheapest
    :math:`c_i^k` meets (21) and (20):
    :math:`c_i^k - d_i^k S_i^k = \max(0,\; e_i^* + \sum_{j\ne k}(d_i^j S_i^j - c_i^j))`, so

    .. math:: J^k = \sum_i \gamma_i^k\sigma_i^2 + \sum_i \max\Big(0,\, e_i^* + \sum_{j\ne k}
              (d_i^j S_i^j - c_i^j)\Big).
    """
    dd = np.array(d, dtype=np.float64)
    dd[:, k] = d_k
    total = dd.sum(axis=1)
    if np.any(total <= 0):
        return float("inf")
    var = 1.0 / (2 * alpha * total)
    s = np.einsum("ilk,l->ik", xi, var)
    others = np.delete(dd * s - c, k, axis=1).sum(axis=1)
    slack = np.maximum(0.0, source_effort(total, alpha) + others)
    return float(np.sum(gamma[:, k] * var) + np.sum(slack))


@dataclass(frozen=True)
class BestResponse:
    """Result of :func:`best_response`: the best ``d^k`` found and its cost vs the equilibrium's."""

    buyer: int
    d: FloatArray
    cost: float
    equilibrium_cost: float
    starts: int

    @property
    def improvement(self) -> float:
        """How much the best response lowers the cost (<= 0 up to optimiser accuracy at a GNE)."""
        return self.equilibrium_cost - self.cost


def best_response(
    k: int,
    result: GNEResult,
    *,
    starts: FloatArray | None = None,
) -> BestResponse:
    """Numerically minimise :func:`buyer_cost` over ``d^k >= 0`` (L-BFGS-B, several starts).

    ``starts`` (shape ``(S, N)``) are extra starting points; the equilibrium ``d^k`` and its
    scalings by 0.5 and 2 are always tried. Requires ``result.gne_exists``.
    """
    if not result.gne_exists or result.d is None or result.c is None:
        raise InvalidMarketError("result", "best_response needs an existing GNE")
    d, c, g, x, a = result.d, result.c, result.gamma, result.xi, result.alpha
    others = np.delete(d, k, axis=1).sum(axis=1)
    lower = np.maximum(0.0, 1e-9 - others)
    x0s = [d[:, k], 0.5 * d[:, k] + lower, 2.0 * d[:, k]]
    if starts is not None:
        x0s.extend(np.maximum(np.atleast_2d(starts), lower))
    eq_cost = buyer_cost(k, d[:, k], d, c, g, x, a)
    best_d, best_cost = d[:, k].copy(), eq_cost
    for x0 in x0s:
        res = optimize.minimize(
            lambda v: buyer_cost(k, v, d, c, g, x, a),
            np.asarray(x0, dtype=np.float64),
            method="L-BFGS-B",
            bounds=[(lo, None) for lo in lower],
        )
        if res.fun < best_cost:
            best_d, best_cost = np.asarray(res.x, dtype=np.float64), float(res.fun)
    return BestResponse(k, best_d, best_cost, eq_cost, len(x0s))
