"""Point-level valuation: exact KNN-Shapley against enumeration, Data-OOB."""

from __future__ import annotations

import numpy as np
import pytest

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.valuation import FunctionGame, data_oob, exact_shapley, knn_shapley


def _knn_utility(xtr, ytr, x, y, k):
    """v(S): fraction of the K nearest points of S (stable ties) that carry the test label."""
    d = ((xtr - x) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")

    def v(members: tuple[int, ...]) -> float:
        inside = set(members)
        near = [j for j in order if j in inside][:k]
        return float(sum(ytr[j] == y for j in near)) / k

    return v


@pytest.mark.parametrize("k", [1, 3])
def test_knn_shapley_equals_enumeration(k: int) -> None:
    rng = np.random.default_rng(k)
    xtr, ytr = rng.normal(size=(9, 2)), rng.integers(0, 2, size=9)
    xte, yte = rng.normal(size=(3, 2)), rng.integers(0, 2, size=3)
    games = [_knn_utility(xtr, ytr, xte[t], yte[t], k) for t in range(3)]
    game = FunctionGame(lambda s: sum(g(s) for g in games) / 3, 9)
    exact = exact_shapley(game).values
    fast = knn_shapley(xtr, ytr, xte, yte, k=k, block=2)
    # both are sums of a few hundred terms of magnitude <= 1: agreement to 1e-12
    np.testing.assert_allclose(fast.values, exact, atol=1e-12)
    # efficiency: the values add up to v(N) (v(empty) = 0)
    assert abs(fast.values.sum() - game.value((1 << 9) - 1)) < 1e-12


def test_knn_shapley_bad_input() -> None:
    with pytest.raises(InvalidMarketError, match="x:"):
        knn_shapley(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 3)), np.zeros(1))
    with pytest.raises(ConfigurationError, match="k:"):
        knn_shapley(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), k=0)
    with pytest.raises(InvalidMarketError, match="y:"):
        knn_shapley(np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1))


def test_data_oob_seeded_and_flags_noise() -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(300, n_features=6, random_state=1)
    noisy = np.zeros(300, dtype=bool)
    noisy[::10] = True
    y = np.where(noisy, 1 - y, y)
    a = data_oob(x, y, seed=0, n_estimators=40)
    b = data_oob(x, y, seed=0, n_estimators=40)
    np.testing.assert_array_equal(a.values, b.values)  # same seed, same fits: bitwise
    assert np.all((a.values >= 0) & (a.values <= 1)) and a.evaluations == 40
    # each point is out of bag for about B/e learners (40 * 0.37 = 15 on average)
    assert 5 < a.counts.mean() < 25
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(noisy, -a.values) > 0.8
    with pytest.raises(ConfigurationError, match="n_estimators"):
        data_oob(x, y, seed=0, n_estimators=0)


def test_data_oob_probability_score() -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import SVC

    x, y = make_classification(
        300, n_features=6, n_informative=4, n_redundant=0, n_classes=3, class_sep=2.0, random_state=3
    )
    noisy = np.zeros(300, dtype=bool)
    noisy[::10] = True
    y = np.where(noisy, (y + 1) % 3, y)
    # fully grown trees have pure leaves: predict_proba is one-hot (exactly 0.0 and 1.0), so the
    # probability of the recorded label is the accuracy indicator and the two scores agree bitwise
    acc = data_oob(x, y, seed=3, n_estimators=30)
    prob = data_oob(x, y, seed=3, n_estimators=30, score="probability")
    np.testing.assert_array_equal(acc.values, prob.values)
    assert prob.extra["score"] == "probability" and acc.extra["score"] == "accuracy"
    lr = data_oob(
        x, y, seed=3, n_estimators=30, estimator=LogisticRegression(max_iter=500), score="probability"
    )
    assert np.all((lr.values > 0) & (lr.values < 1))  # a logistic model is never certain
    assert roc_auc_score(noisy, -lr.values) > 0.8
    with pytest.raises(ConfigurationError, match=r"score:.*predict_proba"):
        data_oob(x, y, seed=0, n_estimators=3, estimator=SVC(), score="probability")
    with pytest.raises(ConfigurationError, match="score:"):
        data_oob(x, y, seed=0, n_estimators=3, score="squared_error")
    with pytest.raises(ConfigurationError, match="score:"):
        data_oob(x, y.astype(float), seed=0, n_estimators=3, task="regression", score="probability")


def test_data_oob_probability_of_a_label_the_learner_never_saw_is_zero() -> None:
    from sklearn.linear_model import LogisticRegression

    from datamarket.valuation.methods.data_oob import _score

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, np.array([0, 0, 2, 2]))  # class 1 absent from this sample
    t = _score(model, x, np.array([0, 1, 2, 5]), "probability")
    assert t[1] == 0.0 and t[3] == 0.0  # exact: the constant 0.0 is returned for unseen labels
    assert 0.0 < t[0] < 1.0 and 0.0 < t[2] < 1.0


def test_knn_shapley_threads_do_not_change_values() -> None:
    rng = np.random.default_rng(0)
    xtr, ytr = rng.normal(size=(500, 3)), rng.integers(0, 3, size=500)
    xte, yte = rng.normal(size=(70, 3)), rng.integers(0, 3, size=70)
    a = knn_shapley(xtr, ytr, xte, yte, block=8)
    b = knn_shapley(xtr, ytr, xte, yte, block=8, n_jobs=2)
    np.testing.assert_array_equal(a.values, b.values)  # same blocks summed in the same order: bitwise


def test_noisy_label_experiment_writes_figure(tmp_path) -> None:
    from datamarket.experiments import reproduce

    paths = reproduce("data_valuation", tmp_path, quick=True, seed=0)
    assert any(p.suffix == ".png" for p in paths)
    import json

    records = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    by = {r["method"]: r for r in records}
    # both valuations find flipped labels far better than chance (AUC 0.5, F1 about 0.1)
    for name in ("KNN-Shapley (k=5)", "Data-OOB", "Data-OOB (SVM)"):
        assert by[name]["auc"] > 0.8 and by[name]["f1"] > 2 * by["random"]["f1"]


def test_noisy_digits_and_detection_scores() -> None:
    from datamarket.experiments.data_valuation import detection_scores, noisy_digits

    split = noisy_digits(quick=True, seed=0)
    assert [a.shape[0] for a in split] == [500, 500, 300, 300, 997, 997, 500]
    noisy = split[-1]
    assert int(noisy.sum()) == 50  # exact: 10% of 500 labels flipped, an integer count
    # values that put exactly the flipped points lowest: F1 and AUC are 1 up to float rounding
    f1, auc = detection_scores(np.where(noisy, 0.0, 1.0), noisy)
    assert abs(f1 - 1.0) < 1e-12 and abs(auc - 1.0) < 1e-12
    # reversed values: no flipped point flagged, AUC 0
    f1, auc = detection_scores(np.where(noisy, 1.0, 0.0), noisy)
    assert f1 < 1e-12 and auc < 1e-12
