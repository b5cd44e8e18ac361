"""The application factory: the only place that wires settings, database, storage and queue together."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from attencraft_contract.limits import MAX_CONCEPTS
from service.body_limit import RequestBodyLimit
from service.db import create_db_engine, create_session_factory
from service.errors import install_problem_handlers
from service.event_stream import EventHub
from service.openapi import install_openapi, operation_id
from service.prompts import PromptLengthChecker
from service.queue import JobQueue
from service.routes import concepts, files, generations, health, jobs, webhooks
from service.settings import Settings
from service.storage import ObjectStore, create_store
from service.web import install_web

MAX_FORM_FIELDS = 64


def create_app(
    settings: Settings,
    *,
    queue: JobQueue,
    store: ObjectStore | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the API; the caller owns the queue (and the engine, when it passes one)."""
    owns_engine = engine is None
    engine = engine or create_db_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Fewer threads than Starlette's 40 keep the GIL from thrashing under load: lower tail latency.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        yield
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="AttenCraft",
        summary="Learn several concepts from one photo and use them in text-to-image prompts.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # install_web serves /docs and /redoc without a CDN
        redoc_url=None,
        generate_unique_id_function=operation_id,
        form_limits={"max_files": MAX_CONCEPTS + 1, "max_fields": MAX_FORM_FIELDS},
    )
    app.state.settings = settings
    app.state.session_factory = create_session_factory(engine)
    app.state.event_hub = EventHub(app.state.session_factory)
    app.state.store = store or create_store(settings)
    app.state.prompt_lengths = PromptLengthChecker(app.state.store)
    app.state.queue = queue
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes)
    install_problem_handlers(app)
    install_openapi(app)
    for module in (jobs, concepts, generations, health, files, webhooks):
        app.include_router(module.router)
    install_web(app)
    return app
