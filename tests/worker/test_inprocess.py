"""The embedded mode's worker across a restart: a job the previous process left running resumes from its last
checkpoint, a generation it left drawing fails worker_lost."""

import contextlib
import time
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.models import BaseModel
from service import generation_repository
from service.models import Generation, GenerationStatus, Job, JobStatus
from service.settings import Settings
from service.storage import LocalDirectoryStore, StoredObject
from tests.worker.conftest import insert_queued_job
from worker.inprocess import start_embedded_worker
from worker.jobs import JobRunner

STEPS = 6
CHECKPOINT_EVERY = 2


class ProcessDied(BaseException):
    """What the process's death looks like to the code it interrupts: nothing catches it."""


class DyingStore(LocalDirectoryStore):
    """The process dies as it writes its second checkpoint."""

    checkpoints = 0

    def put(self, key: str, source: BinaryIO, *, content_type: str) -> StoredObject:
        if "/checkpoints/" in key:
            self.checkpoints += 1
            if self.checkpoints == 2:
                raise ProcessDied()
        return super().put(key, source, content_type=content_type)


def _row(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        return session.get_one(Job, job_id)


def test_a_restart_resumes_the_interrupted_job_from_its_checkpoint_and_fails_the_drawing_generation(
    sessions: sessionmaker[Session], store: LocalDirectoryStore, tiny_model: BaseModel, tmp_path: Path
) -> None:
    job_id = insert_queued_job(sessions, store, steps=STEPS)
    dying = DyingStore(store.root, b"0" * 32)
    with contextlib.suppress(ProcessDied):
        JobRunner(sessions, dying, lambda: tiny_model, checkpoint_every=CHECKPOINT_EVERY).run(job_id)
    interrupted = _row(sessions, job_id)
    assert (interrupted.status, interrupted.checkpoint_step) == (JobStatus.TRAINING, CHECKPOINT_EVERY)
    with sessions() as session:  # and a generation was being drawn when the process died
        drawing = generation_repository.add_generation(
            session,
            tenant_id=interrupted.tenant_id,
            job_id=job_id,
            concept_ids=[],
            prompt="<ball>",
            negative_prompt="",
            options={"num_images": 1},
            seed=0,
        )
        generation_repository.claim_batch(session, drawing.id, 1)
        session.commit()

    settings = Settings(data_dir=tmp_path, base_model="tiny", device="cpu", checkpoint_every=CHECKPOINT_EVERY)
    worker = start_embedded_worker(settings, sessions, store)
    try:
        deadline = time.monotonic() + 300
        while not _row(sessions, job_id).status.is_terminal and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()

    job = _row(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert [(run["attempt"], run["from_step"], run["to_step"]) for run in job.runs][1:] == [
        (2, CHECKPOINT_EVERY, STEPS)
    ]
    with sessions() as session:
        generation = session.get_one(Generation, drawing.id)
        assert (generation.status, generation.error_code) == (GenerationStatus.FAILED, "worker_lost")
