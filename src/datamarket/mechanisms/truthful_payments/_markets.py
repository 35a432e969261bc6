r"""Markets for the truthful-payment framework of Fan et al. (Fan, Rotello, Karimireddy, Sec. 3 and Sec. 6).

A market fixes the buyers' losses :math:`l_i(W_{i,:})`, the sellers' cost shapes :math:`f_j(W_{:,j})` and
the feasible domain :math:`\mathcal W`; the costs :math:`\hat c` are an argument, so that the payment
rules can re-solve the allocation at any report. Every market implements the small protocol
:class:`TruthfulMarket`:

* ``allocate(costs, coalition)`` -- :math:`W(\hat c) = \arg\min_{W\in\mathcal W} \sum_i l_i(W) +
  \sum_j \hat c_j f_j(W)` (Fan et al., eq. before Claim 1), with only the sellers of
  ``coalition`` present (the others' columns are 0 and the domain is restricted to them,
  "seller removal is a reduced problem, never a large number");
* ``losses(W)``, ``base_losses()`` (:math:`l_i(0)`) and ``cost_shapes(W)`` (:math:`f_j`).

Three markets:

1. :class:`MeanEstimationMarket` -- eqs. (21)-(22) with the corrected closed form:
   :math:`W = B(G + N + A)^{-1}`, :math:`B_{ij} = \langle\mu_i,\mu_j\rangle`,
   :math:`G_{jk} = \langle\mu_j,\mu_k\rangle`, :math:`A = \mathrm{diag}(\hat c)` and :math:`N` the
   (trace) covariance of the sellers' estimates (the paper's :math:`V = \mathrm{diag}(\sigma_j^2)`; a full
   SPD matrix is accepted as a generalisation "σ_j² is the total variance").
2. :class:`DataMixtureMarket` -- eqs. (23)-(24) on the simplex, solved exactly by KKT + bisection.
3. :class:`CallableMarket` -- user-supplied :math:`l_i` and :math:`f_j` with a numerical allocator
   (scipy, tolerance 1e-12) over an unconstrained, box or simplex domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from scipy import linalg, optimize

from datamarket.core.errors import InfeasibleError, InvalidMarketError
from datamarket.core.types import BoolArray, FloatArray, finite_array

Domain = Literal["unconstrained", "box", "simplex"]


@runtime_checkable
class TruthfulMarket(Protocol):
    """What the payment rules need from a market (see the module docstring)."""

    @property
    def n_buyers(self) -> int: ...

    @property
    def n_sellers(self) -> int: ...

    @property
    def domain(self) -> str: ...

    def allocate(self, costs: FloatArray, coalition: BoolArray | None = None) -> FloatArray: ...

    def losses(self, allocation: FloatArray) -> FloatArray: ...

    def base_losses(self) -> FloatArray: ...

    def cost_shapes(self, allocation: FloatArray) -> FloatArray: ...


def check_costs(costs: Any, n_sellers: int, name: str = "costs") -> FloatArray:
    """Validate a cost vector: finite, non-negative, one entry per seller.

    >>> check_costs([1, -1], 2)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: costs: must be non-negative
    """
    arr = finite_array(name, costs, ndim=1, nonneg=True)
    if arr.shape != (n_sellers,):
        raise InvalidMarketError(name, f"need one cost per seller ({n_sellers}), got {arr.shape[0]}")
    return arr


def check_coalition(coalition: Any, n_sellers: int) -> BoolArray:
    """A boolean membership mask (``None`` means every seller)."""
    if coalition is None:
        return np.ones(n_sellers, dtype=bool)
    mask = np.asarray(coalition, dtype=bool)
    if mask.shape != (n_sellers,):
        raise InvalidMarketError("coalition", f"need a mask of length {n_sellers}")
    return mask


def _spd_matrix(name: str, matrix: Any, n: int) -> FloatArray:
    mat = finite_array(name, matrix, ndim=2)
    if mat.shape != (n, n):
        raise InvalidMarketError(name, f"must be {n}x{n}, got {mat.shape}")
    if not np.allclose(mat, mat.T, rtol=1e-10, atol=1e-12):
        raise InvalidMarketError(name, "must be symmetric")
    eig = np.linalg.eigvalsh(mat)
    if eig[0] <= 1e-12 * max(1.0, float(eig[-1])):
        raise InvalidMarketError(
            name, f"must be positive definite (smallest eigenvalue {eig[0]:.3g}); zero variance is singular"
        )
    return mat


# ----------------------------------------------------------------------------------------------------
# Mean-estimation market (Fan et al., Sec. 6.1, eqs. (21)-(22))
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanEstimationMarket:
    r"""Buyers estimate :math:`\mu_i` from sellers' noisy estimates :math:`\hat\mu_j` (eq. (21)).

    Parameters
    ----------
    buyer_means : (|B|, d) targets :math:`\mu_i`.
    seller_means : (|S|, d) means :math:`\mu_j = E\hat\mu_j`.
    noise : (|S|, |S|) SPD matrix :math:`N_{jk} = E\langle\hat\mu_j-\mu_j, \hat\mu_k-\mu_k\rangle`; the
        paper's case is :math:`N = \mathrm{diag}(\sigma_j^2)` with :math:`\sigma_j^2` the **total** (trace)
        variance of seller j's estimate; build it with :meth:`from_variances`.

    Loss :math:`l_i(W_i) = \|\mu_i\|^2 - 2W_iB_i^\top + W_i(G+N)W_i^\top` (the corrected
    "−2" of A.1.4), cost shape :math:`f_j = \sum_i w_{ij}^2`, optimum (22) :math:`W = B(G+N+A)^{-1}`.

    >>> m = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 0.0], [0.8, 0.2]], [0.5, 0.5])
    >>> m.allocate(np.array([1.0, 1.0])).round(4).tolist()
    [[0.3202, 0.2495]]
    """

    buyer_means: FloatArray
    seller_means: FloatArray
    noise: FloatArray
    domain: str = field(default="unconstrained", init=False)
    _b: FloatArray = field(init=False, repr=False, compare=False)
    _gn: FloatArray = field(init=False, repr=False, compare=False)

    @classmethod
    def from_variances(cls, buyer_means: Any, seller_means: Any, variances: Any) -> MeanEstimationMarket:
        """The paper's market: independent sellers, :math:`N = \\mathrm{diag}(\\sigma_j^2)`, all > 0."""
        var = finite_array("variances", variances, ndim=1)
        if np.any(var <= 0):
            raise InvalidMarketError(
                "variances", "must be positive (V = diag(sigma^2) would be singular or not PD)"
            )
        return cls(buyer_means, seller_means, np.diag(var))

    def __post_init__(self) -> None:
        mu_b = finite_array("buyer_means", self.buyer_means, ndim=2)
        mu_s = finite_array("seller_means", self.seller_means, ndim=2)
        if mu_b.shape[0] < 1 or mu_s.shape[0] < 1:
            raise InvalidMarketError("buyer_means", "need at least one buyer and one seller")
        if mu_b.shape[1] != mu_s.shape[1]:
            raise InvalidMarketError("seller_means", f"dimension {mu_s.shape[1]} != buyers' {mu_b.shape[1]}")
        noise = _spd_matrix("noise", self.noise, mu_s.shape[0])
        object.__setattr__(self, "buyer_means", mu_b)
        object.__setattr__(self, "seller_means", mu_s)
        object.__setattr__(self, "noise", noise)
        with np.errstate(over="ignore", invalid="ignore"):
            cross, gram = mu_b @ mu_s.T, mu_s @ mu_s.T + noise
        if not (np.all(np.isfinite(cross)) and np.all(np.isfinite(gram))):
            raise InvalidMarketError("seller_means", "inner products of the means overflow float64; rescale")
        object.__setattr__(self, "_b", cross)
        object.__setattr__(self, "_gn", gram)

    @property
    def n_buyers(self) -> int:
        return int(self.buyer_means.shape[0])

    @property
    def n_sellers(self) -> int:
        return int(self.seller_means.shape[0])

    @property
    def cross(self) -> FloatArray:
        """:math:`B_{ij} = \\langle\\mu_i, \\mu_j\\rangle` (buyers x sellers)."""
        return self._b

    @property
    def gram_plus_noise(self) -> FloatArray:
        """:math:`G + N`."""
        return self._gn

    def allocate(self, costs: FloatArray, coalition: BoolArray | None = None) -> FloatArray:
        """Closed form (22), corrected: :math:`W_{:,\\pi} = B_{:,\\pi}(G+N+A)_{\\pi\\pi}^{-1}`."""
        c = check_costs(costs, self.n_sellers)
        mask = check_coalition(coalition, self.n_sellers)
        w = np.zeros((self.n_buyers, self.n_sellers))
        idx = np.flatnonzero(mask)
        if idx.size:
            m = self._gn[np.ix_(idx, idx)] + np.diag(c[idx])
            w[:, idx] = linalg.cho_solve(linalg.cho_factor(m), self._b[:, idx].T).T
        return w

    def losses(self, allocation: FloatArray) -> FloatArray:
        w = np.asarray(allocation, dtype=np.float64)
        base = np.einsum("id,id->i", self.buyer_means, self.buyer_means)
        out: FloatArray = (
            base - 2 * np.einsum("ij,ij->i", w, self._b) + np.einsum("ij,jk,ik->i", w, self._gn, w)
        )
        return out

    def base_losses(self) -> FloatArray:
        out: FloatArray = np.einsum("id,id->i", self.buyer_means, self.buyer_means)
        return out

    def cost_shapes(self, allocation: FloatArray) -> FloatArray:
        out: FloatArray = np.sum(np.asarray(allocation) ** 2, axis=0)
        return out


