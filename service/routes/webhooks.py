"""Webhooks: the tenant's signing secret and each job's delivery log."""

from fastapi import APIRouter

from attencraft_contract.models import WebhookDeliveryList, WebhookSecret
from service.deps import CurrentTenant, SessionDep, SessionReleasingRoute
from service.presenters import delivery_list
from service.repository import list_deliveries, webhook_secret
from service.routes.problems import problem_responses

router = APIRouter(tags=["webhooks"], route_class=SessionReleasingRoute)


@router.get(
    "/webhooks/secret",
    summary="The tenant's webhook signing secret (Standard Webhooks, whsec_...)",
    responses=problem_responses(401),
)
def read_webhook_secret(tenant: CurrentTenant, session: SessionDep) -> WebhookSecret:
    secret = webhook_secret(session, tenant.id)
    session.commit()
    return WebhookSecret(secret=secret)


@router.get(
    "/jobs/{job_id}/webhooks",
    summary="A job's webhook deliveries and every attempt",
    responses=problem_responses(401, 404),
)
def read_deliveries(job_id: str, tenant: CurrentTenant, session: SessionDep) -> WebhookDeliveryList:
    return delivery_list(job_id, list_deliveries(session, tenant.id, job_id))
