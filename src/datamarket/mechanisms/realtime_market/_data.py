r"""Sellers' streams, buyers' tasks, the learner and the gain (Agarwal, Dahleh, Sarkar, Sec. 2).

Model of the paper (Sec. 2): seller :math:`m \in [M]` sells one feature stream :math:`X_m \in \mathbb
R^T` (``k`` streams count as ``k`` sellers); buyer :math:`n` brings a task :math:`Y_n \in \mathbb R^T`
split into training and test rows (Rem. 2.3), a private value :math:`\mu_n` per unit of gain and a bid
:math:`b_n`. The market trains the learner :math:`\mathcal M` on the training rows of the allocated
streams and scores its predictions on the test rows with the gain :math:`\mathcal G \in [0, 1]`.

Gain (the paper's fn. 3 and Rem. 2.2)
-------------------------------------
``baseline=False`` is the printed gain: :math:`1 - \mathrm{RMSE}/(Y_{\max} - Y_{\min})` for regression,
accuracy for classification, clipped to :math:`[0, 1]`. With it the buyer pays for what it gets without
any data (the no-data predictor already scores well). ``baseline=True`` (the default) measures the gain
against the no-data predictor (the training mean, or the majority class), rescaled as Rem. 2.2 rescales
accuracy so that chance scores 0:

.. math::
   \mathcal G = \max\Bigl(0, \frac{\mathcal G^{\rm paper}(\mathcal M) - \mathcal G^{\rm paper}(\emptyset)}
   {1 - \mathcal G^{\rm paper}(\emptyset)}\Bigr),
   \quad\text{for regression } \mathcal G = \max(0, 1 - \mathrm{RMSE}/\mathrm{RMSE}_\emptyset),

so that :math:`\mathcal G(\emptyset) = 0` and Shapley values sum to the gain of the whole bundle.

Copies (the paper's Assumption 2)
---------------------------------
Streams are identified by a hash of their content; a coalition's model is fitted on its *distinct*
streams only, in the order of their hashes. Exact copies therefore leave every prediction unchanged,
which is Assumption 2 (replicated data do not change accuracy) made exact, whatever the learner.

The learner
-----------
Any scikit-learn regressor or classifier (cloned and fitted per coalition). ``LinearRegression`` and
``Ridge`` with an intercept and no other option take a direct least-squares path: the normal equations
of each coalition, cut from one centred Gram matrix of the training rows (the same solution, without a
refit of the data or scikit-learn's per-call validation: some fifty times faster); a test compares the
two paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import BoolArray, FloatArray


def content_id(column: Any) -> str:
    """A stable id of one stream's content (identical values, identical id).

    >>> content_id(np.arange(3.0)) == content_id([0.0, 1.0, 2.0]), content_id([1.0]) == content_id([2.0])
    (True, False)
    """
    arr = np.ascontiguousarray(np.asarray(column, dtype=np.float64))
    return hashlib.sha1(arr.tobytes(), usedforsecurity=False).hexdigest()[:20]


@dataclass(frozen=True)
class Streams:
    """The sellers: one feature stream per seller, ``values[t, m]`` (``T`` rows, ``M`` sellers).

    ``ids[m]`` is the content id of stream ``m`` (:func:`content_id`); copies share it.
    """

    values: FloatArray
    names: tuple[str, ...]
    ids: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        x = np.array(self.values, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
            raise InvalidMarketError("streams", f"need a (T >= 2, M >= 1) array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise InvalidMarketError("streams", "must be finite (no NaN or inf)")
        names = tuple(str(n) for n in self.names)
        if len(names) != x.shape[1] or len(set(names)) != len(names) or not all(names):
            raise InvalidMarketError("streams.names", f"need {x.shape[1]} unique, non-empty names")
        x.setflags(write=False)
        object.__setattr__(self, "values", x)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "ids", tuple(content_id(x[:, m]) for m in range(x.shape[1])))

    @property
    def n_sellers(self) -> int:
        return int(self.values.shape[1])

    @property
    def length(self) -> int:
        return int(self.values.shape[0])

    def with_stream(self, name: str, column: Any) -> Streams:
        """These streams and one more, ``name`` selling ``column`` (a new seller, e.g. a copier)."""
        col = np.asarray(column, dtype=np.float64).reshape(-1, 1)
        return Streams(np.hstack([self.values, col]), (*self.names, name))

    def with_copies(self, seller: str, copies: int, prefix: str | None = None) -> Streams:
        """These streams and ``copies`` exact copies of ``seller``'s, named ``{prefix}_1, ...`` (default
        prefix ``{seller}_copy``)."""
        if seller not in self.names:
            raise InvalidMarketError("seller", f"no seller named {seller!r}")
        col = self.values[:, self.names.index(seller)]
        out = self
        for i in range(1, copies + 1):
            out = out.with_stream(f"{prefix}_{i}" if prefix else f"{seller}_copy_{i}", col)
        return out


@dataclass(frozen=True)
class Task:
    """A buyer's task :math:`Y_n`: one label per row of the streams and its test rows (Rem. 2.3)."""

    labels: NDArray[Any]
    test: BoolArray

    def __post_init__(self) -> None:
        y = np.array(self.labels)
        test = np.array(self.test, dtype=bool)
        if y.ndim != 1 or test.shape != y.shape:
            raise InvalidMarketError("task", "needs one label and one test flag per row")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise InvalidMarketError("task.labels", "must be finite (no NaN or inf)")
        if test.sum() < 1 or (~test).sum() < 1:
            raise InvalidMarketError("task.test", "needs at least one training and one test row")
        y.setflags(write=False)
        test.setflags(write=False)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "test", test)

    @classmethod
    def split(cls, labels: Any, test_fraction: float, rng: np.random.Generator) -> Task:
        """A task whose test rows are a random ``test_fraction`` of the rows (at least one of each)."""
        y = np.asarray(labels)
        n_test = min(max(1, round(test_fraction * y.shape[0])), y.shape[0] - 1)
        test = np.zeros(y.shape[0], dtype=bool)
        test[rng.choice(y.shape[0], size=n_test, replace=False)] = True
        return cls(y, test)


