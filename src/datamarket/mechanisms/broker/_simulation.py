r"""Strategic simulation of mechanism M* (Chen et al., Sec. 3, Thm 5.1).

A contributor's strategy is ``(n_i, f_i)``: collect ``n_i`` points of ``N(mu, sigma^2)`` at cost
``c_i n_i`` and submit ``Y_i = f_i(X_i)``. The harness plays one of the two paid contributors' deviations
against a truthful partner, vectorised over ``R`` realisations with common random numbers, for each true
mean in a grid, and reports the **worst case over mu** (utilities are ``inf_mu E[...]``, eq. 7):

========================  ==============================================================================
``truthful``              collect ``N*_i``, submit them
``under_collect``         collect ``ceil(N*_i / 2)``, pad to ``N*_i`` with duplicates drawn with replacement
``pad_fabricated``        collect ``ceil(N*_i / 2)``, pad to ``N*_i`` with fabricated ``N(xbar, sigma^2)``
``shift``                 collect ``N*_i``, submit ``X + sigma / sqrt(N*_i)`` (bias)
``fabricate``             collect 0, submit ``N*_i`` points of ``N(mu', sigma^2)`` from a guessed mean
``wrong_size``            collect ``N*_i``, submit all but one point (size mismatch, bonus lost)
``over_collect``          collect ``2 N*_i``, submit ``N*_i`` points re-centred on the full sample mean
========================  ==============================================================================

``under_collect``/``pad_fabricated`` need ``N*_i >= 2``. Closed forms: with
``bon_i`` the bracket of (15), ``var_sub``/``bias`` the submitted mean's variance and bias,

.. math:: u_i = bon_i 1[|Y_i| = N^*_i] - c_i n_i - d_i(var_{sub} + bias^2 + \sigma^2 / N^*_{-i}),

which :func:`expected_utility` evaluates (it backs the IC probes; the tests check it against the Monte
Carlo harness). Every realisation's budget imbalance ``|sum p - sum pi|`` is recorded (BB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamarket.core.audits import ICProbe
from datamarket.core.random import spawn_generators
from datamarket.core.types import FloatArray
from datamarket.mechanisms.broker._market import BrokerMarket, CollectionPlan, mstar_transfers

STRATEGIES = (
    "truthful",
    "under_collect",
    "pad_fabricated",
    "shift",
    "fabricate",
    "wrong_size",
    "over_collect",
)
DEFAULT_MUS = (-3.0, 0.0, 1.7, 6.0)


def _roles(plan: CollectionPlan, who: int) -> tuple[int, int, float, float]:
    n_i, n_o = (plan.n1, plan.n2) if who == 0 else (plan.n2, plan.n1)
    c_i, d_i = (plan.c1, plan.d1) if who == 0 else (plan.c2, plan.d2)
    return n_i, n_o, c_i, d_i


def bonus(plan: CollectionPlan, sigma: float, who: int) -> float:
    """The bracket of (15): ``W N*_i/N+ + c_i N*_i + d_i (sigma^2/N*_{-i} + sigma^2/N*_i)``."""
    n_i, n_o, c_i, d_i = _roles(plan, who)
    s2 = sigma**2
    return plan.w * n_i / plan.n_plus + c_i * n_i + d_i * (s2 / n_o + s2 / n_i)


def expected_utility(
    plan: CollectionPlan,
    sigma: float,
    who: int,
    *,
    n_collect: int,
    var_sub: float,
    bias2: float = 0.0,
    size_ok: bool = True,
) -> float:
    """Closed-form ``E[pi_i] - c_i n_i`` against a truthful partner."""
    _, n_o, c_i, d_i = _roles(plan, who)
    return (
        bonus(plan, sigma, who) * float(size_ok) - c_i * n_collect - d_i * (var_sub + bias2 + sigma**2 / n_o)
    )


def closed_form(
    plan: CollectionPlan, sigma: float, who: int, strategy: str, mu: float, guess: float
) -> float:
    """Closed-form expected utility of ``strategy`` at true mean ``mu`` (see the module table)."""
    n, _, _, _ = _roles(plan, who)
    s2 = sigma**2
    half = (n + 1) // 2
    if strategy == "truthful":
        return expected_utility(plan, sigma, who, n_collect=n, var_sub=s2 / n)
    if strategy == "under_collect":
        var = s2 / half + (n - half) * s2 * (half - 1) / (half * n**2)
        return expected_utility(plan, sigma, who, n_collect=half, var_sub=var)
    if strategy == "pad_fabricated":
        var = s2 / half + (n - half) * s2 / n**2
        return expected_utility(plan, sigma, who, n_collect=half, var_sub=var)
    if strategy == "shift":
        return expected_utility(plan, sigma, who, n_collect=n, var_sub=s2 / n, bias2=s2 / n)
    if strategy == "fabricate":
        return expected_utility(plan, sigma, who, n_collect=0, var_sub=s2 / n, bias2=(guess - mu) ** 2)
    if strategy == "wrong_size":
        if n == 1:  # empty submission: mu(empty) := 0
            return expected_utility(plan, sigma, who, n_collect=n, var_sub=0.0, bias2=mu**2, size_ok=False)
        return expected_utility(plan, sigma, who, n_collect=n, var_sub=s2 / (n - 1), size_ok=False)
    if strategy == "over_collect":
        return expected_utility(plan, sigma, who, n_collect=2 * n, var_sub=s2 / (2 * n))
    raise ValueError(f"strategy: unknown {strategy!r}")


def applicable(plan: CollectionPlan, who: int, strategy: str) -> bool:
    """Under-collecting and padding need ``N*_i >= 2``."""
    n, _, _, _ = _roles(plan, who)
    return not (strategy in ("under_collect", "pad_fabricated") and n < 2)


def _submitted_mean(
    strategy: str, z: FloatArray, mu: float, sigma: float, n: int, guess: float, rng: np.random.Generator
) -> tuple[FloatArray, int, int]:
    """Mean of the submission, its size and the number of points collected (``z``: (R, 2n) normals)."""
    x = mu + sigma * z
    half = (n + 1) // 2
    r = z.shape[0]
    if strategy == "truthful":
        return x[:, :n].mean(axis=1), n, n
    if strategy == "under_collect":
        real = x[:, :half]
        dup = np.take_along_axis(real, rng.integers(half, size=(r, n - half)), axis=1)
        return np.concatenate([real, dup], axis=1).mean(axis=1), n, half
    if strategy == "pad_fabricated":
        real = x[:, :half]
        fake = real.mean(axis=1, keepdims=True) + sigma * rng.standard_normal((r, n - half))
        return np.concatenate([real, fake], axis=1).mean(axis=1), n, half
    if strategy == "shift":
        return (x[:, :n] + sigma / np.sqrt(n)).mean(axis=1), n, n
    if strategy == "fabricate":
        return (guess + sigma * z[:, n : 2 * n]).mean(axis=1), n, 0
    if strategy == "wrong_size":
        sub = x[:, : n - 1]
        return (sub.mean(axis=1) if n > 1 else np.zeros(r)), n - 1, n
    if strategy == "over_collect":
        first = x[:, :n]
        return (
            (first - first.mean(axis=1, keepdims=True) + x.mean(axis=1, keepdims=True)).mean(axis=1),
            n,
            2 * n,
        )
    raise ValueError(f"strategy: unknown {strategy!r}")


@dataclass(frozen=True)
class DeviationReport:
    """One contributor's deviation: worst-case (over mu) Monte Carlo gain against truthful play."""

    strategy: str
    contributor: str
    n_collected: int
    utility: float
    gain: float
    gain_se: float
    closed_form_gain: float
    worst_mu: float


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Monte Carlo estimates on path (prices, payments, BB) and under each listed deviation."""

    expected_prices: FloatArray
    price_se: FloatArray
    expected_payments: FloatArray
    payment_se: FloatArray
    max_budget_imbalance: float
    deviations: tuple[DeviationReport, ...]
    price_samples: FloatArray
    payment_samples: FloatArray
    realised_values: FloatArray
    realised_values_se: FloatArray
    reps: int
    mus: tuple[float, ...]

    def deviation_gain(self) -> dict[str, float]:
        """Largest worst-case gain of each deviation over the two contributors."""
        out: dict[str, float] = {}
        for d in self.deviations:
            if d.strategy != "truthful":
                out[d.strategy] = max(out.get(d.strategy, -np.inf), d.gain)
        return out


def simulate(
    market: BrokerMarket,
    plan: CollectionPlan,
    *,
    reps: int = 20_000,
    mus: tuple[float, ...] = DEFAULT_MUS,
    guess: float = 0.0,
    value_reps: int = 2_000,
    seed: int = 0,
) -> SimulationResult:
    """Run the harness: on-path full-data realisations at every mu (prices, payments, BB, buyers'
    realised values from random subsets) and every listed deviation of both paid contributors."""
    nb = len(market.buyers)
    sigma = market.sigma
    g_path, g_dev, g_val = spawn_generators(seed, 3)
    prices, pays, imbalance = _on_path(plan, nb, sigma, mus, reps, g_path)
    n_tot = prices.shape[0]
    realised, realised_se = _realised_values(market, plan, min(value_reps, reps), g_val)
    reports: list[DeviationReport] = []
    for who in (0, 1):
        seat = _Seat.of(plan, who, reps, int(g_dev.integers(2**31)))
        reports += _deviation_reports(plan, nb, sigma, mus, guess, seat)
    return SimulationResult(
        expected_prices=prices.mean(axis=0),
        price_se=prices.std(axis=0, ddof=1) / np.sqrt(n_tot),
        expected_payments=pays.mean(axis=0),
        payment_se=pays.std(axis=0, ddof=1) / np.sqrt(n_tot),
        max_budget_imbalance=imbalance,
        deviations=tuple(reports),
        price_samples=prices[:reps],
        payment_samples=pays[:reps],
        realised_values=realised,
        realised_values_se=realised_se,
        reps=n_tot,
        mus=tuple(mus),
    )


def _on_path(
    plan: CollectionPlan,
    nb: int,
    sigma: float,
    mus: tuple[float, ...],
    reps: int,
    g_path: np.random.Generator,
) -> tuple[FloatArray, FloatArray, float]:
    """Prices and payments of ``reps`` truthful full-data realisations at every mu (stacked), and the
    largest budget imbalance among them."""
    prices_all, pays_all, imbalance = [], [], 0.0
    for mu in mus:
        x1 = mu + sigma * g_path.standard_normal((reps, plan.n1))
        x2 = mu + sigma * g_path.standard_normal((reps, plan.n2))
        p, pi = mstar_transfers(plan, nb, sigma, True, True, x1.mean(axis=1), x2.mean(axis=1))
        imbalance = max(imbalance, float(np.abs(p.sum(axis=1) - pi.sum(axis=1)).max()))
        prices_all.append(p)
        pays_all.append(pi)
    return np.concatenate(prices_all), np.concatenate(pays_all), imbalance


def _realised_values(
    market: BrokerMarket, plan: CollectionPlan, vr: int, g_val: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Buyers' realised values (mean and standard error over ``vr`` draws): random subsets of the
    pooled truthful data."""
    nb = len(market.buyers)
    pooled = market.sigma * g_val.standard_normal((vr, plan.n_plus))  # mu = 0 w.l.o.g. (errors are mu-free)
    keys = g_val.random((vr, plan.n_plus))
    order = np.argsort(keys, axis=1)
    realised, realised_se = np.zeros(nb), np.zeros(nb)
    for j, (m, val) in enumerate(zip(plan.allocations, market.valuations, strict=True)):
        if m == 0 or not hasattr(val, "error_value"):
            realised[j] = 0.0 if m == 0 else np.nan
            continue
        est = np.take_along_axis(pooled, order[:, :m], axis=1).mean(axis=1)
        ve = np.asarray(val.error_value(np.abs(est)))
        realised[j], realised_se[j] = ve.mean(), ve.std(ddof=1) / np.sqrt(vr)
    return realised, realised_se


