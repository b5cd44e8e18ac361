import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0

from attencraft_core.export import CUSTOM_DIFFUSION_WEIGHTS, export_custom_diffusion, load_custom_diffusion
from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.models import build_builtin_pipeline


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
