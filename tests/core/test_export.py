import json

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0

from attencraft_contract.methods import PromptExpansion
from attencraft_core.export import CUSTOM_DIFFUSION_WEIGHTS, export_custom_diffusion, load_custom_diffusion
from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.models import ConceptWeights, build_builtin_pipeline


def test_export_loads_into_a_stock_pipeline_and_draws_the_same_image(tmp_path, tiny, trained):
    concept_set, _ = trained
    paths = export_custom_diffusion(tiny, concept_set.weights(), tmp_path / "export")
    assert paths["weights"].name == CUSTOM_DIFFUSION_WEIGHTS
    assert (tmp_path / "export" / "<cat>.safetensors").is_file()

    build_builtin_pipeline("tiny").save_pretrained(tmp_path / "base")
    stock = StableDiffusionPipeline.from_pretrained(tmp_path / "base", safety_checker=None)
    stock.set_progress_bar_config(disable=True)
    assert load_custom_diffusion(stock, tmp_path / "export") == ["<cat>", "<dog>"]
    custom = [p for p in stock.unet.attn_processors.values() if isinstance(p, CustomDiffusionAttnProcessor2_0)]
    assert len(custom) == len(tiny.kv_layers)

    prompt = "<cat> and <dog> in Paris"
    ours = generate(tiny, concept_set.weights(), GenerationRequest(prompt, steps=4, seed=7))[0]
    generator = torch.Generator().manual_seed(7)
    theirs = stock(prompt, num_inference_steps=4, guidance_scale=7.5, generator=generator).images[0]
    difference = np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(theirs, dtype=np.int16))
    assert difference.max() == 0, difference.max()


def test_the_export_says_how_prompts_name_a_concept_trained_with_its_class_word(tmp_path, tiny):
    weights = ConceptWeights(
        placeholders=["<cat>", "<dog>"],
        embeddings=torch.zeros(2, tiny.identifier_embedding.embedding_dim),
        deltas={name: (torch.zeros_like(k), torch.zeros_like(v)) for name, (k, v) in tiny.base_kv_weights().items()},
        base_fingerprint=tiny.fingerprint,
        base_model=tiny.name,
        class_names=["cat", "dog"],
        prompt_expansion=PromptExpansion.TOKEN_AND_CLASS,
    )
    paths = export_custom_diffusion(tiny, weights, tmp_path / "export")
    index = json.loads(paths["index"].read_text())
    assert index["prompt_expansion"] == "token+class"
    assert index["write_in_prompts"] == {"<cat>": "<cat> cat", "<dog>": "<dog> dog"}
