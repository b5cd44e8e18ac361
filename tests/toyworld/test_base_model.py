import json

import numpy as np
import pytest
import torch
from PIL import Image

from attencraft_core.model_spec import BUILTIN_FOLDERS, TOY
from attencraft_core.models import load_base_model
from toyworld.base_model import (
    LATENT_SCALE,
    RANDOM_WALK_STEPS,
    ToyModelTrainer,
    ToyTrainingConfig,
    build_untrained_pipeline,
    identity_vae,
    save_toy_model,
    train_toy_model,
    training_batch,
)
from toyworld.scenes import HELD_OUT_SEEDS, held_out_scenes


def scene_pixels(count: int) -> torch.Tensor:
    images = np.stack([scene.image for scene in held_out_scenes(count)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_the_vae_is_the_identity_to_well_under_one_grey_level():
    vae = identity_vae()
    pixels = scene_pixels(4)
    with torch.no_grad():
        posterior = vae.encode(pixels).latent_dist
        decoded = vae.decode(posterior.mean).sample
    assert (posterior.mean - pixels).abs().max() < 1e-4
    assert posterior.std.max() < 1e-6
    assert (decoded - pixels).abs().max() < 1e-4


def test_training_batches_are_a_function_of_the_step_and_never_held_out_scenes():
    config = ToyTrainingConfig(batch_size=4)
    assert torch.equal(training_batch(config, 7).pixels, training_batch(config, 7).pixels)
    assert not torch.equal(training_batch(config, 7).pixels, training_batch(config, 8).pixels)
    with pytest.raises(ValueError, match="held-out"):
        ToyTrainingConfig(seed=HELD_OUT_SEEDS)


def test_the_scene_mix_sets_how_many_objects_training_captions_name():
    def objects_named(config: ToyTrainingConfig) -> set[int]:
        return {c.count(" and ") + 1 for step in range(3) for c in training_batch(config, step).captions if c}

    assert objects_named(ToyTrainingConfig(batch_size=8, object_count_weights=(0.0, 1.0, 0.0))) == {2}
    assert objects_named(ToyTrainingConfig(batch_size=8, object_count_weights=(1.0, 0.0, 0.0))) == {1}
    with pytest.raises(ValueError, match="sum to 1"):
        ToyTrainingConfig(object_count_weights=(0.5, 0.5, 0.5))


def test_training_can_continue_from_a_saved_toy_model(tmp_path):
    config = ToyTrainingConfig(steps=1, batch_size=2, learning_rate=0.0, seed=3, start_from=str(BUILTIN_FOLDERS[TOY]))
    train_toy_model(tmp_path / "model", tmp_path / "work", config, log=lambda line: None)
    shipped, continued = load_base_model(TOY, device="cpu"), load_base_model(str(tmp_path / "model"), device="cpu")
    for part in ("unet", "text_encoder"):
        theirs = getattr(shipped.pipeline, part).state_dict()
        for name, value in getattr(continued.pipeline, part).state_dict().items():
            assert torch.equal(value.float(), theirs[name].float()), (part, name)


def test_training_resumes_exactly_from_a_checkpoint(tmp_path):
    config = ToyTrainingConfig(steps=4, batch_size=2, warmup_steps=1)
    straight = ToyModelTrainer(build_untrained_pipeline(tmp_path / "a"), config)
    losses = [straight.step() for _ in range(4)]

    first = ToyModelTrainer(build_untrained_pipeline(tmp_path / "b"), config)
    resumed_losses = [first.step() for _ in range(2)]
    torch.save(first.state(), tmp_path / "checkpoint.pt")
    second = ToyModelTrainer(build_untrained_pipeline(tmp_path / "c"), config)
    second.load_state(torch.load(tmp_path / "checkpoint.pt", weights_only=False))
    resumed_losses += [second.step() for _ in range(2)]

    assert resumed_losses == pytest.approx(losses, rel=1e-5)
    for name, value in straight.unet.state_dict().items():
        assert torch.allclose(value, second.unet.state_dict()[name], atol=1e-6), name
    with pytest.raises(ValueError, match="other settings"):
        ToyModelTrainer(build_untrained_pipeline(tmp_path / "d"), ToyTrainingConfig(steps=5)).load_state(first.state())


def test_a_saved_toy_model_loads_as_a_local_diffusers_folder_with_its_attention_grids(tmp_path):
    save_toy_model(build_untrained_pipeline(tmp_path / "tokenizer"), tmp_path / "model")
    assert json.loads((tmp_path / "model" / "attencraft.json").read_text())["attention_grids"]["cross"] == [16, 16]
    model = load_base_model(str(tmp_path / "model"), device="cpu")
    assert model.resolution == 32
    assert model.attention_grids.cross == (16, 16)
    assert model.random_walk_steps == RANDOM_WALK_STEPS
    assert model.pipeline.vae.config.scaling_factor == pytest.approx(LATENT_SCALE)
    pixels = scene_pixels(1)
    image = held_out_scenes(1)[0].image
    latents = model.encode_image(Image.fromarray(image))
    assert torch.allclose(latents, pixels * LATENT_SCALE, atol=1e-3)
