"""`attencraft serve`, `worker`, `migrate`, `keys` and `demo`: the HTTP service and its workers.

Service and worker modules are imported inside the handlers, so other commands never load FastAPI or torch.
Settings, the database, the store, the port and the base model are checked before the server starts, each
failure one sentence that names the setting to change.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attencraft_cli.errors import CommandError, one_line
from attencraft_cli.parsing import command
from attencraft_core.model_spec import TOY

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from service.queue import JobQueue
    from service.settings import Settings
    from service.storage import ObjectStore
    from worker.inprocess import InProcessWorker

WORKER_STOP_TIMEOUT_S = 10
WEBHOOK_SENDER_THREADS = 4
DEMO_POLL_INTERVAL_S = 0.5
SERVER_START_TIMEOUT_S = 60
DEFAULT_PORT = 8000
DATA_DIR_LOCK = "serve.lock"


def add_service_commands(subparsers: Any) -> None:
    serve = command(
        subparsers,
        "serve",
        help="run the API with an in-process worker (settings: ATTENCRAFT_* environment variables)",
        description="Starts the REST API (docs at /docs) and a worker thread that trains one job at a time. "
        "SQLite and a local store under the data directory unless ATTENCRAFT_DATABASE_URL and "
        "ATTENCRAFT_STORAGE_URL say otherwise; with ATTENCRAFT_QUEUE=celery it sends jobs to `attencraft worker` "
        "processes through ATTENCRAFT_BROKER_URL instead. The first start prints the default tenant's API key once.",
        example="attencraft serve --model tiny --device cpu --port 8000",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    serve.add_argument("--model", default=None, help="base model (default: ATTENCRAFT_BASE_MODEL, else SD 2.1-base)")
    serve.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps (default: ATTENCRAFT_DEVICE)")
    serve.add_argument(
        "--data-dir", type=Path, default=None, help="default: ATTENCRAFT_DATA_DIR, else ./attencraft-data"
    )
    serve.set_defaults(handler=run_serve)

    worker = command(
        subparsers,
        "worker",
        help="run a Celery worker on ATTENCRAFT_BROKER_URL (one task at a time per process)",
        description="Consumes the given queues: training jobs, generations and webhook deliveries. Each worker "
        "also requeues jobs whose worker died (stale heartbeat) and sends webhook retries when they are due.",
        example="ATTENCRAFT_QUEUE=celery attencraft worker --queues training,inference",
    )
    worker.add_argument("--queues", default="training,inference,webhooks", help="comma-separated queue names")
    worker.add_argument("--concurrency", type=int, default=1, help="processes; one per GPU")
    worker.set_defaults(handler=run_worker)

    keys = command(
        subparsers,
        "keys",
        help="list, create and revoke API keys (only their hashes are stored)",
        example="attencraft keys create --tenant acme\nattencraft keys list\nattencraft keys revoke ak_Xy12abc",
    ).add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = command(
        keys,
        "create",
        help="create an API key for a tenant (created if new) and print it once",
        example="attencraft keys create --tenant acme",
    )
    create.add_argument("--tenant", required=True, help="tenant name")
    create.set_defaults(handler=run_keys_create)
    listing = command(
        keys,
        "list",
        help="list keys: id, tenant, prefix, created, revoked",
        example="attencraft keys list --tenant acme",
    )
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.set_defaults(handler=run_keys_list)
    revoke = command(
        keys,
        "revoke",
        help="revoke a key by its id or shown prefix; every API process refuses it from the next request on",
        example="attencraft keys revoke ak_Xy12abc",
    )
    revoke.add_argument("key", metavar="ID_OR_PREFIX", help="as `attencraft keys list` shows it, or the key itself")
    revoke.set_defaults(handler=run_keys_revoke)

    migrate = command(
        subparsers,
        "migrate",
        help="upgrade the database (ATTENCRAFT_DATABASE_URL) to the current schema",
        example="ATTENCRAFT_DATABASE_URL=postgresql+psycopg://user:pw@db:5432/attencraft attencraft migrate",
    )
    migrate.set_defaults(handler=run_migrate)

    demo = command(
        subparsers,
        "demo",
        help="start the embedded service, learn two concepts of a toy scene, draw them, say what the pictures show",
        example="attencraft demo --model tiny --steps 30",
    )
    demo.add_argument("--model", default=TOY, help="base model (toy: trained on the toy world, shipped; no download)")
    demo.add_argument("--steps", type=int, default=150, help="training steps")
    demo.add_argument("--port", type=int, default=DEFAULT_PORT, help="a free port is used when this one is taken")
    demo.set_defaults(handler=run_demo)


def load_settings(**overrides: Any) -> Settings:
    """The ATTENCRAFT_* settings with command-line overrides; a bad value or an unusable data directory is one
    sentence naming the variable."""
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        settings = Settings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as error:
        problems = "; ".join(
            f"ATTENCRAFT_{'_'.join(map(str, problem['loc'])).upper() or 'SETTINGS'}: {problem['msg']}"
            + (f" (got {problem['input']!r})" if isinstance(problem["input"], str | int | float) else "")
            for problem in error.errors()
        )
        raise CommandError(f"Invalid setting: {problems}.") from error
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(
            f"The data directory {settings.data_dir} (ATTENCRAFT_DATA_DIR or --data-dir) cannot be used: "
            f"{error.strerror or error}."
        ) from error
    return settings


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """A database that is misspelt, unreachable or at an unknown schema revision is one sentence."""
    from alembic.util.exc import CommandError as AlembicError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, AlembicError) as error:
        try:
            shown = make_url(settings.database_url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            shown = repr(settings.database_url)
        reason = one_line(str(getattr(error, "orig", None) or error)).split(" [SQL:")[0].split("(Background on")[0]
        raise CommandError(
            f"The database {shown} (ATTENCRAFT_DATABASE_URL) cannot be used: {reason.strip()}."
        ) from error


@contextmanager
def database_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on an engine (a connection pool) of its own, disposed afterwards."""
    from service.db import create_db_engine, create_session_factory

    with database_errors(settings):
        engine = create_db_engine(settings.database_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def migrated_database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Migrate, then yield a session factory."""
    from service.migrate import upgrade_to_head

    with database_errors(settings):
        upgrade_to_head(settings.database_url)
    with database_sessions(settings) as sessions:
        yield sessions


def open_store(settings: Settings) -> ObjectStore:
    from service.storage import StorageError, create_store

    try:
        store = create_store(settings)
        store.check()
    except (ValueError, OSError, StorageError) as error:
        raise CommandError(
            f"The store {settings.storage_url} (ATTENCRAFT_STORAGE_URL) cannot be used: {one_line(str(error))}."
        ) from error
    return store


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind the port now, so a port in use is a sentence before anything starts (uvicorn then serves on it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise CommandError(f"--host {host} is not an address of this machine ({error.strerror}).") from error
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise CommandError(f"Port {port} on {host} is already in use; choose another with --port.") from error
        raise CommandError(f"Cannot listen on {host}:{port}: {error.strerror or error}.") from error
    sock.listen(2048)
    return sock


def check_base_model_setting(settings: Settings) -> None:
    """In embedded mode, the base model and device settings' spelling, before anything is imported or started."""
    from attencraft_core.model_spec import check_device_name, check_model_spec

    if settings.queue == "inprocess":
        check_model_spec(settings.base_model)
        check_device_name(settings.device)


def announce_default_key(sessions: sessionmaker[Session], settings: Settings) -> str:
    """Give the default tenant its key: ATTENCRAFT_API_KEY, or one generated at the first start and printed only
    then (only its hash is stored). Returns what to tell the operator."""
    from service.auth import create_api_key, get_or_create_tenant, has_active_key, register_api_key

    tenant = settings.default_tenant
    with sessions() as session:
        if settings.api_key is not None:
            register_api_key(session, get_or_create_tenant(session, tenant), settings.api_key.get_secret_value())
            message = f"Tenant {tenant!r} uses the key in ATTENCRAFT_API_KEY."
        elif has_active_key(session, tenant):
            message = (
                f"Tenant {tenant!r} has the API key printed at the first start (only its hash is stored); "
                f"`attencraft keys create --tenant {tenant}` makes another."
            )
        else:
            key = create_api_key(session, tenant)
            message = f"API key of tenant {tenant!r}, shown only this once (only its hash is stored): {key}"
        session.commit()
    return message


@contextmanager
def job_queue(
    settings: Settings, sessions: sessionmaker[Session], store: ObjectStore
) -> Iterator[JobQueue | InProcessWorker]:
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


class EmbeddedService:
    """The API app wired to its database, store and queue (see `embedded_service`)."""

    def __init__(
        self,
        app: FastAPI,
        store: ObjectStore,
        queue: JobQueue | InProcessWorker,
        sessions: sessionmaker[Session],
        background_sessions: sessionmaker[Session],
    ) -> None:
        self.app = app
        self.store = store
        self.queue = queue
        self.sessions = sessions
        self.background_sessions = background_sessions  # the worker's, heartbeat's and sweeper's own pool

    def new_key(self, tenant: str = "default") -> str:
        """A fresh API key for the tenant (the demo's own, and tests')."""
        from service.auth import create_api_key

        with self.sessions() as session:
            key = create_api_key(session, tenant)
            session.commit()
        return key

    def revoke(self, key: str) -> None:
        from service.auth import revoke_api_key

        with self.sessions() as session:
            revoke_api_key(session, key)
            session.commit()


@contextmanager
def data_dir_lock(settings: Settings) -> Iterator[None]:
    """Own the data directory while serving from it: a second embedded server on it would take the first one's
    running jobs for interrupted and run them, and its queued ones, twice. Taken before anything is written there."""
    import fcntl

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / DATA_DIR_LOCK).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            lock.seek(0)
            owner = lock.read().strip()
            raise CommandError(
                f"Another AttenCraft server{f' (process {owner})' if owner else ''} is using the data directory "
                f"{settings.data_dir.resolve()}; stop it, or give this one its own with --data-dir."
            ) from error
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield  # the lock ends with the file's closing, also when the process dies


