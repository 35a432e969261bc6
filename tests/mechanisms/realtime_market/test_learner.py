"""The learner and the gain (Agarwal, Dahleh, Sarkar, Sec. 2, fn. 3, Rem. 2.2, Assumption 2)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.mechanisms.realtime_market import CoalitionGame, Learner, Scorer, Streams, Task


@pytest.mark.parametrize("estimator", [LinearRegression(), Ridge(alpha=3.0)], ids=["ols", "ridge"])
def test_least_squares_path_matches_scikit_learn(estimator: object) -> None:
    """The Gram-matrix path predicts as scikit-learn's fit on every column subset of the diabetes data.
    Both solve the same least-squares problem; the normal equations square the condition number
    (kappa^2 eps relative error; kappa < 10^2 for these columns), hence 1e-9 relative to the targets."""
    x, y = load_diabetes(return_X_y=True)
    tr, te = slice(0, 300), slice(300, None)
    fast = Learner(estimator).prepare(x[tr], y[tr], x[te])
    assert Learner(estimator).alpha is not None
    for cols in ([0], [2, 3], [0, 4, 5, 6], list(range(10))):
        ref = type(estimator)(**estimator.get_params()).fit(x[tr][:, cols], y[tr]).predict(x[te][:, cols])  # type: ignore[attr-defined]
        assert np.max(np.abs(fast.predict(cols) - ref)) <= 1e-9 * np.abs(y).max()


def test_other_estimators_take_the_scikit_learn_path() -> None:
    assert Learner(DecisionTreeRegressor()).alpha is None
    assert Learner(Ridge(positive=True)).alpha is None
    assert Learner(LinearRegression(fit_intercept=False)).alpha is None
    with pytest.raises(InvalidMarketError, match="learner"):
        Learner(object())


def test_copies_do_not_change_any_gain() -> None:
    """Assumption 2 made exact: a coalition is fitted on its distinct contents, so adding copies of a
    stream changes no coalition's gain (one fit serves all the copies)."""
    x, y = load_diabetes(return_X_y=True)
    task = Task.split(y, 0.3, make_rng(0))
    streams = Streams(x[:, :3], ("a", "b", "c"))
    copied = streams.with_copies("b", 2)
    learner, scorer = Learner(), Scorer.of(task, False)
    g = CoalitionGame(streams.values, streams.ids, streams.names, task, learner, scorer)
    gc = CoalitionGame(copied.values, copied.ids, copied.names, task, learner, scorer)
    assert gc.value(0b11111) == g.value(0b111)
    assert gc.value(0b01000) == gc.value(0b10000) == g.value(0b010)
    assert gc.value(0b11010) == g.value(0b010)
    assert gc.fits == 2  # {a, b, c} and {b}: the copies of b add no fit


def test_gain_against_the_no_data_baseline() -> None:
    """Regression: G = max(0, 1 - RMSE / RMSE_empty) (baseline) or 1 - RMSE / (Y_max - Y_min) (printed,
    fn. 3); the no-data predictor (the training mean) scores 0 with the baseline, more without."""
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    task = Task(y, np.array([False, False, False, True, True, True]))
    base, paper = Scorer.of(task, False, True), Scorer.of(task, False, False)
    mean = np.full(3, 1.0)  # training mean
    rmse0 = np.sqrt(np.mean((y[3:] - 1.0) ** 2))
    assert base(mean) == 0.0 == base.empty()
    assert paper(mean) == pytest.approx(1 - rmse0 / 5) == pytest.approx(paper.empty())
    assert base(y[3:]) == 1.0 and paper(y[3:] + 0.5) == pytest.approx(0.9)
    assert base(y[3:] + 10 * rmse0) == 0.0  # clipped: worse than no data


def test_classifier_gain_is_accuracy_rescaled_against_the_majority_class() -> None:
    """Classification: accuracy (printed) or (acc - acc_empty) / (1 - acc_empty) clipped to [0, 1]
    (Rem. 2.2 rescales max(0, acc - .5)/.5 for a balanced binary task); the scikit-learn path fits."""
    x, y = load_iris(return_X_y=True)
    rng = make_rng(1)
    task = Task.split(y, 0.4, rng)
    streams = Streams(x, ("sepal_l", "sepal_w", "petal_l", "petal_w"))
    learner = Learner(LogisticRegression(max_iter=500))
    assert learner.classifier and learner.alpha is None
    scorer = Scorer.of(task, True)
    game = CoalitionGame(streams.values, streams.ids, streams.names, task, learner, scorer)
    full, petals, empty = game.value(0b1111), game.value(0b1100), game.value(0)
    assert empty == 0.0 and 0.8 < full <= 1.0 and 0.8 < petals <= 1.0
    acc0 = scorer.reference
    assert Scorer.of(task, True, False)(np.asarray(task.labels)[task.test]) == 1.0
    assert 0 < acc0 < 1 and scorer(np.full(task.test.sum(), -1)) == 0.0
