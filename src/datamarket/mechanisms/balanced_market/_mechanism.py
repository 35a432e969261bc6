r"""Online data market with Shapley revenue division and a demographic-balance intervention
(Chaintreau et al.).

Paper: A. Chaintreau, R. Maio, J. Ziani, "The Cost of Balanced Training-Data Production in an Online Data
Market", WWW 2025, arXiv:2501.19294. Equilibria live in :mod:`._equilibrium`; this module runs the market
*mechanics* of Section 3.3 and produces auditable :class:`~datamarket.core.Outcome` objects.

Mechanics (one round, given the sellers' datasets and the buyers' bids)
---------------------------------------------------------------------
1. Reserve prices :math:`p_g` maximise :math:`\rho_g` over the distinct bids (Fact 4.2, eq. 15: the best
   of :math:`k\,\mu_{(k)}` over the bids sorted descending; ties, which the paper leaves open: lowest price by
   default).
2. Allocation (4)-(5): buyer :math:`i` gets all samples of group :math:`g`,
   :math:`\mathcal{AF}_g = x_g^{([M])}`, iff :math:`b_{i,g} \ge p_g` (weak inequality, as in (4)).
3. Revenue (6): :math:`\mathcal{RF}_{i,g} = p_g\,\mathcal G_{i,g}(\tilde x^{([M])})` (posted-price Myerson
   payment). The gain :math:`\mathcal G` is a learning curve (eq. 2) or an **empirical gain**: a
   scikit-learn model trained on the allocated samples of the group and scored on the buyer's test data.
4. Payment division (7): the Shapley value of the revenue game
   :math:`v(T) = \sum_{i,g}\mathcal{RF}_{i,g}(\tilde x^{(T)})` over sellers, computed by the valuation
   engine (:func:`datamarket.valuation.exact_shapley`); with empirical gains every coalition's value is a
   real retraining. Shapley is efficient, so revenue equals payments (strong budget balance).
5. Utilities (8)-(10) (the brackets missing in (10) restored: the sum over :math:`g`
   covers both terms; errata: eq. (10)).

Buyers' truthfulness (Fact 4.1) is checked empirically by the IC probes of :data:`MECHANISMS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from datamarket.core.audits import ICProbe, MechanismInfo, Property, Sample
from datamarket.core.certificates import Certificate, Status, status_for
from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import Dataset, FloatArray, Outcome, Role, finite_array
from datamarket.learning.empirical_gain import BuyerTask, GroupGainCache, ModelFactory
from datamarket.mechanisms.balanced_market._certificate import certify_solutions
from datamarket.mechanisms.balanced_market._equilibrium import (
    BalancedMarket,
    Engine,
    MarketSolution,
    Model,
    backfires,
    intervention_threshold,
    potential_value,
    price_of_fairness,
    reserve_prices,
    settle,
    solve_baseline,
    solve_intervention,
    thresholds,
    utility_ratios,
)
from datamarket.valuation import FunctionGame, exact_shapley, to_mask

PAPER = "Chaintreau, Maio, Ziani: The Cost of Balanced Training-Data Production in an Online Data Market"


# -- curve-based mechanics -------------------------------------------------------------------------
def allocation(values: FloatArray, prices: FloatArray) -> NDArray[np.bool_]:
    """(N, G) allocation indicator of (4): buyer ``i`` gets group ``g``'s data iff ``b_{i,g} >= p_g``."""
    out: NDArray[np.bool_] = (np.asarray(values) >= np.asarray(prices)[None, :]) & (np.asarray(prices) > 0)
    return out


def revenue_game(market: BalancedMarket, prices: FloatArray, production: FloatArray) -> FunctionGame:
    r"""The revenue game over sellers (eqs. 3, 5, 6):
    :math:`v(T) = \sum_{i,g} p_g 1[b_{i,g}\ge p_g]\mathcal G_{i,g}(x_g^{(T)})`."""
    prod = np.asarray(production, dtype=np.float64)
    sold = allocation(market.values, prices)

    def value(members: tuple[int, ...]) -> float:
        totals = prod[list(members)].sum(axis=0) if members else np.zeros(prod.shape[1])
        return float((sold * prices[None, :] * market.accuracy(totals)).sum())

    return FunctionGame(value, market.shape[0], market.sellers)


