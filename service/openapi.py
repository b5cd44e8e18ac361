"""The OpenAPI document as the service behaves: problem+json errors, binary file parts, stable operation ids."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from attencraft_contract.models import Problem
from service.errors import PROBLEM_CONTENT_TYPE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def operation_id(route: APIRoute) -> str:
    """The route function's name (`create_job`, `read_job`): stable, and readable in generated clients."""
    return route.name


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "Problem": schema}


def _binary_file_parts(node: Any) -> None:
    """FastAPI writes an upload as OpenAPI 3.1's contentMediaType; generated clients want ``format: binary``."""
    if isinstance(node, dict):
        if node.get("contentMediaType") == "application/octet-stream":
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_file_parts(value)
    elif isinstance(node, list):
        for value in node:
            _binary_file_parts(value)


def _problem_responses(document: dict[str, Any]) -> None:
    """Every error response carries the Problem schema under application/problem+json, the type actually sent."""
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
                    if response.get("description") == "Validation Error":
                        response["description"] = "The request is not valid; `errors` lists the fields."


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name in FASTAPI_VALIDATION_SCHEMAS:
                schemas.pop(name, None)
            schemas.update(_problem_schemas())
            _problem_responses(document)
            _binary_file_parts(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
