r"""The real-time data marketplace of Agarwal, Dahleh and Sarkar.

Paper: Anish Agarwal, Munther Dahleh, Tuhin Sarkar, "A Marketplace for Data: An Algorithmic Solution",
ACM EC 2019 (arXiv:1805.08125). Sellers sell feature streams :math:`X_m \in \mathbb R^T`; buyers arrive
one at a time with a prediction task :math:`Y_n`, a private value :math:`\mu_n` per unit of gain and a
bid :math:`b_n`; the market posts one price for the whole bundle, degrades the data by the bid's
shortfall, charges by Myerson's rule and splits the charge among the sellers by Shapley values.

Key equations and algorithms
----------------------------
* utility (eq. 1):
  :math:`U(b) = \mu_n \mathcal G(Y_n, \mathcal M(\mathrm{AF}(p_n, b))) - \mathrm{RF}(p_n, b, Y_n)`;
* AF* (Sec. 4.1, Ex. 4.1 noise, Ex. 4.2 masking) with a monotone gain curve :math:`h` (Assumption 1);
* RF* (eq. 3): :math:`b\,h(b) - \int_0^b h(z)\,dz`, truthful (Thm 5.1);
* PF* (Algorithm 1): multiplicative weights over an :math:`\varepsilon`-net, regret
  :math:`O(\sqrt{\log N/N})` per buyer (Thm 5.2);
* PD*_A (Algorithm 2) approximates the Shapley values (eq. 2) with Thm 5.3's sample count; PD*_B
  (Algorithm 3) penalises similar streams, :math:`\psi(m) = \hat\psi(m) e^{-\lambda\sum_{j\ne m}
  \mathrm{SM}(X_m, X_j)}`, robust to replication (Thm 5.4).

Entry points
------------
:class:`Streams`, :class:`Task`, :class:`TaskBuyer`, :class:`Learner` (any scikit-learn estimator),
:class:`MarketConfig` (:class:`Allocation`, :class:`DivisionSpec`), :func:`run_market` (the rounds, a
:class:`MarketRun` with an ``Outcome``), :func:`answer_buyer` (one buyer's online answer),
:func:`engine_shapley`, :func:`run_closed_form` (:math:`h_p(b) = \min(b/p, 1)`),
:func:`replication_sweep`, :func:`certify_run`, :func:`certify_closed_form`, ``MECHANISMS``.

Modules: ``_data`` (streams, tasks, learner, gain, coalition game), ``_allocation`` (AF*, RF*),
``_pricing`` (Algorithm 1), ``_online`` (one buyer answered at once, its charge divided later:
:func:`answer`, :func:`divide_answer`, :class:`PricerState`), ``_division`` (Algorithms 2 and 3),
``_fast`` (PD*'s Shapley values by the valuation engine under a stopping rule), ``_market`` (rounds),
``_replication``,
``_certificate``, ``_guarantees``. The deviations from the printed paper are stated in each module and
on the errata page.

>>> import numpy as np
>>> x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
>>> y = 2 * x[:, 0] + np.array([0.1, -0.1, 0.0, 0.1, -0.1, 0.0])
>>> streams = Streams(np.hstack([x, x]), ("A", "B"))       # Ex. 3.1: two identical streams
>>> task = Task(y, np.array([False, True] * 3))
>>> sweep = replication_sweep(streams, task, "A", 1, rules=("pd_a",))
>>> [round(sweep.point("pd_a", c).total("A"), 6) for c in (0, 1)]   # A's share: 1/2, then 2/3
[0.5, 0.666667]
"""

from datamarket.mechanisms.realtime_market._allocation import (
    Allocation,
    ClosedFormCurve,
    Degrader,
    GainCurve,
    measure_curve,
)
from datamarket.mechanisms.realtime_market._certificate import (
    balance_check,
    certify_closed_form,
    certify_run,
    myerson_check,
    regret_check,
    truthfulness_check,
    unassigned_check,
)
from datamarket.mechanisms.realtime_market._data import (
    CoalitionGame,
    Learner,
    Scorer,
    Streams,
    Task,
    TaskBuyer,
    content_id,
)
from datamarket.mechanisms.realtime_market._division import (
    LOG_2,
    Division,
    DivisionSpec,
    algorithm2,
    divide,
    robust_factors,
    similarity_matrix,
    theorem_5_3_samples,
    theorem_5_4_samples,
)
from datamarket.mechanisms.realtime_market._fast import HalfWidth, engine_shapley
from datamarket.mechanisms.realtime_market._guarantees import MECHANISMS, ic_probes, random_market
from datamarket.mechanisms.realtime_market._market import (
    PAPER,
    Answer,
    ClosedFormRun,
    MarketConfig,
    MarketRun,
    Round,
    answer_buyer,
    closed_form_revenue,
    run_closed_form,
    run_market,
)
from datamarket.mechanisms.realtime_market._online import OnlineAnswer, PricerState, answer, divide_answer
from datamarket.mechanisms.realtime_market._pricing import (
    Pricer,
    PricingTrace,
    algorithm1_parameters,
    closed_form_best,
    epsilon_net,
)
from datamarket.mechanisms.realtime_market._replication import (
    ReplicationPoint,
    ReplicationSweep,
    replication_sweep,
)

__all__ = [
    "LOG_2",
    "MECHANISMS",
    "PAPER",
    "Allocation",
    "Answer",
    "ClosedFormCurve",
    "ClosedFormRun",
    "CoalitionGame",
    "Degrader",
    "Division",
    "DivisionSpec",
    "GainCurve",
    "HalfWidth",
    "Learner",
    "MarketConfig",
    "MarketRun",
    "OnlineAnswer",
    "Pricer",
    "PricerState",
    "PricingTrace",
    "ReplicationPoint",
    "ReplicationSweep",
    "Round",
    "Scorer",
    "Streams",
    "Task",
    "TaskBuyer",
    "algorithm1_parameters",
    "algorithm2",
    "answer",
    "answer_buyer",
    "balance_check",
    "certify_closed_form",
    "certify_run",
    "closed_form_best",
    "closed_form_revenue",
    "content_id",
    "divide",
    "divide_answer",
    "engine_shapley",
    "epsilon_net",
    "ic_probes",
    "measure_curve",
    "myerson_check",
    "random_market",
    "regret_check",
    "replication_sweep",
    "robust_factors",
    "run_closed_form",
    "run_market",
    "similarity_matrix",
    "theorem_5_3_samples",
    "theorem_5_4_samples",
    "truthfulness_check",
    "unassigned_check",
]
