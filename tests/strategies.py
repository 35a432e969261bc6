"""Hypothesis strategies shared by every test module (STYLE practice 9).

Mechanism tests add their market strategies here so that one module describes the markets the suite
quantifies over.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datamarket.valuation.games import TableGame

finite_floats = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False)
positive_costs = st.floats(min_value=0.01, max_value=50.0, allow_nan=False, allow_infinity=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def cost_vectors(draw: st.DrawFn, min_size: int = 1, max_size: int = 8) -> np.ndarray:
    """Positive per-seller costs."""
    n = draw(st.integers(min_size, max_size))
    return np.array(draw(st.lists(positive_costs, min_size=n, max_size=n)))


@st.composite
def table_games(draw: st.DrawFn, min_players: int = 1, max_players: int = 6) -> TableGame:
    """Arbitrary games given by a random value table with v(empty) = 0."""
    n = draw(st.integers(min_players, max_players))
    table = draw(hnp.arrays(np.float64, 1 << n, elements=finite_floats))
    table[0] = 0.0
    return TableGame(table)


@st.composite
def monotone_games(draw: st.DrawFn, min_players: int = 1, max_players: int = 6) -> TableGame:
    """Monotone games: v(S) = sum of non-negative weights plus a non-negative pair synergy."""
    n = draw(st.integers(min_players, max_players))
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 10)))
    syn = draw(st.floats(0, 5))
    masks = np.arange(1 << n)
    bits = (masks[:, None] >> np.arange(n)) & 1
    size = bits.sum(axis=1)
    table = bits @ w + syn * size * (size - 1) / 2
    return TableGame(table.astype(np.float64))


# --- truthful payments (Fan et al.) ---------------------------------------------------------------------
@st.composite
def mean_estimation_markets(
    draw: st.DrawFn, max_buyers: int = 2, min_sellers: int = 2, max_sellers: int = 4, max_dim: int = 4
) -> tuple[object, np.ndarray]:
    """A mean-estimation market (Fan et al., eq. 21) and non-negative costs: (market, costs)."""
    from datamarket.mechanisms.truthful_payments import MeanEstimationMarket

    nb = draw(st.integers(1, max_buyers))
    ns = draw(st.integers(min_sellers, max_sellers))
    d = draw(st.integers(1, max_dim))
    # |x| in [1e-100, 3] or 0: products of two coordinates stay normal floats (>= 2.2e-308); below, they
    # underflow and no relative error bound holds (a seller mean of 1e-163 made the a-posteriori bound of
    # the allocation test fail by rounding at 1e-162)
    coord = st.one_of(st.just(0.0), st.floats(1e-100, 3.0), st.floats(-3.0, -1e-100))
    buyers = draw(hnp.arrays(np.float64, (nb, d), elements=coord))
    sellers = draw(hnp.arrays(np.float64, (ns, d), elements=coord))
    var = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.1, 3.0)))
    costs = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.0, 10.0)))
    return MeanEstimationMarket.from_variances(buyers, sellers, var), costs


@st.composite
def data_mixture_markets(
    draw: st.DrawFn, min_sellers: int = 2, max_sellers: int = 4, negative_t: bool = False
) -> tuple[object, np.ndarray]:
    """A data-mixture market (Fan et al., eq. 23) with distinct t and positive costs: (market, costs)."""
    from datamarket.mechanisms.truthful_payments import DataMixtureMarket

    ns = draw(st.integers(min_sellers, max_sellers))
    hi = -0.05 if negative_t else 2.0
    t = draw(
        hnp.arrays(np.float64, ns, elements=st.floats(-3.0, hi), unique=True).filter(
            lambda a: np.min(np.abs(np.subtract.outer(a, a)) + np.eye(a.size)) > 1e-3
        )
    )
    b = draw(st.floats(0.0, 2.0))
    k = draw(st.floats(0.2, 3.0))
    costs = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.05, 5.0)))
    return DataMixtureMarket(b, k, t), costs


# -- balanced_market (Chaintreau et al.) -------------------------------------------------------------------
@st.composite
def learning_curves(draw: st.DrawFn) -> tuple[float, float, float]:
    """(Z, alpha, beta) of a learning curve G(n) = (Z - alpha n^-beta)_+ (Chaintreau et al., eq. 2)."""
    return (
        draw(st.floats(0.5, 2.0)),
        draw(st.floats(0.2, 3.0)),
        draw(st.floats(0.3, 3.0)),
    )


@st.composite
def simplex_points(draw: st.DrawFn, n: int, full_support: bool = False) -> np.ndarray:
    """A target demographics vector gamma on the simplex (optionally with every entry > 0)."""
    entry = st.floats(0.05, 1.0) if full_support else st.one_of(st.just(0.0), st.floats(0.02, 1.0))
    w = np.array(draw(st.lists(entry, min_size=n, max_size=n)))
    if w.sum() <= 0:
        w = np.ones(n)
    return w / w.sum()


@st.composite
def quasi_symmetric_markets(
    draw: st.DrawFn, max_groups: int = 3, max_buyers: int = 4, max_sellers: int = 3, min_groups: int = 1
) -> dict:
    """Quasi-symmetric markets (Def 4.1): one curve, one cost vector, arbitrary values of accuracy."""
    g = draw(st.integers(min_groups, max_groups))
    n = draw(st.integers(1, max_buyers))
    m = draw(st.integers(1, max_sellers))
    values = np.array(draw(st.lists(st.floats(0.1, 5.0), min_size=n * g, max_size=n * g))).reshape(n, g)
    kappa = np.array(draw(st.lists(st.floats(0.005, 1.5), min_size=g, max_size=g)))
    return {
        "values": values,
        "kappa": kappa,
        "curve": draw(learning_curves()),
        "n_sellers": m,
        "gamma": draw(simplex_points(g)),
    }


# --- broker / ordered-item pricing (Chen et al.) -------------------------------------------------------
@st.composite
def value_tables(draw: st.DrawFn, max_buyers: int = 3, max_n: int = 4) -> np.ndarray:
    """Buyers' data valuations ``v[j, m]``: non-decreasing in m, in [0, 1], ``v[:, 0] = 0``."""
    nb = draw(st.integers(1, max_buyers))
    n = draw(st.integers(1, max_n))
    incr = draw(hnp.arrays(np.float64, (nb, n), elements=st.floats(0.0, 1.0)))
    tops = draw(hnp.arrays(np.float64, nb, elements=st.floats(0.05, 1.0)))
    cum = np.cumsum(incr, axis=1)
    denom = np.where(cum[:, -1:] > 0, cum[:, -1:], 1.0)
    return np.hstack([np.zeros((nb, 1)), cum / denom * tops[:, None]])


