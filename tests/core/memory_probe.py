"""Run in a fresh process by test_memory: the peaks of a one-step job on sd21-random at 256 px without and with
gradient checkpointing, as two numbers (bytes). A process that has run other work keeps some of its freed heap,
which would blur a resident-set measurement."""

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.model_spec import RunOptions
from attencraft_core.models import load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from benchmarks.peak_memory import peak_bytes
from tests.core.test_precision import halves

if __name__ == "__main__":
    model = load_base_model("sd21-random", device="cpu", resolution=256)
    image = two_object_photo()
    masks = halves(image)
    config = TrainingConfig(recipe=build_recipe(steps=1), seed=3)
    for checkpointing in (False, True):
        model.configure(RunOptions(gradient_checkpointing=checkpointing))
        job = lambda: learn_concepts(model, image, [ConceptSpec("cat"), ConceptSpec("dog")], config, user_masks=masks)  # noqa: E731
        print(peak_bytes(job, model.device))
