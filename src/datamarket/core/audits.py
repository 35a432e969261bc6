"""Property audits over outcomes, and mechanisms' declared guarantees.

The papers check the same handful of properties (their abbreviations in brackets):

* individual rationality of buyers (IRB, Chen et al.) and of sellers (IRC / seller IR, Fan et al. and
  Chen et al.): no participant who reports truthfully ends with negative utility;
* budget balance (BB): strong (platform take is zero) or weak (the platform never pays out of pocket);
* envy-freeness (EFB, Chen et al., Def. 2): no buyer prefers another option of the menu at its price;
* incentive compatibility (ICC, Fan et al., Def. 2, Chen et al., Def. 4): no misreport improves utility.
  Checked empirically by sweeping an agent's report over a grid (:func:`audit_incentive_compatibility`).

Each audit returns an :class:`AuditResult` with the worst violation; the tolerance is explicit. An audit
has a :class:`Scope`: ``ex_post`` (every realised outcome), ``expected`` (in expectation over the
mechanism's randomness, estimated by Monte Carlo) or ``ex_ante`` (on the posted quantities, before
anything is realised).

A mechanism declares what it guarantees as :class:`MechanismInfo` metadata (with the scope of each
guarantee, and the properties the paper shows can fail); the shared contract test
(``tests/mechanisms/test_contract.py``) checks every registered mechanism against its declaration, and
:func:`judge` sets an audit's ``expected_to_hold`` from the declaration, so that a report can tell a
broken guarantee (:attr:`AuditStatus.FAILS_GUARANTEED`) from a failure the paper predicts
(:attr:`AuditStatus.FAILS_AS_PREDICTED`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from datamarket.core.types import Outcome


class Property(StrEnum):
    """A property a mechanism may guarantee."""

    IR_BUYER = "ir_buyer"
    IR_SELLER = "ir_seller"
    BUDGET_BALANCE_STRONG = "budget_balance_strong"
    BUDGET_BALANCE_WEAK = "budget_balance_weak"
    ENVY_FREE = "envy_free"
    INCENTIVE_COMPATIBLE = "incentive_compatible"


class Scope(StrEnum):
    """When a property is checked: on every realisation, in expectation, or on posted quantities."""

    EX_POST = "ex_post"
    EXPECTED = "expected"
    EX_ANTE = "ex_ante"


class AuditStatus(StrEnum):
    """An audit's verdict read against the mechanism's declaration."""

    HOLDS = "holds"
    FAILS_GUARANTEED = "fails_guaranteed"  # the mechanism declares it: a bug or a wrong input
    FAILS_AS_PREDICTED = "fails_as_predicted"  # the paper shows it can fail
    FAILS_UNCLAIMED = "fails_unclaimed"  # the paper makes no claim either way


@dataclass(frozen=True)
class AuditResult:
    """Outcome of one audit: ``holds`` and the worst violation found (0 when it holds).

    ``scope`` says when the property is checked; ``mechanism`` names the audited mechanism and
    ``expected_to_hold`` is its declaration (``True`` guaranteed in this scope, ``False`` the paper
    shows it can fail, ``None`` no claim), set by :func:`judge`.
    """

    property: Property
    holds: bool
    violation: float
    detail: str = ""
    scope: Scope = Scope.EX_POST
    mechanism: str = ""
    expected_to_hold: bool | None = None

    @builtins.property  # the field ``property`` shadows the builtin in this class body
    def status(self) -> AuditStatus:
        """``holds``, or which kind of failure this is (see :class:`AuditStatus`)."""
        if self.holds:
            return AuditStatus.HOLDS
        if self.expected_to_hold is None:
            return AuditStatus.FAILS_UNCLAIMED
        return AuditStatus.FAILS_GUARANTEED if self.expected_to_hold else AuditStatus.FAILS_AS_PREDICTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "property": self.property.value,
            "holds": self.holds,
            "violation": float(self.violation),
            "detail": self.detail,
            "scope": self.scope.value,
            "mechanism": self.mechanism,
            "expected_to_hold": self.expected_to_hold,
            "status": self.status.value,
        }


def _check(prop: Property, violation: float, tol: float, detail: str) -> AuditResult:
    v = max(0.0, float(violation))
    return AuditResult(prop, v <= tol, v, detail if v > tol else "")


def audit_ir_buyers(outcome: Outcome, tol: float = 1e-9) -> AuditResult:
    """IRB: every buyer's ``value - price >= -tol``.

    >>> from datamarket.core.types import Role
    >>> o = Outcome("t", ("b",), (Role.BUYER,), prices=[2.0], values=[1.0])
    >>> audit_ir_buyers(o).holds
    False
    """
    idx = outcome.buyer_indices
    if not idx:
        return AuditResult(Property.IR_BUYER, True, 0.0)
    surplus = np.asarray(outcome.values)[idx] - np.asarray(outcome.prices)[idx]
    worst = int(np.argmin(surplus))
    return _check(
        Property.IR_BUYER,
        -float(surplus[worst]),
        tol,
        f"buyer {outcome.participants[idx[worst]]} has surplus {surplus[worst]:.6g}",
    )


def audit_ir_sellers(outcome: Outcome, tol: float = 1e-9) -> AuditResult:
    """Seller IR: every seller's ``payment - cost >= -tol``."""
    idx = outcome.seller_indices
    if not idx:
        return AuditResult(Property.IR_SELLER, True, 0.0)
    surplus = np.asarray(outcome.payments)[idx] - np.asarray(outcome.costs)[idx]
    worst = int(np.argmin(surplus))
    return _check(
        Property.IR_SELLER,
        -float(surplus[worst]),
        tol,
        f"seller {outcome.participants[idx[worst]]} has surplus {surplus[worst]:.6g}",
    )