def payment_division(
    market: BalancedMarket,
    prices: FloatArray,
    production: FloatArray,
    *,
    method: Literal["exact", "structured", "monte_carlo"] = "exact",
    seed: int = 0,
    max_evaluations: int | None = None,
) -> FloatArray:
    """Shapley payments (7) summed over buyers and groups.

    ``exact``: :func:`datamarket.valuation.exact_shapley` on the revenue game (``2**M`` evaluations);
    ``structured``: the quantity-game Shapley of :func:`~datamarket.mechanisms.balanced_market.settle`, which
    enumerates only distinct coalition totals (sellers with equal production are grouped), exact and
    fast for large symmetric markets; ``monte_carlo``: permutation sampling
    (:func:`datamarket.valuation.montecarlo.monte_carlo_shapley`, seeded, ``max_evaluations`` fits; not
    efficient in general, so strong budget balance holds only up to its standard error).
    """
    if method == "exact":
        return exact_shapley(revenue_game(market, prices, production)).values
    if method == "structured":
        gamma = None
        prod = np.asarray(production, dtype=np.float64)
        if market.gamma is not None and prod.sum() > 0:
            n = prod.sum(axis=1)
            if np.allclose(prod, np.outer(n, market.gamma), rtol=1e-12, atol=1e-15):
                gamma = market.gamma
        return settle(market, np.asarray(prices, dtype=np.float64), prod, gamma)[1]
    if method == "monte_carlo":
        from datamarket.valuation.montecarlo import monte_carlo_shapley

        budget = max_evaluations if max_evaluations is not None else 64 * market.shape[0]
        game = revenue_game(market, prices, production)
        return monte_carlo_shapley(game, seed=seed, max_evaluations=budget).values
    raise ConfigurationError("method", f"must be 'exact', 'structured' or 'monte_carlo', got {method!r}")


EXACT_OUTCOME_LIMIT = 12  # sellers up to which round_outcome enumerates all 2^M coalitions


def round_outcome(
    market: BalancedMarket, solution: MarketSolution, mechanism: str = "balanced_market"
) -> Outcome:
    """The :class:`Outcome` of one round at ``solution``'s production (sellers first, then buyers).

    Payments are recomputed with the valuation engine (:func:`payment_division`), independently of the
    equilibrium solver's structured Shapley computation, up to ``EXACT_OUTCOME_LIMIT`` sellers; larger
    markets use the ``structured`` division (exact as well, over distinct coalition totals).
    """
    m, n, _ = market.shape
    method: Literal["exact", "structured"] = "exact" if m <= EXACT_OUTCOME_LIMIT else "structured"
    pay = payment_division(market, solution.prices, solution.production, method=method)
    return Outcome(
        mechanism,
        market.sellers + market.buyers,
        (Role.SELLER,) * m + (Role.BUYER,) * n,
        allocated=np.concatenate([solution.production.sum(axis=1), np.zeros(n)]),
        prices=np.concatenate([np.zeros(m), solution.revenue]),
        payments=np.concatenate([pay, np.zeros(n)]),
        values=np.concatenate([np.zeros(m), solution.values_received]),
        costs=np.concatenate([solution.production_cost, np.zeros(n)]),
        extra={"scenario": solution.scenario, "model": solution.model, "reserve_prices": solution.prices},
    )


@dataclass(frozen=True)
class MarketAnalysis:
    """Baseline and intervention equilibria plus the analyses of Sections 5-6."""

    market: BalancedMarket
    model: Model
    reserve_prices: FloatArray
    rho: FloatArray
    thresholds: FloatArray
    intervention_threshold: float
    baseline: MarketSolution
    intervention: MarketSolution
    utility_ratios: dict[str, Any]
    backfire: bool
    price_of_fairness: float
    certificate: Certificate = field(default_factory=Certificate)

    @property
    def status(self) -> Status:
        """``no_equilibrium_found`` when a sub-game's search verified no profile (the reported one is
        a fallback), else ``ok`` iff the certificate passes (``unverified`` otherwise)."""
        if self.unfound:
            return "no_equilibrium_found"
        return status_for(self.certificate)

    @property
    def unfound(self) -> list[str]:
        """The sub-games (``baseline.GROUP``, ``intervention``) where no profile passed the check."""
        out = [f"baseline.{g}" for g in self.baseline.notes.get("no_equilibrium_found", [])]
        return out + (["intervention"] if self.intervention.notes.get("no_equilibrium_found") else [])


