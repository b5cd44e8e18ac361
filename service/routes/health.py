"""Liveness and readiness probes."""

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from attencraft_contract.models import Health, Readiness
from service.deps import QueueDep, SessionDep, SessionReleasingRoute, StoreDep
from service.errors import ServiceUnavailable
from service.routes.problems import problem_responses
from service.storage import StorageError, StorageFull

router = APIRouter(tags=["health"], route_class=SessionReleasingRoute)


@router.get("/healthz", summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="The database, storage, queue and (embedded mode) base model are ready",
    responses=problem_responses(503, s503="Not ready; the problem's `errors` say which part and why."),
)
def readyz(session: SessionDep, store: StoreDep, queue: QueueDep) -> Readiness:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
    try:
        store.check()
        checks["storage"] = "ok"
    except StorageFull as exc:
        checks["storage"] = f"full: {exc}"
    except StorageError as exc:
        checks["storage"] = f"unavailable: {exc}"
    checks.update(queue.checks())
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        raise ServiceUnavailable(
            "Not ready: " + "; ".join(f"{name} {checks[name]}" for name in failing),
            errors=[{"field": name, "message": checks[name]} for name in failing],
        )
    return Readiness(status="ready", checks=checks)
