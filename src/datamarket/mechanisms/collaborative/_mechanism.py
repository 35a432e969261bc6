r"""Collaborative ML market with replication-robust payments (Ohrimenko et al.).

Ohrimenko, Tople, Tschiatschek, *Collaborative Machine Learning Markets with Data-Replication-Robust
Payments* (arXiv:1911.09052), with the corrections listed below.

Parties are sellers and buyers at once: party :math:`i` brings training data :math:`X_i` and a
validation task :math:`V_i`, pays a fee, receives a model and is paid for its data.

Algorithm (one round, :func:`clear_round`; paper Sec. 3, Sec. 4.1, Sec. 4.2, Sec. 5)
-----------------------------------------------------------------------------
1. Validate every party (empty data, task labels outside the market's label set, feature dimension,
   negative fee scale) before any model is fitted.
2. Own models :math:`\mathcal{M}(X_i)`, own gains :math:`g_i = \mathcal{G}(V_i; \mathcal{M}(X_i))`,
   fees :math:`A_i = c_i (1 - g_i)` (Sec. 3 step 3).
3. Optional data selection (Sec. 5): per task, normalised Shapley values of
   :math:`u_i(S) = \mathcal{G}(V_i; \mathcal{M}_S)`; :math:`D_i = \{j : \hat\psi(u_i, j) \ge \tau\}`
   (``D_i = {i}`` when empty).
4. Delivered models :math:`\mathcal{M}^i`: standard training on :math:`\oplus_{k \in D_i} X_k`, or the
   customised training of Sec. 5 eq. (2) (:mod:`datamarket.learning.customised`) for ``"w"``. Improvements
   :math:`a_i = c_i(\mathcal{G}(V_i; \mathcal{M}^i) - g_i)` (the paper writes the fee with and
   without :math:`c`; both terms keep it), pot
   :math:`\mathbf{a} = \sum_i a_i`.
5. Shapley values (eq. (1)) of the characteristic function ``u``, ``v`` (Sec. 4.1) or ``w``
   (Sec. 4.2), exact up to ``max_exact`` parties (:func:`~datamarket.valuation.exact_shapley`,
   :math:`2^M` coalitions, each fitted once), Monte Carlo beyond
   (:func:`~datamarket.valuation.monte_carlo_shapley`, antithetic permutations stratified by position,
   optional truncation); normalised
   :math:`\hat\psi_i = \psi_i / \sum_j \psi_j`, so the shares sum to one and
   balance holds exactly with sampled values too.
6. Payouts :math:`b_i = \mathbf{a}\,\hat\psi_i`, amount returned :math:`t_i = (A_i - a_i) + b_i`, net gain
   :math:`t_i - A_i = b_i - a_i` (Sec. 3 step 5).
7. Property checks: balance :math:`\sum_i (t_i - A_i) = 0`, symmetry, zero-element buyer, :math:`b_i \ge 0`.

Deviations from the printed paper
-------------------------------------------------------
* Zero-element guard (``guard=True``, the default): the delivered model is the better of
  :math:`\mathcal{M}^i` and the own model on :math:`V_i` (so :math:`a_i \ge 0`), and shares are clipped,
  :math:`\hat\psi^+ = \max(\hat\psi, 0) / \sum \max(\hat\psi, 0)`; this keeps balance and gives a
  zero-element buyer :math:`t_i \ge A_i`, which the paper claims but does not guarantee. ``guard=False``
  is the paper's raw rule.
* Robustness to replication is checked with the k-replica form of Condition 1 on measured
  models (:func:`replication_gain`); Theorem 1 needs supermodularity and fails without it (market C).
* The subtracted own-model term of ``v``/``w`` is always :math:`g_j`, also when selection drops
  party :math:`j`.

Outcome mapping: role PARTY for everybody; ``prices`` = fee :math:`A_i`, ``payments`` = amount returned
:math:`t_i` (what the market pays back; the JSON ``payout`` is :math:`b_i`, Ohrimenko et al., Sec. 4.1),
``values`` =
gain :math:`a_i`, ``allocated`` = accuracy of the delivered model.
The platform keeps :math:`\sum A_i - \sum t_i = \mathbf{a} - \sum b_i = 0` (strong budget balance).

A worked example (two parties, one shared task) is in the package overview,
:mod:`datamarket.mechanisms.collaborative`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.audits import MechanismInfo, Property, Sample
from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.progress import Progress, report, scaled
from datamarket.core.random import make_rng, spawn_seeds
from datamarket.core.types import Dataset, Outcome, Role
from datamarket.learning.models import ModelSpec
from datamarket.mechanisms.collaborative._games import (
    Characteristic,
    GainEngine,
    MarketGame,
    content_id,
)
from datamarket.mechanisms.collaborative._types import (
    PAPER,
    CollaborativeConfig,
    CollaborativeRound,
    Party,
    PropertyCheck,
    divide_payments,
    normalise_shares,
    round_checks,
    validate_market,
)
from datamarket.valuation import MaxPermutations, ProgressInfo, exact_shapley, monte_carlo_shapley


# -- the round -------------------------------------------------------------------------------------
def _shapley(
    game: MarketGame,
    config: CollaborativeConfig,
    seed: np.random.SeedSequence,
    progress: Progress | None = None,
    stage: str = "shapley",
) -> tuple[NDArray[np.float64], NDArray[np.float64], str]:
    def batch_done(info: ProgressInfo) -> None:  # after each batch of coalition fits
        report(progress, stage, info.fraction)

    each_batch = None if progress is None else batch_done
    exact = config.shapley == "exact" or (config.shapley == "auto" and game.n_players <= config.max_exact)
    if exact:
        if game.n_players > 20:
            raise InvalidMarketError("shapley", "exact Shapley values need at most 20 parties")
        res = exact_shapley(game, progress=each_batch)
        return np.asarray(res.values), np.zeros(game.n_players), "exact"
    res = monte_carlo_shapley(
        game,
        seed=int(seed.generate_state(1)[0]),
        stopping=MaxPermutations(int(config.n_permutations)),
        truncation_tol=config.truncation_tol or None,
        progress=each_batch,
    )
    return np.asarray(res.values), np.asarray(res.stderr), "monte_carlo"


def _delivered_gain(
    engine: GainEngine,
    parties: Sequence[Party],
    ids: Sequence[str],
    task_of: Sequence[int],
    selected: Sequence[int],
    i: int,
    config: CollaborativeConfig,
    labels: tuple[Any, ...],
) -> float:
    members = [k for k in range(len(parties)) if selected[i] >> k & 1]
    if config.customise == "none" or config.lam == 0:
        return float(engine.gains([ids[k] for k in members])[task_of[i]])
    from datamarket.learning.customised import CustomisedLogisticRegression

    x, y = engine.training_set([ids[k] for k in members])
    own = engine.tasks[task_of[i]]
    penalty = [engine.tasks[t] for t in sorted(set(task_of)) if t != task_of[i]]
    model = CustomisedLogisticRegression(
        lam=config.lam,
        C=config.model.C,
        mask_own_labels=config.customise == "masked",
        classes=labels,
        max_iter=config.model.max_iter,
        tol=config.model.tol,
    ).fit(x, y, penalty, own_labels=np.unique(own[1]).tolist())
    return float(np.mean(model.predict(own[0]) == own[1]))


def clear_round(
    parties: Sequence[Party],
    config: CollaborativeConfig,
    *,
    seed: int,
    engine: GainEngine | None = None,
    progress: Progress | None = None,
) -> CollaborativeRound:
    """Run one round of the collaborative market (steps 1-7 of the module docstring).

    ``engine`` lets a caller share fitted coalition models between rounds over the same tasks (the
    replication harness does); by default each round builds its own and keeps nothing. BLAS is pinned
    to one thread for the round (STYLE practice 8: oversubscription makes small fits 10-100x slower).
    ``progress`` (:mod:`datamarket.core.progress`) is called per stage and after each batch of
    coalition fits of the Shapley estimates, with the fraction of the round done; it does not change
    the result.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _clear_round(parties, config, seed=seed, engine=engine, progress=progress)


