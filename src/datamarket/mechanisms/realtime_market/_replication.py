r"""Replication: a seller (or a third party) adds exact copies of a stream (Agarwal, Dahleh, Sarkar,
Property 3.4, Ex. 3.1, Ex. 4.5, Thm 5.4).

Property 3.4 (:math:`\varepsilon`-robustness): when seller :math:`m` adds copies :math:`m_1^+, \dots,
m_c^+`, the shares after replication satisfy :math:`\psi^+(m) + \sum_i \psi^+(m_i^+) \le \psi(m) +
\varepsilon`. The seller's only strategy is the number of copies. PD*_A fails it (Ex. 3.1: two identical
streams get 1/2 each; after one copy the replicator's two streams get 2/3); PD*_B with
:math:`\lambda = \log 2` satisfies it (Thm 5.4), at the price of cutting the pay of every seller similar
to the copies, honest or not (a third party can lower an honest seller's pay by copying its stream).

:func:`replication_sweep` splits one buyer's charge for ``c = 0..copies`` under each rule, on the clean
streams (a buyer bidding at least the price); copies add no new content, so one cache of gains serves
the whole sweep (no refit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from datamarket.mechanisms.realtime_market._data import (
    CoalitionGame,
    GainCache,
    Learner,
    Scorer,
    Streams,
    Task,
)
from datamarket.mechanisms.realtime_market._division import Division, DivisionSpec, Rule, divide


@dataclass(frozen=True)
class ReplicationPoint:
    """One rule at ``copies`` copies: the division and who owns which stream."""

    copies: int
    rule: Rule
    division: Division
    owners: tuple[str, ...]

    def total(self, owner: str) -> float:
        """The share paid to the streams of ``owner`` (the original and its copies)."""
        return math.fsum(float(p) for p, o in zip(self.division.paid, self.owners, strict=True) if o == owner)

    def rows(self) -> list[dict[str, Any]]:
        """One row per stream: copies, rule, seller, owner, share (paid), shapley_share."""
        d = self.division
        return [
            {
                "copies": self.copies,
                "rule": self.rule,
                "seller": name,
                "owner": owner,
                "share": float(d.paid[i]),
                "shapley_share": float(d.shares[i]),
            }
            for i, (name, owner) in enumerate(zip(d.names, self.owners, strict=True))
        ]


@dataclass(frozen=True)
class ReplicationSweep:
    """The sweep of :func:`replication_sweep`: ``seller``'s stream copied by ``owner`` (the seller itself
    or a third party)."""

    seller: str
    owner: str
    points: tuple[ReplicationPoint, ...]

    @property
    def self_replication(self) -> bool:
        return self.owner == self.seller

    def point(self, rule: str, copies: int) -> ReplicationPoint:
        return next(p for p in self.points if p.rule == rule and p.copies == copies)

    def rows(self) -> list[dict[str, Any]]:
        return [row for p in self.points for row in p.rows()]

    def summary(self) -> list[dict[str, Any]]:
        """Per rule and copies: the copier's total, the copied seller's own share and the unassigned."""
        out = []
        for p in self.points:
            base = self.point(p.rule, 0)
            out.append(
                {
                    "copies": p.copies,
                    "rule": p.rule,
                    "copier_total": p.total(self.owner),
                    "original_share": base.total(self.seller),
                    "seller_share": float(p.division.paid[p.division.names.index(self.seller)]),
                    "unassigned": p.division.unassigned,
                }
            )
        return out


def replication_sweep(
    streams: Streams,
    task: Task,
    seller: str,
    copies: int,
    *,
    learner: Learner | None = None,
    division: DivisionSpec | None = None,
    rules: Sequence[Rule] = ("pd_a", "pd_b"),
    owner: str | None = None,
    baseline: bool = True,
    seed: int = 0,
) -> ReplicationSweep:
    """Shares of one buyer's charge with ``c = 0..copies`` copies of ``seller``'s stream, under each rule.

    ``owner``: a third party (a new seller of that name, copies ``{owner}_1..``) instead of the seller.
    """
    learn = learner or Learner()
    spec = division or DivisionSpec()
    scorer = Scorer.of(task, learn.classifier, baseline)
    who = owner or seller
    cache: GainCache = {}
    points = []
    for c in range(copies + 1):
        s = streams.with_copies(seller, c, prefix=owner)
        owners = tuple(streams.names) + (who,) * c
        for rule in rules:
            game = CoalitionGame(s.values, s.ids, s.names, task, learn, scorer, cache=cache)
            d = divide(game, s.values, replace(spec, rule=rule), seed)
            points.append(ReplicationPoint(c, rule, d, owners))
    return ReplicationSweep(seller, who, tuple(points))