def audit_budget_balance(outcome: Outcome, *, strong: bool = True, tol: float = 1e-9) -> AuditResult:
    """Budget balance: strong ``|sum prices - sum payments| <= tol``; weak ``take >= -tol``."""
    take = outcome.platform_take
    if strong:
        return _check(Property.BUDGET_BALANCE_STRONG, abs(take), tol, f"platform take {take:.6g} != 0")
    return _check(Property.BUDGET_BALANCE_WEAK, -take, tol, f"platform pays {-take:.6g}")


def audit_envy_free(outcome: Outcome, tol: float = 1e-9) -> AuditResult:
    """EF: each buyer's surplus from its choice is at least that of every other option (and 0)."""
    offers = outcome.offers
    if offers is None:
        return AuditResult(Property.ENVY_FREE, False, float("inf"), "outcome has no offers menu")
    surplus = offers.values - offers.prices[None, :]
    rows = np.arange(offers.values.shape[0])
    got = np.where(offers.choice >= 0, surplus[rows, np.maximum(offers.choice, 0)], 0.0)
    best = np.maximum(surplus.max(axis=1, initial=0.0), 0.0)
    envy = best - got
    worst = int(np.argmax(envy)) if envy.size else 0
    return _check(
        Property.ENVY_FREE,
        float(envy[worst]) if envy.size else 0.0,
        tol,
        f"buyer row {worst} envies another option by {envy[worst] if envy.size else 0:.6g}",
    )


@dataclass(frozen=True)
class ICProbe:
    """One agent's utility as a function of its report, for the empirical IC audit.

    ``utility(report)`` is the agent's *true* utility when it reports ``report`` and everybody else is
    truthful; ``truth`` is its true type and ``grid`` the misreports to try.
    """

    agent: str
    utility: Callable[[float], float]
    truth: float
    grid: Sequence[float]


@dataclass(frozen=True)
class ICReport:
    """Best deviation found by :func:`audit_incentive_compatibility` for one agent."""

    agent: str
    truthful_utility: float
    best_report: float
    best_utility: float

    @property
    def gain(self) -> float:
        return self.best_utility - self.truthful_utility


def sweep_misreports(probe: ICProbe) -> ICReport:
    """Evaluate ``probe.utility`` at the truth and every grid point; return the best deviation."""
    truthful = float(probe.utility(probe.truth))
    best_r, best_u = probe.truth, truthful
    for r in probe.grid:
        u = float(probe.utility(float(r)))
        if u > best_u:
            best_r, best_u = float(r), u
    return ICReport(probe.agent, truthful, best_r, best_u)


def audit_incentive_compatibility(probes: Iterable[ICProbe], tol: float = 1e-9) -> AuditResult:
    """Empirical IC: the largest gain any agent obtains by misreporting on its grid."""
    reports = [sweep_misreports(p) for p in probes]
    if not reports:
        return AuditResult(Property.INCENTIVE_COMPATIBLE, True, 0.0)
    worst = max(reports, key=lambda r: r.gain)
    return _check(
        Property.INCENTIVE_COMPATIBLE,
        worst.gain,
        tol,
        f"{worst.agent} gains {worst.gain:.6g} by reporting {worst.best_report:.6g}",
    )


