r"""Truthful payments to sellers with private costs: LOO, Shapley, Myerson, VCG (Fan et al.).

Paper: Fan, Rotello and Karimireddy, "From Fairness to Truthfulness: Rethinking Data Valuation Design".
Buyers have losses :math:`l_i(W)`, sellers private cost factors :math:`c_j`; social cost (Def. 1)
:math:`SC(W; c) = \sum_i l_i(W) + \sum_j c_j f_j(W)`.

Key equations
-------------
* allocation :math:`W(\hat c) = \arg\min_W SC(W; \hat c)` (Section 4.1): closed form (22) for the
  mean-estimation market (21), KKT + bisection for the data-mixture market (23)-(24);
* payments to seller :math:`j`: leave-one-out (1), Data Shapley (8), Myerson (9), VCG (10);
* buyer prices by the split (17), :math:`P_{i\to j} = \eta_{ij} P_{\to j}` (strong budget balance);
* Myerson and VCG are IC and seller-IR (Claims 3-4, Thms 4.1-4.2), LOO and Shapley are not (Claim 2).

Entry points
------------
Markets :class:`MeanEstimationMarket`, :class:`DataMixtureMarket`, :class:`CallableMarket`;
:func:`compute_payments` (all four rules), :func:`payment_outcome` (an ``Outcome`` for one rule),
:func:`misreport_sweep` (utility vs report, best report, price of anarchy, Section 6.1.2), ``MECHANISMS``.
``fast`` holds the vectorised kernels of the mean-estimation market (the rules' reference loops are
checked against it).

Modules: ``_markets`` (markets), ``_rules`` (payment rules), ``_fast`` (kernels), ``_misreport``
(misreport analysis), ``_mechanism`` (outcomes, sample markets, declared guarantees), ``_certificate``
(:func:`payment_certificate`: the checks of a result's claims).

>>> m = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 0.0], [0.8, 0.2]], [0.5, 0.5])
>>> r = compute_payments(m, [1.0, 2.0])
>>> sorted(r.payments)
['loo', 'myerson', 'shapley', 'vcg']
>>> payment_outcome(m, r, "vcg").extra["rule"]
'vcg'
"""

from datamarket.equilibrium import price_of_anarchy
from datamarket.mechanisms.truthful_payments import _fast as fast
from datamarket.mechanisms.truthful_payments._certificate import payment_certificate
from datamarket.mechanisms.truthful_payments._markets import (
    CallableMarket,
    DataMixtureMarket,
    MeanEstimationMarket,
    TruthfulMarket,
    check_costs,
)
from datamarket.mechanisms.truthful_payments._mechanism import (
    MECHANISMS,
    PAPER,
    payment_outcome,
    random_mean_market,
)
from datamarket.mechanisms.truthful_payments._misreport import (
    MisreportSweep,
    ReportEval,
    evaluate_report,
    misreport_sweep,
)
from datamarket.mechanisms.truthful_payments._rules import (
    EXACT_SHAPLEY_GENERIC,
    EXACT_SHAPLEY_MEAN,
    MYERSON_METHODS,
    RULES,
    PaymentResult,
    ShapleyEstimate,
    buyer_split,
    buyer_values,
    coalition_value,
    compute_payments,
    loo_payments,
    myerson_integral,
    myerson_payments,
    seller_share_curve,
    shapley_payments,
    social_cost,
    vcg_payments,
)

__all__ = [
    "EXACT_SHAPLEY_GENERIC",
    "EXACT_SHAPLEY_MEAN",
    "MECHANISMS",
    "MYERSON_METHODS",
    "PAPER",
    "RULES",
    "CallableMarket",
    "DataMixtureMarket",
    "MeanEstimationMarket",
    "MisreportSweep",
    "PaymentResult",
    "ReportEval",
    "ShapleyEstimate",
    "TruthfulMarket",
    "buyer_split",
    "buyer_values",
    "check_costs",
    "coalition_value",
    "compute_payments",
    "evaluate_report",
    "fast",
    "loo_payments",
    "misreport_sweep",
    "myerson_integral",
    "myerson_payments",
    "payment_certificate",
    "payment_outcome",
    "price_of_anarchy",
    "random_mean_market",
    "seller_share_curve",
    "shapley_payments",
    "social_cost",
    "vcg_payments",
]