def _clear_round(
    parties: Sequence[Party],
    config: CollaborativeConfig,
    *,
    seed: int,
    engine: GainEngine | None,
    progress: Progress | None = None,
) -> CollaborativeRound:
    """The steps of :func:`clear_round` (module docstring), BLAS threads already pinned."""
    t0 = time.perf_counter()
    report(progress, "own models", 0.0)
    tasks, task_of, labels = validate_market(parties, config)
    engine, task_of = _engine_for(engine, config, tasks, task_of)
    fits0, hits0 = engine.fits, engine.cache_hits
    n = len(parties)
    names = tuple(p.name for p in parties)
    streams = spawn_seeds(seed, len(engine.tasks) + 1)
    ids = [engine.register(p.train.features, np.asarray(p.train.labels)) for p in parties]
    own = np.array([engine.gains([ids[i]])[task_of[i]] for i in range(n)])
    full = (1 << n) - 1
    selected, selection_share, evaluations = _select_data(
        engine, ids, task_of, own, names, config, streams, progress
    )
    report(progress, "delivered models", 0.45)
    final = _delivered(engine, parties, ids, task_of, selected, config, labels, own)
    # step 5: Shapley values of the payoff characteristic
    game = MarketGame(engine, ids, task_of, own, selected, config.characteristic, names)
    psi, psi_se, method = _shapley(game, config, streams[-1], scaled(progress, 0.55, 1.0), "shapley")
    evaluations += len(game._memo)
    raw_share, share, div, residual, checks = _divide(parties, ids, task_of, config, own, final, psi)
    return CollaborativeRound(
        outcome=_outcome(config, names, final, div, share, residual, checks),
        names=names,
        characteristic=config.characteristic,
        fee=div["fee"],
        gain=div["gain"],
        reward=div["reward"],
        payout=div["payout"],
        net=div["net"],
        share=share,
        raw_share=raw_share,
        shapley=psi,
        shapley_stderr=psi_se,
        grand_value=game.value(full),
        own_accuracy=own,
        delivered_accuracy=final,
        selected=tuple(tuple(j for j in range(n) if s >> j & 1) for s in selected),
        selection_share=selection_share,
        balance_residual=residual,
        checks=checks,
        method=method,
        fits=engine.fits - fits0,
        cache_hits=engine.cache_hits - hits0,
        evaluations=evaluations,
        elapsed=time.perf_counter() - t0,
    )


