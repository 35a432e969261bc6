r"""Broker marketplace for normal mean estimation (Chen et al.).

Paper: Chen, Clinton and Kandasamy, "Incentivizing Truthful Data Contributions in a Marketplace for Mean
Estimation". Buyers value ``m`` points through :math:`v_j(m) = E\,v^e_j(\sigma|Z|/\sqrt m)` (eqs. 6, 11);
contributors collect points of :math:`N(\mu, \sigma^2)` at per-sample cost :math:`c_i`.

Key equations
-------------
* Algorithm 1 (eq. 4): profit-optimal envy-free pricing for non-strategic contributors,
  :math:`\mathrm{profit}_N = \sum_j q_N(m_j) - c_1 N`.
* Algorithm 2, mechanism M*: the collection plan (13), the buyers' discrepancy-adjusted prices (14) and
  the contributors' payments (15); on path :math:`E\,p^*_j = q^+_j` (16), budget balance on every
  realisation, truthful reporting a Nash equilibrium (Thm 5.1).

Entry points
------------
:class:`BrokerMarket`, :func:`plan_collection` (phase one), :func:`settle` (phase two, returns an
``Outcome``), :func:`algorithm1` and :func:`algorithm1_outcome` (Algorithm 1), :func:`simulate` (the
strategic Monte Carlo harness of M*), ``MECHANISMS`` (declared guarantees).

Modules: ``_algorithm`` (Algorithm 1 and its E1/E2/E3 pricing oracles), ``_market`` (market, M*),
``_simulation`` (deviation harness, closed-form utilities, IC probes), ``_guarantees`` (``MECHANISMS``),
``_certificate`` (:func:`certify_broker`, the checks behind a round's claims).

>>> from datamarket.pricing.valuations import Gaussian, Threshold
>>> market = BrokerMarket(buyers=("a", "b"), valuations=(Gaussian(0.5), Threshold(0.4)),
...                       contributors=("x", "y"), costs=(0.05, 0.06), sigma=1.0)
>>> plan = plan_collection(market)
>>> plan.n_plus, plan.n_star["x"], plan.n_star["y"]      # N+, N*_1 = N+ - 1, N*_2 = 1
(9, 8, 1)
"""

from datamarket.mechanisms.broker._algorithm import (
    AUTO_E1_LIMIT,
    AUTO_E1_WORK,
    SOLVERS,
    Algorithm1Result,
    algorithm1,
    e1_workload,
    n_range_cap,
)
from datamarket.mechanisms.broker._certificate import certify_broker
from datamarket.mechanisms.broker._guarantees import MECHANISMS
from datamarket.mechanisms.broker._market import (
    MAX_N,
    PAPER,
    SIGMA_RANGE,
    BrokerMarket,
    CollectionPlan,
    algorithm1_outcome,
    mstar_transfers,
    plan_collection,
    random_market,
    settle,
)
from datamarket.mechanisms.broker._simulation import (
    DEFAULT_MUS,
    STRATEGIES,
    DeviationReport,
    SimulationResult,
    applicable,
    bonus,
    closed_form,
    expected_utility,
    ic_probes,
    simulate,
)

__all__ = [
    "AUTO_E1_LIMIT",
    "AUTO_E1_WORK",
    "DEFAULT_MUS",
    "MAX_N",
    "MECHANISMS",
    "PAPER",
    "SIGMA_RANGE",
    "SOLVERS",
    "STRATEGIES",
    "Algorithm1Result",
    "BrokerMarket",
    "CollectionPlan",
    "DeviationReport",
    "SimulationResult",
    "algorithm1",
    "algorithm1_outcome",
    "applicable",
    "bonus",
    "certify_broker",
    "closed_form",
    "e1_workload",
    "expected_utility",
    "ic_probes",
    "mstar_transfers",
    "n_range_cap",
    "plan_collection",
    "random_market",
    "settle",
    "simulate",
]
