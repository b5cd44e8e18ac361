"""Schemathesis drives every operation of the OpenAPI schema; no input may produce a 5xx.

Responses must also match the documented schemas, statuses and content types. The positive-data check
is off: a schema cannot express "a decodable PNG", so schema-valid random bytes are rightly a 4xx.
"""

from collections.abc import Callable

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

api_schema = schemathesis.pytest.from_fixture("fuzzed_api")
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def auth_headers(new_api_key: Callable[[], str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_api_key()}"}


@pytest.fixture
def fuzzed_api(app_client: TestClient):
    return schemathesis.openapi.from_asgi("/openapi.json", app_client.app)


@api_schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_input_yields_a_server_error(case, auth_headers: dict[str, str]) -> None:
    response = case.call_and_validate(headers=auth_headers, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500
