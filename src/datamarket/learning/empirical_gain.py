r"""Empirical gain functions: the accuracy a model trained on allocated samples achieves (Chaintreau et al.).

Chaintreau et al. models a buyer's gain by a learning curve :math:`\mathcal G_{i,g}(x_g)` (eq. 2) of the
number of
samples of group :math:`g` allocated to its task (zero inter-group transfer, Assumption 3.1, eq. 1). The
empirical gain replaces the curve by the real thing: a scikit-learn classifier is trained on the
allocated samples *of group g only* and scored (accuracy) on the buyer's labelled test data for group g.

Conventions (documented deviations, none in the paper): no allocated samples gives gain 0, as
:math:`\mathcal G(0) = 0`; a training set with a single class predicts that class (a constant model).
Training is deterministic for a given ``seed`` (the seed is passed to the estimator's
``random_state``), so a coalition's value can be recomputed exactly during Shapley division.

>>> import numpy as np
>>> from datamarket.core.types import Dataset
>>> X = np.array([[0.0], [0.1], [1.0], [1.1]]); y = np.array([0, 0, 1, 1])
>>> empirical_gain(Dataset(X, y), Dataset(X, y))
1.0
>>> empirical_gain(None, Dataset(X, y))
0.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset

ModelFactory = Callable[[int], Any]


def default_model(seed: int) -> Any:
    """Multinomial logistic regression on standardised features (scikit-learn), seeded."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))


def empirical_gain(
    train: Dataset | None,
    test: Dataset,
    *,
    model: ModelFactory | None = None,
    seed: int = 0,
) -> float:
    """Test accuracy of a model fitted on ``train`` (0 when ``train`` is empty or ``None``)."""
    if test.labels is None:
        raise InvalidMarketError("test.labels", "test data must be labelled")
    if train is None or train.n_samples == 0:
        return 0.0
    if train.labels is None:
        raise InvalidMarketError("train.labels", "training data must be labelled")
    classes = np.unique(train.labels)
    if classes.size == 1:
        return float(np.mean(test.labels == classes[0]))
    est = (model or default_model)(seed)
    est.fit(train.features, train.labels)
    return float(np.mean(est.predict(test.features) == test.labels))


def concat(parts: Sequence[Dataset]) -> Dataset | None:
    """Row-wise union of datasets (``None`` when there are none)."""
    parts = [p for p in parts if p.n_samples > 0]
    if not parts:
        return None
    labels = None if any(p.labels is None for p in parts) else np.concatenate([p.labels for p in parts])  # type: ignore[misc]
    groups = None if any(p.groups is None for p in parts) else np.concatenate([p.groups for p in parts])  # type: ignore[misc]
    return Dataset(np.vstack([p.features for p in parts]), labels, groups)


def group_rows(data: Dataset, group: Any) -> Dataset | None:
    """The rows of ``data`` whose group label is ``group`` (``None`` when there are none)."""
    if data.groups is None:
        raise InvalidMarketError("groups", "seller datasets need group labels")
    idx = np.flatnonzero(data.groups == group)
    return data.subset(idx) if idx.size else None


@dataclass(frozen=True)
class BuyerTask:
    """A buyer's labelled test data, one dataset per group (its prediction tasks, Def 3.4)."""

    name: str
    tests: Mapping[Any, Dataset]

    def validate(self, groups: Sequence[Any]) -> None:
        for g in groups:
            test = self.tests.get(g)
            if test is None or test.n_samples == 0:
                raise InvalidMarketError(
                    f"buyers[{self.name}].test", f"buyer has no test data for group {g!r}"
                )
            if test.labels is None:
                raise InvalidMarketError(
                    f"buyers[{self.name}].test", f"test data of group {g!r} has no labels"
                )


class GroupGainCache:
    """Memoised empirical gains: one fit per (group, coalition), scored on every buyer's test data.

    ``gains(group, mask)`` trains on the group-``group`` rows of the sellers in bitmask ``mask`` (a seller
    given as ``None`` supplies nothing) and returns
    the accuracy on each buyer's test set for that group (array over buyers). ``fits`` counts model fits.
    """

    def __init__(
        self,
        sellers: Sequence[Dataset | None],
        buyers: Sequence[BuyerTask],
        *,
        model: ModelFactory | None = None,
        seed: int = 0,
    ) -> None:
        self.sellers = list(sellers)
        self.buyers = list(buyers)
        self.model = model
        self.seed = seed
        self.fits = 0
        self._cache: dict[tuple[Any, int], np.ndarray] = {}

    def gains(self, group: Any, mask: int) -> np.ndarray:
        key = (group, mask)
        if key not in self._cache:
            parts = [
                g
                for j, d in enumerate(self.sellers)
                if mask >> j & 1 and d is not None
                for g in [group_rows(d, group)]
                if g
            ]
            train = concat(parts)
            if train is None:
                out = np.zeros(len(self.buyers))
            else:
                out = self._score(train, group)
            self._cache[key] = out
        return self._cache[key]

    def _score(self, train: Dataset, group: Any) -> np.ndarray:
        assert train.labels is not None
        classes = np.unique(train.labels)
        est = None
        if classes.size > 1:
            est = (self.model or default_model)(self.seed)
            est.fit(train.features, train.labels)
            self.fits += 1
        out = np.empty(len(self.buyers))
        for i, b in enumerate(self.buyers):
            test = b.tests[group]
            pred = np.full(test.n_samples, classes[0]) if est is None else est.predict(test.features)
            out[i] = float(np.mean(pred == test.labels))
        return out
