r"""scikit-learn model utilities for the collaborative market (Ohrimenko et al.).

The market needs a learner :math:`\mathcal{M}(\cdot)` that maps a training multiset to a classifier
and a gain :math:`\mathcal{G}(\mathcal{V}, \mathcal{M})`, the accuracy on a validation task
(Ohrimenko et al., Sec. 2):

.. math::
   \mathcal{G}(\mathcal{V}, \mathcal{M}) = \frac{1}{|\mathcal{V}|}
       \sum_{(\omega, z) \in \mathcal{V}} \mathbb{1}[\mathcal{M}(\omega) = z].

Learner contract:

* deterministic for a given training multiset (fixed seeds, no warm starts);
* a training set holding one class gives a constant predictor of that class (scikit-learn's
  ``LogisticRegression`` refuses one class);
* no training data gives no model, with gain 0 (:math:`\mathcal{G}(\mathcal{V}; \mathcal{M}_\emptyset) = 0`).

>>> import numpy as np
>>> spec = ModelSpec("logreg")
>>> x = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
>>> accuracy(fit_model(spec, x, y), x, y)
1.0
>>> accuracy(fit_model(spec, x[:2], y[:2]), x, y)   # one class: constant predictor
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError

ModelKind = Literal["logreg", "mlp", "knn1"]
MODEL_KINDS: tuple[str, ...] = ("logreg", "mlp", "knn1")


class Classifier(Protocol):
    """What the market needs from a fitted model."""

    def predict(self, x: NDArray[np.float64]) -> NDArray[Any]: ...


@dataclass(frozen=True)
class ConstantClassifier:
    """Predicts one label everywhere (the model of a one-class training set).

    >>> ConstantClassifier(3).predict(np.zeros((2, 4))).tolist()
    [3, 3]
    """

    label: Any

    def predict(self, x: NDArray[np.float64]) -> NDArray[Any]:
        return np.full(np.asarray(x).shape[0], self.label)


@dataclass(frozen=True)
class ModelSpec:
    """A deterministic learner: which model and its hyper-parameters.

    Parameters
    ----------
    kind : ``"logreg"`` (multinomial logistic regression, lbfgs), ``"mlp"`` (one hidden layer, Adam)
        or ``"knn1"`` (1-nearest neighbour; satisfies the replication invariance (i) of Ohrimenko et al.,
        Sec. 2
        exactly).
    C : inverse L2 strength of logistic regression (scikit-learn's sum-of-losses scaling).
    max_iter, tol : optimiser budget. Small values make the ``2^M`` coalition fits cheap; results stay
        deterministic because every fit starts from the same point (no warm starts).
    hidden : hidden-layer width of the MLP (the paper uses 500).
    alpha, learning_rate : MLP L2 penalty and Adam step (Ohrimenko et al., Sec. 6.1: 1e-4 and 1e-2).
    random_state : seed of the MLP's initialisation (fixed, so the learner is deterministic).
    """

    kind: ModelKind = "logreg"
    C: float = 1.0
    max_iter: int = 200
    tol: float = 1e-4
    hidden: int = 500
    alpha: float = 1e-4
    learning_rate: float = 1e-2
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigurationError(
                "model", f"unknown model {self.kind!r} (one of {', '.join(MODEL_KINDS)})"
            )
        for name in ("C", "tol", "alpha", "learning_rate"):
            v = float(getattr(self, name))
            if not np.isfinite(v) or v <= 0:
                raise ConfigurationError(f"model.{name}", "must be a positive finite number")
        for name in ("max_iter", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"model.{name}", "must be a positive integer")
        if int(self.random_state) < 0:
            raise ConfigurationError("model.random_state", "must be non-negative")

    def build(self) -> Any:
        """A fresh, unfitted scikit-learn estimator."""
        if self.kind == "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        if self.kind == "mlp":
            from sklearn.neural_network import MLPClassifier

            return MLPClassifier(
                hidden_layer_sizes=(self.hidden,),
                solver="adam",
                learning_rate_init=self.learning_rate,
                alpha=self.alpha,
                max_iter=self.max_iter,
                tol=self.tol,
                random_state=self.random_state,
            )
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=1, algorithm="brute")


def fit_model(
    spec: ModelSpec,
    x: NDArray[np.float64],
    y: NDArray[Any],
    sample_weight: NDArray[np.float64] | None = None,
) -> Classifier:
    """Fit ``spec`` on ``(x, y)``; one class gives a :class:`ConstantClassifier`.

    ``sample_weight`` (logistic regression only): an integer weight ``m`` is the same objective as ``m``
    copies of the row, because scikit-learn's LR minimises a *sum* of losses plus the penalty; replicated
    data can then be fitted without materialising the copies.

    Convergence warnings of the deliberately small iteration budget are silenced (the fit is still
    deterministic).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    y = np.asarray(y)
    if y.shape[0] == 0:
        raise InvalidMarketError("train", "cannot fit a model on no data")
    if sample_weight is not None and spec.kind != "logreg":
        raise ConfigurationError(
            "sample_weight", f"only supported for logistic regression, not {spec.kind!r}"
        )
    classes = np.unique(y)
    if classes.shape[0] == 1:
        return ConstantClassifier(classes[0].item())
    model = spec.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if sample_weight is None:
            model.fit(np.asarray(x, dtype=np.float64), y)
        else:
            model.fit(
                np.asarray(x, dtype=np.float64), y, sample_weight=np.asarray(sample_weight, dtype=np.float64)
            )
    fitted: Classifier = model
    return fitted


def accuracy(model: Classifier | None, x: NDArray[np.float64], y: NDArray[Any]) -> float:
    """Gain :math:`\\mathcal{G}(\\mathcal{V}, \\mathcal{M})` (Ohrimenko et al., Sec. 2): accuracy on ``(x,
    y)``;
    0 for no model."""
    if model is None:
        return 0.0
    y = np.asarray(y)
    if y.shape[0] == 0:
        raise InvalidMarketError("task", "validation task is empty")
    return float(np.mean(model.predict(x) == y))


def accuracy_by_label(model: Classifier, x: NDArray[np.float64], y: NDArray[Any]) -> dict[Any, float]:
    """Per-label accuracy (Ohrimenko et al., Fig. 2 reports digits 0 and 4 separately).

    >>> m = ConstantClassifier(0)
    >>> accuracy_by_label(m, np.zeros((3, 1)), np.array([0, 1, 1]))
    {0: 1.0, 1: 0.0}
    """
    y = np.asarray(y)
    pred = model.predict(x)
    return {lab.item(): float(np.mean(pred[y == lab] == lab)) for lab in np.unique(y)}


IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


def estimator_from_path(path: str, params: dict[str, Any] | None = None, *, seed: int | None = None) -> Any:
    """An unfitted scikit-learn-compatible estimator from ``"package.module:ClassName"`` and ``params``.

    The class must have ``fit`` and ``predict`` and accept ``params`` (checked by constructing it, so a
    bad parameter is reported here, not at the first fit). When ``seed`` is given and the estimator
    takes a ``random_state`` that ``params`` does not set, it is set to ``seed`` (reproducible fits).

    >>> estimator_from_path("sklearn.ensemble:RandomForestClassifier", {"n_estimators": 5}, seed=0)
    RandomForestClassifier(n_estimators=5, random_state=0)
    >>> estimator_from_path("sklearn.ensemble:NoSuchModel")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: model.name: module 'sklearn.ensemble' has no 'NoSuchModel'
    """
    import importlib
    import inspect
    import re

    if not isinstance(path, str) or not re.match(IMPORT_PATH, path):
        raise InvalidMarketError("model.name", f"{path!r} is not an import path 'package.module:ClassName'")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidMarketError("model.name", f"cannot import module {module_name!r} ({exc})") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise InvalidMarketError("model.name", f"module {module_name!r} has no {attr!r}")
    if not inspect.isclass(cls) or not all(callable(getattr(cls, m, None)) for m in ("fit", "predict")):
        raise InvalidMarketError("model.name", f"{path} is not an estimator class with fit() and predict()")
    kwargs = dict(params or {})
    if seed is not None and "random_state" not in kwargs:
        try:
            if "random_state" in inspect.signature(cls).parameters:
                kwargs["random_state"] = seed
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            pass
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidMarketError("model.params", f"{path}: {exc}") from None