def audit_outcome(outcome: Outcome, tol: float = 1e-9) -> dict[str, AuditResult]:
    """Run every outcome-level audit (EF only when the outcome carries an offers menu)."""
    results = {
        Property.IR_BUYER: audit_ir_buyers(outcome, tol),
        Property.IR_SELLER: audit_ir_sellers(outcome, tol),
        Property.BUDGET_BALANCE_STRONG: audit_budget_balance(outcome, strong=True, tol=tol),
        Property.BUDGET_BALANCE_WEAK: audit_budget_balance(outcome, strong=False, tol=tol),
    }
    if outcome.offers is not None:
        results[Property.ENVY_FREE] = audit_envy_free(outcome, tol)
    return {k.value: v for k, v in results.items()}


@dataclass(frozen=True)
class Sample:
    """A mechanism run on a generated market: its outcome and IC probes for its strategic agents."""

    outcome: Outcome
    ic_probes: tuple[ICProbe, ...] = ()
    tol: float = 1e-9


@dataclass(frozen=True)
class MechanismInfo:
    """Declared guarantees of a mechanism (STYLE practice 6).

    ``sample(seed)`` runs the mechanism on a small generated market of its family; the contract test
    audits every sample against ``guarantees``.
    """

    name: str
    paper: str
    guarantees: frozenset[Property]
    sample: Callable[[int], Sample]
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    scopes: Mapping[Property, Scope] = field(default_factory=dict)
    """Scope of each guarantee; unlisted ones are ``ex_post`` (checked on every sample)."""
    violates: frozenset[Property] = frozenset()
    """Properties the paper shows can fail (e.g. incentive compatibility of leave-one-out payments)."""

    def expects(self, prop: Property, scope: Scope = Scope.EX_POST) -> bool | None:
        """Whether ``prop`` audited in ``scope`` should hold: ``True`` guaranteed, ``False`` not.

        An ex post guarantee covers every scope; a guarantee in expectation or ex ante says nothing
        about single realisations, so an ex post audit of it is expected to fail sometimes
        (``False``). Properties in ``violates`` are ``False``; anything else ``None`` (no claim).

        >>> info = MechanismInfo("m", "p", frozenset({Property.IR_BUYER}), lambda s: None,  # type: ignore
        ...                      scopes={Property.IR_BUYER: Scope.EXPECTED})
        >>> info.expects(Property.IR_BUYER, Scope.EXPECTED), info.expects(Property.IR_BUYER)
        (True, False)
        >>> info.expects(Property.ENVY_FREE) is None
        True
        """
        if prop in self.guarantees:
            return self.scopes.get(prop, Scope.EX_POST) == Scope.EX_POST or scope != Scope.EX_POST
        if prop in self.violates:
            return False
        return None


def judge(audit: AuditResult, info: MechanismInfo | None) -> AuditResult:
    """``audit`` with ``mechanism`` and ``expected_to_hold`` set from ``info``'s declaration."""
    if info is None:
        return audit
    return replace(audit, mechanism=info.name, expected_to_hold=info.expects(audit.property, audit.scope))


def audit_declared(info: MechanismInfo, sample: Sample) -> list[AuditResult]:
    """Audit ``sample`` against every property ``info`` declares; returns the failures.

    Guarantees in expectation are not checkable on one sample (the family's scenario audits them by
    Monte Carlo); ex ante guarantees are checked on the sample's outcome, which for such a mechanism is
    the posted (ex ante) one.
    """
    checks: dict[Property, Callable[[], AuditResult]] = {
        Property.IR_BUYER: lambda: audit_ir_buyers(sample.outcome, sample.tol),
        Property.IR_SELLER: lambda: audit_ir_sellers(sample.outcome, sample.tol),
        Property.BUDGET_BALANCE_STRONG: lambda: audit_budget_balance(
            sample.outcome, strong=True, tol=sample.tol
        ),
        Property.BUDGET_BALANCE_WEAK: lambda: audit_budget_balance(
            sample.outcome, strong=False, tol=sample.tol
        ),
        Property.ENVY_FREE: lambda: audit_envy_free(sample.outcome, sample.tol),
        Property.INCENTIVE_COMPATIBLE: lambda: audit_incentive_compatibility(sample.ic_probes, sample.tol),
    }
    checkable = [p for p in sorted(info.guarantees) if info.scopes.get(p) != Scope.EXPECTED]
    return [r for r in (checks[p]() for p in checkable) if not r.holds]
