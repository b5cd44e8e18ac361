"""`attencraft serve`, `worker`, `migrate`, `keys create` and `demo`: the HTTP service and its workers.

Service and worker modules are imported inside the handlers, so other commands never load FastAPI or torch.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.orm import Session, sessionmaker

    from service.queue import JobQueue
    from service.settings import Settings
    from service.storage import ObjectStore

WORKER_STOP_TIMEOUT_S = 10
WEBHOOK_SENDER_THREADS = 4
DEMO_POLL_INTERVAL_S = 0.5


def add_service_commands(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the API with an in-process worker (settings: ATTENCRAFT_* environment variables)",
        description="Starts the REST API (docs at /docs) and a worker thread that trains one job at a time. "
        "Defaults: SQLite and a local store under ./attencraft-data; see ATTENCRAFT_DATABASE_URL, "
        "ATTENCRAFT_STORAGE_URL, ATTENCRAFT_BASE_MODEL and ATTENCRAFT_API_KEY. With ATTENCRAFT_QUEUE=celery "
        "it sends jobs to `attencraft worker` processes through ATTENCRAFT_BROKER_URL instead.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=run_serve)

    worker = subparsers.add_parser(
        "worker",
        help="run a Celery worker on ATTENCRAFT_BROKER_URL (one task at a time per process)",
        description="Consumes the given queues: training jobs, generations and webhook deliveries. Each worker "
        "also requeues jobs whose worker died (stale heartbeat) and sends webhook retries when they are due.",
    )
    worker.add_argument("--queues", default="training,inference,webhooks", help="comma-separated queue names")
    worker.add_argument("--concurrency", type=int, default=1, help="processes; one per GPU")
    worker.set_defaults(handler=run_worker)

    keys = subparsers.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key for a tenant (created if new) and print it")
    create.add_argument("--tenant", required=True, help="tenant name")
    create.set_defaults(handler=run_keys_create)

    migrate = subparsers.add_parser("migrate", help="upgrade the database (ATTENCRAFT_DATABASE_URL) to the schema")
    migrate.set_defaults(handler=run_migrate)

    add_demo_command(subparsers)


def add_demo_command(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="start the embedded service, train two concepts of a generated photo, show where the results are",
    )
    demo.add_argument("--model", default="tiny", help="base model (default: tiny, a small random model)")
    demo.add_argument("--steps", type=int, default=30)
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(handler=run_demo)


def default_tenant_key(sessions: sessionmaker[Session], settings: Settings) -> tuple[str, bool]:
    """The default tenant's key: ATTENCRAFT_API_KEY when set, else a new one. True when generated."""
    from service.auth import create_api_key, get_or_create_tenant, register_api_key

    with sessions() as session:
        if settings.api_key is not None:
            key = settings.api_key.get_secret_value()
            register_api_key(session, get_or_create_tenant(session, settings.default_tenant), key)
        else:
            key = create_api_key(session, settings.default_tenant)
        session.commit()
    return key, settings.api_key is None


@contextmanager
def job_queue(settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> Iterator[JobQueue]:
    """Celery workers (ATTENCRAFT_QUEUE=celery), or a worker thread plus webhook senders in this process."""
    if settings.queue == "celery":
        from worker.celery_app import create_celery_app
        from worker.celery_queue import CeleryQueue

        yield CeleryQueue(create_celery_app(settings))
        return

    from concurrent.futures import ThreadPoolExecutor

    from worker.deliveries import deliver
    from worker.inprocess import start_embedded_worker
    from worker.sweeper import Sweeper

    worker = start_embedded_worker(settings, sessions, store)
    senders = ThreadPoolExecutor(WEBHOOK_SENDER_THREADS, thread_name_prefix="attencraft-webhook")
    sweeper = Sweeper(
        sessions, settings, submit_webhook=lambda delivery_id: senders.submit(deliver, sessions, settings, delivery_id)
    )
    sweeper.start()
    try:
        yield worker
    finally:
        sweeper.stop()
        senders.shutdown(cancel_futures=True)
        worker.stop(WORKER_STOP_TIMEOUT_S)


@contextmanager
def embedded_service(settings: Settings) -> Iterator[tuple[FastAPI, ObjectStore, str, bool]]:
    """Migrate, make the default key, start the queue: yield (app, store, key, key_was_generated)."""
    from service.app import create_app
    from service.db import create_db_engine, create_session_factory
    from service.migrate import upgrade_to_head
    from service.storage import create_store

    upgrade_to_head(settings.database_url)
    engine = create_db_engine(settings.database_url)
    sessions = create_session_factory(engine)
    key, generated = default_tenant_key(sessions, settings)
    store = create_store(settings)
    try:
        with job_queue(settings, sessions, store) as queue:
            yield create_app(settings, queue=queue, store=store, engine=engine), store, key, generated
    finally:
        engine.dispose()


def run_serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from service.settings import get_settings

    settings = get_settings()
    with embedded_service(settings) as (app, _store, key, generated):
        origin = f"http://{arguments.host}:{arguments.port}"
        print(f"AttenCraft API on {origin} (docs: {origin}/docs), base model {settings.base_model!r}")
        if generated:
            print(f"API key of tenant {settings.default_tenant!r} (set ATTENCRAFT_API_KEY to choose one): {key}")
        else:
            print(f"Tenant {settings.default_tenant!r} uses the key in ATTENCRAFT_API_KEY.")
        sys.stdout.flush()
        uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="info")
    return 0


