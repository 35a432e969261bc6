"""Property test on the OpenAPI schema: schemathesis-generated requests never get a 5xx.

Every operation of the served schema is called with generated parameters and bodies as an anonymous
client, a participant or the operator (bounded: ``EXAMPLES`` per operation).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from datamarket.service.app import create_app
from datamarket.service.uploads import UploadLimits
from tests.service_support import ADMIN, LiveServer, register, setup_broker

EXAMPLES = 6


def test_generated_requests_never_cause_server_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        f"sqlite:///{tmp_path}/schema.db",
        admin_key=ADMIN,
        executor="thread",
        limits=UploadLimits(max_bytes=20_000),
    )
    with LiveServer(app) as srv, srv.client() as admin:
        setup_broker(srv, admin)  # market 1 with inputs, participants 1-4
        key = register(admin, "fuzzer")[1]
        callers = [{}, {"X-API-Key": key}, {"X-API-Key": ADMIN}]
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        failures: list[str] = []
        n_ops = 0
        for result in schema.get_all_operations():
            op = result.ok()
            n_ops += 1

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(), who=st.sampled_from(callers))
            def run(case, who) -> None:  # type: ignore[no-untyped-def]
                resp = case.call(base_url=srv.url, headers=who, timeout=30)
                if resp.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path}: {resp.status_code} {resp.text[:200]}"
                    )

            run()
        assert n_ops >= 20
        assert failures == []
        assert admin.get("/ledger/verify").json()["ok"]