def _delivered(
    engine: GainEngine,
    parties: Sequence[Party],
    ids: list[str],
    task_of: list[int],
    selected: list[int],
    config: CollaborativeConfig,
    labels: tuple[Any, ...],
    own: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Step 4: delivered models and improvements (never below the party's own under the guard)."""
    final = np.array(
        [_delivered_gain(engine, parties, ids, task_of, selected, i, config, labels) for i in range(len(ids))]
    )
    if config.guard:
        final = np.maximum(final, own)
    return final


def _engine_for(
    engine: GainEngine | None, config: CollaborativeConfig, tasks: list[Dataset], task_of: list[int]
) -> tuple[GainEngine, list[int]]:
    """A new gain engine for the market's tasks, or the shared one checked to evaluate them (``task_of``
    renumbered to its tasks)."""
    if engine is None:
        return GainEngine(config.model, [(t.features, np.asarray(t.labels)) for t in tasks]), task_of
    if engine.model != config.model:
        raise ConfigurationError("engine", "the shared gain engine was built for a different model")
    known = [content_id(tx, ty) for tx, ty in engine.tasks]
    missing = [t for t in tasks if content_id(t.features, np.asarray(t.labels)) not in known]
    if missing:
        raise ConfigurationError(
            "engine", "the shared gain engine does not evaluate every task of the market"
        )
    remap = [known.index(content_id(t.features, np.asarray(t.labels))) for t in tasks]
    return engine, [remap[t] for t in task_of]


def _select_data(
    engine: GainEngine,
    ids: list[str],
    task_of: list[int],
    own: NDArray[np.float64],
    names: tuple[str, ...],
    config: CollaborativeConfig,
    streams: Any,
    progress: Progress | None,
) -> tuple[list[int], tuple[tuple[float, ...], ...] | None, int]:
    """Step 3: data selection per distinct task. The coalition each party's model is trained on, the
    normalised Shapley shares behind the selection (``None`` without ``tau``) and the evaluations."""
    n = len(ids)
    full = (1 << n) - 1
    selected = [full] * n
    if config.tau is None:
        return selected, None, 0
    evaluations = 0
    per_task: dict[int, NDArray[np.float64]] = {}
    distinct = sorted(set(task_of))
    for k, t in enumerate(distinct):
        game_u = MarketGame(engine, ids, task_of, own, [full] * n, "u", names, task=t)
        part = scaled(progress, 0.05 + 0.4 * k / len(distinct), 0.05 + 0.4 * (k + 1) / len(distinct))
        psi_u, _, _ = _shapley(game_u, config, streams[t], part, "data selection")
        evaluations += len(game_u._memo)
        per_task[t] = normalise_shares(psi_u)
    selection_share = tuple(tuple(float(v) for v in per_task[task_of[i]]) for i in range(n))
    for i in range(n):
        keep = [j for j in range(n) if per_task[task_of[i]][j] >= config.tau]
        selected[i] = sum(1 << j for j in keep) if keep else 1 << i
    return selected, selection_share, evaluations


_Division = dict[str, NDArray[np.float64]]  # fee, gain, reward, payout, net per party


def _divide(
    parties: Sequence[Party],
    ids: list[str],
    task_of: list[int],
    config: CollaborativeConfig,
    own: NDArray[np.float64],
    final: NDArray[np.float64],
    psi: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], _Division, float, dict[str, PropertyCheck]]:
    """Steps 5-6: the shares (clipped under the guard), the payment division, its balance residual and
    the checks of the round."""
    raw_share = normalise_shares(psi)
    share = normalise_shares(psi, clip=True) if config.guard else raw_share
    c = config.c * np.array([float(p.fee_scale) for p in parties])
    div = divide_payments(own, final, share, c)
    residual = abs(float(div["net"].sum()))
    checks = round_checks(parties, ids, task_of, div, residual)
    return raw_share, share, div, residual, checks


def _outcome(
    config: CollaborativeConfig,
    names: tuple[str, ...],
    final: NDArray[np.float64],
    div: _Division,
    share: NDArray[np.float64],
    residual: float,
    checks: dict[str, PropertyCheck],
) -> Outcome:
    return Outcome(
        mechanism=f"collaborative-{config.characteristic}",
        participants=names,
        roles=tuple(Role.PARTY for _ in names),
        allocated=final,
        prices=div["fee"],
        payments=div["payout"],
        values=div["gain"],
        extra={
            "characteristic": config.characteristic,
            "guard": config.guard,
            "shares": share,
            "rewards": div["reward"],
            "balance_residual": residual,
            "checks": {k: v.to_dict() for k, v in checks.items()},
        },
    )


# -- replication harness -----------------------------------------------------------------
def replicate(parties: Sequence[Party], index: int, k: int) -> list[Party]:
    """The market where party ``index`` adds ``k`` replicas (new identities, same data and task)."""
    if not 0 <= index < len(parties):
        raise InvalidMarketError("replication.party", f"no party {index}")
    if k < 0:
        raise InvalidMarketError("replication.replicas", "must be non-negative")
    p = parties[index]
    return [*parties, *(Party(f"{p.name}~{j + 1}", p.train, p.task, p.fee_scale) for j in range(k))]


@dataclass(frozen=True)
class ReplicationReport:
    r"""Replication attack of one party with ``k`` replicas (Ohrimenko et al., Sec. 4.1).

    ``original_net`` :math:`t = \hat\psi(i)\mathbf{a} - a_i`; ``combined_net`` :math:`t^R`, the summed net
    gain of the party and its replicas, measured; ``replicated_share`` :math:`\hat\psi^R(i)`; ``bound`` the
    right side of the k-replica Condition 1, :math:`(\hat\psi(i)\mathbf{a} + k a_i)/((k+1)\mathbf{a}^R)`
    with the measured pot :math:`\mathbf{a}^R` (equal to 's form when
    :math:`\mathbf{a}^R = \mathbf{a} + k a_i`); ``condition_1`` is :math:`t^R \le t`.
    """

    party: str
    replicas: int
    original_net: float
    combined_net: float
    original_share: float
    replicated_share: float
    bound: float
    condition_1: bool


def replication_gain(
    parties: Sequence[Party],
    config: CollaborativeConfig,
    index: int,
    ks: Sequence[int],
    *,
    seed: int,
    engine: GainEngine | None = None,
) -> list[ReplicationReport]:
    """Condition 1 (generalised to k replicas) for party ``index`` and every ``k`` in ``ks``.

    One gain engine serves the original and every replicated market, so replicated coalitions reuse the
    fits of equal training multisets; pass ``engine`` to share it further (e.g. across u, v and w).
    """
    tasks, _, _ = validate_market(parties, config)
    if engine is None:
        engine = GainEngine(config.model, [(t.features, np.asarray(t.labels)) for t in tasks])
    base = clear_round(parties, config, seed=seed, engine=engine)
    a, a_i = float(base.gain.sum()), float(base.gain[index])
    t = float(base.net[index])
    out = []
    for k in ks:
        rep = replicate(parties, index, int(k))
        r = base if k == 0 else clear_round(rep, config, seed=seed, engine=engine)
        group = [index, *range(len(parties), len(rep))]
        t_r = float(r.net[group].sum())
        a_r = float(r.gain.sum())
        bound = (base.share[index] * a + k * a_i) / ((k + 1) * a_r) if abs(a_r) > 1e-15 else float("inf")
        out.append(
            ReplicationReport(
                party=parties[index].name,
                replicas=int(k),
                original_net=t,
                combined_net=t_r,
                original_share=float(base.share[index]),
                replicated_share=float(r.share[index]),
                bound=float(bound),
                condition_1=bool(t_r <= t + 1e-12),
            )
        )
    return out


# -- mechanism contract ----------------------------------------------------------------------------
def _blob_market(seed: int, multi: bool) -> list[Party]:
    """Four parties on three Gaussian classes in 2-d; the last party replicates the first."""
    rng = make_rng(seed)
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])

    def draw(labels: Sequence[int], m: int) -> Dataset:
        y = np.repeat(np.asarray(labels), m)
        return Dataset(centres[y] + rng.normal(0.0, 0.7, size=(y.size, 2)), y)

    holdings = [(0, 1), (1, 2), (0, 2)]
    common = draw((0, 1, 2), 10)
    tasks = [draw(t, 10) for t in holdings] if multi else [common] * 3
    parties = [Party(f"p{i}", draw(h, 8), t) for i, (h, t) in enumerate(zip(holdings, tasks, strict=True))]
    return [*parties, Party("p0-copy", parties[0].train, parties[0].task)]