def analyse(
    market: BalancedMarket,
    model: Model = "paper",
    *,
    seed: int = 0,
    engine: Engine = "auto",
    within_class: bool = False,
) -> MarketAnalysis:
    """Solve both scenarios and compute thresholds, utility ratios (36)-(38), backfire (Def 5.2), and
    the certificate of both solutions (:mod:`datamarket.mechanisms.balanced_market._certificate`:
    every seller's best-response regret, or the joint optimum under ``model="paper"``).

    ``engine``, ``within_class``: the Shapley-Nash engine (:func:`solve_baseline`)."""
    if market.gamma is None:
        raise InvalidMarketError("gamma", "the analysis needs a target demographics vector")
    opts: dict[str, Any] = {"seed": seed, "engine": engine, "within_class": within_class}
    base = solve_baseline(market, model, **opts)
    interv = solve_intervention(market, model, **opts)
    # Report the prices the marketplace actually posts in the baseline: the best of k * mu_(k) in the
    # quasi-symmetric setting; with heterogeneous curves the price/production fixed point (Section 4's
    # general setting, where the best price depends on production),
    # with rho (14) and the thresholds evaluated at those prices.
    p = base.prices.copy()
    rho = potential_value(market.values, p)
    return MarketAnalysis(
        market,
        model,
        p,
        rho,
        thresholds(market, p),
        intervention_threshold(market),
        base,
        interv,
        utility_ratios(base, interv),
        backfires(base, interv),
        price_of_fairness(base, interv),
        certify_solutions(market, base, interv),
    )


# -- empirical mechanics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EmpiricalRound:
    """A real round: reserve prices, per-buyer-and-group accuracy, revenue and Shapley payments."""

    outcome: Outcome
    prices: FloatArray
    accuracy: FloatArray  # (N, G) accuracy of the model trained on all allocated samples
    payments: FloatArray
    revenue: FloatArray
    fits: int


def run_empirical_round(
    sellers: Sequence[Dataset | None],
    buyers: Sequence[BuyerTask],
    values: ArrayLike,
    costs: ArrayLike,
    groups: Sequence[Any],
    *,
    tie: Literal["lowest", "highest"] = "lowest",
    model: ModelFactory | None = None,
    seed: int = 0,
    seller_names: Sequence[str] | None = None,
    mechanism: str = "balanced_market_empirical",
) -> EmpiricalRound:
    """Run the mechanics with empirical gains: real training for every coalition of sellers.

    ``sellers[j]`` holds seller ``j``'s labelled samples with group labels (``None``: it supplies
    nothing); ``buyers[i]`` a test set per
    group; ``values`` (N, G) the truthful bids; ``costs`` (M, G) unit costs (cost = costs . counts).
    """
    mu, kappa = _empirical_inputs(sellers, buyers, values, costs, groups)
    m, n = len(sellers), len(buyers)
    p, _ = reserve_prices(mu, tie)
    sold = allocation(mu, p)
    cache = GroupGainCache(sellers, buyers, model=model, seed=seed)

    def value(members: tuple[int, ...]) -> float:
        mask = to_mask(members)
        return float(
            sum(float(p[g] * (sold[:, g] * cache.gains(grp, mask)).sum()) for g, grp in enumerate(groups))
        )

    names = tuple(seller_names) if seller_names else tuple(f"s{j}" for j in range(m))
    pay = exact_shapley(FunctionGame(value, m, names)).values
    full = (1 << m) - 1
    acc = np.stack([cache.gains(grp, full) for grp in groups], axis=1)  # (N, G)
    revenue = (sold * p[None, :] * acc).sum(axis=1)
    counts = np.array(
        [
            [int(np.sum(d.groups == grp)) if d is not None and d.groups is not None else 0 for grp in groups]
            for d in sellers
        ]
    )
    outcome = Outcome(
        mechanism,
        names + tuple(b.name for b in buyers),
        (Role.SELLER,) * m + (Role.BUYER,) * n,
        allocated=np.concatenate([counts.sum(axis=1).astype(float), (sold * acc).sum(axis=1)]),
        prices=np.concatenate([np.zeros(m), revenue]),
        payments=np.concatenate([pay, np.zeros(n)]),
        values=np.concatenate([np.zeros(m), (sold * mu * acc).sum(axis=1)]),
        costs=np.concatenate([(kappa * counts).sum(axis=1), np.zeros(n)]),
        extra={"reserve_prices": p, "accuracy": acc, "fits": cache.fits},
    )
    return EmpiricalRound(outcome, p, acc, pay, revenue, cache.fits)