@dataclass(frozen=True)
class TaskBuyer:
    """Buyer ``n``: its task, its private value :math:`\\mu_n` per unit of gain and its bid (default:
    truthful, :math:`b_n = \\mu_n`)."""

    name: str
    task: Task
    value: float
    bid: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidMarketError("buyers.name", "must be non-empty")
        for what in ("value", "bid"):
            v = getattr(self, what)
            if v is not None and (not np.isfinite(v) or v < 0):
                raise InvalidMarketError(f"buyers[{self.name}].{what}", f"must be finite and >= 0, got {v}")

    @property
    def b(self) -> float:
        return float(self.value if self.bid is None else self.bid)


def _least_squares_alpha(estimator: Any) -> float | None:
    """The ridge penalty when ``estimator`` is a plain ``LinearRegression`` (0) or ``Ridge``, else None."""
    from sklearn.linear_model import LinearRegression, Ridge

    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if type(estimator) is LinearRegression and params.get("fit_intercept") and not params.get("positive"):
        return 0.0
    plain_ridge = params.get("solver") in ("auto", "cholesky") and not params.get("positive")
    if type(estimator) is Ridge and params.get("fit_intercept") and plain_ridge:
        alpha = params.get("alpha")
        return float(alpha) if isinstance(alpha, int | float) else None
    return None


