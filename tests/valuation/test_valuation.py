"""Exact valuation: closed-form games, Shapley axioms as properties, memo, results, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.valuation import (
    AirportGame,
    FunctionGame,
    GloveGame,
    ModelGame,
    TableGame,
    ValuationResult,
    VotingGame,
    exact_banzhaf,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
)
from datamarket.valuation.exact import banzhaf_from_table, shapley_from_table
from tests.strategies import monotone_games, table_games


@pytest.mark.parametrize(
    "game",
    [
        VotingGame(5, 3),
        VotingGame(7, 1),
        AirportGame([3.0, 1.0, 2.0, 5.0, 5.0, 0.5]),
        GloveGame(1, 2),
        GloveGame(3, 4),
        GloveGame(5, 2),
    ],
    ids=["vote5", "vote7", "airport", "glove12", "glove34", "glove52"],
)
def test_closed_form_games(game) -> None:
    res = exact_shapley(game)
    np.testing.assert_allclose(res.values, game.shapley(), rtol=0, atol=1e-12)
    assert abs(res.extra["efficiency_gap"]) < 1e-12


def test_glove_textbook_value() -> None:
    # one left glove, two right gloves: (2/3, 1/6, 1/6) (Shapley value of the glove game)
    np.testing.assert_allclose(GloveGame(1, 2).shapley(), [2 / 3, 1 / 6, 1 / 6], atol=1e-15)


def _reference_shapley(table: np.ndarray) -> np.ndarray:
    """Average over all permutations (the definition), for M <= 6."""
    from itertools import permutations

    n = int(table.size).bit_length() - 1
    phi = np.zeros(n)
    perms = list(permutations(range(n)))
    for p in perms:
        mask = 0
        for i in p:
            phi[i] += table[mask | 1 << i] - table[mask]
            mask |= 1 << i
    return phi / len(perms)


@given(table_games(max_players=5))
def test_vectorised_kernel_equals_permutation_definition(game: TableGame) -> None:
    np.testing.assert_allclose(shapley_from_table(game.table), _reference_shapley(game.table), atol=1e-9)


@given(table_games(max_players=7))
def test_efficiency(game: TableGame) -> None:
    res = exact_shapley(game)
    assert abs(res.values.sum() - (game.table[-1] - game.table[0])) < 1e-9


@given(table_games(min_players=2, max_players=6), st.data())
def test_symmetry(game: TableGame, data: st.DataObject) -> None:
    n = game.n_players
    i, j = data.draw(st.permutations(range(n)))[:2]
    # symmetrise: v(S) := v(swap_ij(S)) averaged with v(S) makes i and j interchangeable
    masks = np.arange(1 << n)
    bi, bj = (masks >> i) & 1, (masks >> j) & 1
    swapped = masks & ~((1 << i) | (1 << j)) | (bi << j) | (bj << i)
    sym = TableGame((game.table + game.table[swapped]) / 2)
    res = exact_shapley(sym)
    assert abs(res.values[i] - res.values[j]) < 1e-9


@given(table_games(min_players=2, max_players=6), st.data())
def test_null_player_gets_zero(game: TableGame, data: st.DataObject) -> None:
    n = game.n_players
    k = data.draw(st.integers(0, n - 1))
    masks = np.arange(1 << n)
    null = TableGame(game.table[masks & ~(1 << k)])  # player k adds nothing anywhere
    assert abs(exact_shapley(null).values[k]) < 1e-9
    assert abs(exact_banzhaf(null).values[k]) < 1e-9


@given(monotone_games(max_players=6))
def test_monotone_games_have_nonnegative_values(game: TableGame) -> None:
    assert np.all(exact_shapley(game).values >= -1e-9)
    assert np.all(exact_banzhaf(game).values >= -1e-9)


@given(table_games(max_players=5))
def test_banzhaf_is_mean_marginal(game: TableGame) -> None:
    n = game.n_players
    masks = np.arange(1 << n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        expect = np.mean(game.table[without | 1 << i] - game.table[without])
        assert abs(banzhaf_from_table(game.table)[i] - expect) < 1e-9


def test_loo_and_banzhaf_on_airport() -> None:
    g = AirportGame([1.0, 2.0, 4.0])
    # exact: differences of small integer-valued costs are exact
    assert leave_one_out(g).values.tolist() == [0.0, 0.0, 2.0]  # only the largest cost matters
    # Banzhaf of the airport game: player 3 is pivotal in 4 of 4 coalitions for its extra 2 ...
    np.testing.assert_allclose(exact_banzhaf(g).values, [0.25, 0.75, 2.75], atol=1e-12)


def _tiny_model_game(**kw):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int)
    parts = [Dataset(x[i:80:4], y[i:80:4]) for i in range(4)]
    return ModelGame(LogisticRegression(), parts, Dataset(x[80:], y[80:]), **kw)


def test_model_game_memo_no_coalition_twice() -> None:
    g = _tiny_model_game(empty_score=0.5)
    res = exact_shapley(g)
    assert g.n_fits == 15 and res.evaluations == 16 and res.cache_hits == 0  # empty set is not fitted
    again = exact_shapley(g)
    assert g.n_fits == 15 and again.cache_hits == 16 and again.evaluations == 0
    # exact: the second run reads the memoised values and sums them in the same order
    np.testing.assert_array_equal(res.values, again.values)
    assert abs(res.values.sum() - (g.value(15) - 0.5)) < 1e-12
    mc = monte_carlo_shapley(g, seed=0, max_evaluations=100)
    assert g.n_fits == 15 and mc.evaluations == 0  # everything memoised


def test_model_game_bad_inputs() -> None:
    from sklearn.linear_model import LogisticRegression

    d = Dataset(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidMarketError, match="datasets: a model game needs at least one"):
        ModelGame(LogisticRegression(), [], d)
    with pytest.raises(InvalidMarketError, match=r"datasets\[0\]: has 3 features"):
        ModelGame(LogisticRegression(), [Dataset(np.zeros((4, 3)), np.zeros(4))], d)
    with pytest.raises(InvalidMarketError, match=r"datasets\[0\]: seller data must have labels"):
        ModelGame(LogisticRegression(), [Dataset(np.zeros((4, 2)))], d)
    with pytest.raises(ConfigurationError, match="on_fit_error"):
        ModelGame(LogisticRegression(), [d], d, on_fit_error="ignore")  # type: ignore[arg-type]


def test_nan_scorer_is_a_clear_error() -> None:
    g = _tiny_model_game(scorer=lambda model, x, y: float("nan"))
    with pytest.raises(InvalidMarketError, match=r"scorer: returned nan for coalition 0x1"):
        exact_shapley(g)


def test_failed_fit_raise_or_default() -> None:
    from sklearn.linear_model import LogisticRegression

    one_class = Dataset(np.ones((3, 2)), np.zeros(3, dtype=int))
    both = Dataset(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1]))
    with pytest.raises(InvalidMarketError, match=r"estimator: fit failed for coalition 0x1"):
        exact_shapley(ModelGame(LogisticRegression(), [one_class, both], both))
    g = ModelGame(LogisticRegression(), [one_class, both], both, on_fit_error="default", empty_score=0.5)
    res = exact_shapley(g)
    assert g.n_fit_errors == 1 and np.isfinite(res.values).all()


def test_bad_games() -> None:
    with pytest.raises(InvalidMarketError, match="players: a game needs at least one player"):
        FunctionGame(lambda s: 0.0, 0)
    with pytest.raises(InvalidMarketError, match="table"):
        TableGame(np.zeros(3))
    with pytest.raises(InvalidMarketError, match="utility: game value is not finite"):
        exact_shapley(FunctionGame(lambda s: float("nan"), 2))
    with pytest.raises(InvalidMarketError, match="players: exact enumeration supports at most"):
        exact_shapley(FunctionGame(lambda s: 0.0, 30))


def test_result_validation_and_merge() -> None:
    with pytest.raises(InvalidMarketError, match="values: must have one entry per player"):
        ValuationResult("x", ("a", "b"), np.zeros(3), np.zeros(2), np.zeros(2, dtype=int))
    g = AirportGame(np.linspace(1, 3, 9))
    a = monte_carlo_shapley(g, seed=1, max_evaluations=150, sampler="random")
    b = monte_carlo_shapley(g, seed=2, max_evaluations=150, sampler="random")
    ab = a.merge(b)
    w = a.counts / (a.counts + b.counts)
    np.testing.assert_allclose(ab.values, w * a.values + (1 - w) * b.values)
    assert ab.evaluations == a.evaluations + b.evaluations
    assert np.all(ab.stderr <= np.maximum(a.stderr, b.stderr) + 1e-15)
    with pytest.raises(InvalidMarketError, match="method"):
        a.merge(exact_shapley(g))
    assert ab.to_dict()["names"] == list(g.player_names)