def _empirical_inputs(
    sellers: Sequence[Dataset | None],
    buyers: Sequence[BuyerTask],
    values: ArrayLike,
    costs: ArrayLike,
    groups: Sequence[Any],
) -> tuple[FloatArray, FloatArray]:
    """The bids ``mu`` (N, G) and unit costs ``kappa`` (M, G) of an empirical round, validated."""
    mu = finite_array("values", values, ndim=2, nonneg=True)
    kappa = finite_array("costs", costs, ndim=2)
    m, n, g_count = len(sellers), len(buyers), len(groups)
    if mu.shape != (n, g_count):
        raise InvalidMarketError("values", f"need shape ({n}, {g_count}), got {mu.shape}")
    if kappa.shape != (m, g_count) or np.any(kappa <= 0):
        raise InvalidMarketError("costs", f"need shape ({m}, {g_count}) with entries > 0")
    if m < 1 or n < 1:
        raise InvalidMarketError("sellers", "need at least one seller and one buyer")
    for b in buyers:
        b.validate(groups)
    return mu, kappa


def digits_market(
    counts: ArrayLike,
    n_buyers: int,
    *,
    test_per_group: int | ArrayLike = 60,
    grouping: Literal["label_partition", "stroke"] = "label_partition",
    seed: int = 0,
) -> tuple[list[Dataset | None], list[BuyerTask], tuple[str, str]]:
    """Sellers' datasets and buyers' test sets from scikit-learn's bundled ``load_digits``.

    Two groups: ``label_partition`` puts digits 0-4 in group ``A`` and 5-9 in ``B`` (each group its own
    classification task); ``stroke`` is a synthetic attribute (ink above / below the median). Buyers'
    test sets and sellers' samples are disjoint draws (``seed``). ``counts`` is (M, 2) samples per seller
    and group (rounded down to integers); ``test_per_group`` an int or (N, 2) test-set sizes, each >= 1.
    """
    from sklearn.datasets import load_digits

    c = np.floor(finite_array("counts", counts, ndim=2, nonneg=True)).astype(int)
    if c.shape[1] != 2:
        raise InvalidMarketError("counts", "digits markets have two groups (A, B)")
    sizes = np.broadcast_to(np.asarray(test_per_group, dtype=int), (int(n_buyers), 2))
    for i, j in zip(*np.nonzero(sizes < 1), strict=True):
        raise InvalidMarketError(f"buyers[{i}].test", f"buyer has no test data for group {'AB'[j]!r}")
    digits = load_digits()
    X = digits.data.astype(np.float64)
    y = digits.target
    if grouping == "label_partition":
        grp = np.where(y <= 4, "A", "B")
    elif grouping == "stroke":
        ink = X.sum(axis=1)
        grp = np.where(ink <= np.median(ink), "A", "B")
    else:
        raise ConfigurationError("grouping", f"must be 'label_partition' or 'stroke', got {grouping!r}")
    rng = make_rng(seed)
    sellers_rows: list[list[int]] = [[] for _ in range(c.shape[0])]
    tests: list[dict[str, Dataset]] = [{} for _ in range(n_buyers)]
    for gi, g in enumerate(("A", "B")):
        pool = rng.permutation(np.flatnonzero(grp == g))
        need = int(sizes[:, gi].sum()) + int(c[:, gi].sum())
        if need > pool.size:
            raise InvalidMarketError("counts", f"group {g} needs {need} digits, only {pool.size} available")
        start = 0
        for i in range(n_buyers):
            rows = pool[start : start + sizes[i, gi]]
            start += sizes[i, gi]
            tests[i][g] = Dataset(X[rows], y[rows], grp[rows])
        for j in range(c.shape[0]):
            sellers_rows[j].extend(pool[start : start + c[j, gi]].tolist())
            start += c[j, gi]
    sellers: list[Dataset | None] = []
    for taken in sellers_rows:
        idx = np.array(taken, dtype=int)
        sellers.append(Dataset(X[idx], y[idx], grp[idx]) if idx.size else None)  # None: produced nothing
    buyers = [BuyerTask(f"b{i}", t) for i, t in enumerate(tests)]
    return sellers, buyers, ("A", "B")


