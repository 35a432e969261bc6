r"""Certificate of a collaborative round (Ohrimenko, Tople, Tschiatschek, arXiv:1911.09052).

What a :class:`~datamarket.mechanisms.collaborative.CollaborativeRound` claims, and the check of each
claim (:mod:`datamarket.core.certificates`):

``shapley.efficiency``
    *The Shapley values (eq. 1) divide* :math:`f(\mathbf M) - f(\emptyset)` of the characteristic
    ``u``, ``v`` (Sec. 4.1) or ``w`` (Sec. 4.2); so the normalisation :math:`\psi/\sum_j\psi_j` used for
    the shares is the paper's :math:`\psi / v(\mathbf M)` (Sec. 4.1 "normalized using 1/v(M)"). A
    Monte Carlo estimate (stratified permutations, not telescoping) is allowed :data:`MC_SIGMAS`
    times the sum of its standard errors.
``shapley.recomputed`` (exact rounds, given the coalition gains)
    *The values are eq. (1) of the characteristic*: the value table rebuilt from the coalition gains
    :math:`\mathcal G(V_i; \mathcal M^i_S)` by the vectorised closed forms :func:`~._games.v_table` /
    :func:`~._games.w_table` (a path independent of :meth:`MarketGame.value`), Shapley values by the
    subset formula with exactly rounded sums; also :math:`f(\mathbf M)` against ``grand_value``.
``shares.normalised``
    :math:`\hat\psi = \psi/\sum\psi` (clipped and renormalised under the guard) and :math:`\sum\hat\psi = 1`.
``fees.closed_form``
    *Fees* :math:`A_i = c_i(1 - g_i)` (Sec. 3 step 3) and improvements :math:`a_i = c_i(G_i - g_i)`.
``payouts.closed_form``
    *Payouts* :math:`b_i = \mathbf a\hat\psi_i`, amount returned :math:`t_i = (A_i - a_i) + b_i`, net
    :math:`t_i - A_i` (Sec. 3 step 5).
``payouts.pot``
    *The pot is distributed*: :math:`\sum_i b_i = \mathbf a = \sum_i a_i` (Sec. 3 step 5).
``budget.balance``
    *Strong budget balance*: fees collected :math:`\sum_i A_i` equal amounts returned :math:`\sum_i t_i`.
``ir.nonnegative_payout``, ``ir.returned_nonnegative``, ``guard.improvement_nonnegative`` (guard on)
    :math:`b_i \ge 0`, :math:`t_i \ge 0` (the declared seller IR) and :math:`a_i \ge 0` (the delivered
    model is the better of pooled and own, so a zero-element party gets :math:`t_i \ge A_i`).

Robustness to replication (Condition 1, Theorem 1) is *measured* by the replication harness and
reported with its outcome (``condition_1`` may be false, market C): no result claims it, so no check.

Tolerances follow from floating point: ``terms`` roundings on numbers of magnitude ``scale`` are trusted
to :func:`fp_tol` :math:`= 8\,\mathrm{terms}\,\varepsilon\max(1,\mathrm{scale})` (Higham 2002,
Thm 3.1 for sums; 8 absorbs its constant). Accuracies lie in [0, 1], so values are at most ``2M``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datamarket.core.certificates import Certificate, Check, max_residual
from datamarket.core.progress import Progress
from datamarket.core.types import FloatArray
from datamarket.mechanisms.collaborative._games import GainEngine, v_table, w_table
from datamarket.mechanisms.collaborative._types import (
    CollaborativeConfig,
    CollaborativeRound,
    Party,
    normalise_shares,
    validate_market,
)
from datamarket.valuation import subset_shapley

EPS = float(np.finfo(np.float64).eps)
SAFETY = 8.0  # the constant of the summation error bound (Higham 2002, Thm 3.1)
MC_SIGMAS = 5.0  # a Monte Carlo estimate may miss efficiency by this many (summed) standard errors


def fp_tol(terms: float, scale: float) -> float:
    """``SAFETY * terms * eps * max(1, scale)`` (module docstring)."""
    return SAFETY * max(1.0, float(terms)) * EPS * max(1.0, float(scale))


def characteristic_table(characteristic: str, gains: FloatArray, own: FloatArray) -> FloatArray:
    """``u``, ``v`` or ``w`` on every mask from ``gains[i, mask]`` :math:`= \\mathcal G(V_i;\\mathcal M^i_S)`
    (``v`` needs only party 0's row: the common task with its selection)."""
    gains = np.asarray(gains, dtype=np.float64)
    if characteristic == "v":
        return v_table(gains[0], own)
    if characteristic == "w":
        return w_table(gains, own)
    out: FloatArray = gains.mean(axis=0)
    return out


def _list(x: Any) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def _compare(name: str, claim: str, method: str, reported: Any, recomputed: Any, tol: float) -> Check:
    rep, rec = np.asarray(reported, dtype=np.float64), np.asarray(recomputed, dtype=np.float64)
    diff = np.abs(rep - rec)
    detail = {"reported": _list(rep), "recomputed": _list(rec), "difference": _list(diff)}
    return Check(name, claim, method, max_residual(diff), tol, detail)


def _check_shapley(rnd: CollaborativeRound, gains: FloatArray | None) -> list[Check]:
    psi, se = np.asarray(rnd.shapley, dtype=np.float64), np.asarray(rnd.shapley_stderr, dtype=np.float64)
    n = psi.shape[0]
    scale = 2.0 * n + 1.0  # |u| <= 1, |v| <= M + 1, |w| <= 2M: accuracies lie in [0, 1]
    exact = rnd.method == "exact"
    # 2^(n-1) weighted marginals per party, n parties summed for efficiency
    tol_one = fp_tol(2**n, scale)
    mc = 0.0 if exact else MC_SIGMAS * float(np.sum(se))
    gap = abs(math.fsum(_list(psi)) - float(rnd.grand_value))
    eff = Check(
        "shapley.efficiency",
        f"the Shapley values of {rnd.characteristic} sum to f(M) - f(empty) (eq. 1), so psi / sum psi"
        " is the paper's psi / f(M)",
        f"sum of the {rnd.method} values against the grand coalition's value"
        + ("" if exact else f"; {MC_SIGMAS:g} x the summed standard errors allowed"),
        max(0.0, gap - mc),
        n * tol_one,
        {"shapley": _list(psi), "stderr": _list(se), "grand_value": float(rnd.grand_value)},
    )
    if gains is None or not exact:
        return [eff]
    table = characteristic_table(rnd.characteristic, gains, rnd.own_accuracy)
    rec = _compare(
        "shapley.recomputed",
        f"the values are the Shapley values (eq. 1) of {rnd.characteristic} and f(M) is grand_value",
        "value table rebuilt from the coalition gains by the vectorised v/w forms, subset formula with"
        " exact sums",
        [*_list(psi), float(rnd.grand_value)],
        [*_list(subset_shapley(table)), float(table[-1])],
        tol_one,
    )
    return [eff, rec]


def _check_shares(rnd: CollaborativeRound, guard: bool) -> Check:
    raw = normalise_shares(np.asarray(rnd.shapley, dtype=np.float64))
    want = normalise_shares(np.asarray(rnd.shapley, dtype=np.float64), clip=True) if guard else raw
    share = np.asarray(rnd.share, dtype=np.float64)
    n = share.shape[0]
    chk = _compare(
        "shares.normalised",
        "shares are psi / sum psi" + (" clipped at 0 and renormalised (guard)" if guard else "") + ", sum 1",
        "shares recomputed from the Shapley values; last entry: sum of the shares",
        [*_list(share), math.fsum(_list(share))],
        [*_list(want), 1.0],
        fp_tol(2 * n, float(np.max(np.abs(share), initial=1.0))),
    )
    return chk


def _check_fees(rnd: CollaborativeRound, c: FloatArray) -> Check:
    fee = c * (1.0 - rnd.own_accuracy)
    gain = c * (rnd.delivered_accuracy - rnd.own_accuracy)
    return _compare(
        "fees.closed_form",
        "fees A_i = c_i (1 - g_i) and improvements a_i = c_i (G_i - g_i) (Sec. 3 step 3)",
        "recomputed from the own and delivered accuracies; fees first, then improvements",
        [*_list(rnd.fee), *_list(rnd.gain)],
        [*_list(fee), *_list(gain)],
        fp_tol(2, float(np.max(c, initial=0.0))),  # one subtraction and one product each
    )


def _check_payouts(rnd: CollaborativeRound) -> list[Check]:
    n = rnd.fee.shape[0]
    pot = math.fsum(_list(rnd.gain))
    reward = pot * np.asarray(rnd.share)
    returned = (rnd.fee - rnd.gain) + reward
    size = float(np.sum(np.abs(rnd.fee)) + np.sum(np.abs(rnd.gain)) + np.sum(np.abs(rnd.reward)))
    closed = _compare(
        "payouts.closed_form",
        "payouts b_i = a psi_i, returned t_i = (A_i - a_i) + b_i, net t_i - A_i (Sec. 3 step 5)",
        "recomputed from fees, improvements and shares; b, then t, then net",
        [*_list(rnd.reward), *_list(rnd.payout), *_list(rnd.net)],
        [*_list(reward), *_list(returned), *_list(returned - rnd.fee)],
        fp_tol(n + 3, size),  # the pot sums n terms; t and net add three roundings
    )
    dist = math.fsum(_list(rnd.reward))
    pot_check = Check(
        "payouts.pot",
        "the payouts distribute the pot: sum_i b_i = a = sum_i a_i (Sec. 3 step 5)",
        "exact sums of the payouts and of the improvements",
        abs(dist - pot),
        fp_tol(2 * n, size),  # b_i = a psi_i (n roundings) and sum psi = 1 up to n roundings
        {"payout": _list(rnd.reward), "gain": _list(rnd.gain), "sum_payout": dist, "pot": pot},
    )
    collected, paid = math.fsum(_list(rnd.fee)), math.fsum(_list(rnd.payout))
    balance = Check(
        "budget.balance",
        "fees collected equal amounts returned: sum A_i = sum t_i (strong budget balance)",
        "exact sums of the fees and of the amounts returned",
        abs(collected - paid),
        fp_tol(4 * n, size),  # t_i carries three roundings and the pot's n
        {"fee": _list(rnd.fee), "returned": _list(rnd.payout), "collected": collected, "paid": paid},
    )
    return [closed, pot_check, balance]


def _check_guard(rnd: CollaborativeRound) -> list[Check]:
    size = float(np.max(np.abs(rnd.fee)) + np.max(np.abs(rnd.gain)) + np.max(np.abs(rnd.reward)))
    tol = fp_tol(3, size)  # t_i = (A_i - a_i) + b_i: three roundings
    rows = (
        ("ir.nonnegative_payout", "every payout b_i >= 0 (shares clipped at 0, pot >= 0)", -rnd.reward),
        ("ir.returned_nonnegative", "every amount returned t_i >= 0 (seller IR of the outcome)", -rnd.payout),
        (
            "guard.improvement_nonnegative",
            "every improvement a_i >= 0 (the delivered model is the better of pooled and own), so a"
            " zero-element party gets t_i >= A_i",
            -rnd.gain,
        ),
    )
    return [
        Check(
            name,
            claim,
            "per party, under the zero-element guard",
            max_residual(neg),
            tol,
            {"value": _list(-neg)},
        )
        for name, claim, neg in rows
    ]


def round_certificate(
    rnd: CollaborativeRound,
    fee_constants: Any,
    *,
    guard: bool,
    coalition_gains: FloatArray | None = None,
) -> Certificate:
    """The checks of every claim of ``rnd`` (module docstring); pure, no I/O.

    ``fee_constants`` are the :math:`c_i` (``config.c`` times each party's fee scale);
    ``coalition_gains[i, mask]`` :math:`= \\mathcal G(V_i; \\mathcal M^i_S)` (selection applied; one row,
    party 0's, suffices for ``v``) enables ``shapley.recomputed`` (:func:`coalition_gain_table`).
    """
    c = np.broadcast_to(np.asarray(fee_constants, dtype=np.float64), rnd.fee.shape)
    checks = [*_check_shapley(rnd, coalition_gains), _check_shares(rnd, guard), _check_fees(rnd, c)]
    checks += _check_payouts(rnd)
    if guard:
        checks += _check_guard(rnd)
    return Certificate.of(*checks)


def coalition_gain_table(
    engine: GainEngine, parties: Sequence[Party], config: CollaborativeConfig, rnd: CollaborativeRound
) -> FloatArray:
    """``G(V_i; M^i_S)`` for every party (party 0 only for ``v``) and mask, from ``engine``'s cache.

    ``engine`` must be the one the round was cleared with (built on the tasks of
    :func:`validate_market` in that order): every coalition the exact Shapley values touched is cached,
    so this fits no model for ``u`` and ``v``, and for ``w`` at most those of selections not evaluated.
    """
    _, task_of, _ = validate_market(parties, config)
    ids = [engine.register(p.train.features, np.asarray(p.train.labels)) for p in parties]
    selected = [sum(1 << j for j in sel) for sel in rnd.selected]
    n = len(parties)
    rows = [0] if config.characteristic == "v" else list(range(n))
    out = np.zeros((len(rows), 1 << n))
    for r, i in enumerate(rows):
        for mask in range(1 << n):
            members = [ids[k] for k in range(n) if (mask & selected[i]) >> k & 1]
            out[r, mask] = float(engine.gains(members)[task_of[i]])
    return out


def certified_round(
    parties: Sequence[Party], config: CollaborativeConfig, *, seed: int, progress: Progress | None = None
) -> tuple[CollaborativeRound, Certificate]:
    """:func:`~._mechanism.clear_round` with its certificate (the coalition gains from its engine)."""
    from datamarket.mechanisms.collaborative._mechanism import clear_round

    tasks, _, _ = validate_market(parties, config)
    engine = GainEngine(config.model, [(t.features, np.asarray(t.labels)) for t in tasks])
    rnd = clear_round(parties, config, seed=seed, engine=engine, progress=progress)
    gains = coalition_gain_table(engine, parties, config, rnd) if rnd.method == "exact" else None
    c = config.c * np.array([float(p.fee_scale) for p in parties])
    return rnd, round_certificate(rnd, c, guard=config.guard, coalition_gains=gains)
