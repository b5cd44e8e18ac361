"""What each API call sends and how its answer is read, for the sync and the async client alike."""

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from pydantic import BaseModel

from attencraft_client.errors import ApiError, ClientError
from attencraft_contract.methods import check_masks_allowed
from attencraft_contract.models import ArtifactOut, GenerateRequest, JobStatus
from attencraft_contract.rules import job_options, validated_options

Model = TypeVar("Model", bound=BaseModel)
ImageInput = str | os.PathLike[str] | bytes | IO[bytes] | tuple[str, bytes]
JobRef = Any  # a Job, a JobOut or a job id


JSON_CONTENT = {"Content-Type": "application/json"}
DEFAULT_TIMEOUT_S = 60.0


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def job_id_of(job: JobRef) -> str:
    return job if isinstance(job, str) else job.id


def _file_part(field: str, image: ImageInput) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(image, tuple):
        name, content = image
    elif isinstance(image, bytes):
        name, content = f"{field}.png", image
    elif isinstance(image, str | os.PathLike):
        path = Path(image)
        name, content = path.name, path.read_bytes()
    else:
        name, content = Path(getattr(image, "name", field)).name, image.read()
    return field, (name, content, "application/octet-stream")


def create_job_request(
    http: httpx.Client | httpx.AsyncClient,
    image: ImageInput,
    concepts: Sequence[str],
    *,
    initializers: Sequence[str] | None,
    masks: Sequence[ImageInput] | None,
    webhook_url: str | None,
    options: dict[str, Any],
    idempotency_key: str | None,
) -> httpx.Request:
    """POST /jobs; the options are checked here with the contract's rules, the rest by the server."""
    checked_options = job_options(options)
    check_masks_allowed(checked_options.method, len(masks or []))
    data: dict[str, Any] = {"concepts": list(concepts), "options": checked_options.model_dump_json(exclude_none=True)}
    if initializers is not None:
        data["initializers"] = list(initializers)
    if webhook_url is not None:
        data["webhook_url"] = webhook_url
    files = [_file_part("image", image)] + [_file_part("masks", mask) for mask in masks or []]
    return http.build_request("POST", "/jobs", data=data, files=files, headers=idempotency_header(idempotency_key))


def idempotency_header(key: str | None) -> dict[str, str]:
    """A retry of a creating request with the same key gets what the first one created (for 24 hours)."""
    return {"Idempotency-Key": key} if key is not None else {}


def list_jobs_request(
    http: httpx.Client | httpx.AsyncClient, status: JobStatus | str | None, limit: int, cursor: str | None
) -> httpx.Request:
    params = {"limit": limit} | ({"status": str(status)} if status else {}) | ({"cursor": cursor} if cursor else {})
    return http.build_request("GET", "/jobs", params=params)


def generate_request(
    http: httpx.Client | httpx.AsyncClient,
    concept_ids: Sequence[str],
    prompt: str,
    *,
    wait_s: int,
    fields: dict[str, Any],
    idempotency_key: str | None,
) -> httpx.Request:
    body = validated_options(GenerateRequest, {"concept_ids": list(concept_ids), "prompt": prompt, **fields})
    headers = ({"Prefer": f"wait={wait_s}"} if wait_s else {}) | idempotency_header(idempotency_key)
    return http.build_request(
        "POST",
        "/generate",
        content=body.model_dump_json(exclude_none=True),
        headers=headers | JSON_CONTENT,
        timeout=DEFAULT_TIMEOUT_S + wait_s,  # the server holds the answer up to wait_s
    )


def download_request(http: httpx.Client | httpx.AsyncClient, url: str) -> httpx.Request:
    """GET a signed download URL; the API key goes only to the API's own origin (an S3 presigned URL carries its
    own signature and refuses a second one)."""
    request = http.build_request("GET", url)
    if request.url.netloc != http.base_url.netloc or request.url.scheme != http.base_url.scheme:
        request.headers.pop("Authorization", None)
    return request


def parsed(response: httpx.Response, model: type[Model]) -> Model:
    """The response body as ``model``, or the API's problem raised as an ApiError."""
    if not response.is_success:
        raise ApiError.from_response(response)
    return model.model_validate_json(response.content)


def checked_download(artifact: ArtifactOut, content: bytes, folder: Path) -> Path:
    """Write a downloaded artifact under its file name after checking its SHA-256."""
    if hashlib.sha256(content).hexdigest() != artifact.sha256:
        raise ClientError(f"The download of {artifact.name} does not match its SHA-256; try again.")
    path = folder / artifact.url.split("?", 1)[0].rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
