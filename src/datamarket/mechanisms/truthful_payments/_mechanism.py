r"""Truthful payments to sellers with private costs: LOO, Shapley, Myerson, VCG.

Fan, Rotello, Karimireddy, "From Fairness to Truthfulness: Rethinking Data Valuation Design"
(arXiv:2504.05563), with the corrections stated below.

Definitions
-----------
Buyers :math:`i \in B` have losses :math:`l_i(W_{i,:})` and values :math:`v_i = l_i(0) - l_i`; sellers
:math:`j \in S` incur :math:`c_j f_j(W_{:,j})` with a private cost factor :math:`c_j \ge 0`. Social cost
(Def. 1, with the printed index sets of buyers and sellers swapped back):
:math:`SC(W; c) = \sum_i l_i(W) + \sum_j c_j f_j(W)`.

Algorithm
---------
1. Allocation (Sec. 4.1): :math:`W(\hat c) = \arg\min_{W \in \mathcal W} SC(W; \hat c)`, solved
   exactly -- closed form (22) for the mean-estimation market (corrected: appendix A.1.4 has a sign
   error), KKT +
   bisection for the data-mixture market (23)-(24), a tolerance-1e-12 optimiser for callables.
2. Payments to each seller: LOO (1), Data Shapley (8) (exact through
   :func:`datamarket.valuation.exact_shapley`, Monte Carlo beyond 15 sellers), Myerson (9) (integral to
   infinity by closed form or half-line quadrature), VCG (10).
3. Buyer prices by the split (17): :math:`P_{i\to j} = \eta_{ij} P_{\to j}` (strong budget balance).
4. Audits: seller IR (Def. 3 prints "≤ 0"; it is "≥ 0"), buyer IR, strong/weak budget balance
   (Def. 5 prints ">"; it is "≥").
5. Misreport analysis: utility vs report, best report, price of anarchy.

Guarantees: Myerson and VCG are IC and seller-IR (Claims 3-4, Theorems 4.1-4.2); LOO and Shapley are
not IC (Claim 2). Buyer IR holds under (17) when the buyers' values are submodular over sellers
(Theorem 4.3, "subadditive" read as submodular) and can fail otherwise, e.g. in the
mean-estimation market (see ``docs/truthful_payments.md``).

>>> m = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 0.0], [0.8, 0.2]], [0.5, 0.5])
>>> r = compute_payments(m, [1.0, 2.0])
>>> sorted(r.payments)
['loo', 'myerson', 'shapley', 'vcg']
>>> o = payment_outcome(m, r, "vcg")
>>> from datamarket.core.audits import audit_ir_sellers
>>> audit_ir_sellers(o).holds
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datamarket.core.audits import (
    ICProbe,
    MechanismInfo,
    Property,
    Sample,
)
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray, Outcome, Role
from datamarket.mechanisms.truthful_payments._markets import (
    MeanEstimationMarket,
    TruthfulMarket,
    check_costs,
)
from datamarket.mechanisms.truthful_payments._misreport import (
    evaluate_report,
)
from datamarket.mechanisms.truthful_payments._rules import (
    PaymentResult,
    compute_payments,
)

PAPER = "Fan, Rotello, Karimireddy: From Fairness to Truthfulness (eqs. 1, 8, 9, 10, 17)"


def payment_outcome(
    market: TruthfulMarket, result: PaymentResult, rule: str, true_costs: Any = None
) -> Outcome:
    """The :class:`Outcome` of ``rule``: buyers pay the eta-split prices, sellers bear true costs.

    ``true_costs`` defaults to the reported costs (truthful reporting).
    """
    c = result.reported_costs if true_costs is None else check_costs(true_costs, market.n_sellers)
    nb, ns = market.n_buyers, market.n_sellers
    names = tuple(f"buyer_{i}" for i in range(nb)) + tuple(f"seller_{j}" for j in range(ns))
    roles = (Role.BUYER,) * nb + (Role.SELLER,) * ns
    zeros_b, zeros_s = np.zeros(nb), np.zeros(ns)
    return Outcome(
        mechanism=f"truthful_payments.{rule}",
        participants=names,
        roles=roles,
        allocated=np.concatenate([np.abs(result.allocation).sum(axis=1), result.shares]),
        prices=np.concatenate([result.buyer_prices[rule], zeros_s]),
        payments=np.concatenate([zeros_b, result.payments[rule]]),
        values=np.concatenate([result.values, zeros_s]),
        costs=np.concatenate([zeros_b, c * result.shares]),
        extra={"rule": rule, "reported_costs": result.reported_costs.tolist(), "paper": PAPER},
    )


def random_mean_market(
    seed: int, n_buyers: int = 1, n_sellers: int = 3, dim: int = 5
) -> tuple[MeanEstimationMarket, FloatArray]:
    """A random mean-estimation market and true costs (the generator of the contract samples).

    Means are standard normal, total variances uniform on [0.5, 2], costs uniform on [0.5, 5].
    """
    rng = make_rng(seed)
    market = MeanEstimationMarket.from_variances(
        rng.normal(size=(n_buyers, dim)), rng.normal(size=(n_sellers, dim)), rng.uniform(0.5, 2.0, n_sellers)
    )
    return market, rng.uniform(0.5, 5.0, n_sellers)


def _utility_probe(market: TruthfulMarket, costs: FloatArray, seller: int, rule: str) -> ICProbe:
    def utility(report: float) -> float:
        return evaluate_report(market, costs, seller, report, [rule]).utility[rule]

    return ICProbe(
        agent=f"seller_{seller}",
        utility=utility,
        truth=float(costs[seller]),
        grid=tuple(np.linspace(0.0, 3.0 * float(costs[seller]), 31)),
    )


def _sample(rule: str, seed: int) -> Sample:
    market, costs = random_mean_market(seed, n_buyers=2, n_sellers=3, dim=4)
    res = compute_payments(market, costs, rules=[rule], seed=seed)
    probes = tuple(_utility_probe(market, costs, j, rule) for j in range(market.n_sellers))
    return Sample(payment_outcome(market, res, rule), probes, tol=1e-9)


def _info(
    rule: str, guarantees: frozenset[Property], description: str, violates: frozenset[Property] = frozenset()
) -> MechanismInfo:
    return MechanismInfo(
        name=f"truthful_payments.{rule}",
        paper=PAPER,
        guarantees=guarantees,
        sample=lambda seed: _sample(rule, seed),
        description=description,
        violates=violates,
    )


_SBB = frozenset({Property.BUDGET_BALANCE_STRONG, Property.BUDGET_BALANCE_WEAK})
_NOT_IC = frozenset({Property.INCENTIVE_COMPATIBLE})
_TRUTHFUL = _SBB | {Property.INCENTIVE_COMPATIBLE, Property.IR_SELLER}

MECHANISMS: tuple[MechanismInfo, ...] = (
    _info(
        "loo",
        _SBB,
        "leave-one-out payment (1); not IC (Claim 2); budget balanced by the split (17)",
        violates=_NOT_IC,
    ),
    _info(
        "shapley",
        _SBB,
        "Data Shapley payment (8); not IC; budget balanced by the split (17)",
        violates=_NOT_IC,
    ),
    _info("myerson", _TRUTHFUL, "Myerson payment (9): IC and seller IR, minimal such (Thm 4.1)"),
    _info(
        "vcg", _TRUTHFUL, "VCG payment (10): IC and seller IR (Claim 4); = Myerson unconstrained (Thm 4.2)"
    ),
)
