r"""Customised model training (Ohrimenko et al., Sec. 5, eq. (2)), as corrected.

Party :math:`i` should get a model that is good on its own task and poor on the others' tasks, so that
it cannot profit from submitting a task other than its own (Sec. 3.1, "validation-task honesty").

Eq. (2) as printed, :math:`\min_\theta \sum_{j \ne i} \mathcal{G}(V_i, \mathcal{M}(\oplus_{k \in
\mathbf{M}} X_k))`, depends neither on :math:`j` nor on :math:`\theta`; it is read
as

.. math::
   \min_\theta \sum_{j \ne i} \mathcal{G}(V_j; \mathcal{M}_\theta) \quad\text{s.t.}\quad
   \mathcal{G}(V_i; \mathcal{M}_\theta) \ge G^* - \varepsilon,

with :math:`\mathcal{M}_\theta` fitted on :math:`T_i = \oplus_{k \in D_i} X_k`. The differentiable proxy
implemented here for multinomial logistic regression,
:math:`p_\theta(k \mid x) = \mathrm{softmax}(xW + b)_k`, is

.. math::
   L_i(\theta) = \frac{1}{n_i} \sum_{(x,y) \in T_i} -\log p_\theta(y \mid x)
      + \lambda \sum_{j \ne i} \frac{1}{|\tilde V_j|} \sum_{(x,y) \in \tilde V_j} p_\theta(y \mid x)
      + \frac{\alpha}{2} \lVert W \rVert_F^2, \qquad \alpha = \frac{1}{C\, n_i},

where the middle term is a smooth surrogate of the accuracy on the other tasks (``penalty="softacc"``,
bounded; the alternative ``"log1m"`` uses :math:`-\log(1 - p_\theta(y \mid x))`). Maximising the
cross-entropy on the other tasks is *not* offered: it is unbounded below and diverges.
:math:`\tilde V_j = V_j` (the paper) or, with ``mask_own_labels=True``, the rows of :math:`V_j` whose label
is not one of the party's own task labels, which removes the conflict when tasks share
labels.

Gradient with respect to the logits :math:`z` of one sample: data term
:math:`(p - e_y)/n_i`; penalty term :math:`\lambda p_y (e_y - p)/|\tilde V_j|` (``softacc``) or
:math:`\lambda p_y (e_y - p) / ((1 - p_y)|\tilde V_j|)` (``log1m``). Then
:math:`\nabla W = X^\top dZ + \alpha W` and :math:`\nabla b = \sum dZ`. Minimised with scipy's L-BFGS.

A small one-hidden-layer (tanh) network with the same loss and an analytic backward pass is
:class:`CustomisedMLP`. The ε-constraint is honoured by :func:`choose_lambda` (largest λ of a grid
whose own-task gain stays within ε of λ = 0).

>>> import numpy as np
>>> x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]); y = np.array([0, 0, 1, 1])
>>> m = CustomisedLogisticRegression(lam=0.0, classes=[0, 1, 2]).fit(x, y)
>>> m.predict(x).tolist(), m.classes_.tolist()
([0, 0, 1, 1], [0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import log_softmax

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.random import make_rng

Penalty = Literal["softacc", "log1m"]
PenaltySets = Sequence[tuple[NDArray[np.float64], NDArray[Any]]]
_EPS = 1e-12


def _encode(classes: NDArray[Any], y: NDArray[Any], field: str) -> NDArray[np.intp]:
    index = {c.item() if hasattr(c, "item") else c: k for k, c in enumerate(classes)}
    try:
        return np.array([index[v.item() if hasattr(v, "item") else v] for v in np.asarray(y)], dtype=np.intp)
    except KeyError as exc:
        raise InvalidMarketError(field, f"label {exc.args[0]!r} is not one of the classes") from None


def logit_loss_grad(
    z: NDArray[np.float64],
    y: NDArray[np.intp],
    pen: Sequence[tuple[NDArray[np.float64], NDArray[np.intp]]],
    lam: float,
    penalty: Penalty,
) -> tuple[float, NDArray[np.float64], list[NDArray[np.float64]]]:
    """Loss without the L2 term, and its gradients with respect to the logits.

    ``z`` are the logits of the training rows (labels ``y`` as class indices) and ``pen`` pairs of
    (logits, class indices) of the penalty sets. Returns ``(loss, dZ_train, [dZ_pen...])``.
    """
    n = z.shape[0]
    logp = log_softmax(z, axis=1)
    rows = np.arange(n)
    loss = -float(logp[rows, y].sum()) / n
    dz = np.exp(logp)
    dz[rows, y] -= 1.0
    dz /= n
    dpen: list[NDArray[np.float64]] = []
    for zj, yj in pen:
        m = zj.shape[0]
        lp = log_softmax(zj, axis=1)
        p = np.exp(lp)
        r = np.arange(m)
        py = p[r, yj]
        onehot = np.zeros_like(p)
        onehot[r, yj] = 1.0
        if penalty == "softacc":
            loss += lam * float(py.sum()) / m
            coef = lam * py / m
        else:
            q = np.maximum(1.0 - py, _EPS)
            loss += -lam * float(np.log(q).sum()) / m
            coef = lam * py / (q * m)
        dpen.append(coef[:, None] * (onehot - p))
    return loss, dz, dpen


class _CustomisedBase:
    """Shared parameter handling, label encoding and prediction of the customised models."""

    def __init__(
        self,
        lam: float = 0.0,
        C: float = 1.0,
        penalty: Penalty = "softacc",
        mask_own_labels: bool = False,
        classes: Sequence[Any] | None = None,
        max_iter: int = 500,
        tol: float = 1e-6,
    ) -> None:
        self.lam = lam
        self.C = C
        self.penalty = penalty
        self.mask_own_labels = mask_own_labels
        self.classes = classes
        self.max_iter = max_iter
        self.tol = tol

    def _validate(self) -> None:
        if not np.isfinite(self.lam) or self.lam < 0:
            raise ConfigurationError("lam", "must be a non-negative finite number")
        if not np.isfinite(self.C) or self.C <= 0:
            raise ConfigurationError("C", "must be positive")
        if self.penalty not in ("softacc", "log1m"):
            raise ConfigurationError("penalty", "must be 'softacc' or 'log1m'")

    def _prepare(
        self,
        x: NDArray[np.float64],
        y: NDArray[Any],
        penalty_sets: PenaltySets,
        own_labels: Sequence[Any] | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.intp], list[tuple[NDArray[np.float64], NDArray[np.intp]]]]:
        self._validate()
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        if x.ndim != 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
            raise InvalidMarketError("train", "need a non-empty 2-d feature array and one label per row")
        classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
        self.classes_ = np.sort(classes)
        yi = _encode(self.classes_, y, "train.labels")
        own = set(np.unique(y).tolist() if own_labels is None else np.asarray(own_labels).tolist())
        pen = []
        for j, (xv, yv) in enumerate(penalty_sets):
            xv = np.asarray(xv, dtype=np.float64)
            yv = np.asarray(yv)
            if xv.ndim != 2 or xv.shape[1] != x.shape[1]:
                raise InvalidMarketError(f"penalty_sets[{j}]", "feature dimension differs from training data")
            if self.mask_own_labels:
                keep = np.array([v not in own for v in yv.tolist()], dtype=bool)
                xv, yv = xv[keep], yv[keep]
            if xv.shape[0]:
                pen.append((xv, _encode(self.classes_, yv, f"penalty_sets[{j}].labels")))
        return x, yi, pen

    def _logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        z = self._logits(np.asarray(x, dtype=np.float64))
        out: NDArray[np.float64] = np.exp(log_softmax(z, axis=1))
        return out

    def predict(self, x: NDArray[np.float64]) -> NDArray[Any]:
        out: NDArray[Any] = self.classes_[np.argmax(self._logits(np.asarray(x, dtype=np.float64)), axis=1)]
        return out

    def _minimise(
        self, fun: Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]], x0: Any
    ) -> Any:
        res = minimize(
            fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter, "gtol": self.tol}
        )
        self.n_iter_ = int(res.nit)
        self.loss_ = float(res.fun)
        self.converged_ = bool(res.success)
        return res.x


class CustomisedLogisticRegression(_CustomisedBase):
    """Multinomial logistic regression with the customisation penalty (Ohrimenko et al., eq. (2), corrected).

    ``fit(X, y, penalty_sets=[(Xv, yv), ...], own_labels=None)``: ``penalty_sets`` are the other parties'
    validation tasks; ``own_labels`` the party's task labels (for ``mask_own_labels``; default the
    training labels). ``lam = 0`` is plain L2-regularised multinomial LR (sklearn's objective divided
    by ``n``). Deterministic: L-BFGS from zero.
    """

    def _unpack(
        self, theta: NDArray[np.float64], d: int, k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return theta[: d * k].reshape(d, k), theta[d * k :]

    def loss_and_grad(
        self,
        theta: NDArray[np.float64],
        x: NDArray[np.float64],
        y: NDArray[np.intp],
        pen: Sequence[tuple[NDArray[np.float64], NDArray[np.intp]]],
    ) -> tuple[float, NDArray[np.float64]]:
        """Objective :math:`L_i(\\theta)` and its analytic gradient (flattened W, b)."""
        d, k = x.shape[1], self.classes_.shape[0]
        w, b = self._unpack(theta, d, k)
        alpha = 1.0 / (self.C * x.shape[0])
        zpen = [(xv @ w + b, yv) for xv, yv in pen]
        loss, dz, dpen = logit_loss_grad(x @ w + b, y, zpen, self.lam, self.penalty)
        gw = x.T @ dz + alpha * w
        gb = dz.sum(axis=0)
        for (xv, _), dzv in zip(pen, dpen, strict=True):
            gw += xv.T @ dzv
            gb += dzv.sum(axis=0)
        loss += 0.5 * alpha * float(np.sum(w * w))
        return loss, np.concatenate([gw.ravel(), gb])

    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[Any],
        penalty_sets: PenaltySets = (),
        own_labels: Sequence[Any] | None = None,
    ) -> CustomisedLogisticRegression:
        xs, yi, pen = self._prepare(x, y, penalty_sets, own_labels)
        d, k = xs.shape[1], self.classes_.shape[0]
        theta = self._minimise(lambda t: self.loss_and_grad(t, xs, yi, pen), np.zeros(d * k + k))
        self.coef_, self.intercept_ = self._unpack(theta, d, k)
        return self

    def _logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = x @ self.coef_ + self.intercept_
        return out


class CustomisedMLP(_CustomisedBase):
    """One hidden tanh layer with the customisation loss above, trained by L-BFGS.

    The paper trains a 1x500 ReLU network with Adam (Sec. 6.1); a small smooth network with L-BFGS keeps the
    analytic gradient exact and the fit deterministic for a given ``seed`` (initialisation only).
    ``alpha = 1/(C n)`` penalises both weight matrices.
    """

    def __init__(self, hidden: int = 32, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden = hidden
        self.seed = seed

    def _shapes(self, d: int, k: int) -> list[tuple[int, ...]]:
        h = self.hidden
        return [(d, h), (h,), (h, k), (k,)]

    def _unpack(self, theta: NDArray[np.float64], d: int, k: int) -> list[NDArray[np.float64]]:
        out, pos = [], 0
        for shape in self._shapes(d, k):
            size = int(np.prod(shape))
            out.append(theta[pos : pos + size].reshape(shape))
            pos += size
        return out

    def loss_and_grad(
        self,
        theta: NDArray[np.float64],
        x: NDArray[np.float64],
        y: NDArray[np.intp],
        pen: Sequence[tuple[NDArray[np.float64], NDArray[np.intp]]],
    ) -> tuple[float, NDArray[np.float64]]:
        """Objective for the network and its gradient by backpropagation."""
        d, k = x.shape[1], self.classes_.shape[0]
        w1, b1, w2, b2 = self._unpack(theta, d, k)
        alpha = 1.0 / (self.C * x.shape[0])
        sets = [x, *(xv for xv, _ in pen)]
        hs = [np.tanh(s @ w1 + b1) for s in sets]
        zs = [h @ w2 + b2 for h in hs]
        loss, dz, dpen = logit_loss_grad(
            zs[0], y, list(zip(zs[1:], (yv for _, yv in pen), strict=True)), self.lam, self.penalty
        )
        gw1, gb1 = alpha * w1, np.zeros_like(b1)
        gw2, gb2 = alpha * w2, np.zeros_like(b2)
        for s, h, dzs in zip(sets, hs, [dz, *dpen], strict=True):
            gw2 = gw2 + h.T @ dzs
            gb2 = gb2 + dzs.sum(axis=0)
            dh = (dzs @ w2.T) * (1.0 - h * h)
            gw1 = gw1 + s.T @ dh
            gb1 = gb1 + dh.sum(axis=0)
        loss += 0.5 * alpha * float(np.sum(w1 * w1) + np.sum(w2 * w2))
        return loss, np.concatenate([gw1.ravel(), gb1, gw2.ravel(), gb2])

    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[Any],
        penalty_sets: PenaltySets = (),
        own_labels: Sequence[Any] | None = None,
    ) -> CustomisedMLP:
        if int(self.hidden) < 1:
            raise ConfigurationError("hidden", "must be a positive integer")
        xs, yi, pen = self._prepare(x, y, penalty_sets, own_labels)
        d, k = xs.shape[1], self.classes_.shape[0]
        rng = make_rng(self.seed)
        init = [
            rng.normal(0.0, 1.0 / np.sqrt(shape[0]), size=shape) if len(shape) == 2 else np.zeros(shape)
            for shape in self._shapes(d, k)
        ]
        theta = self._minimise(
            lambda t: self.loss_and_grad(t, xs, yi, pen), np.concatenate([a.ravel() for a in init])
        )
        self.params_ = self._unpack(theta, d, k)
        return self

    def _logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        w1, b1, w2, b2 = self.params_
        out: NDArray[np.float64] = np.tanh(x @ w1 + b1) @ w2 + b2
        return out


def choose_lambda(
    make: Callable[[float], _CustomisedBase],
    x: NDArray[np.float64],
    y: NDArray[Any],
    penalty_sets: PenaltySets,
    own_task: tuple[NDArray[np.float64], NDArray[Any]],
    lam_grid: Sequence[float],
    epsilon: float,
    own_labels: Sequence[Any] | None = None,
) -> tuple[float, _CustomisedBase]:
    r"""Honour the ε-constraint of the corrected eq. (2) (the paper gives neither λ nor ε).

    Fits ``make(lam)`` for λ = 0 and every λ of ``lam_grid`` and returns the largest λ whose gain on the
    party's own task is at least :math:`\mathcal{G}(V_i; \theta_0) - \varepsilon`, with its model.
    """
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigurationError("epsilon", "must be a non-negative finite number")
    xv, yv = own_task
    base = make(0.0).fit(x, y, penalty_sets, own_labels)  # type: ignore[attr-defined]
    floor = float(np.mean(base.predict(xv) == np.asarray(yv))) - epsilon
    best: tuple[float, _CustomisedBase] = (0.0, base)
    for lam in sorted(float(v) for v in lam_grid):
        if lam <= 0:
            continue
        model = make(lam).fit(x, y, penalty_sets, own_labels)  # type: ignore[attr-defined]
        if float(np.mean(model.predict(xv) == np.asarray(yv))) >= floor:
            best = (lam, model)
    return best
