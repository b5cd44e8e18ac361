"""Where a cell trains and draws: `LocalBackend` in this process with the core, `ServiceBackend` on a running
deployment through its API (jobs and generations), so a grid spreads over that deployment's GPU workers."""

import io
import tempfile
from collections.abc import Sequence
from typing import Any

from PIL import Image

from attencraft_client import Client
from attencraft_contract.models import JobStatus
from attencraft_core.images import prepare_image
from evaluation.cells import Cell, GridSettings, Trained
from evaluation.errors import CellFailed
from evaluation.metrics import Sample


class LocalBackend:
    """Trains with the core's `learn_concepts` and draws with `generate_batch`; the base model loads once."""

    def __init__(self, model: str, device: str = "auto") -> None:
        self.model_spec = model
        self.device = device
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from attencraft_core.models import load_base_model

            self._model = load_base_model(self.model_spec, device=self.device)
        return self._model

    def train(self, cell: Cell, settings: GridSettings) -> Trained:
        from attencraft_core.config import TrainingConfig
        from attencraft_core.images import mask_images
        from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts

        checkpoints: list[tuple[int, Any]] = []  # (step, the weights trained so far, ready for generation)
        callbacks = LearnCallbacks(
            on_weights=lambda step, weights: checkpoints.append((step, weights)),
            weights_every=settings.curve_every,
        )
        config = TrainingConfig(recipe=settings.recipe(cell.method), seed=cell.seed)
        concept_set = learn_concepts(
            self.model,
            cell.image.image,
            [ConceptSpec(name) for name in cell.image.concepts],
            config,
            callbacks=callbacks,
        )
        masks = [] if concept_set.masks is None else mask_images(concept_set.masks, self.model.resolution)
        return Trained(concept_set.weights(), masks, concept_set.image, config.steps, checkpoints)

    def draw(
        self, handle: Any, requests: Sequence[tuple[str, str | None]], seed: int, settings: GridSettings
    ) -> list[Sample]:
        from attencraft_core.generation import GenerationRequest, generate_batch

        images = generate_batch(
            self.model,
            handle,
            [
                GenerationRequest(
                    prompt=prompt,
                    num_images=settings.images_per_prompt,
                    seed=seed,
                    steps=settings.sampling_steps,
                    guidance_scale=settings.guidance,
                    scheduler=settings.scheduler,
                )
                for prompt, _ in requests
            ],
        )
        return [
            Sample(prompt, concept, image)
            for (prompt, concept), drawn in zip(requests, images, strict=True)
            for image in drawn
        ]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ServiceBackend:
    """Each cell as a job and its samples as generations on a deployment; the API's workers do the GPU work.

    Learning curves need training checkpoints, which the API does not serve: cells run this way have none.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def train(self, cell: Cell, settings: GridSettings) -> Trained:
        job = self.client.create_job(
            _png(cell.image.image),
            cell.image.concepts,
            steps=settings.steps,
            seed=cell.seed,
            method=cell.method,
            preset=settings.preset,
            prior_preservation=settings.prior_preservation,
        ).wait()
        if job.status != JobStatus.SUCCEEDED:
            error = job.data.error
            reason = error.message if error else job.status.value
            raise CellFailed(f"The job {job.id} of {cell.label} ended {job.status.value}: {reason}")
        artifacts = {artifact.name: artifact for artifact in self.client.artifacts(job).items}
        masks = []  # none for a method that uses no masks
        with tempfile.TemporaryDirectory() as folder:
            for index in range(len(cell.image.concepts)):
                if f"mask_{index}" in artifacts:
                    with Image.open(self.client.download_artifact(artifacts[f"mask_{index}"], folder)) as mask:
                        masks.append(mask.convert("L"))
        # The masks are drawn on the model's square input, which the job fitted as the core does (a centre crop).
        side = masks[0].width if masks else min(cell.image.image.size)
        return Trained(job.data, masks, prepare_image(cell.image.image, side), job.data.progress.total)

    def draw(
        self, handle: Any, requests: Sequence[tuple[str, str | None]], seed: int, settings: GridSettings
    ) -> list[Sample]:
        samples = []
        for prompt, concept in requests:
            generation = self.client.generate(
                handle,
                prompt,
                seed=seed,
                num_images=settings.images_per_prompt,
                steps=settings.sampling_steps,
                guidance_scale=settings.guidance,
                scheduler=settings.scheduler,
            )
            for content in generation.images:
                with Image.open(io.BytesIO(content)) as image:
                    samples.append(Sample(prompt, concept, image.convert("RGB")))
        return samples
