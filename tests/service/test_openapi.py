"""The OpenAPI document tells the truth: problem+json errors with their schema, the constraints the rules
enforce, a binary upload, stable operation ids, examples; and a client generated from it by openapi-python-client
submits a job and parses a problem."""

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from attencraft_contract.limits import MAX_CONCEPTS, MIN_CONCEPTS

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def document(app_client: TestClient) -> dict[str, Any]:
    return app_client.get("/openapi.json").json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_every_error_response_documents_the_problem_it_sends(document: dict[str, Any]) -> None:
    errors = [
        (path, status, response)
        for path, _method, op in operations(document)
        for status, response in op["responses"].items()
        if status[0] in "45"
    ]
    assert len(errors) > 20
    for path, status, response in errors:
        assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
            path,
            status,
        )
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "code"}


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_operation_ids_are_the_route_names(document: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for path, method, op in operations(document)}
    assert ids[("post", "/jobs")] == "create_job"
    assert ids[("get", "/jobs/{job_id}")] == "read_job"
    assert ids[("post", "/generate")] == "create_generation"
    assert len(set(ids.values())) == len(ids)
    assert not [op_id for op_id in ids.values() if op_id.endswith(("_get", "_post")) or "_jobs_" in op_id]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_schema_states_the_rules_the_server_enforces(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    upload = schemas["Body_create_job"]["properties"]
    assert upload["image"] == upload["image"] | {"type": "string", "format": "binary"}
    assert upload["masks"]["items"] == {"type": "string", "format": "binary"}
    assert (upload["concepts"]["minItems"], upload["concepts"]["maxItems"]) == (MIN_CONCEPTS, MAX_CONCEPTS)
    assert upload["concepts"]["items"]["pattern"] == "^[A-Za-z0-9_-]{1,32}$"
    assert upload["initializers"]["items"]["pattern"] == "^(?:[A-Za-z0-9_-]{1,32})?$"
    assert upload["options"]["contentSchema"] == {"$ref": "#/components/schemas/JobOptions"}
    assert schemas["ImageFit"]["enum"] == ["crop", "pad"]
    for side in ("width", "height"):
        side_schema = schemas["GenerateRequest"]["properties"][side]["anyOf"][0]
        assert side_schema.items() >= {"multipleOf": 8, "minimum": 64, "maximum": 1024}.items()
    seed = schemas["GenerateRequest"]["properties"]["seed"]["anyOf"][0]
    assert seed.items() >= {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}.items()
    cursor = next(p for p in document["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "cursor")
    assert cursor["schema"]["anyOf"][0].items() >= {"maxLength": 256, "pattern": "^[A-Za-z0-9_-]*$"}.items()
    assert schemas["GenerateRequest"]["examples"] and upload["concepts"]["examples"] and schemas["Problem"]["examples"]


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def generated_client(document: dict[str, Any], tmp_path: Path) -> Any:
    """openapi-python-client's package for this document, imported from a scratch folder."""
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    (tmp_path / "config.yml").write_text("post_hooks: []\npackage_name_override: generated_attencraft\n")
    subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json", "--config", "config.yml",
         "--meta", "none", "--output-path", "generated_attencraft"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("generated_attencraft")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.startswith("generated_attencraft")]:
            del sys.modules[name]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_generated_client_submits_a_job_and_parses_problems(generated_client: Any, client: TestClient) -> None:
    create_job = importlib.import_module("generated_attencraft.api.jobs.create_job")
    read_job = importlib.import_module("generated_attencraft.api.jobs.read_job")
    models = importlib.import_module("generated_attencraft.models")
    types = importlib.import_module("generated_attencraft.types")
    api = generated_client.AuthenticatedClient(base_url="http://testserver", token="unused")
    api.set_httpx_client(client)  # the TestClient is an httpx.Client on the app, carrying a tenant's key

    def body(concepts: list[str]) -> Any:
        photo = types.File(payload=io.BytesIO(png_bytes()), file_name="photo.png", mime_type="image/png")
        return models.BodyCreateJob(image=photo, concepts=concepts, options='{"steps": 5, "fit": "pad"}')

    submitted = create_job.sync_detailed(client=api, body=body(["cat", "dog"]))
    assert submitted.status_code == 202, submitted.content
    assert isinstance(submitted.parsed, models.JobOut)
    assert [c.placeholder for c in submitted.parsed.concepts] == ["<cat>", "<dog>"]
    assert submitted.parsed.options.fit == models.ImageFit.PAD

    refused = create_job.sync_detailed(client=api, body=body(["cat"]))
    assert isinstance(refused.parsed, models.Problem) and refused.parsed.code == "concept_count"
    missing = read_job.sync_detailed("00000000-0000-4000-8000-000000000000", client=api)
    assert isinstance(missing.parsed, models.Problem) and missing.parsed.status == 404
    client.headers["Authorization"] = "Bearer ak_wrong"
    unauthorized = read_job.sync_detailed(submitted.parsed.id, client=api)
    assert isinstance(unauthorized.parsed, models.Problem) and unauthorized.parsed.code == "invalid_api_key"
