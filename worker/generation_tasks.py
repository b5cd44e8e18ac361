"""The Celery task of the ``inference`` queue: the database row is the source of truth, the task only carries its id.

The task claims its generation with a conditional update (and, with it, the queued generations of the same concept
set), so a redelivered message, or the message of a generation already drawn in another's batch, does nothing.
"""

import functools

from worker.celery_app import GENERATE_TASK, app
from worker.inference import ConceptSetCache, GenerationRunner
from worker.runtime import worker_runtime


@functools.cache
def generation_runner() -> GenerationRunner:
    """One per process: the base model (shared with training) stays warm, the concept-set cache fills across tasks."""
    runtime = worker_runtime()
    concept_sets = ConceptSetCache(runtime.store, runtime.settings.concept_cache_bytes)
    return GenerationRunner(
        runtime.sessions,
        runtime.store,
        runtime.load_model,
        concept_sets,
        heartbeat_interval_s=runtime.settings.heartbeat_interval_seconds,
    )


@app.task(name=GENERATE_TASK)
def generate(generation_id: str) -> None:
    generation_runner().run(generation_id)
