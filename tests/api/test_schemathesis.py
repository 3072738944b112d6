"""Schemathesis against the API's own OpenAPI: no 5xx, and every answer matches its schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_api_conforms_to_its_openapi(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "every route is in the OpenAPI document"
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for operation, mode in ((op, m) for op in operations for m in modes):
        if operation.path.endswith("/check"):
            continue  # calls real nodes; covered in test_nodes_api
        if operation.path.endswith("/revoke"):
            continue  # would revoke the admin token the other cases use; see test_tokens

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=api.headers("admin"), checks=CHECKS)

        try:
            exercise()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (no parameters, no body).
            assert mode is schemathesis.GenerationMode.NEGATIVE
