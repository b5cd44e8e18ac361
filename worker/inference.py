"""Run generations: the warm base model, an LRU cache of concept sets, batches of requests for one concept set."""

import dataclasses
import functools
import io
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from attencraft_core.artifacts import METADATA_FILE, WEIGHTS_FILE, ConceptSet
from attencraft_core.errors import AttenCraftError
from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.models import BaseModel, ConceptWeights
from service import generation_repository
from service.models import Generation
from service.storage import ObjectStore, StorageUnavailable
from service.storage.layout import generation_prefix, job_prefix
from worker.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

MAX_BATCH_IMAGES = 8
STORAGE_UNAVAILABLE_MESSAGE = "The store could not be reached while drawing; submit the generation again shortly."


def concept_weights_bytes(weights: ConceptWeights) -> int:
    tensors = [weights.embeddings, *(delta for pair in weights.deltas.values() for delta in pair)]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class ConceptSetUnreadable(AttenCraftError):
    code = "artifact_corrupt"


class ConceptSetCache:
    """Concept sets by job id, loaded from the store onto the model's device; least recently used go first.

    Bounded by ``max_bytes`` of tensors, except that the set just asked for is always kept.
    """

    def __init__(self, store: ObjectStore, max_bytes: int) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[ConceptWeights, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._entries

    def get(self, tenant_id: str, job_id: str, device: torch.device) -> ConceptWeights:
        with self._lock:
            if job_id in self._entries:
                self._entries.move_to_end(job_id)
                return self._entries[job_id][0]
        weights = self._load(tenant_id, job_id, device)
        with self._lock:
            self._entries[job_id] = (weights, concept_weights_bytes(weights))
            while len(self._entries) > 1 and self.bytes > self.max_bytes:
                self._entries.popitem(last=False)
        return weights

    def _load(self, tenant_id: str, job_id: str, device: torch.device) -> ConceptWeights:
        artifacts = f"{job_prefix(tenant_id, job_id)}/artifacts"
        with tempfile.TemporaryDirectory(prefix="attencraft-concepts-") as scratch:
            try:
                for name in (WEIGHTS_FILE, METADATA_FILE):
                    (Path(scratch) / name).write_bytes(self._store.read_bytes(f"{artifacts}/{name}"))
                weights = ConceptSet.load(Path(scratch)).weights()
            except StorageUnavailable:
                raise  # the store, not the set: a passing fault
            except Exception as error:  # missing, truncated or altered files: the server's fault, not the client's
                raise ConceptSetUnreadable(
                    f"The concept set of job {job_id} cannot be read: its stored files are missing or damaged. "
                    "Train the concepts again."
                ) from error
        return dataclasses.replace(
            weights,
            embeddings=weights.embeddings.to(device),
            deltas={layer: (k.to(device), v.to(device)) for layer, (k, v) in weights.deltas.items()},
        )


@dataclass(frozen=True)
class GenerationInput:
    """What the worker needs of a generation row, read once after claiming it."""

    generation_id: str
    tenant_id: str
    job_id: str
    request: GenerationRequest

    @classmethod
    def from_row(cls, generation: Generation) -> "GenerationInput":
        options = generation.options
        return cls(
            generation_id=generation.id,
            tenant_id=generation.tenant_id,
            job_id=generation.job_id,
            request=GenerationRequest(
                prompt=generation.prompt,
                negative_prompt=generation.negative_prompt,
                num_images=options["num_images"],
                seed=generation.seed,
                steps=options["steps"],
                guidance_scale=options["guidance_scale"],
                height=options["height"],
                width=options["width"],
                scheduler=options["scheduler"],
            ),
        )


class GenerationRunner:
    """Runs a generation, together with the queued ones for the same concept set, on the warm base model."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        load_model: Callable[[], BaseModel],
        concept_sets: ConceptSetCache,
        *,
        max_batch_images: int = MAX_BATCH_IMAGES,
        heartbeat_interval_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.load_model = load_model
        self.concept_sets = concept_sets
        self.max_batch_images = max_batch_images
        self.heartbeat_interval_s = heartbeat_interval_s

    def run(self, generation_id: str) -> None:
        """Bring the generation (and those batched with it) to a terminal state; a failed drawing never raises."""
        with self.sessions() as session:
            batch = [
                GenerationInput.from_row(row)
                for row in generation_repository.claim_batch(session, generation_id, self.max_batch_images)
            ]
            session.commit()
        if not batch:
            logger.info("generation %s is no longer queued; skipping it", generation_id)
            return
        beat = functools.partial(generation_repository.beat, generation_ids=[item.generation_id for item in batch])
        with Heartbeat(self.sessions, beat, f"generation {generation_id}", self.heartbeat_interval_s):
            try:
                model = self.load_model()
                weights = self.concept_sets.get(batch[0].tenant_id, batch[0].job_id, model.device)
                self._draw(model, weights, batch)
            except AttenCraftError as error:
                self._fail(batch, error.code, str(error))
            except StorageUnavailable:
                self._fail(batch, "storage_unavailable", STORAGE_UNAVAILABLE_MESSAGE)
            except Exception:  # the worker's last line of defence: record the failure, keep serving
                logger.exception("generation %s failed unexpectedly", generation_id)
                self._fail(batch, "internal_error", "The generation failed because of an internal error.")

    def _draw(self, model: BaseModel, weights: ConceptWeights, batch: Sequence[GenerationInput]) -> None:
        """One batch; when the core refuses it, each request alone, so only the bad ones fail."""
        try:
            drawn = generate_batch(
                model, weights, [item.request for item in batch], max_batch_images=self.max_batch_images
            )
        except AttenCraftError as error:
            if len(batch) == 1:
                raise
            logger.info("a batch of %d generations was refused (%s); drawing them one by one", len(batch), error)
            for item in batch:
                self._draw_alone(model, weights, item)
            return
        for item, images in zip(batch, drawn, strict=True):
            self._store(item, images)

    def _draw_alone(self, model: BaseModel, weights: ConceptWeights, item: GenerationInput) -> None:
        try:
            self._draw(model, weights, [item])
        except AttenCraftError as error:
            self._fail([item], error.code, str(error))

    def _store(self, item: GenerationInput, images: Sequence[Image.Image]) -> None:
        prefix = generation_prefix(item.tenant_id, item.generation_id)
        keys = []
        for index, image in enumerate(images):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            buffer.seek(0)
            keys.append(self.store.put(f"{prefix}/{index}.png", buffer, content_type="image/png").key)
        with self.sessions() as session:
            finished = generation_repository.finish_generation(session, item.generation_id, keys)
            session.commit()
        if not finished:  # a sweep took this worker for dead and failed the generation meanwhile: it stays failed
            logger.warning("generation %s ended before its images were stored; removing them", item.generation_id)
            self.store.delete_prefix(prefix)

    def _fail(self, batch: Sequence[GenerationInput], code: str, message: str) -> None:
        with self.sessions() as session:
            for item in batch:
                generation_repository.fail_generation(session, item.generation_id, code, message)
            session.commit()