@st.composite
def single_crossing_tables(draw: st.DrawFn, max_buyers: int = 4, max_n: int = 8) -> np.ndarray:
    """Valuations ``v_j = alpha_j h`` with a common non-decreasing h: increasing differences."""
    h = draw(value_tables(max_buyers=1, max_n=max_n))[0]
    alphas = draw(st.lists(st.floats(0.05, 1.0), min_size=1, max_size=max_buyers))
    return np.array(alphas)[:, None] * h[None, :]


# --------------------------------------------------------------------------------------------------
# competing buyers (Westenbroek et al.): small markets of sources and separable-estimator buyers
# --------------------------------------------------------------------------------------------------
@st.composite
def competing_markets(
    draw: st.DrawFn,
    max_sources: int = 4,
    max_buyers: int = 3,
    identical_buyers: bool = False,
    max_competition: float = 0.5,
    min_buyers: int = 1,
):
    """A :class:`~datamarket.mechanisms.competing_buyers.CompetingMarket`: 2..``max_sources``
    sources at distinct locations in [-1, 1] (gaps >= 0.1), alpha in [0.5, 5], 1..``max_buyers``
    polynomial-regression buyers (degree < number of sources, so the design is non-singular) with
    uniform or discrete evaluation distributions, a symmetric competition matrix and eta in
    [0.02, 0.5] (buyers who value accuracy highly, so that the feasibility 2 alpha D >= 1 of a GNE
    holds in a good share of the markets).
    With ``identical_buyers`` every buyer has the same estimator, distribution and eta and the
    competition is one scalar."""
    from datamarket.mechanisms.competing_buyers import (
        CompetingMarket,
        DiscretePoints,
        PolynomialRegression,
        UniformInterval,
    )

    n = draw(st.integers(2, max_sources))
    grid = draw(st.lists(st.integers(-10, 10), min_size=n, max_size=n, unique=True).map(sorted))
    x = np.array(grid, dtype=float) / 10.0
    alpha = np.array(draw(st.lists(st.floats(0.5, 5.0), min_size=n, max_size=n)))
    m = draw(st.integers(min_buyers, max_buyers))

    def buyer():
        deg = draw(st.integers(0, min(2, n - 1)))
        if draw(st.booleans()):
            lo = draw(st.floats(-1.0, 0.5))
            dist = UniformInterval(lo, lo + draw(st.floats(0.2, 1.5)))
        else:
            pts = draw(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=4))
            dist = DiscretePoints(np.array(pts))
        return PolynomialRegression(deg), dist, draw(st.floats(0.02, 0.5))

    if identical_buyers:
        est, dist, eta = buyer()
        buyers = [(est, dist, eta)] * m
        competition: float | np.ndarray = draw(st.floats(0.0, max_competition))
    else:
        buyers = [buyer() for _ in range(m)]
        upper = np.array(draw(st.lists(st.floats(0.0, max_competition), min_size=m * m, max_size=m * m)))
        mat = np.triu(upper.reshape(m, m), 1)
        competition = mat + mat.T
    return CompetingMarket(
        locations=x,
        effort_alpha=alpha,
        estimators=tuple(b[0] for b in buyers),
        evaluations=tuple(b[1] for b in buyers),
        competition=competition,
        eta=np.array([b[2] for b in buyers]),
    )


