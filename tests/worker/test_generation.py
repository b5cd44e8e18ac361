"""The inference worker: warm model, concept-set cache, batches per concept set, the base restored bit-identically."""

import io
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from attencraft_contract.models import EventType, GenerationOptions
from attencraft_core.artifacts import WEIGHTS_FILE, ConceptSet
from attencraft_core.errors import PromptTooLongError
from attencraft_core.generation import GenerationRequest, check_prompt_length, generate, internal_prompt
from attencraft_core.models import BaseModel
from service import generation_repository
from service.db import create_db_engine, create_session_factory
from service.errors import ValidationProblem
from service.generation_repository import add_generation
from service.migrate import upgrade_to_head
from service.models import Event, Generation, GenerationStatus, Job, JobStatus, utc_now
from service.prompts import PromptLengthChecker
from service.settings import Settings
from service.storage import LocalDirectoryStore
from service.storage.layout import job_prefix
from tests.core.tiny import changed, state
from tests.worker.conftest import insert_queued_job
from worker import inference
from worker.inference import ConceptSetCache, GenerationRunner
from worker.jobs import JobRunner
from worker.sweeper import Sweeper

PROMPT = "a <ball> next to a <box>"
OPTIONS = GenerationOptions(num_images=2, steps=3, width=128, height=128)


@dataclass(frozen=True)
class Trained:
    sessions: sessionmaker[Session]
    store: LocalDirectoryStore
    job_ids: tuple[str, str]  # two jobs, two different concept sets for the same placeholders

    def tenant_id(self, job_id: str) -> str:
        with self.sessions() as session:
            return session.get_one(Job, job_id).tenant_id

    def weights(self, job_id: str) -> ConceptSet:
        key = f"{job_prefix(self.tenant_id(job_id), job_id)}/artifacts/{WEIGHTS_FILE}"
        return ConceptSet.load(self.store.path_for(key).parent)

    def queue(self, job_id: str, *, prompt: str = PROMPT, seed: int = 5, options: GenerationOptions = OPTIONS) -> str:
        with self.sessions() as session:
            job = session.get_one(Job, job_id)
            generation = add_generation(
                session,
                tenant_id=job.tenant_id,
                job_id=job.id,
                concept_ids=[concept.id for concept in job.concepts],
                prompt=prompt,
                negative_prompt="",
                options=options.model_dump(mode="json"),
                seed=seed,
            )
            session.commit()
            return generation.id

    def row(self, generation_id: str) -> Generation:
        with self.sessions() as session:
            return session.get_one(Generation, generation_id)

    def images(self, generation_id: str) -> list[np.ndarray]:
        row = self.row(generation_id)
        assert row.status == GenerationStatus.SUCCEEDED, row.error_message
        return [
            np.asarray(Image.open(io.BytesIO(self.store.read_bytes(key))), dtype=np.int16) for key in row.image_keys
        ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model: BaseModel) -> Iterator[Trained]:
    """Two jobs trained through the worker's code path, shared by this module's tests."""
    folder = tmp_path_factory.mktemp("generation")
    url = f"sqlite:///{folder / 'worker.db'}"
    upgrade_to_head(url)
    engine = create_db_engine(url)
    sessions = create_session_factory(engine)
    store = LocalDirectoryStore(folder / "store", secrets.token_bytes(32))
    job_ids = tuple(insert_queued_job(sessions, store, seed=seed) for seed in (1, 2))
    for job_id in job_ids:
        JobRunner(sessions, store, lambda: tiny_model).run(job_id)
        with sessions() as session:
            assert session.get_one(Job, job_id).status == JobStatus.SUCCEEDED
    yield Trained(sessions, store, job_ids)
    engine.dispose()


def _runner(trained: Trained, model: BaseModel, cache_bytes: int = 64 * 1024 * 1024) -> GenerationRunner:
    return GenerationRunner(trained.sessions, trained.store, lambda: model, ConceptSetCache(trained.store, cache_bytes))


def _reference(trained: Trained, model: BaseModel, job_id: str, seed: int) -> list[np.ndarray]:
    request = GenerationRequest(PROMPT, seed=seed, **OPTIONS.model_dump(mode="json"))
    images = generate(model, trained.weights(job_id).weights(), request)
    return [np.asarray(image, dtype=np.int16) for image in images]


def _assert_same_images(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected, strict=True):
        assert np.abs(a - b).max() <= 1