class Learner:
    """The market's learner :math:`\\mathcal M`: a scikit-learn estimator fitted on a coalition's
    training rows and asked for its test rows (default ``LinearRegression()``)."""

    def __init__(self, estimator: Any = None) -> None:
        from sklearn.base import is_classifier
        from sklearn.linear_model import LinearRegression

        self.estimator = LinearRegression() if estimator is None else estimator
        if not all(callable(getattr(self.estimator, m, None)) for m in ("fit", "predict")):
            raise InvalidMarketError("learner", "must be an estimator with fit() and predict()")
        self.classifier = bool(is_classifier(self.estimator))
        self.alpha = None if self.classifier else _least_squares_alpha(self.estimator)

    def fit_predict(self, x_train: FloatArray, y_train: NDArray[Any], x_test: FloatArray) -> NDArray[Any]:
        """Predictions for ``x_test`` of the learner fitted on ``(x_train, y_train)``."""
        return self.prepare(x_train, y_train, x_test).predict(list(range(x_train.shape[1])))

    def prepare(self, x_train: FloatArray, y_train: NDArray[Any], x_test: FloatArray) -> Fitter:
        """A fitter of column subsets of these rows (least squares: from one Gram matrix)."""
        if self.alpha is not None:
            return LeastSquaresFitter(x_train, np.asarray(y_train, dtype=np.float64), x_test, self.alpha)
        return EstimatorFitter(self, x_train, y_train, x_test)


class Fitter:
    """Fits the learner on a subset of the columns of fixed training rows and predicts the test rows."""

    def predict(self, cols: list[int]) -> NDArray[Any]:
        raise NotImplementedError


class EstimatorFitter(Fitter):
    """The scikit-learn path: clone, fit on the columns ``cols``, predict (no column: the no-data
    predictor, the training mean or the majority class)."""

    def __init__(
        self, learner: Learner, x_train: FloatArray, y_train: NDArray[Any], x_test: FloatArray
    ) -> None:
        self.learner, self.x_train, self.y_train, self.x_test = learner, x_train, y_train, x_test

    def predict(self, cols: list[int]) -> NDArray[Any]:
        from sklearn.base import clone

        n_test, y = self.x_test.shape[0], self.y_train
        if not cols:
            return np.full(n_test, _no_data_prediction(y, self.learner.classifier))
        if self.learner.classifier and np.unique(y).size < 2:
            return np.full(n_test, y[0])
        model = clone(self.learner.estimator).fit(self.x_train[:, cols], y)
        return np.asarray(model.predict(self.x_test[:, cols]))


class LeastSquaresFitter(Fitter):
    """Least squares with an intercept and ridge penalty ``alpha`` for any column subset, from the
    centred Gram matrix of all columns: :math:`w_S = (G_{SS} + \alpha I)^{-1} c_S`; with ``alpha = 0`` the
    minimum-norm solution (a pseudo-inverse), which is scikit-learn's ``LinearRegression``."""

    def __init__(self, x_train: FloatArray, y_train: FloatArray, x_test: FloatArray, alpha: float) -> None:
        self.mean_x, self.mean_y = x_train.mean(axis=0), float(y_train.mean())
        xc = x_train - self.mean_x
        self.gram, self.cross = xc.T @ xc, xc.T @ (y_train - self.mean_y)
        self.test = x_test - self.mean_x
        self.alpha = alpha

    def predict(self, cols: list[int]) -> FloatArray:
        if not cols:
            return np.full(self.test.shape[0], self.mean_y)
        g = self.gram[np.ix_(cols, cols)]
        if self.alpha > 0:
            w = np.linalg.solve(g + self.alpha * np.eye(len(cols)), self.cross[cols])
        else:
            w = np.linalg.lstsq(g, self.cross[cols], rcond=None)[0]
        out: FloatArray = self.test[:, cols] @ w + self.mean_y
        return out


def _no_data_prediction(y_train: NDArray[Any], classifier: bool) -> Any:
    if not classifier:
        return float(np.mean(y_train))
    values, counts = np.unique(y_train, return_counts=True)
    return values[int(np.argmax(counts))]