@dataclass(frozen=True)
class _Seat:
    """One paid contributor (``who``) in the deviation harness: its quota ``n``, the other's ``n_o``, its
    unit cost, and the common random numbers of its paths (``z`` its draws, ``zo`` the other's mean)."""

    who: int
    n: int
    n_o: int
    c_i: float
    z: FloatArray
    zo: FloatArray
    sub_seed: int

    @classmethod
    def of(cls, plan: CollectionPlan, who: int, reps: int, seed: int) -> _Seat:
        n, n_o, c_i, _ = _roles(plan, who)
        rng_z, rng_o, rng_s = spawn_generators(seed, 3)
        z = rng_z.standard_normal((reps, 2 * n))
        zo = rng_o.standard_normal(reps)
        return cls(who, n, n_o, c_i, z, zo, int(rng_s.integers(2**31)))


def _deviation_utility(
    plan: CollectionPlan, nb: int, sigma: float, seat: _Seat, strategy: str, mu: float, guess: float
) -> tuple[FloatArray, int]:
    """The contributor's utility on each path when it plays ``strategy`` at mean ``mu``, and how many
    samples it collected."""
    rng = np.random.default_rng(seat.sub_seed)  # common random numbers across mus
    mean_i, size, collected = _submitted_mean(strategy, seat.z, mu, sigma, seat.n, guess, rng)
    mean_o = mu + sigma / np.sqrt(seat.n_o) * seat.zo
    ok_i = size == seat.n
    m1, m2 = (mean_i, mean_o) if seat.who == 0 else (mean_o, mean_i)
    ok1, ok2 = (ok_i, True) if seat.who == 0 else (True, ok_i)
    _, pi = mstar_transfers(plan, nb, sigma, ok1, ok2, m1, m2)
    return pi[:, seat.who] - seat.c_i * collected, collected