# -- collaborative market (Ohrimenko et al.) ---------------------------------------------------------------
unit_floats = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@st.composite
def payment_divisions(draw: st.DrawFn, max_parties: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Own gains, delivered gains (both in [0, 1]) and shares summing to one (any sign allowed)."""
    n = draw(st.integers(1, max_parties))
    own = draw(hnp.arrays(np.float64, n, elements=unit_floats))
    final = draw(hnp.arrays(np.float64, n, elements=unit_floats))
    raw = draw(hnp.arrays(np.float64, n, elements=st.floats(-1.0, 1.0)))
    raw = raw - raw.mean() + 1.0 / n  # any shares with sum one
    return own, final, raw


@st.composite
def supermodular_gain_markets(
    draw: st.DrawFn, min_parties: int = 2, max_parties: int = 4
) -> tuple[np.ndarray, float]:
    """Idealised markets of Ohrimenko et al., Sec. 2 at party level: ``G(S) = (sum_{j in S} w_j / sum w)^p``
    with
    ``p >= 1``: monotone (ii), supermodular including at the empty set (iii), bounded by 1 (iv). Returns
    the positive weights ``w`` and the exponent ``p``; replication invariance (i) is imposed by
    evaluating ``G`` on the set of distinct parties."""
    n = draw(st.integers(min_parties, max_parties))
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(0.05, 1.0)))
    p = draw(st.floats(1.0, 4.0))
    return w, p


@st.composite
def broker_markets(draw: st.DrawFn, max_buyers: int = 3):
    """Small broker markets (Chen et al.): 1-3 buyers of the paper's valuation families, 2-3 contributors
    with costs >= 0.1 (so that Algorithm 1 searches at most 30 sample sizes)."""
    from datamarket.mechanisms.broker import BrokerMarket
    from datamarket.pricing.valuations import Exponential, Gaussian, Threshold

    nb = draw(st.integers(1, max_buyers))
    vals = []
    for _ in range(nb):
        family = draw(st.sampled_from([Threshold, Gaussian, Exponential]))
        vals.append(family(draw(st.floats(0.1, 1.0)), draw(st.floats(0.3, 1.0))))
    nc = draw(st.integers(2, 3))
    costs = draw(st.lists(st.floats(0.1, 0.5), min_size=nc, max_size=nc))
    return BrokerMarket(
        buyers=tuple(f"b{j}" for j in range(nb)),
        valuations=tuple(vals),
        contributors=tuple(f"c{i}" for i in range(nc)),
        costs=tuple(costs),
        sigma=draw(st.floats(0.3, 2.0)),
    )


# --- valuation engine -------------------------------------------------------------------------------


@st.composite
def quantity_games(draw: st.DrawFn, min_players: int = 1, max_players: int = 8, max_q: int = 6):
    """A quantity game ``v(T) = f(sum_{j in T} q_j)``: (integer quantities, table of ``f`` on 0..sum q)."""
    n = draw(st.integers(min_players, max_players))
    q = np.array(draw(st.lists(st.integers(0, max_q), min_size=n, max_size=n)), dtype=np.int64)
    f = np.array(
        draw(st.lists(finite_floats, min_size=int(q.sum()) + 1, max_size=int(q.sum()) + 1)),
        dtype=np.float64,
    )
    return q, f


@st.composite
def heterogeneous_balanced_markets(draw: st.DrawFn, max_sellers: int = 3, max_buyers: int = 3) -> dict:
    """General markets of Chaintreau et al. (Prop. 4.1 setting): per-buyer-and-group curves, per-seller
    costs."""
    g = draw(st.integers(1, 2))
    n = draw(st.integers(1, max_buyers))
    m = draw(st.integers(1, max_sellers))

    def grid(shape: tuple[int, int], lo: float, hi: float) -> np.ndarray:
        k = shape[0] * shape[1]
        return np.array(draw(st.lists(st.floats(lo, hi), min_size=k, max_size=k))).reshape(shape)

    return {
        "values": grid((n, g), 0.1, 4.0),
        "costs": grid((m, g), 0.01, 0.5),
        "Z": grid((n, g), 0.5, 1.5),
        "alpha": grid((n, g), 0.2, 2.0),
        "beta": grid((n, g), 0.3, 2.5),
        "gamma": draw(simplex_points(g)),
    }


@st.composite
def class_balanced_markets(draw: st.DrawFn, max_classes: int = 3, max_class_size: int = 4) -> dict:
    """Balanced markets whose sellers come in classes (equal cost rows), 2-8 sellers, one shared
    curve, 1-4 buyers: the markets where the class engine can miss asymmetric equilibria (e.g. two
    cheap sellers producing different amounts beside an idle class)."""
    g = draw(st.integers(1, 2))
    k = draw(st.integers(1, max_classes))
    sizes = [draw(st.integers(1, max_class_size)) for _ in range(k)]
    assume_ok = 2 <= sum(sizes) <= 8
    rows = [[draw(st.floats(0.05, 0.9)) for _ in range(g)] for _ in range(k)]
    n = draw(st.integers(1, 4))
    values = [[draw(st.sampled_from([0.0, 0.6, 1.0, 1.4, 2.0])) for _ in range(g)] for _ in range(n)]
    return {
        "ok": assume_ok and len({tuple(r) for r in rows}) == k and any(any(v) for v in values),
        "costs": np.repeat(np.array(rows), sizes, axis=0),
        "values": np.array(values, dtype=float),
        "curve": draw(learning_curves()),
        "gamma": draw(simplex_points(g)),
    }