def _sample(characteristic: Characteristic) -> Any:
    def sample(seed: int) -> Sample:
        config = CollaborativeConfig(characteristic=characteristic, model=ModelSpec("logreg", max_iter=100))
        return Sample(clear_round(_blob_market(seed, characteristic == "w"), config, seed=seed).outcome)

    return sample


_GUARANTEES = frozenset({Property.BUDGET_BALANCE_STRONG, Property.BUDGET_BALANCE_WEAK, Property.IR_SELLER})
MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name="collaborative-v",
        paper=PAPER + " (Sec. 4.1)",
        guarantees=_GUARANTEES,
        sample=_sample("v"),
        description="single-task collaborative market, Shapley division by v, zero-element guard on",
        notes={"ir_seller": "amount returned t_i >= 0 under the guard (b_i >= 0)", "ir_buyer": "not claimed"},
    ),
    MechanismInfo(
        name="collaborative-w",
        paper=PAPER + " (Sec. 4.2)",
        guarantees=_GUARANTEES,
        sample=_sample("w"),
        description="multi-task collaborative market, Shapley division by w, zero-element guard on",
        notes={"ir_seller": "amount returned t_i >= 0 under the guard (b_i >= 0)", "ir_buyer": "not claimed"},
    ),
)


@dataclass(frozen=True)
class SampleSelection:
    """Sample-level data selection (Ohrimenko et al., Sec. 5): normalised values, standard errors, kept
    rows."""

    share: NDArray[np.float64]
    stderr: NDArray[np.float64]
    kept: tuple[int, ...]
    fits: int


