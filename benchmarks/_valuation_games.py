"""The games of ``valuation_suite.py``: real models trained on real data, none built from our surrogate.

Each game is a characteristic function ``v(S) = score(model fitted on the pooled rows of S; test)``
(Ghorbani & Zou 2019, "Data Shapley", eq. 1), built once from a seeded split and handed to both
libraries: to the engine as a :class:`~datamarket.valuation.ModelGame`, to pyDVL 0.10 as a
``GroupedDataset`` (one group per seller, or one point per player) with its ``ModelUtility`` and its
own ``InMemoryCacheBackend`` (with ``time_threshold=0``: by default pyDVL caches only evaluations that
took 0.3 s or more). pyDVL's cache key is the sample, index included, so a coalition reached from
two different indices is fitted twice: that is pyDVL's behaviour and is counted as such. Both fit
the same :class:`CountingEstimator`, so a *fit* is counted the same way for every library: one call
of ``fit`` (a coalition answered by a cache is no fit; the empty coalition is worth ``empty_score``
in both and is never fitted).

Games (``GAMES``):

``digits_logreg``   digits (8x8 images, pixel / 16, PCA to 16 dimensions fitted on the pool), sellers
                    with non-iid class shares (Dirichlet(0.5) per seller), logistic regression
                    (lbfgs, ``max_iter=100``), test accuracy; v(empty) = 0.1 (chance).
``tabular_gbt``     breast cancer (first 10 features), sellers of Dirichlet(1) sizes and a seller-level
                    label-flip rate drawn from {0, 0, 0.2, 0.4}, gradient-boosted trees
                    (``GradientBoostingClassifier``, 10 trees of depth 2), test accuracy;
                    v(empty) = 0.5.
``diabetes_ridge``  diabetes (regression), standardised, sellers of equal size with Gaussian target
                    noise of a seller-level scale in {0, 0, 0.5, 1.5} target standard deviations,
                    ridge regression (alpha = 1), test R^2; v(empty) = 0.
``points_logreg``   point-level: each of ``m`` breast-cancer training points is a player (10% flipped
                    labels), logistic regression on the first 10 features, test accuracy; v(empty) = 0.5.

A coalition whose labels hold a single class is fitted by predicting that class (the model such
data gives), so no coalition fails in either library.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from datamarket.core.types import Dataset
from datamarket.valuation import ModelGame

GAMES = ("digits_logreg", "tabular_gbt", "diabetes_ridge", "points_logreg")
FITS = {"n": 0}  # fits of CountingEstimator in this process (every clone adds to it)


class CountingEstimator(BaseEstimator):
    """``base`` fitted on the rows it is given; counts its fits in :data:`FITS`; one class -> constant."""

    def __init__(self, base: Any = None) -> None:
        self.base = base

    def fit(self, x: np.ndarray, y: np.ndarray) -> CountingEstimator:
        FITS["n"] += 1
        self.constant_ = None
        if self.base is not None and is_classifier(self.base):
            classes = np.unique(y)
            if classes.size == 1:
                self.constant_ = classes[0]
                self.classes_ = classes
                return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning at max_iter
            self.model_ = clone(self.base).fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.constant_ is not None:
            return np.full(len(x), self.constant_)
        return self.model_.predict(x)

    @property
    def _estimator_type(self) -> str:  # the scorers of both libraries ask for it
        return "classifier" if is_classifier(self.base) else "regressor"

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        from sklearn.metrics import accuracy_score, r2_score

        pred = self.predict(x)
        return float(accuracy_score(y, pred) if self._estimator_type == "classifier" else r2_score(y, pred))


@dataclass(frozen=True)
class Game:
    """One game: players' rows (``groups[r]`` = the player of row ``r``), test rows, model, score."""

    name: str
    m: int
    seed: int
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model: Any
    scorer: str
    empty_score: float
    description: str

    def engine_game(self) -> ModelGame:
        """A fresh :class:`ModelGame` (its own memo) over the same data."""
        parts = [Dataset(self.x[self.groups == j], self.y[self.groups == j]) for j in range(self.m)]
        return ModelGame(
            CountingEstimator(self.model),
            parts,
            Dataset(self.x_test, self.y_test),
            scorer=self.scorer,
            empty_score=self.empty_score,
        )

    def pydvl_parts(self) -> tuple[Any, Any]:
        """pyDVL 0.10's grouped training data and ``ModelUtility`` with its ``InMemoryCacheBackend``."""
        from pydvl.utils.caching import CachedFuncConfig, InMemoryCacheBackend
        from pydvl.valuation import Dataset as PDataset
        from pydvl.valuation import GroupedDataset, ModelUtility, SupervisedScorer

        train = GroupedDataset(self.x, self.y, data_groups=self.groups)
        test = PDataset(self.x_test, self.y_test)
        scorer = SupervisedScorer(self.scorer, test, default=self.empty_score)
        # time_threshold=0: pyDVL caches by default only evaluations of 0.3 s or more (none here)
        utility = ModelUtility(
            CountingEstimator(self.model),
            scorer,
            cache_backend=InMemoryCacheBackend(),
            cached_func_options=CachedFuncConfig(time_threshold=0.0),
            show_warnings=False,
        )
        return train, utility