@contextmanager
def embedded_service(settings: Settings) -> Iterator[EmbeddedService]:
    """Check the store (and, in embedded mode, that the device exists), migrate, start the queue, build the app.

    In embedded mode the data directory is locked first. The base model then loads in the background; /readyz
    says "loading" until it is ready, or why it failed.
    """
    with contextlib.ExitStack() as owned:
        if settings.queue == "inprocess":
            owned.enter_context(data_dir_lock(settings))
        yield owned.enter_context(_embedded_service(settings))


@contextmanager
def _embedded_service(settings: Settings) -> Iterator[EmbeddedService]:
    from service.app import create_app

    check_base_model_setting(settings)
    store = open_store(settings)
    with migrated_database(settings) as sessions, database_sessions(settings) as background_sessions:
        if settings.queue == "inprocess":
            from attencraft_core.models import resolve_device

            resolve_device(settings.device)
        engine: Engine = sessions.kw["bind"]
        # Requests never wait for a connection the training worker holds, nor the worker for theirs.
        with job_queue(settings, background_sessions, store) as queue:
            app = create_app(settings, queue=queue, store=store, engine=engine)
            yield EmbeddedService(app, store, queue, sessions, background_sessions)


def report_model_load(queue: JobQueue | InProcessWorker) -> None:
    """Tell the operator when the background load of the base model ends, and how."""
    from worker.inprocess import InProcessWorker

    if not isinstance(queue, InProcessWorker):
        return
    model = queue.model

    def report() -> None:
        started = time.perf_counter()
        state = model.wait()
        if state == "ok":
            print(f"Base model {model.spec!r} ready on {model.device} after {time.perf_counter() - started:.1f} s.")
        else:
            print(f"error: {state} (jobs fail until the setting is fixed and the server restarted)", file=sys.stderr)
        sys.stdout.flush()

    threading.Thread(target=report, name="attencraft-model-report", daemon=True).start()