# ----------------------------------------------------------------------------------------------------
# Data-mixture market (Fan et al., Sec. 6.2, eqs. (23)-(24))
# ----------------------------------------------------------------------------------------------------
def _simplex_qp(a: FloatArray, c: FloatArray) -> FloatArray:
    """``argmin sum c_j w_j^2 + a_j w_j`` over the simplex (exact active-set solve)."""
    zero = c <= 0
    if np.any(zero):
        # Zero-cost sellers absorb the leftover mass at lambda = min_{c_j = 0} a_j;
        # among ties the first seller takes it, so the allocation is deterministic.
        lam0 = float(np.min(a[zero]))
        pos = ~zero
        w = np.zeros_like(a)
        w[pos] = np.maximum(0.0, (lam0 - a[pos]) / (2 * c[pos]))
        total = float(w.sum())
        if total <= 1.0:
            w[int(np.flatnonzero(zero & (a == lam0))[0])] = 1.0 - total
            return w
        return _simplex_qp_positive(a, c, pos)
    return _simplex_qp_positive(a, c, np.ones(a.shape, dtype=bool))


def _simplex_qp_positive(a: FloatArray, c: FloatArray, use: BoolArray) -> FloatArray:
    idx = np.flatnonzero(use)
    order = idx[np.argsort(a[idx], kind="stable")]
    inv = 1.0 / (2 * c[order])
    lam = (1.0 + np.cumsum(a[order] * inv)) / np.cumsum(inv)
    nxt = np.append(a[order][1:], np.inf)
    k = int(np.flatnonzero(lam <= nxt)[0])
    w = np.zeros_like(a)
    w[order] = np.maximum(0.0, (lam[k] - a[order]) * inv)
    return w