def _dirichlet_rows(labels: np.ndarray, m: int, per: int, alpha: float, rng: np.random.Generator) -> list:
    """``per`` rows for each of ``m`` sellers, class shares Dirichlet(alpha) per seller, no row twice."""
    classes = np.unique(labels)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    out = []
    for _ in range(m):
        share = rng.dirichlet(np.full(classes.size, alpha))
        counts = rng.multinomial(per, share)
        rows: list[int] = []
        for c, k in zip(classes, counts, strict=True):
            take = min(k, len(pools[c]))
            rows += [pools[c].pop() for _ in range(take)]
        while len(rows) < per:  # a class ran out: fill from the largest pool left
            c = max(pools, key=lambda c: len(pools[c]))
            rows.append(pools[c].pop())
        out.append(np.asarray(rows))
    return out


def build_game(name: str, m: int, seed: int = 0) -> Game:
    """The game ``name`` with ``m`` players, data split by ``seed``."""
    rng = np.random.default_rng([seed, m, GAMES.index(name)])
    if name == "digits_logreg":
        x, y = load_digits(return_X_y=True)
        order = rng.permutation(len(y))
        test, pool = order[:200], order[200:]
        per = 15 if m <= 30 else 8
        rows = _dirichlet_rows(y[pool], m, per, 0.5, rng)
        idx = np.concatenate([pool[r] for r in rows])
        pca = PCA(16, random_state=0).fit(x[pool] / 16)
        xs, xt = pca.transform(x[idx] / 16), pca.transform(x[test] / 16)
        groups = np.repeat(np.arange(m), per)
        model: Any = LogisticRegression(max_iter=100)
        return Game(
            name,
            m,
            seed,
            xs,
            y[idx],
            groups,
            xt,
            y[test],
            model,
            "accuracy",
            0.1,
            f"digits, {m} sellers x {per} rows, Dirichlet(0.5) class shares, PCA-16, "
            "logistic regression, accuracy",
        )
    if name == "tabular_gbt":
        x, y = load_breast_cancer(return_X_y=True)
        x = x[:, :10]
        order = rng.permutation(len(y))
        test, pool = order[:150], order[150:]
        n_train = 200 if m <= 30 else 400
        sizes = 1 + rng.multinomial(n_train - m, rng.dirichlet(np.ones(m)))
        idx = pool[:n_train]
        groups = np.repeat(np.arange(m), sizes)
        yy = y[idx].copy()
        flip = rng.choice([0.0, 0.0, 0.2, 0.4], size=m)[groups]
        yy = np.where(rng.random(len(yy)) < flip, 1 - yy, yy)
        model = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)
        return Game(
            name,
            m,
            seed,
            x[idx],
            yy,
            groups,
            x[test],
            y[test],
            model,
            "accuracy",
            0.5,
            f"breast cancer (10 features), {m} sellers of Dirichlet(1) sizes ({n_train} rows), "
            "seller label-flip rates in {0, 0.2, 0.4}, gradient-boosted trees (10 x depth 2), accuracy",
        )
    if name == "diabetes_ridge":
        x, y = load_diabetes(return_X_y=True)
        x = (x - x.mean(0)) / x.std(0)
        y = (y - y.mean()) / y.std()
        order = rng.permutation(len(y))
        test, pool = order[:100], order[100:]
        per = 10 if m <= 30 else 3
        idx = pool[: per * m]
        groups = np.repeat(np.arange(m), per)
        noise = rng.choice([0.0, 0.0, 0.5, 1.5], size=m)[groups]
        yy = y[idx] + noise * rng.normal(size=len(idx))
        return Game(
            name,
            m,
            seed,
            x[idx],
            yy,
            groups,
            x[test],
            y[test],
            Ridge(alpha=1.0),
            "r2",
            0.0,
            f"diabetes, {m} sellers x {per} rows, seller target noise in {{0, 0.5, 1.5}} sd, "
            "ridge regression, R^2",
        )
    if name == "points_logreg":
        x, y = load_breast_cancer(return_X_y=True)
        x = x[:, :10]
        x = (x - x.mean(0)) / x.std(0)
        order = rng.permutation(len(y))
        test, idx = order[:100], order[100 : 100 + m]
        yy = y[idx].copy()
        flipped = rng.random(m) < 0.1
        yy[flipped] = 1 - yy[flipped]
        model = LogisticRegression(max_iter=100)
        return Game(
            name,
            m,
            seed,
            x[idx],
            yy,
            np.arange(m),
            x[test],
            y[test],
            model,
            "accuracy",
            0.5,
            f"breast cancer (10 features), {m} training points as players (10% flipped labels), "
            "logistic regression, accuracy",
        )
    raise ValueError(f"unknown game {name!r}; known: {', '.join(GAMES)}")
