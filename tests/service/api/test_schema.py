"""Property test on the OpenAPI schema: schemathesis with ALL its checks finds nothing.

Every operation of the served schema is called with generated requests, positive (schema-valid) and
negative (schema-invalid), as an anonymous client, a participant or the operator (bounded:
``EXAMPLES`` per operation and mode), and each response goes through every check schemathesis has:
no server error, status codes, content types, headers and bodies as declared (every error body is
``ErrorOut``), invalid data rejected, valid data accepted, unsupported methods, missing headers,
use after free, resource availability, ignored authentication.

One check is configured, not disabled: ``positive_data_acceptance`` also accepts 422 on ``POST
/markets`` and ``POST /markets/{mid}/submissions``, whose ``params``/``data`` objects are validated
per market kind by the kind's adapter, beyond what one schema for every kind can say.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from datamarket.service.app import create_app
from datamarket.service.config import ServiceSettings
from datamarket.service.throttle import ThrottleSettings
from datamarket.service.uploads import UploadLimits
from tests.service_support import ADMIN, LiveServer, register, setup_broker

EXAMPLES = 5
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
PER_KIND = [("/markets", "POST"), ("/markets/{mid}/submissions", "POST")]
CONFIG = {
    "operations": [
        {
            "include-path": path,
            "include-method": method,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
        }
        for path, method in PER_KIND
    ]
}


def test_schemathesis_with_all_checks_finds_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    load_all_checks()
    checks = list(CHECKS.get_all())
    assert len(checks) >= 13
    config = ServiceSettings(
        database_url=f"sqlite:///{tmp_path}/schema.db",
        admin_key=ADMIN,
        executor="thread",
        limits=UploadLimits(max_bytes=20_000),
        # the fuzzer sends hundreds of invalid keys from one address: with the default limit the rest of
        # the run would be 429s (the throttle has its own tests, tests/service/test_throttle.py)
        throttle=ThrottleSettings(limit=100_000),
    )
    app = create_app(config)
    with LiveServer(app) as srv, srv.client() as admin:
        setup_broker(srv, admin)  # market 1 with inputs, participants 1-4
        key = register(admin, "fuzzer")[1]
        callers = [{}, {"X-API-Key": key}, {"X-API-Key": ADMIN}]
        schema = schemathesis.openapi.from_url(
            f"{srv.url}/openapi.json", config=SchemathesisConfig.from_dict(CONFIG)
        )
        failures: list[str] = []
        n_ops = 0
        for result in schema.get_all_operations():
            op = result.ok()
            n_ops += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=op.as_strategy(generation_mode=mode), who=st.sampled_from(callers))
                def run(case, who) -> None:  # type: ignore[no-untyped-def]
                    try:
                        case.call_and_validate(base_url=srv.url, headers=who, checks=checks, timeout=30)
                    except BaseException as exc:  # a FailureGroup: record it, keep fuzzing
                        failures.append(f"{case.operation.label}: {str(exc)[:600]}")

                try:
                    run()
                except Unsatisfiable:  # nothing to make invalid (e.g. no parameters at all)
                    assert mode is GenerationMode.NEGATIVE
        assert n_ops >= 20
        assert failures == []
        assert admin.get("/ledger/verify").json()["ok"]