@dataclass(frozen=True)
class DataMixtureMarket:
    r"""Buyers mixing sellers' data: :math:`L_i(w) = b_i + k_i\exp(t_i^\top w)` on the simplex (eq. (23)).

    The paper (Sec. 6.2) has one buyer: scalar ``b``, ``k`` and ``t`` of length :math:`|S|`. Several buyers
    (use case i, Sec. 3.1: every row of W on the simplex) are given by ``b`` and ``k`` of length
    :math:`|B|` (or scalars, shared) and ``t`` of shape :math:`(|B|, |S|)`. With
    :math:`f_j = \|W_{:,j}\|_2^2 = \sum_i w_{ij}^2` the objective
    :math:`\sum_i [L_i(W_i) + \sum_j \hat c_j w_{ij}^2]` separates by rows, so each buyer's row is the
    single-buyer allocation (24) with its own :math:`(b_i, k_i, t_i)`.

    Each row minimises :math:`L_i(w) + \sum_j \hat c_j w_j^2`. The buyer's value is
    :math:`v_i(w) = L_{0,i} - L_i(w)` with :math:`L_{0,i} = b_i + k_i` (``L`` at :math:`w = 0`, the empty
    coalition). Solved exactly: for fixed :math:`s = t^\top w` the problem is a separable
    simplex QP with :math:`a = k e^s t`, solved by active sets; :math:`h(s) = t^\top w(s) - s` is strictly
    decreasing, so its root on :math:`[\min t, \max t]` is bracketed and found by Brent's method to
    1e-15 (Brent's method: a bracketing search like bisection, faster).

    >>> m = DataMixtureMarket(b=0.5, k=2.0, t=[-1.0, -0.5, -2.0])
    >>> w = m.allocate(np.array([1.0, 1.0, 1.0]))
    >>> round(float(w.sum()), 12), bool(w[0, 2] > w[0, 0] > w[0, 1])
    (1.0, True)
    >>> two = DataMixtureMarket(b=[0.5, 0.0], k=[2.0, 1.0], t=[[-1.0, -0.5, -2.0], [0.3, -1.0, 0.0]])
    >>> bool(np.allclose(two.allocate(np.ones(3))[0], w[0], atol=1e-14)), two.n_buyers
    (True, 2)
    """

    b: Any
    k: Any
    t: Any
    domain: str = field(default="simplex", init=False)
    _rows: tuple[FloatArray, FloatArray, FloatArray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        t = finite_array("t", self.t)
        if t.ndim not in (1, 2) or t.size < 1:
            raise InvalidMarketError("t", "need a list of |S| >= 1 numbers, or one such list per buyer")
        single = t.ndim == 1
        t2 = t.reshape(1, -1) if single else t
        nb = t2.shape[0]
        per_buyer: list[FloatArray] = []
        for name, val in (("b", self.b), ("k", self.k)):
            arr = finite_array(name, val)
            if arr.ndim == 0 or arr.shape == (1,):
                arr = np.full(nb, float(arr.reshape(-1)[0]))
            if arr.shape != (nb,):
                raise InvalidMarketError(
                    name, f"need one number or one per buyer ({nb}), got shape {arr.shape}"
                )
            per_buyer.append(arr)
        b, k = per_buyer
        if np.any(k <= 0):
            raise InvalidMarketError("k", "must be positive")
        # The solver evaluates a = k exp(s) t for s up to max t; keep it finite.
        with np.errstate(over="ignore"):
            top = k * np.exp(t2.max(axis=1)) * np.maximum(1.0, np.abs(t2).max(axis=1)) * 1e3
        if not np.all(np.isfinite(top)):
            raise InvalidMarketError("t", "k exp(max t) overflows float64; rescale t or k")
        if single and nb == 1:
            object.__setattr__(self, "b", float(b[0]))
            object.__setattr__(self, "k", float(k[0]))
        else:
            object.__setattr__(self, "b", b)
            object.__setattr__(self, "k", k)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "_rows", (b, k, t2))

    @property
    def n_buyers(self) -> int:
        return int(self._rows[2].shape[0])

    @property
    def n_sellers(self) -> int:
        return int(self._rows[2].shape[1])

    def allocate(self, costs: FloatArray, coalition: BoolArray | None = None) -> FloatArray:
        c = check_costs(costs, self.n_sellers)
        mask = check_coalition(coalition, self.n_sellers)
        w = np.zeros((self.n_buyers, self.n_sellers))
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return w
        _, ks, ts = self._rows
        for i in range(self.n_buyers):
            w[i, idx] = _mixture_row(float(ks[i]), ts[i, idx], c[idx])
        return w

    def losses(self, allocation: FloatArray) -> FloatArray:
        w = np.asarray(allocation, dtype=np.float64)
        bs, ks, ts = self._rows
        out: FloatArray = bs + ks * np.exp(np.einsum("ij,ij->i", w, ts))
        return out

    def base_losses(self) -> FloatArray:
        bs, ks, _ = self._rows
        out: FloatArray = bs + ks
        return out

    def cost_shapes(self, allocation: FloatArray) -> FloatArray:
        """:math:`f_j = \\|W_{:,j}\\|_2^2` (:math:`w_j^2` with one buyer)."""
        out: FloatArray = np.sum(np.asarray(allocation, dtype=np.float64) ** 2, axis=0)
        return out


