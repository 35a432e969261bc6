"""Property test on the OpenAPI schema: schemathesis, every phase and every check, finds nothing.

The run is what ``st run --checks all`` does against ``datamarket serve`` (the engine in this
process, the server in its own): the examples, coverage, fuzzing and stateful phases, with every
check schemathesis has (no server error, status codes, content types, headers and bodies as
declared, schema-valid requests accepted and schema-invalid ones rejected, unsupported methods and
``Allow`` headers, missing headers, use after free, resource availability, ignored authentication,
object-level authorization), as an anonymous client, a participant and the operator. Nothing is
relaxed: no check is disabled and no operation accepts another status than the check's default.
The schema documents each market kind's parameters and submissions (``MarketIn``/``SubmissionIn``
per kind, :mod:`datamarket.service.api.openapi`), so what it calls valid is what the adapters take.

Bounded: ``EXAMPLES`` per operation and phase, a fixed seed; about 40-80 s for the three callers on
each database (SQLite and PostgreSQL), hence ``slow`` (CI runs it). Fast checks of the same rules:
``tests/service/api/test_openapi.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from tests.service_support import Serve, db_url, register, setup_broker  # noqa: F401  (fixture)

EXAMPLES = 5
SEED = 29


def schemathesis_failures(url: str, headers: dict[str, str]) -> list[str]:
    """Every failed check (and engine error) of one schemathesis run against ``url``."""
    config = SchemathesisConfig.from_dict(
        {
            "headers": headers,
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES},
            "suppress-health-check": ["all"],
            "continue-on-failure": True,
            "warnings": False,
            "cache": {"enabled": False},  # the same cases every run, and no .schemathesis/ in the checkout
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                found += [_failure(event, node) for node in nodes if node.status == Status.FAILURE]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"engine error: {event!r}"[:800])
    return found


def _summary(failures: list[str]) -> str:
    """How many failures of each operation and check, then the first few in full."""
    counts = Counter(f.split("\n", 1)[0] for f in failures)
    return (
        "\n".join(f"{n:4d} {what}" for what, n in counts.most_common()) + "\n\n" + "\n\n".join(failures[:8])
    )


def _failure(event: Any, node: Any) -> str:
    info = node.failure_info
    detail = f"{info.failure}\n{info.code_sample}" if info is not None else ""
    return f"[{event.phase.name}] {event.recorder.label}: {node.name}: {detail}"[:1500]


@pytest.mark.slow
def test_schemathesis_with_all_checks_finds_nothing(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    load_all_checks()
    names = {check.__name__ for check in CHECKS.get_all()}  # all run: the config disables none
    assert len(names) >= 14 and {"positive_data_acceptance", "allow_header_conformance"} <= names
    url = db_url  # SQLite and PostgreSQL
    # the fuzzer sends thousands of unknown keys from one address: the throttle (its own tests in
    # tests/service/test_throttle.py) would answer the rest of the run 429
    srv = Serve(url, tmp_path / "serve.log", ["--executor", "thread", "--auth-failures", "0"]).up()
    try:
        setup_broker(srv, srv.admin)  # market 1 with inputs, participants 1-4
        key = register(srv.admin, "fuzzer")[1]
        failures: list[str] = []
        for who in ({}, {"X-API-Key": key}, {"X-API-Key": srv.admin.headers["X-API-Key"]}):
            failures += schemathesis_failures(srv.url, who)
        assert failures == [], _summary(failures)
        assert srv.admin.get("/ledger/verify").json()["ok"]
    finally:
        srv.stop()
