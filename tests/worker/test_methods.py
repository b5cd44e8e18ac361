"""Every method's job through the worker: trained, stored with its recipe, generating through the inference worker;
prior preservation's class images stored once and reused by later jobs."""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from attencraft_core.artifacts import METADATA_FILE
from attencraft_core.models import BaseModel
from service.db import create_db_engine, create_session_factory
from service.event_log import events_after
from service.migrate import upgrade_to_head
from service.models import Job, JobStatus
from service.storage import LocalDirectoryStore
from service.storage.layout import job_prefix
from tests.worker.conftest import insert_queued_job
from tests.worker.test_generation import Trained, _runner
from worker.jobs import JobRunner

BASELINES = ["custom_diffusion", "disendiff", "textual_localization_hard", "textual_localization_soft", "break_a_scene"]
PRIOR_PREFIX = "shared/prior-images/"


def _prior_objects(store: LocalDirectoryStore) -> list[Path]:
    return sorted(path for path in (store.root / PRIOR_PREFIX).rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, tiny_model: BaseModel) -> Iterator[tuple[Trained, dict]]:
    """One job per baseline method on one store, run in order; records the class-image objects after each."""
    folder = tmp_path_factory.mktemp("methods")
    url = f"sqlite:///{folder / 'worker.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    sessions = create_session_factory(engine)
    store = LocalDirectoryStore(folder / "store", secrets.token_bytes(32))
    job_ids: dict[str, str] = {}
    prior_after: dict[str, list[Path]] = {}
    for method in BASELINES:
        options = {"method": method, "prior_images": 1}
        job_ids[method] = insert_queued_job(sessions, store, steps=2, method_options=options)
        JobRunner(sessions, store, lambda: tiny_model).run(job_ids[method])
        prior_after[method] = _prior_objects(store)
    yield Trained(sessions, store, tuple(job_ids.values())), {"ids": job_ids, "prior": prior_after}
    engine.dispose()


@pytest.mark.parametrize("method", BASELINES)
def test_each_methods_job_succeeds_records_its_recipe_and_generates(jobs, tiny_model, method) -> None:
    trained, facts = jobs
    job_id = facts["ids"][method]
    with trained.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error_message
    metadata_key = f"{job_prefix(trained.tenant_id(job_id), job_id)}/artifacts/{METADATA_FILE}"
    metadata = json.loads(trained.store.read_bytes(metadata_key))
    assert metadata["method"] == method
    assert metadata["hyperparameters"]["recipe"]["prior_images"] == 1
    expected_masks = "none" if method in ("custom_diffusion", "disendiff") else "attention"
    assert metadata["masks_source"] == expected_masks

    generation_id = trained.queue(job_id, prompt="a <ball> next to a <box>")
    _runner(trained, tiny_model).run(generation_id)
    assert len(trained.images(generation_id)) == 2


def test_break_a_scenes_progress_names_its_two_stages(jobs) -> None:
    """Two steps: one in each stage; the first and the last step are always reported."""
    trained, facts = jobs
    with trained.sessions() as session:
        events = events_after(session, facts["ids"]["break_a_scene"], 0)
        stages = [(event.data["step"], event.data["training_stage"]) for event in events if event.type == "progress"]
    assert stages == [
        (1, {"name": "identifiers", "number": 1, "count": 2}),
        (2, {"name": "identifiers+kv", "number": 2, "count": 2}),
    ]


def test_class_images_are_stored_once_and_reused_by_later_jobs(jobs) -> None:
    _, facts = jobs
    prior = facts["prior"]
    assert len(prior["custom_diffusion"]) == 2  # "ball" and "box"
    assert len(prior["disendiff"]) == 3  # + "a ball and a box"
    assert prior["textual_localization_hard"] == prior["textual_localization_soft"] == prior["disendiff"]
    assert len(prior["break_a_scene"]) == 4  # + "a photo at the beach"