def _mixture_row(k: float, t: FloatArray, ci: FloatArray) -> FloatArray:
    """One buyer's row of (24) over the present sellers (KKT + root finding in ``s = t.w``)."""

    def mix(s: float) -> FloatArray:
        return _simplex_qp(k * np.exp(s) * t, ci)

    def gap(s: float) -> float:
        return float(t @ mix(s)) - s

    lo, hi = float(t.min()), float(t.max())
    if hi - lo <= 1e-14 * max(1.0, abs(lo)):
        s_star = lo
    else:
        # h(s) = t.w(s) - s is strictly decreasing with h(min t) >= 0 >= h(max t)
        g_lo, g_hi = gap(lo), gap(hi)
        if g_lo <= 0:
            s_star = lo
        elif g_hi >= 0:
            s_star = hi
        else:
            s_star = optimize.brentq(gap, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
    return mix(float(s_star))


# ----------------------------------------------------------------------------------------------------
# User-supplied market with a numerical allocator
# ----------------------------------------------------------------------------------------------------
LossFn = Callable[[FloatArray], float]
GradFn = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class CallableMarket:
    r"""A market from callables: ``losses[i](row)`` is :math:`l_i(W_{i,:})`, ``cost_shapes[j](column)``
    is :math:`f_j(W_{:,j})`; optional gradients make the optimiser exact to ~1e-10.

    ``domain`` is ``"unconstrained"`` (use case iii), ``"box"`` (:math:`w_{ij}\in[0,1]`, use case ii) or
    ``"simplex"`` (rows on the simplex over the present sellers, use case i). The allocation is computed
    with L-BFGS-B (unconstrained/box) or SLSQP (simplex) at tolerance 1e-12; this is the generic
    optimiser the closed forms are tested against.

    >>> m = CallableMarket([lambda r: float((1 - r.sum()) ** 2)], [lambda c: float(c @ c)] * 2)
    >>> m.allocate(np.array([1.0, 1.0])).round(6).tolist()
    [[0.333333, 0.333333]]
    """

    loss_fns: Sequence[LossFn]
    shape_fns: Sequence[LossFn]
    domain: str = "unconstrained"
    loss_grads: Sequence[GradFn] | None = None
    shape_grads: Sequence[GradFn] | None = None

    def __post_init__(self) -> None:
        if len(self.loss_fns) < 1 or len(self.shape_fns) < 1:
            raise InvalidMarketError("loss_fns", "need at least one buyer loss and one seller cost shape")
        if self.domain not in ("unconstrained", "box", "simplex"):
            raise InvalidMarketError("domain", f"unknown domain {self.domain!r}")
        for name, grads, fns in (
            ("loss_grads", self.loss_grads, self.loss_fns),
            ("shape_grads", self.shape_grads, self.shape_fns),
        ):
            if grads is not None and len(grads) != len(fns):
                raise InvalidMarketError(name, "need one gradient per function")

    @property
    def n_buyers(self) -> int:
        return len(self.loss_fns)

    @property
    def n_sellers(self) -> int:
        return len(self.shape_fns)

    def losses(self, allocation: FloatArray) -> FloatArray:
        w = np.asarray(allocation, dtype=np.float64)
        return np.array([float(fn(w[i])) for i, fn in enumerate(self.loss_fns)])

    def base_losses(self) -> FloatArray:
        return self.losses(np.zeros((self.n_buyers, self.n_sellers)))

    def cost_shapes(self, allocation: FloatArray) -> FloatArray:
        w = np.asarray(allocation, dtype=np.float64)
        return np.array([float(fn(w[:, j])) for j, fn in enumerate(self.shape_fns)])

    def allocate(self, costs: FloatArray, coalition: BoolArray | None = None) -> FloatArray:
        c = check_costs(costs, self.n_sellers)
        mask = check_coalition(coalition, self.n_sellers)
        nb, ns = self.n_buyers, self.n_sellers
        idx = np.flatnonzero(mask)
        w = np.zeros((nb, ns))
        if idx.size == 0:
            return w

        def unpack(x: FloatArray) -> FloatArray:
            full = np.zeros((nb, ns))
            full[:, idx] = x.reshape(nb, idx.size)
            return full

        def objective(x: FloatArray) -> float:
            full = unpack(x)
            return float(np.sum(self.losses(full)) + c[idx] @ self.cost_shapes(full)[idx])

        jac: Callable[[FloatArray], FloatArray] | None = None
        if self.loss_grads is not None and self.shape_grads is not None:
            lg, sg = self.loss_grads, self.shape_grads

            def jac(x: FloatArray) -> FloatArray:
                full = unpack(x)
                g = np.array([np.asarray(lg[i](full[i]), dtype=float) for i in range(nb)])
                for j in idx.tolist():
                    g[:, j] += c[j] * np.asarray(sg[j](full[:, j]), dtype=np.float64)
                out: FloatArray = g[:, idx].ravel()
                return out

        k = idx.size
        if self.domain == "simplex":
            x0 = np.full(nb * k, 1.0 / k)
            cons = {
                "type": "eq",
                "fun": lambda x: x.reshape(nb, k).sum(axis=1) - 1.0,
                "jac": lambda x: np.kron(np.eye(nb), np.ones((1, k))),
            }
            res = optimize.minimize(
                objective,
                x0,
                jac=jac,
                method="SLSQP",
                bounds=[(0.0, 1.0)] * (nb * k),
                constraints=[cons],
                options={"ftol": 1e-15, "maxiter": 1000},
            )
        else:
            bounds = [(0.0, 1.0)] * (nb * k) if self.domain == "box" else None
            res = optimize.minimize(
                objective,
                np.zeros(nb * k),
                jac=jac,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000, "maxcor": 30},
            )
        if not np.all(np.isfinite(res.x)):
            raise InfeasibleError(f"allocation: optimiser failed ({res.message})")
        return unpack(np.asarray(res.x, dtype=np.float64))
