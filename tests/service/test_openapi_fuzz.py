"""Schemathesis drives every operation of the OpenAPI schema against the embedded app, with every check.

Beyond "no 5xx" it checks that responses match their documented schemas, statuses and content types, that
schema-violating requests are refused, and that schema-valid requests are accepted, except where a rule depends
on what no schema can state: those refusals must carry one of the codes listed below, so a constraint the schema
could state but does not (a multiple of 8, a minimum item count, a pattern) fails this test.
"""

import io
from collections.abc import Callable

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.specs.openapi.checks import positive_data_acceptance

api_schema = schemathesis.pytest.from_fixture("fuzzed_api")
EXAMPLES_PER_OPERATION = 20
ACCEPTED_WHATEVER_THE_SCHEMA = {401, 404, 409}  # unknown credentials, ids and states: not the schema's business
RULES_NO_SCHEMA_CAN_STATE = {
    "duplicate_concept_name",  # case-insensitive
    "initializer_count",  # one per concept
    "mask_count",
    "invalid_options",  # the JSON inside a form field
    "not_an_image",  # file contents
    "unsupported_image_type",
    "corrupt_image",
    "empty_file",
    "image_too_large",
    "mask_size_mismatch",
    "mask_not_grayscale",
    "empty_mask",
    "invalid_webhook",  # what the URL resolves to
    "webhook_target_refused",
    "invalid_cursor",  # an opaque token of the server's
    "unknown_placeholder",  # the prompt against the chosen concepts
    "prompt_too_long",
    "concepts_from_different_jobs",
    "idempotency_key_reused",  # the key against what it came with before
}


def png(size: tuple[int, int], mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 255).save(buffer, format="PNG")
    return buffer.getvalue()


# Uploads are images (schemathesis' own samples include GIF and PDF, which a schema cannot exclude).
schemathesis.openapi.format("binary", st.sampled_from([png((8, 8), "RGB"), png((8, 8), "L")]))


@pytest.fixture
def auth_headers(new_api_key: Callable[[], str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_api_key()}"}


@pytest.fixture
def fuzzed_api(app_client: TestClient):
    return schemathesis.openapi.from_asgi("/openapi.json", app_client.app)


@api_schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_does_what_its_schema_says(case, auth_headers: dict[str, str]) -> None:
    response = case.call(headers=auth_headers)
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500
    refused_valid_data = (
        case.meta.generation.mode.is_positive
        and response.status_code >= 400
        and response.status_code not in ACCEPTED_WHATEVER_THE_SCHEMA
    )
    if refused_valid_data:
        problem = response.json()
        assert problem["code"] in RULES_NO_SCHEMA_CAN_STATE, (
            f"{case.operation.label} refused schema-valid input with {problem['code']}: {problem['detail']}"
        )