def demo_photo() -> bytes:
    """The sample two-object photo as PNG bytes."""
    from attencraft_cli.sample_photo import two_object_photo

    buffer = io.BytesIO()
    two_object_photo(384).save(buffer, format="PNG")
    return buffer.getvalue()


def _follow_job(client: httpx.Client, job: dict[str, Any], steps: int) -> dict[str, Any]:
    """Poll the job with a progress bar until it ends; return its final state."""
    from tqdm import tqdm

    with tqdm(total=steps, unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
        while job["status"] not in ("succeeded", "failed", "canceled"):
            time.sleep(DEMO_POLL_INTERVAL_S)
            job = client.get(f"/jobs/{job['id']}").json()
            bar.set_description(job["status"])
            bar.update(job["progress"]["step"] - bar.n)
    return job


def run_demo(arguments: argparse.Namespace) -> int:
    import threading

    import httpx
    import uvicorn

    from service.settings import get_settings
    from service.storage import LocalDirectoryStore

    settings = get_settings().model_copy(update={"base_model": arguments.model})
    with embedded_service(settings) as (app, store, key, _generated):
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=arguments.port, log_level="warning"))
        threading.Thread(target=server.run, name="attencraft-demo-api", daemon=True).start()
        try:
            while not server.started:
                time.sleep(0.1)
            origin = f"http://127.0.0.1:{arguments.port}"
            print(f"Embedded AttenCraft API on {origin} (docs: {origin}/docs), base model {arguments.model!r}")
            with httpx.Client(base_url=origin, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                job = client.post(
                    "/jobs",
                    files={"image": ("demo.png", demo_photo(), "image/png")},
                    data={"concepts": ["ball", "box"], "options": json.dumps({"steps": arguments.steps})},
                ).json()
                print(f"Submitted job {job['id']}: learn <ball> and <box> from a generated photo")
                job = _follow_job(client, job, arguments.steps)
                artifacts = client.get(f"/jobs/{job['id']}/artifacts").json()["items"]
        finally:
            server.should_exit = True
    if job["status"] != "succeeded":
        print(f"The job ended {job['status']}: {job['error']}", file=sys.stderr)
        return 1
    print("Succeeded. Sampling ratios: " + ", ".join(f"{c['placeholder']} {c['ratio']:.3f}" for c in job["concepts"]))
    if isinstance(store, LocalDirectoryStore):
        job_folder = next(store.root.glob(f"tenants/*/jobs/{job['id']}"))
        print(f"Masks and artifacts are in {job_folder}:")
        for path in sorted(job_folder.rglob("*.*")):
            print(f"  {path.relative_to(job_folder)}")
    else:
        print("Artifacts (signed URLs):")
        for artifact in artifacts:
            print(f"  {artifact['name']:<11} {artifact['url']}")
    return 0


def run_worker(arguments: argparse.Namespace) -> int:
    from worker.celery_app import app

    queues = ",".join(name.strip() for name in arguments.queues.split(",") if name.strip())
    app.worker_main(
        ["worker", f"--queues={queues}", f"--concurrency={arguments.concurrency}", "--pool=prefork", "--loglevel=INFO"]
    )
    return 0


def run_migrate(_arguments: argparse.Namespace) -> int:
    from service.migrate import upgrade_to_head
    from service.settings import get_settings

    upgrade_to_head(get_settings().database_url)
    print("The database schema is up to date.")
    return 0


def run_keys_create(arguments: argparse.Namespace) -> int:
    from service.auth import create_api_key
    from service.db import create_db_engine, create_session_factory
    from service.migrate import upgrade_to_head
    from service.settings import get_settings

    settings = get_settings()
    upgrade_to_head(settings.database_url)
    engine = create_db_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            key = create_api_key(session, arguments.tenant)
            session.commit()
    finally:
        engine.dispose()
    print(f"New API key for tenant {arguments.tenant!r}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0
