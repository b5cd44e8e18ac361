"""Learned concepts."""

from fastapi import APIRouter

from attencraft_contract.models import ConceptOut
from service.deps import CurrentTenant, SessionDep, SessionReleasingRoute, UrlSignerDep
from service.presenters import concept_out
from service.repository import get_concept
from service.routes.problems import problem_responses

router = APIRouter(prefix="/concepts", tags=["concepts"], route_class=SessionReleasingRoute)


@router.get("/{concept_id}", summary="A learned concept", responses=problem_responses(401, 404))
def read_concept(concept_id: str, tenant: CurrentTenant, session: SessionDep, signer: UrlSignerDep) -> ConceptOut:
    return concept_out(get_concept(session, tenant.id, concept_id), signer)