@dataclass(frozen=True)
class Scorer:
    """The gain :math:`\\mathcal G(Y_n, \\hat Y) \\in [0, 1]` of predictions on one task's test rows
    (module docstring): ``baseline`` rescales against the no-data predictor."""

    y_test: NDArray[Any]
    classifier: bool
    baseline: bool
    reference: float  # RMSE of the no-data predictor, or its accuracy
    spread: float  # Y_max - Y_min over the task's rows (regression, printed gain)

    @classmethod
    def of(cls, task: Task, classifier: bool, baseline: bool = True) -> Scorer:
        y = task.labels
        y_train, y_test = y[~task.test], y[task.test]
        guess = _no_data_prediction(y_train, classifier)
        if classifier:
            ref = float(np.mean(y_test == guess))
            spread = 1.0
        else:
            yf = np.asarray(y, dtype=np.float64)
            ref = float(np.sqrt(np.mean((np.asarray(y_test, dtype=np.float64) - guess) ** 2)))
            spread = float(yf.max() - yf.min())
            if spread <= 0:
                raise InvalidMarketError("task.labels", "a regression task needs labels that vary")
        return cls(y_test, classifier, baseline, ref, spread)

    def __call__(self, pred: NDArray[Any]) -> float:
        if self.classifier:
            acc = float(np.mean(np.asarray(pred) == self.y_test))
            if not self.baseline:
                return acc
            return (
                0.0
                if self.reference >= 1
                else float(np.clip((acc - self.reference) / (1 - self.reference), 0, 1))
            )
        err = float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - self.y_test) ** 2)))
        if not self.baseline:
            return float(np.clip(1.0 - err / self.spread, 0.0, 1.0))
        return 0.0 if self.reference <= 0 else float(np.clip(1.0 - err / self.reference, 0.0, 1.0))

    def empty(self) -> float:
        """The gain of the no-data predictor: 0 with ``baseline``, else the printed gain of it."""
        if self.baseline:
            return 0.0
        if self.classifier:
            return self.reference
        return float(np.clip(1.0 - self.reference / self.spread, 0.0, 1.0))


GainCache = dict[tuple[str, ...], float]
"""Gains by the sorted tuple of distinct content ids of a coalition (valid for one degraded data set
and one task: shared by the games of a replication sweep, where copies add no new content)."""


class CoalitionGame:
    """:math:`v(S) = \\mathcal G(Y_n, \\mathcal M(\\tilde X_S))` over the sellers (the paper's eq. 2
    game), on the streams as allocated; a ``CoalitionGame`` of :mod:`datamarket.valuation`.

    Each distinct set of contents is fitted once (``cache``); ``fits`` counts the fits made and
    ``calls`` the evaluations asked for.
    """

    def __init__(
        self,
        values: FloatArray,
        ids: Sequence[str],
        names: Sequence[str],
        task: Task,
        learner: Learner,
        scorer: Scorer,
        cache: GainCache | None = None,
    ) -> None:
        self.x = np.asarray(values, dtype=np.float64)
        self.ids = tuple(ids)
        self._names = tuple(names)
        self.task = task
        self.learner = learner
        self.scorer = scorer
        self.cache: GainCache = {} if cache is None else cache
        self._first = {i: self.ids.index(i) for i in set(self.ids)}
        test = task.test
        self.fitter = learner.prepare(self.x[~test], task.labels[~test], self.x[test])
        self.fits = 0
        self.calls = 0

    @property
    def n_players(self) -> int:
        return len(self.ids)

    @property
    def player_names(self) -> tuple[str, ...]:
        return self._names

    def key(self, mask: int) -> tuple[str, ...]:
        """The sorted distinct content ids of the coalition ``mask``."""
        return tuple(sorted({self.ids[k] for k in range(self.n_players) if mask >> k & 1}))

    def gain_of(self, key: tuple[str, ...]) -> float:
        """The gain of the model fitted on the streams of contents ``key`` (memoised)."""
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if not key:
            val = self.scorer.empty()
        else:
            val = self.scorer(self.fitter.predict([self._first[i] for i in key]))
            self.fits += 1
        self.cache[key] = val
        return val

    def value(self, mask: int) -> float:
        self.calls += 1
        return self.gain_of(self.key(int(mask)))

    def values(self, masks: Any) -> FloatArray:
        return np.array([self.value(int(m)) for m in np.asarray(masks).ravel()], dtype=np.float64)
