"""What every family's receipt explanations must satisfy (datamarket.service.adapters.charges), checked
on the receipts of a cleared round through the JSON API."""

from __future__ import annotations

import math
from typing import Any

import httpx

from datamarket.ledger.money import Currency


def check_receipt_charges(
    client: httpx.Client, rid: int, pid: int, others: set[str], rules: set[str]
) -> list[dict[str, Any]]:
    """Participant ``pid``'s receipt of round ``rid`` explains each of its lines: one charge per entry
    (price or payment), reconciled, its terms adding up to its exact amount, booked within one minor
    unit of it (largest-remainder rounding), its rule one of ``rules``, and no name of ``others`` in
    its inputs. Returns the charges."""
    rec = client.get(f"/rounds/{rid}/receipts/{pid}").json()
    scale = Currency.parse(rec["currency"]).scale
    charges = rec["charges"]
    assert charges is not None, "no explanation recorded"
    lines = {e["memo"]: e["amount_minor"] for e in rec["entries"]}
    assert {c["memo"] for c in charges} >= set(lines) - {"platform take"}, (charges, lines)
    for c in charges:
        assert c["reconciled"], c
        assert c["rule"] in rules and c["guide"].endswith(f"-{c['rule']}")
        if c["terms"]:
            total = math.fsum(t["value"] for t in c["terms"])
            assert math.isclose(total, c["amount"], rel_tol=1e-9, abs_tol=1e-9)
        assert c["booked_minor"] == lines.get(c["memo"], 0)
        # Hamilton rounding of the round's lines moves each by less than one minor unit
        assert abs(c["booked_minor"] - c["sign"] * c["amount"] * scale) < 1 + 1e-6, c
        assert not any(name in repr(c["inputs"]) for name in others), c["inputs"]
    return charges
