import pytest
import torch
from PIL import Image

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts
from tests.core.tiny import TRAIN_STEPS, changed, state


@pytest.fixture(scope="session")
def tiny() -> BaseModel:
    return load_base_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def sd21_256() -> BaseModel:
    """The SD 2.1-base architecture with random weights at 256 px (latent 32x32): slow tests only."""
    return load_base_model("sd21-random", device="cpu", resolution=256)


@pytest.fixture(scope="session")
def image() -> Image.Image:
    return two_object_photo()


@pytest.fixture(scope="session")
def pristine(tiny: BaseModel) -> dict[str, torch.Tensor]:
    return state(tiny)


@pytest.fixture(scope="session")
def trained(tiny, image, pristine):
    """A short training run, with the weights changed during training and every step's subset recorded."""
    during: dict[str, set[str]] = {}

    def on_step(record, total):
        if record.step == total:
            during["changed"] = changed(pristine, state(tiny))

    concept_set = learn_concepts(
        tiny,
        image,
        [ConceptSpec("cat"), ConceptSpec("dog")],
        TrainingConfig(recipe=build_recipe(steps=TRAIN_STEPS), seed=3),
        callbacks=LearnCallbacks(on_step=on_step),
    )
    return concept_set, during["changed"]
