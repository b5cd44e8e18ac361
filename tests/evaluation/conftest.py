import pytest

from tests.evaluation.tiny_encoders import save_tiny_clip, save_tiny_dino


@pytest.fixture(scope="session")
def tiny_clip_folder(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_dino_folder(tmp_path_factory):
    return save_tiny_dino(tmp_path_factory.mktemp("tiny-dino"))