def run_serve(arguments: argparse.Namespace) -> int:
    settings = load_settings(data_dir=arguments.data_dir, base_model=arguments.model, device=arguments.device)
    check_base_model_setting(settings)
    sock = listening_socket(arguments.host, arguments.port)
    import uvicorn

    with sock, embedded_service(settings) as service:
        origin = f"http://{arguments.host}:{arguments.port}"
        print(f"AttenCraft API on {origin} (docs: {origin}/docs, readiness: {origin}/readyz)")
        print(f"Data in {settings.data_dir.resolve()}; base model {settings.base_model!r} on {settings.device}.")
        print(announce_default_key(service.sessions, settings))
        sys.stdout.flush()
        report_model_load(service.queue)
        server = uvicorn.Server(uvicorn.Config(service.app, log_level="info"))
        server.run(sockets=[sock])
    return 0


def demo_socket(port: int) -> socket.socket:
    """The requested port, or any free one when it is taken (the demo is not worth stopping for that)."""
    try:
        return listening_socket("127.0.0.1", port)
    except CommandError:
        sock = listening_socket("127.0.0.1", 0)
        print(f"Port {port} is in use; the demo uses port {sock.getsockname()[1]} instead.", file=sys.stderr)
        return sock


def run_demo(arguments: argparse.Namespace) -> int:
    from attencraft_cli.demo_cases import IMAGES_PER_PROMPT, SAMPLING_STEPS, demo_case, demo_prompts, oracle_readout
    from attencraft_contract import rules
    from attencraft_contract.models import JobOptions, JobStatus

    options = rules.validated_options(JobOptions, {"steps": arguments.steps})
    settings = load_settings(base_model=arguments.model)
    check_base_model_setting(settings)
    case = demo_case(arguments.model)
    sock = demo_socket(arguments.port)
    import uvicorn

    from attencraft_client import Client

    with sock, embedded_service(settings) as service:
        server = uvicorn.Server(uvicorn.Config(service.app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="attencraft-demo", daemon=True)
        thread.start()
        key = service.new_key()
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise CommandError("The demo's API server did not start; run with --debug to see why.")
                time.sleep(0.1)
            origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
            print(f"Embedded AttenCraft API on {origin} (docs: {origin}/docs), base model {arguments.model!r}")
            with Client(origin, key) as client:
                job = client.create_job(("demo.png", case.photo), case.concepts, **options.model_dump())
                placeholders = [rules.placeholder_for(name) for name in case.concepts]
                print(f"Submitted job {job.id}: learn {' and '.join(placeholders)} from {case.description}")
                job.wait(progress=True)
                artifacts = client.artifacts(job.id)
                drawn = {}
                if job.status == JobStatus.SUCCEEDED:
                    for prompt in demo_prompts(placeholders):
                        generation = client.generate(
                            job.id, prompt, seed=0, num_images=IMAGES_PER_PROMPT, steps=SAMPLING_STEPS
                        )
                        drawn[prompt] = generation
        finally:
            server.should_exit = True
            thread.join(WORKER_STOP_TIMEOUT_S)
            service.revoke(key)
    if job.status != JobStatus.SUCCEEDED:
        error = job.data.error
        print(f"The job ended {job.status}: {error.message if error else 'no reason given'}", file=sys.stderr)
        return 1
    ratios = ", ".join(f"{concept.placeholder} {concept.ratio:.3f}" for concept in job.data.concepts)
    print(f"Succeeded. Sampling ratios: {ratios}")
    from service.storage import LocalDirectoryStore

    if isinstance(service.store, LocalDirectoryStore):
        job_folder = next(service.store.root.glob(f"tenants/*/jobs/{job.id}"))
        print(f"Masks and artifacts are in {job_folder}:")
        for path in sorted(job_folder.rglob("*.*")):
            print(f"  {path.relative_to(job_folder)}")
    else:
        print("Artifacts (signed URLs):")
        for artifact in artifacts.items:
            print(f"  {artifact.name:<11} {artifact.url}")
    pictures = settings.data_dir / "demo" / job.id
    print(f"Generated pictures ({IMAGES_PER_PROMPT} per prompt) are in {pictures}:")
    for index, (prompt, generation) in enumerate(drawn.items()):
        generation.save(pictures / f"prompt{index}.png")
        print(f"  prompt{index}-*.png  {prompt!r}")
    if case.truth is not None:
        print("The toy world's oracle sees (concept in its own shade, in pictures drawn):")
        for prompt, generation in drawn.items():
            print(oracle_readout(case, prompt, generation.images))
    print("Next: `attencraft serve` runs the API for your own photos (README: quick start).")
    return 0


def run_worker(arguments: argparse.Namespace) -> int:
    load_settings()
    from worker.celery_app import app

    queues = ",".join(name.strip() for name in arguments.queues.split(",") if name.strip())
    app.worker_main(
        ["worker", f"--queues={queues}", f"--concurrency={arguments.concurrency}", "--pool=prefork", "--loglevel=INFO"]
    )
    return 0


def run_migrate(_arguments: argparse.Namespace) -> int:
    with migrated_database(load_settings()):
        print("The database schema is up to date.")
    return 0


def run_keys_create(arguments: argparse.Namespace) -> int:
    from service.auth import create_api_key

    settings = load_settings()
    with migrated_database(settings) as sessions, database_errors(settings), sessions() as session:
        key = create_api_key(session, arguments.tenant)
        session.commit()
    print(f"New API key for tenant {arguments.tenant!r}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def run_keys_list(arguments: argparse.Namespace) -> int:
    from service.auth import list_api_keys

    settings = load_settings()
    with migrated_database(settings) as sessions, database_errors(settings), sessions() as session:
        keys = list_api_keys(session, arguments.tenant)
    print(f"{'ID':<36}  {'TENANT':<16}  {'PREFIX':<10}  {'CREATED (UTC)':<19}  REVOKED (UTC)")
    for key in keys:
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else "-"
        print(f"{key.id:<36}  {key.tenant:<16}  {key.prefix:<10}  {key.created_at:%Y-%m-%d %H:%M:%S}  {revoked}")
    return 0


def run_keys_revoke(arguments: argparse.Namespace) -> int:
    from service.auth import revoke_api_key

    settings = load_settings()
    with migrated_database(settings) as sessions, database_errors(settings), sessions() as session:
        key = revoke_api_key(session, arguments.key)
        session.commit()
    print(f"Revoked key {key.prefix}… of tenant {key.tenant!r}; requests with it are refused from now on.")
    return 0
