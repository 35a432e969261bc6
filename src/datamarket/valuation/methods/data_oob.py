r"""Data-OOB: the out-of-bag estimate of a bagging ensemble as the value of each training point.

Kwon & Zou 2023, "Data-OOB: out-of-bag estimate as a simple and efficient data value", ICML, eq. (3):
train :math:`B` weak learners on bootstrap samples; the value of point :math:`i` is the mean, over the
learners whose bootstrap sample left :math:`i` out, of the correctness of their prediction for it,

.. math::
   \psi_i = \frac{\sum_{b=1}^{B} \mathbb 1[w_{bi} = 0]\, T(y_i, \hat f_b(x_i))}
                 {\sum_{b=1}^{B} \mathbb 1[w_{bi} = 0]},

with :math:`w_{bi}` the number of times :math:`i` is in bootstrap sample :math:`b` and
:math:`T(y, \hat y) = \mathbb 1[y = \hat y]` for classification (:math:`-(y - \hat y)^2` for
regression). The paper's learners are decision trees with :math:`B = 800`.

Score functions (``score``)
---------------------------
``"accuracy"`` is the paper's :math:`T(y, \hat y) = \mathbb 1[y = \hat y]` (``"squared_error"``,
:math:`-(y - \hat y)^2`, for regression). ``"probability"`` takes
:math:`T(y_i, \hat f_b(x_i)) = \hat p_b(y_i \mid x_i)`, the probability learner :math:`b` gives the
*recorded* label (``predict_proba``; 0 when the label is absent from that bootstrap sample, where
the accuracy score is 0 as well). Eq. (3) leaves :math:`T` to the user ("a score function"); the
probability is the expected accuracy of a label drawn from :math:`\hat p_b` rather than of its
argmax. Averaged over the learners that left point :math:`i` out, it is the out-of-bag ensemble's
probability of the recorded label, the "self-confidence" by which Northcutt, Jiang & Chuang (2021),
"Confident learning: estimating uncertainty in dataset labels", JAIR 70, rank suspect labels (they
use cross-validated rather than out-of-bag probabilities). It breaks the ties of the accuracy score
among points every learner gets right. Whether it detects flipped labels better depends on the
calibration of the learner: on the digits benchmark (``benchmarks/noisy_label_vs_opendataval.py``)
it does not beat the accuracy score with a Platt-scaled SVM (the measurements are in the valuation
guide).

Algorithm
---------
1. Draw the :math:`B` bootstrap index vectors in the parent from one seed (``SeedSequence.spawn``
   per learner, so the result does not depend on how learners are split among workers).
2. Fit a clone of ``estimator`` on each bootstrap sample (``random_state`` of learner :math:`b`
   seeded from its child seed when the estimator has one).
3. Predict the out-of-bag points and accumulate numerator and denominator.

A point that is in every bootstrap sample (probability :math:`(1 - 1/e)^B`) has no estimate; it gets
the mean value and ``extra["no_oob"]`` counts such points.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.random import make_rng, seed_sequence
from datamarket.valuation.result import ValuationResult


def data_oob(
    x_train: Any,
    y_train: Any,
    *,
    seed: int,
    n_estimators: int = 200,
    estimator: Any = None,
    task: str = "classification",
    score: str | None = None,
) -> ValuationResult:
    """Data-OOB values (see the module docstring); ``estimator`` defaults to a decision tree.

    ``score`` is ``"accuracy"`` (the default for classification), ``"probability"`` (classification
    with an estimator that has ``predict_proba``) or ``"squared_error"`` (the default, and the only
    score, for regression); see the module docstring.

    ``stderr`` is the binomial/sample standard error of each point's out-of-bag mean; ``counts`` the
    number of learners for which the point was out of bag; ``evaluations`` the number of fits.

    >>> from sklearn.datasets import make_classification
    >>> x, y = make_classification(200, n_features=5, random_state=0)
    >>> y_noisy = y.copy(); y_noisy[:20] = 1 - y_noisy[:20]
    >>> r = data_oob(x, y_noisy, seed=0, n_estimators=50)
    >>> bool(r.values[:20].mean() < r.values[20:].mean())   # flipped labels have low values
    True
    """
    t0 = time.perf_counter()
    x, y, score, children = _checked(x_train, y_train, seed, n_estimators, task, score)
    estimator = _estimator(estimator, task, score)
    n = x.shape[0]
    num, num2, den = _oob_sums(estimator, x, y, children, score)
    has = den > 0
    values = np.where(has, num / np.maximum(den, 1), 0.0)
    if has.any() and not has.all():
        values[~has] = values[has].mean()
    mean2 = num2 / np.maximum(den, 1)
    var = np.where(den > 1, (mean2 - values**2) * den / np.maximum(den - 1, 1), np.inf)
    stderr = np.sqrt(np.maximum(var, 0.0) / np.maximum(den, 1))
    return ValuationResult(
        "data_oob",
        tuple(f"point_{i}" for i in range(n)),
        values,
        stderr,
        den.astype(np.int64),
        evaluations=int(n_estimators),
        converged=False,
        stop_reason="n_estimators",
        elapsed=time.perf_counter() - t0,
        extra={"no_oob": int((~has).sum()), "n_estimators": int(n_estimators), "score": score},
    )


def _checked(
    x_train: Any, y_train: Any, seed: int, n_estimators: int, task: str, score: str | None
) -> tuple[np.ndarray, np.ndarray, str, list[np.random.SeedSequence]]:
    """Validated features and labels, the score (the task's default for ``None``) and one child seed
    per learner (step 1)."""
    x = np.asarray(x_train, dtype=np.float64)
    y = np.asarray(y_train)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 2:
        raise InvalidMarketError("x", "need a 2-d feature array with one label per row (at least 2 rows)")
    if not np.all(np.isfinite(x)):
        raise InvalidMarketError("x", "features must be finite")
    if not isinstance(n_estimators, int | np.integer) or n_estimators < 1:
        raise ConfigurationError("n_estimators", f"must be a positive integer, got {n_estimators!r}")
    if task not in ("classification", "regression"):
        raise ConfigurationError("task", f"must be 'classification' or 'regression', got {task!r}")
    default = "accuracy" if task == "classification" else "squared_error"
    score = default if score is None else score
    allowed = ("accuracy", "probability") if task == "classification" else ("squared_error",)
    if score not in allowed:
        raise ConfigurationError("score", f"for {task} must be one of {', '.join(allowed)}; got {score!r}")
    try:
        children = seed_sequence(seed).spawn(int(n_estimators))
    except ValueError as exc:
        raise ConfigurationError("seed", str(exc).split(": ", 1)[-1]) from None
    return x, y, score, children


def _estimator(estimator: Any, task: str, score: str) -> Any:
    """``estimator``, or a decision tree for the task; checked to have ``predict_proba`` when needed."""
    if estimator is None:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        estimator = DecisionTreeClassifier() if task == "classification" else DecisionTreeRegressor()
    if score == "probability" and not hasattr(estimator, "predict_proba"):
        raise ConfigurationError(
            "score",
            f"'probability' needs an estimator with predict_proba; {type(estimator).__name__} has none",
        )
    return estimator


def _oob_sums(
    estimator: Any, x: np.ndarray, y: np.ndarray, children: list[np.random.SeedSequence], score: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-3: per point, the sum and sum of squares of its out-of-bag scores and their number."""
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    n = x.shape[0]
    num = np.zeros(n)
    num2 = np.zeros(n)
    den = np.zeros(n)
    with threadpool_limits(1):
        for child in children:
            rng = make_rng(child)
            idx = rng.integers(0, n, size=n)
            oob = np.ones(n, dtype=bool)
            oob[idx] = False
            if not oob.any():
                continue
            model = clone(estimator)
            if "random_state" in model.get_params():
                model.set_params(random_state=int(rng.integers(2**31 - 1)))
            model.fit(x[idx], y[idx])
            t = _score(model, x[oob], y[oob], score)
            num[oob] += t
            num2[oob] += t**2
            den[oob] += 1
    return num, num2, den


def _score(model: Any, x: np.ndarray, y: np.ndarray, score: str) -> np.ndarray:
    r""":math:`T(y_i, \hat f_b(x_i))` for the out-of-bag rows of one learner (module docstring)."""
    if score == "accuracy":
        return (model.predict(x) == y).astype(np.float64)
    if score == "squared_error":
        return -((model.predict(x) - y) ** 2)
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    classes = np.asarray(model.classes_)
    col = np.minimum(np.searchsorted(classes, y), classes.size - 1)
    seen = classes[col] == y  # the recorded label was in this learner's bootstrap sample
    return np.where(seen, proba[np.arange(y.size), col], 0.0)
