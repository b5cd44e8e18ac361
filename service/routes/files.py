"""Downloads from the local-directory store through HMAC-signed, expiring URLs."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from service.deps import StoreDep
from service.errors import NotFound
from service.storage import LocalDirectoryStore, ObjectMissing

router = APIRouter(include_in_schema=False)


@router.get("/files/{key:path}")
def download_file(
    key: str, store: StoreDep, expires: Annotated[int, Query()], signature: Annotated[str, Query(max_length=128)]
) -> FileResponse:
    if not isinstance(store, LocalDirectoryStore) or not store.verify(key, expires=expires, signature=signature):
        raise NotFound("This download link is invalid or has expired; ask the API for a fresh one.")
    try:
        path = store.path_for(key)
    except ObjectMissing as exc:
        raise NotFound("This file does not exist.") from exc
    if not path.is_file():
        raise NotFound("This file does not exist.")
    return FileResponse(path)
