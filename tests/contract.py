"""Contract test base for mechanisms (STYLE practice 6).

Every :class:`~datamarket.core.MechanismInfo` declared in ``datamarket.mechanisms`` is run on generated
markets through its ``sample(seed)`` and audited against the properties it declares.
"""

from __future__ import annotations

from datamarket.core.audits import MechanismInfo, audit_declared

CONTRACT_SEEDS = (0, 1, 2)


def check_contract(info: MechanismInfo, seeds: tuple[int, ...] = CONTRACT_SEEDS) -> list[str]:
    """Human-readable failures of ``info``'s declared guarantees on its samples."""
    failures = []
    for seed in seeds:
        sample = info.sample(seed)
        assert sample.outcome.mechanism, "outcome must name its mechanism"
        for r in audit_declared(info, sample):
            failures.append(f"{info.name} seed {seed}: {r.property.value} fails ({r.detail})")
    return failures