# -- declared guarantees ---------------------------------------------------------------------------
def _random_market(seed: int) -> BalancedMarket:
    rng = make_rng(seed)
    m, n, g = 2, 3, 2
    return BalancedMarket(
        values=rng.uniform(0.5, 3.0, (n, g)),
        costs=rng.uniform(0.02, 0.2, (m, g)),
        Z=rng.uniform(0.8, 1.0, (n, g)),
        alpha=rng.uniform(0.5, 1.5, (n, g)),
        beta=rng.uniform(0.5, 2.0, (n, g)),
        gamma=np.array([0.5, 0.5]),
    )


def _buyer_probe(market: BalancedMarket, sol: MarketSolution, i: int, g: int) -> ICProbe:
    """Buyer ``i``'s true utility when it bids ``r`` on group ``g`` (prices posted before bids)."""
    acc = market.accuracy(sol.total)[i, g]
    p = float(sol.prices[g])
    mu = float(market.values[i, g])

    def utility(r: float) -> float:
        return (mu - p) * acc if r >= p and p > 0 else 0.0

    return ICProbe(market.buyers[i], utility, mu, tuple(np.linspace(0.0, 2 * max(mu, p), 21)))


def _sample_curve(seed: int) -> Sample:
    market = _random_market(seed)
    sol = solve_baseline(market, "shapley_nash", seed=seed)
    probes = tuple(_buyer_probe(market, sol, i, g) for i in range(market.shape[1]) for g in range(2))
    return Sample(round_outcome(market, sol), probes, tol=1e-9)


def _sample_empirical(seed: int) -> Sample:
    rng = make_rng(seed)
    counts = rng.integers(15, 40, size=(2, 2))
    sellers, buyers, groups = digits_market(counts, 2, test_per_group=30, seed=seed)
    values = rng.uniform(0.5, 2.0, (2, 2))
    rnd = run_empirical_round(sellers, buyers, values, np.full((2, 2), 0.001), groups, seed=seed)
    return Sample(rnd.outcome, (), tol=1e-9)


MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name="balanced_market",
        paper=PAPER,
        guarantees=frozenset(
            {
                Property.IR_BUYER,
                Property.IR_SELLER,
                Property.BUDGET_BALANCE_STRONG,
                Property.BUDGET_BALANCE_WEAK,
                Property.INCENTIVE_COMPATIBLE,
            }
        ),
        sample=_sample_curve,
        description="Reserve-price allocation, Myerson revenue and Shapley division at the exact "
        "Shapley-Nash equilibrium of heterogeneous learning-curve markets.",
        notes={
            "ir_seller": "at a Nash equilibrium (producing 0 is always available)",
            "incentive_compatible": "buyers, dominant strategy given posted reserve prices (Fact 4.1)",
        },
    ),
    MechanismInfo(
        name="balanced_market_empirical",
        paper=PAPER,
        guarantees=frozenset(
            {Property.IR_BUYER, Property.BUDGET_BALANCE_STRONG, Property.BUDGET_BALANCE_WEAK}
        ),
        sample=_sample_empirical,
        description="One real round on digits: models trained per group and coalition, Shapley "
        "division of revenue with retraining.",
        notes={"ir_seller": "not guaranteed: production is given, not an equilibrium"},
    ),
)
