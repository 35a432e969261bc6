r"""Collaborative ML market with replication-robust payments (Ohrimenko et al.).

Paper: Ohrimenko, Tople and Tschiatschek, "Collaborative Machine Learning Markets with
Data-Replication-Robust Payments". Every party is seller and buyer at once: it brings training data
:math:`X_i` and a validation task :math:`V_i`, pays a fee, receives a model and is paid for its data.

Key equations
-------------
* fees :math:`A_i = c_i (1 - g_i)` from the own-model gain :math:`g_i` (Section 3, step 3);
* improvements :math:`a_i = c_i(\mathcal{G}(V_i; \mathcal{M}^i) - g_i)`, pot :math:`\mathbf a = \sum_i a_i`;
* Shapley values (eq. 1) of the characteristic function ``u``, ``v`` (Section 4.1) or ``w`` (Section 4.2),
  normalised shares :math:`\hat\psi_i`, payouts :math:`b_i = \mathbf a\,\hat\psi_i`, amount returned
  :math:`t_i = (A_i - a_i) + b_i` (Section 3, step 5); customised training for ``w``: Section 5, eq. (2);
* robustness to replication: Condition 1 / Theorem 1, checked on measured models.

Entry points
------------
:class:`Party`, :class:`CollaborativeConfig`, :func:`clear_round` (one round, a
:class:`CollaborativeRound` with an ``Outcome``), :func:`validate_market`, :func:`replication_gain`
(Condition 1), :func:`select_samples` (Section 5, data selection), :func:`build_market` (seeded splits of a
labelled pool), :class:`GainEngine` / :class:`MarketGame` (the characteristic functions), ``MECHANISMS``.

Modules: ``_types`` (parties, configuration, results, payment division), ``_games`` (gain engine and
games), ``_data`` (market construction from a pool), ``_mechanism`` (the round, replication, selection,
declared guarantees), ``_certificate`` (:func:`round_certificate`, :func:`certified_round`: the checks of a
round's claims).

>>> import numpy as np
>>> from datamarket.core.types import Dataset
>>> rng = np.random.default_rng(0)
>>> x0, x1 = rng.normal(0, 0.3, size=(20, 2)), rng.normal(1, 0.3, size=(20, 2))
>>> y0, y1 = np.zeros(20, dtype=int), np.ones(20, dtype=int)
>>> task = Dataset(np.vstack([x0[10:], x1[10:]]), np.concatenate([y0[10:], y1[10:]]))
>>> parties = [Party("a", Dataset(x0[:10], y0[:10]), task), Party("b", Dataset(x1[:10], y1[:10]), task)]
>>> r = clear_round(parties, CollaborativeConfig(characteristic="v"), seed=0)
>>> r.share.round(3).tolist(), r.balance_residual < 1e-9
([0.5, 0.5], True)
"""

from datamarket.mechanisms.collaborative._certificate import (
    certified_round,
    characteristic_table,
    coalition_gain_table,
    round_certificate,
)
from datamarket.mechanisms.collaborative._data import SplitMarket, build_market, random_pair_holdings
from datamarket.mechanisms.collaborative._games import (
    Characteristic,
    GainEngine,
    MarketGame,
    SampleGame,
    content_id,
    member_matrix,
    v_table,
    w_table,
)
from datamarket.mechanisms.collaborative._mechanism import (
    MECHANISMS,
    ReplicationReport,
    SampleSelection,
    clear_round,
    replicate,
    replication_gain,
    select_samples,
)
from datamarket.mechanisms.collaborative._types import (
    PAPER,
    CollaborativeConfig,
    CollaborativeRound,
    Customise,
    Party,
    PropertyCheck,
    ShapleyMethod,
    divide_payments,
    normalise_shares,
    round_checks,
    validate_market,
)

__all__ = [
    "MECHANISMS",
    "PAPER",
    "Characteristic",
    "CollaborativeConfig",
    "CollaborativeRound",
    "Customise",
    "GainEngine",
    "MarketGame",
    "Party",
    "PropertyCheck",
    "ReplicationReport",
    "SampleGame",
    "SampleSelection",
    "ShapleyMethod",
    "SplitMarket",
    "build_market",
    "certified_round",
    "characteristic_table",
    "clear_round",
    "coalition_gain_table",
    "content_id",
    "divide_payments",
    "member_matrix",
    "normalise_shares",
    "random_pair_holdings",
    "replicate",
    "replication_gain",
    "round_certificate",
    "round_checks",
    "select_samples",
    "v_table",
    "validate_market",
    "w_table",
]
