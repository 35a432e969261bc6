"""Serial = processes = Dask, bit for bit, under one seed; a failing worker raises."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.valuation import (
    DaskBackend,
    FunctionGame,
    ModelGame,
    ProcessBackend,
    SerialBackend,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
)

pytestmark = pytest.mark.xdist_group("valuation_backends")


def _model_game() -> ModelGame:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(160, 4))
    y = (x @ np.array([1.0, -0.5, 0.3, 0.0]) + 0.5 * rng.normal(size=160) > 0).astype(int)
    parts = [Dataset(x[i:100:5], y[i:100:5]) for i in range(5)]
    return ModelGame(LogisticRegression(max_iter=200), parts, Dataset(x[100:], y[100:]), empty_score=0.5)


def _nan_scorer(model, x, y) -> float:
    return float("nan")


def _boom(members: tuple[int, ...]) -> float:
    if len(members) == 3:
        raise RuntimeError("worker exploded")
    return float(len(members))


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def processes():
    with ProcessBackend(2) as be:
        yield be


def test_exact_identical_on_every_backend(processes, dask_client) -> None:
    ref = exact_shapley(_model_game(), backend=SerialBackend())
    assert ref.evaluations == 32 and abs(ref.extra["efficiency_gap"]) < 1e-9
    for backend in (processes, dask_client):
        game = _model_game()
        res = exact_shapley(game, backend=backend)
        # exact: by construction every backend evaluates the same coalitions with the same code (BLAS pinned
        # to one thread) and the results are summed in submission order, so serial, process and Dask values
        # are bitwise identical
        np.testing.assert_array_equal(res.values, ref.values)
        assert res.evaluations == 32 and game.n_fits == 0  # fitted in the workers, not here
    loo = leave_one_out(_model_game(), backend=dask_client)
    # exact: serial and Dask backends are bitwise identical by construction (see above)
    np.testing.assert_array_equal(loo.values, leave_one_out(_model_game()).values)


def test_monte_carlo_identical_on_every_backend(processes, dask_client) -> None:
    kw = {"seed": 3, "max_evaluations": 40}
    ref = monte_carlo_shapley(_model_game(), **kw)
    for backend in (processes, dask_client):
        res = monte_carlo_shapley(_model_game(), backend=backend, **kw)
        # exact: by construction every backend evaluates the same coalitions with the same code (BLAS pinned
        # to one thread) and the results are summed in submission order, so serial, process and Dask values
        # are bitwise identical
        np.testing.assert_array_equal(res.values, ref.values)
        np.testing.assert_array_equal(res.stderr, ref.stderr)
        assert res.evaluations == ref.evaluations
    tmc = [
        monte_carlo_shapley(_model_game(), backend=b, truncation_tol=0.01, **kw).values
        for b in (None, processes)
    ]
    # exact: serial and process backends are bitwise identical by construction (same seed)
    np.testing.assert_array_equal(tmc[0], tmc[1])


def test_worker_failure_raises(processes, dask_client) -> None:
    game = FunctionGame(_boom, 5)
    for backend in (processes, dask_client):
        with pytest.raises(RuntimeError, match="worker exploded"):
            exact_shapley(game, backend=backend)
    # a field error inside a worker comes back as the same clear error
    nan_game = ModelGame(
        _model_game().estimator, _model_game().datasets, _model_game().test, scorer=_nan_scorer
    )
    with pytest.raises(InvalidMarketError, match="scorer: returned nan"):
        exact_shapley(nan_game, backend=processes)


def test_backend_arguments() -> None:
    with pytest.raises(ConfigurationError, match="backend: unknown backend"):
        exact_shapley(FunctionGame(len, 2), backend="gpu")
    with pytest.raises(ConfigurationError, match="n_workers"):
        ProcessBackend(0)
    with pytest.raises(ConfigurationError, match="backend: give exactly one"):
        DaskBackend()


def test_cli_scheduler_option_uses_dask(dask_client, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from datamarket.cli import app

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    lines = ["a,b,y"] + [f"{r[0]},{r[1]},{int(r[0] > 0)}" for r in x]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    cfg = tmp_path / "v.toml"
    cfg.write_text('[dataset]\ncsv = "d.csv"\n[sellers]\nn = 3\n[stopping]\nmax_evaluations = 20\n')
    address = dask_client.scheduler.address
    res = CliRunner().invoke(app, ["value", str(cfg), "--json", "--scheduler", address])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["config"]["backend"]["name"] == "dask" and data["model_fits"] == 0  # fitted remotely
    local = CliRunner().invoke(app, ["value", str(cfg), "--json"])
    # exact: serial and Dask backends are bitwise identical by construction (same seed)
    assert json.loads(local.stdout)["values"] == data["values"]


def test_lambda_and_closure_games_on_every_backend(processes, dask_client) -> None:
    # games are shipped with cloudpickle, so a notebook's lambda or closure works
    weights = np.array([3.0, 1.0, 2.0, 5.0])

    def closure(s: tuple[int, ...]) -> float:
        return float(weights[list(s)].sum() ** 0.5)

    for fn in (lambda s: float(len(s) ** 2), closure):
        ref = exact_shapley(FunctionGame(fn, 4))
        for backend in (processes, dask_client):
            # identical arithmetic in every process on the same table: bitwise equality holds
            np.testing.assert_array_equal(
                exact_shapley(FunctionGame(fn, 4), backend=backend).values, ref.values
            )
    mc = monte_carlo_shapley(FunctionGame(closure, 4), seed=1, max_evaluations=12, backend=processes)
    ref_mc = monte_carlo_shapley(FunctionGame(closure, 4), seed=1, max_evaluations=12)
    np.testing.assert_array_equal(mc.values, ref_mc.values)


def test_few_large_tasks_same_values(processes) -> None:
    from datamarket.valuation import control_variate_shapley, stratified_semivalue
    from datamarket.valuation.backends import TASK_MAX, TASKS_PER_WORKER, plan_chunks

    masks = list(range(10_000))
    tasks = plan_chunks(masks, 2)
    # parallel backends get TASKS_PER_WORKER tasks per worker, larger batches split at TASK_MAX
    assert len(tasks) == max(-(-len(masks) // TASK_MAX), TASKS_PER_WORKER * 2)
    assert [m for t in tasks for m in t] == masks  # every coalition once, in order
    assert len(plan_chunks(list(range(100)), 2)) == 2 * TASKS_PER_WORKER
    assert plan_chunks([], 2) == [] and plan_chunks([], 1) == []
    # a batch far larger than one task: values do not depend on how it was cut
    q = np.arange(1, 25)
    game = FunctionGame(lambda s: float(np.sqrt(q[list(s)].sum())), 24)
    for method in (
        lambda b: control_variate_shapley(game, seed=2, max_evaluations=900, quantities=q, backend=b),
        lambda b: stratified_semivalue(game, seed=2, max_evaluations=900, backend=b),
        lambda b: monte_carlo_shapley(game, seed=2, max_evaluations=900, backend=b),
    ):
        # exact: every backend evaluates the same coalitions with the same code; values are stored per
        # coalition and combined in the parent in one order, so the chunking cannot change a bit
        np.testing.assert_array_equal(method(processes).values, method(None).values)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 200_000), n_workers=st.integers(1, 64), smallest=st.integers(1, 64))
def test_guided_sizes_cover_the_batch_largest_first(n: int, n_workers: int, smallest: int) -> None:
    from datamarket.valuation.backends import GUIDE, guided_sizes

    sizes = guided_sizes(n, n_workers, smallest)
    gp = GUIDE * n_workers
    assert sum(sizes) == n and all(s > 0 for s in sizes)
    assert sizes == sorted(sizes, reverse=True)  # largest first: the last tasks handed out are small
    assert all(s >= smallest for s in sizes[:-1])
    assert not sizes or sizes[0] <= max(smallest, -(-n // gp))  # no worker takes more than its share
    # while R >= g p smallest each task removes at least R / (g p), so R falls below g p smallest
    # after at most g p ln(n / (g p smallest)) + 1 tasks; at most g p tasks of `smallest` cover the rest
    assert len(sizes) <= gp * (max(0.0, math.log(max(n, 1) / (gp * smallest))) + 1) + 1


def test_dask_guided_tasks_return_each_chunk_asked(dask_client) -> None:
    from distributed import get_task_stream

    from datamarket.valuation.backends import eval_chunk, guided_sizes

    game = FunctionGame(lambda s: float(sum(s) ** 1.5 + len(s)), 9)
    masks = list(range(1, 512))
    cuts = [0, 3, 3, 70, 71, 300, 511]  # chunk boundaries that do not fall on task boundaries; one empty
    chunks = [masks[a:b] for a, b in itertools.pairwise(cuts)]
    with DaskBackend(dask_client) as be, get_task_stream(dask_client) as ts:
        out = list(be.map_values(game, chunks))
    assert [len(v) for v in out] == [len(c) for c in chunks]
    # exact: the same function on the same coalitions in every process, results cut in submission order
    np.testing.assert_array_equal(np.concatenate(out), eval_chunk(game, masks))
    tasks = [t for t in ts.data if str(t["key"]).startswith("_dask_eval")]
    assert len(tasks) == len(guided_sizes(len(masks), 2))  # one task per guided size, not per chunk