def _deviation_reports(
    plan: CollectionPlan, nb: int, sigma: float, mus: tuple[float, ...], guess: float, seat: _Seat
) -> list[DeviationReport]:
    """Every applicable strategy of one contributor, at its worst mu, against truthful play."""
    reports = []
    truth_u: FloatArray | None = None
    reps = seat.zo.shape[0]
    for strategy in STRATEGIES:
        if not applicable(plan, seat.who, strategy):
            continue
        worst: tuple[float, float, float, float] | None = None  # (utility, gain, se, mu)
        cf_worst = np.inf
        for mu in mus:
            u, collected = _deviation_utility(plan, nb, sigma, seat, strategy, mu, guess)
            if strategy == "truthful" and truth_u is None:
                truth_u = u
            assert truth_u is not None
            diff = u - truth_u
            cand = (float(u.mean()), float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(reps)), mu)
            if worst is None or cand[0] < worst[0]:
                worst = cand
            cf_worst = min(cf_worst, closed_form(plan, sigma, seat.who, strategy, mu, guess))
        assert worst is not None
        cf_truth = closed_form(plan, sigma, seat.who, "truthful", 0.0, guess)
        reports.append(
            DeviationReport(
                strategy=strategy,
                contributor=(plan.contributor_1, plan.contributor_2)[seat.who],
                n_collected=int(collected),
                utility=worst[0],
                gain=worst[1],
                gain_se=worst[2],
                closed_form_gain=float(cf_worst - cf_truth),
                worst_mu=worst[3],
            )
        )
    return reports


def ic_probes(market: BrokerMarket, plan: CollectionPlan) -> tuple[ICProbe, ...]:
    """IC probes for the two paid contributors (closed forms of :func:`expected_utility`):
    samples collected ``n`` with a mean-preserving submission of ``N*_i`` points (Lemma 9), and a
    mean shift ``delta`` of the submission (Lemma 8)."""
    sigma = market.sigma
    probes = []
    for who, name in enumerate((plan.contributor_1, plan.contributor_2)):
        n, _, _, _ = _roles(plan, who)

        def collect(r: float, who: int = who) -> float:
            k = max(round(r), 1)
            return expected_utility(plan, sigma, who, n_collect=k, var_sub=sigma**2 / k)

        def shift(r: float, who: int = who, n: int = n) -> float:
            return expected_utility(plan, sigma, who, n_collect=n, var_sub=sigma**2 / n, bias2=r * r)

        grid = [float(k) for k in range(1, 3 * n + 2) if k != n]
        probes.append(ICProbe(f"{name}:collected", collect, float(n), grid))
        probes.append(
            ICProbe(f"{name}:shift", shift, 0.0, [s * sigma for s in (-1, -0.3, -0.05, 0.05, 0.3, 1)])
        )
    return tuple(probes)