def test_a_generation_stores_reproducible_pngs_and_restores_the_base_bit_identically(
    trained: Trained, tiny_model: BaseModel
) -> None:
    runner = _runner(trained, tiny_model)
    base = state(tiny_model)
    first, second = trained.queue(trained.job_ids[0]), trained.queue(trained.job_ids[0])

    runner.run(first)
    after_first = state(tiny_model)
    runner.run(second)

    assert changed(base, after_first) == set() and changed(base, state(tiny_model)) == set()
    row = trained.row(first)
    tenant = trained.tenant_id(trained.job_ids[0])
    assert row.image_keys == [f"tenants/{tenant}/generations/{first}/{i}.png" for i in range(2)]
    assert row.started_at and row.finished_at and row.error_code is None
    first_images = trained.images(first)
    assert [image.shape for image in first_images] == [(128, 128, 3)] * 2
    assert all(np.array_equal(a, b) for a, b in zip(first_images, trained.images(second), strict=True))
    assert not np.array_equal(*first_images)  # image i is seeded seed + i


@pytest.mark.parametrize("batched", [True, False], ids=["queued-together", "one-at-a-time"])
def test_interleaved_concept_sets_never_mix(
    trained: Trained, tiny_model: BaseModel, monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    calls: list[int] = []
    real_generate_batch = inference.generate_batch

    def counting_generate_batch(*args: object, **kwargs: object) -> list[list[Image.Image]]:
        calls.append(len(args[2]))
        return real_generate_batch(*args, **kwargs)

    monkeypatch.setattr(inference, "generate_batch", counting_generate_batch)
    runner = _runner(trained, tiny_model, cache_bytes=1)  # holds one concept set: every switch reloads
    job_a, job_b = trained.job_ids
    order = [(job_a, 5), (job_b, 5), (job_a, 8), (job_b, 8)]

    if batched:
        generation_ids = [trained.queue(job_id, seed=seed) for job_id, seed in order]
        for generation_id in generation_ids:
            runner.run(generation_id)
    else:
        generation_ids = []
        for job_id, seed in order:
            generation_ids.append(trained.queue(job_id, seed=seed))
            runner.run(generation_ids[-1])

    assert calls == ([2, 2] if batched else [1, 1, 1, 1])
    for generation_id, (job_id, seed) in zip(generation_ids, order, strict=True):
        _assert_same_images(trained.images(generation_id), _reference(trained, tiny_model, job_id, seed))
    assert not np.array_equal(trained.images(generation_ids[0])[0], trained.images(generation_ids[1])[0])


def test_the_cache_keeps_recently_used_concept_sets_within_its_bound(trained: Trained, tiny_model: BaseModel) -> None:
    job_a, job_b = trained.job_ids
    cache = ConceptSetCache(trained.store, 64 * 1024 * 1024)
    device = tiny_model.device
    first = cache.get(trained.tenant_id(job_a), job_a, device)
    assert cache.get(trained.tenant_id(job_a), job_a, device) is first
    one_set = cache.bytes
    assert one_set > 0

    cache.max_bytes = one_set
    cache.get(trained.tenant_id(job_b), job_b, device)

    assert job_b in cache and job_a not in cache and cache.bytes == one_set


def test_a_request_the_core_refuses_fails_alone_while_its_batch_succeeds(
    trained: Trained, tiny_model: BaseModel
) -> None:
    job_id = trained.job_ids[0]
    good = trained.queue(job_id, options=GenerationOptions(num_images=1, steps=2, width=64, height=64))
    too_long = trained.queue(job_id, prompt="<ball> " + "very " * 80)
    unknown = trained.queue(job_id, prompt="<ball> and <cow>")

    _runner(trained, tiny_model).run(good)

    assert len(trained.images(good)) == 1
    assert trained.row(too_long).status == GenerationStatus.FAILED
    assert trained.row(too_long).error_code == "prompt_too_long"
    assert trained.row(unknown).error_code == "unknown_placeholder"
    assert "known placeholders: <ball>, <box>" in trained.row(unknown).error_message


def test_a_generation_no_longer_queued_is_skipped(trained: Trained, tiny_model: BaseModel) -> None:
    generation_id = trained.queue(trained.job_ids[0], options=GenerationOptions(steps=1, width=64, height=64))
    runner = _runner(trained, tiny_model)
    runner.run(generation_id)
    finished = trained.row(generation_id)

    runner.run(generation_id)

    assert trained.row(generation_id).finished_at == finished.finished_at


def _end_events(trained: Trained, generation_id: str) -> list[dict[str, object]]:
    with trained.sessions() as session:
        query = select(Event.data).where(Event.subject_id == generation_id, Event.type == EventType.END.value)
        return list(session.scalars(query))


def test_a_generation_whose_worker_died_fails_worker_lost_once_and_a_live_one_is_left_alone(
    trained: Trained, tmp_path: Path
) -> None:
    orphan, live = (trained.queue(trained.job_ids[0]) for _ in range(2))
    with trained.sessions() as session:
        for generation_id in (orphan, live):
            assert [row.id for row in generation_repository.claim_batch(session, generation_id, 1)] == [generation_id]
        session.execute(  # the orphan's worker was killed a while ago: no beat since
            update(Generation).where(Generation.id == orphan).values(heartbeat_at=utc_now() - timedelta(minutes=5))
        )
        session.commit()
    sweeper = Sweeper(
        trained.sessions, Settings(data_dir=tmp_path, stale_after_seconds=60), submit_webhook=lambda _: None
    )

    sweeper.sweep()
    sweeper.sweep()

    assert (trained.row(orphan).status, trained.row(orphan).error_code) == (GenerationStatus.FAILED, "worker_lost")
    assert [event["error"]["code"] for event in _end_events(trained, orphan)] == ["worker_lost"]  # type: ignore[index]
    assert trained.row(live).status == GenerationStatus.RUNNING and _end_events(trained, live) == []


def test_a_drawing_worker_beats_and_its_late_images_after_a_sweep_failed_it_are_removed(
    trained: Trained, tiny_model: BaseModel
) -> None:
    generation_id = trained.queue(trained.job_ids[0], options=GenerationOptions(steps=1, width=64, height=64))
    started = utc_now()

    def slow_model_then_swept() -> BaseModel:
        time.sleep(0.3)  # several beats
        with trained.sessions() as session:
            beaten = session.get_one(Generation, generation_id).heartbeat_at
            assert beaten is not None and beaten > started + timedelta(seconds=0.1)
            # a sweep that took this worker for dead (a long stall): the generation ends worker_lost
            assert generation_repository.fail_orphaned_generations(session, utc_now() + timedelta(seconds=1))
            session.commit()
        return tiny_model

    concept_sets = ConceptSetCache(trained.store, 64 * 1024 * 1024)
    runner = GenerationRunner(
        trained.sessions, trained.store, slow_model_then_swept, concept_sets, heartbeat_interval_s=0.05
    )
    runner.run(generation_id)

    row = trained.row(generation_id)
    assert (row.status, row.error_code, row.image_keys) == (GenerationStatus.FAILED, "worker_lost", [])
    assert list(trained.store.root.glob(f"tenants/*/generations/{generation_id}/*.png")) == []


def _without_concept_set(trained: Trained, folder: Path) -> LocalDirectoryStore:
    return LocalDirectoryStore(folder, secrets.token_bytes(32))


def _with_damaged_weights(trained: Trained, folder: Path) -> LocalDirectoryStore:
    shutil.copytree(trained.store.root, folder)
    store = LocalDirectoryStore(folder, secrets.token_bytes(32))
    job_id = trained.job_ids[0]
    weights = store.path_for(f"{job_prefix(trained.tenant_id(job_id), job_id)}/artifacts/{WEIGHTS_FILE}")
    weights.write_bytes(weights.read_bytes()[:100])
    return store


@pytest.mark.parametrize("damage", [_without_concept_set, _with_damaged_weights])
def test_an_unreadable_concept_set_fails_the_generation_as_the_servers_fault(
    trained: Trained, tiny_model: BaseModel, tmp_path: Path, damage: Callable[[Trained, Path], LocalDirectoryStore]
) -> None:
    store = damage(trained, tmp_path / "store")
    generation_id = trained.queue(trained.job_ids[0])
    GenerationRunner(trained.sessions, store, lambda: tiny_model, ConceptSetCache(store, 1)).run(generation_id)
    row = trained.row(generation_id)
    assert (row.status, row.error_code) == (GenerationStatus.FAILED, "artifact_corrupt")
    assert "cannot be read" in row.error_message and str(tmp_path) not in row.error_message


@pytest.mark.parametrize("words", [69, 70, 71])
def test_the_api_counts_prompt_tokens_as_the_text_encoder_does(
    trained: Trained, tiny_model: BaseModel, words: int
) -> None:
    job_id = trained.job_ids[0]
    prompt = "<ball>" + " a" * words + " <box>, cute!"  # 7 + words tokens
    with trained.sessions() as session:
        job = session.get_one(Job, job_id)
        try:
            PromptLengthChecker(trained.store).check(job, {"prompt": prompt})
            api_refuses = False
        except ValidationProblem:
            api_refuses = True
    with tiny_model.applied(trained.weights(job_id).weights()) as token_for_placeholder:
        try:
            check_prompt_length(tiny_model, internal_prompt(prompt, token_for_placeholder))
            core_refuses = False
        except PromptTooLongError:
            core_refuses = True
    assert api_refuses == core_refuses == (words > 70)
