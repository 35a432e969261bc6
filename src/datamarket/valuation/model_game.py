r"""The data-valuation game: a model trained on a coalition's pooled data, scored on a test set.

For sellers :math:`1..M` with datasets :math:`D_1..D_M`, a learning algorithm :math:`A` and a test set,
the characteristic function is the test score of the model trained on the pooled data
(Ghorbani & Zou 2019, "Data Shapley", eq. 1; Fan et al.'s utility of a coalition):

.. math::
   v(S) = \mathrm{score}\bigl(A(\textstyle\bigcup_{j \in S} D_j);\ D_{\mathrm{test}}\bigr),
   \qquad v(\emptyset) = \texttt{empty\_score}.

Evaluating :math:`v` means clone + fit + score (scikit-learn's estimator contract). Values are memoised
in :attr:`ModelGame.cache` (a :class:`~datamarket.valuation.games.MemoCache`), so no coalition is fitted
twice; :attr:`ModelGame.n_fits` counts the fits actually performed in this process.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.valuation.games import MemoCache, NamedPlayers, _names

Scorer = str | Callable[[Any, NDArray[np.float64], NDArray[Any]], float]


class ModelGame(NamedPlayers):
    """Coalition game ``v(S) = score(fit(clone(estimator), pooled data of S), test)``.

    Parameters
    ----------
    estimator : an unfitted scikit-learn estimator (cloned for every coalition).
    datasets : one labelled :class:`~datamarket.core.types.Dataset` per seller.
    test : the labelled test set.
    scorer : a scikit-learn scorer name (``"accuracy"``, ``"r2"``...) or ``f(model, X, y) -> float``.
    empty_score : value of the empty coalition (no model can be trained on no data).
    names : seller names (default ``player_0, ...``).
    on_fit_error : ``"raise"`` (an :class:`InvalidMarketError` naming the coalition) or ``"default"``
        (the coalition is worth ``empty_score``; the failures are counted in :attr:`n_fit_errors`).
    cache : ``None`` (an in-memory memo) or a directory: a
        :class:`~datamarket.valuation.cache.PersistentCache` keyed by :meth:`fingerprint`, so an
        interrupted run resumes and a repeated run refits nothing.

    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> parts = [Dataset(X[i::2], y[i::2]) for i in range(2)]
    >>> g = ModelGame(LogisticRegression(), parts[:1] * 2, parts[1], empty_score=0.5)
    >>> g.value(0b01) == g.value(0b01), g.n_fits, g.cache.hits
    (True, 1, 1)
    """

    def __init__(
        self,
        estimator: Any,
        datasets: Sequence[Dataset],
        test: Dataset,
        scorer: Scorer = "accuracy",
        empty_score: float = 0.0,
        names: Sequence[str] | None = None,
        on_fit_error: Literal["raise", "default"] = "raise",
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        if not hasattr(estimator, "fit"):
            raise ConfigurationError("estimator", "must be a scikit-learn estimator with fit()")
        datasets = list(datasets)
        if not datasets:
            raise InvalidMarketError("datasets", "a model game needs at least one seller dataset")
        if not all(isinstance(d, Dataset) for d in datasets) or not isinstance(test, Dataset):
            raise InvalidMarketError("datasets", "sellers' data and the test set must be Dataset objects")
        for j, d in enumerate(datasets):
            if d.labels is None:
                raise InvalidMarketError(f"datasets[{j}]", "seller data must have labels")
            if d.n_features != test.n_features:
                raise InvalidMarketError(
                    f"datasets[{j}]", f"has {d.n_features} features, the test set has {test.n_features}"
                )
        if test.labels is None:
            raise InvalidMarketError("test", "the test set must have labels")
        if not np.isfinite(empty_score):
            raise ConfigurationError("empty_score", "must be finite")
        if on_fit_error not in ("raise", "default"):
            raise ConfigurationError("on_fit_error", f"must be 'raise' or 'default', got {on_fit_error!r}")
        if not (isinstance(scorer, str) or callable(scorer)):
            raise ConfigurationError("scorer", "must be a scorer name or a callable")
        self.estimator = estimator
        self.datasets = tuple(datasets)
        self.test = test
        self.scorer = scorer
        self.empty_score = float(empty_score)
        self.on_fit_error = on_fit_error
        self._names = _names(len(datasets), names)
        self._x = np.concatenate([d.features for d in datasets])
        self._y = np.concatenate([np.asarray(d.labels) for d in datasets])
        bounds = np.cumsum([0] + [d.n_samples for d in datasets])
        self._slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        self.cache: MemoCache = MemoCache()
        if cache is not None:
            from datamarket.valuation.cache import PersistentCache

            self.cache = PersistentCache(os.fspath(cache), self.fingerprint())
        self.n_fits = 0
        self.n_fit_errors = 0

    @property
    def quantities(self) -> NDArray[np.int64]:
        """Rows per class of each seller's data (shape ``(M, classes)``), or rows per seller
        (``(M, 1)``) when the labels are not class labels (more than 50 distinct values or
        non-integer); the features of :func:`~datamarket.valuation.control_variate_shapley`'s
        learning-curve surrogate."""
        y = self._y
        classes = np.unique(y)
        is_class = y.dtype.kind in "iub" or (
            y.dtype.kind == "f" and bool(np.all(classes == np.round(classes)))
        )
        if not is_class or classes.size > 50:
            return np.array([[d.n_samples] for d in self.datasets], dtype=np.int64)
        return np.array(
            [[int(np.sum(self._y[s] == c)) for c in classes] for s in self._slices], dtype=np.int64
        )

    def fingerprint(self) -> str:
        """Hex digest of everything a coalition's value depends on besides the coalition: the sellers'
        rows and labels and their split, the test set, the estimator's class and parameters (its
        ``random_state`` included), the scorer, ``empty_score`` and ``on_fit_error``."""
        import hashlib

        h = hashlib.blake2b(digest_size=20)
        h.update(b"datamarket.ModelGame/1")
        arrays = [self._x, self._y, self.test.features, np.asarray(self.test.labels)]
        arrays.append(np.array([s.stop for s in self._slices], dtype=np.int64))
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
        est = self.estimator
        params = est.get_params(deep=True) if hasattr(est, "get_params") else vars(est)
        h.update(f"{type(est).__module__}.{type(est).__qualname__}".encode())
        h.update(repr(sorted((k, repr(v)) for k, v in params.items())).encode())
        scorer = self.scorer if isinstance(self.scorer, str) else getattr(self.scorer, "__qualname__", "")
        h.update(f"{scorer}|{self.empty_score!r}|{self.on_fit_error}".encode())
        return h.hexdigest()

    def __getstate__(self) -> dict[str, Any]:  # workers get the game, not the parent's memo
        state = self.__dict__.copy()
        state["cache"] = MemoCache()
        return state

    def _score(self, model: Any) -> float:
        x, y = self.test.features, np.asarray(self.test.labels)
        if self.scorer == "accuracy":  # same as sklearn's accuracy scorer, without its validation cost
            return float(np.mean(model.predict(x) == y))
        if isinstance(self.scorer, str):
            from sklearn.metrics import get_scorer

            try:
                scorer = get_scorer(self.scorer)
            except ValueError:
                raise ConfigurationError("scorer", f"unknown scikit-learn scorer {self.scorer!r}") from None
            return float(scorer(model, x, y))
        return float(self.scorer(model, x, y))

    def evaluate_uncached(self, mask: int) -> float:
        """Clone, fit on the coalition's pooled rows and score on the test set (no memo)."""
        mask = int(mask)
        if mask < 0 or mask >> self.n_players:
            raise InvalidMarketError(
                "coalition", f"mask {mask:#x} has players outside 0..{self.n_players - 1}"
            )
        if mask == 0:
            return self.empty_score
        from sklearn.base import clone

        rows = [self._slices[i] for i in range(self.n_players) if mask >> i & 1]
        x = np.concatenate([self._x[s] for s in rows])
        y = np.concatenate([self._y[s] for s in rows])
        model = clone(self.estimator)
        self.n_fits += 1
        try:
            model.fit(x, y)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            if self.on_fit_error == "raise":
                raise InvalidMarketError(
                    "estimator", f"fit failed for coalition {mask:#x}: {exc}".splitlines()[0]
                ) from None
            self.n_fit_errors += 1
            return self.empty_score
        score = self._score(model)
        if not np.isfinite(score):
            raise InvalidMarketError("scorer", f"returned {score} for coalition {mask:#x} (must be finite)")
        return score

    def value(self, mask: int) -> float:
        """Memoised :meth:`evaluate_uncached`."""
        hit = self.cache.get(mask)
        if hit is not None:
            return hit
        v = self.evaluate_uncached(mask)
        self.cache.put(mask, v)
        return v