def select_samples(
    train: Dataset,
    task: Dataset,
    model: ModelSpec,
    *,
    tau: float,
    seed: int,
    n_permutations: int = 100,
    truncation_tol: float = 0.0,
) -> SampleSelection:
    r"""Sample-level training-data selection (Ohrimenko et al., Sec. 5).

    Truncated Monte Carlo Shapley values (:func:`~datamarket.valuation.monte_carlo_shapley`, every
    player sampled in at least ``n_permutations`` permutations) of the data points of ``train`` for
    :math:`u(S) = \mathcal{G}(V; \mathcal{M}(S))`, normalised, and the rows with
    :math:`\hat\psi_j \ge \tau` (an empty selection is returned as such). Cost: one fit per distinct
    coalition touched; ``truncation_tol`` is relative (a permutation stops once
    :math:`|u(N) - u(S)| \le` tol :math:`|u(N)|`).
    """
    from datamarket.mechanisms.collaborative._games import SampleGame

    if train.labels is None or task.labels is None:
        raise InvalidMarketError("train", "sample-level selection needs labelled data and task")
    if train.n_features != task.n_features:
        raise InvalidMarketError("task.features", "feature dimension differs from the training data")
    game = SampleGame(
        model, train.features, np.asarray(train.labels), (task.features, np.asarray(task.labels))
    )
    with _single_blas():
        res = monte_carlo_shapley(
            game,
            seed=seed,
            stopping=MaxPermutations(int(n_permutations)),
            truncation_tol=truncation_tol or None,
        )
    est = np.asarray(res.values)
    share = normalise_shares(est)
    total = float(est.sum())
    scale = abs(total) if abs(total) > 1e-12 else 1.0
    kept = tuple(int(j) for j in np.flatnonzero(share >= tau))
    return SampleSelection(share, np.asarray(res.stderr) / scale, kept, game.fits)


def _single_blas() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
