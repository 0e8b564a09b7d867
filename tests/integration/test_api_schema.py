"""Property-based test of the HTTP API against its own served OpenAPI document (schemathesis): for generated
requests to every operation, no 5xx and no response that violates the document. Real PostgreSQL and Docker.

Bounded (``MAX_EXAMPLES`` per operation) so the module runs in a minute or two. The log endpoint is left out: its
``follow`` streams for up to an hour by design (the console test reads it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from desired_state.yaml_io import import_yaml
from tests.integration.api_support import CATALOG, Api, api_server

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
SEED = "  - name: acme\n    domain: acme.erp.test\n    services:\n      a: {replicas: 1}\n"


@pytest.fixture(scope="module")
def served_api(postgres_cluster: Any) -> Iterator[Api]:
    url = postgres_cluster.create_database()
    try:
        with api_server(url, "tschema01") as api:
            import_yaml(api.engine, f"{CATALOG}tenants:\n{SEED}")
            yield api
    finally:
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])


def test_no_server_error_and_no_response_outside_the_document(served_api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{served_api.base}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {served_api.tokens['admin']}"}
    failures: list[str] = []
    tested = 0
    calls: list[int] = []
    for found in schema.exclude(path="/api/v1/tenants/{name}/logs").get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call_and_validate(base_url=served_api.base, headers=headers, checks=CHECKS)
            calls.append(response.status_code)

        try:
            check()
        except Exception as exc:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.label}: {exc}")
        tested += 1
    assert tested >= 15
    assert len(calls) >= tested * 3  # the operations were really exercised, not skipped
    assert {200, 201} & set(calls) and 422 in calls
    assert not failures, "\n\n".join(failures)
