"""Export to the diffusers Custom Diffusion layout (SPEC 2.6), and a loader that installs it explicitly.

Layout: `pytorch_custom_diffusion_weights.safetensors` with full `<layer>.processor.to_{k,v}_custom_diffusion.weight`
(W + ΔW) per cross-attention layer, plus one `<placeholder>.safetensors` textual-inversion embedding per concept.
Every method trains exactly these (identifier vectors and cross-attention K/V; Break-a-Scene as its PEFT variant), so
the export is complete for all; `attencraft_export.json` says how prompts name each concept ("<cat> cat" for the
methods that trained with the class word after the identifier).
diffusers' `load_attn_procs` does not install these processors in current releases unless it is handed the
pipeline, so `load_custom_diffusion` builds `CustomDiffusionAttnProcessor2_0` objects itself.
"""

import json
from pathlib import Path

from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import CustomDiffusionAttnProcessor2_0
from safetensors.torch import load_file, save_file

from attencraft_core.errors import InvalidInputError
from attencraft_core.models import BaseModel, ConceptWeights

CUSTOM_DIFFUSION_WEIGHTS = "pytorch_custom_diffusion_weights.safetensors"
EXPORT_INDEX = "attencraft_export.json"


def export_custom_diffusion(model: BaseModel, weights: ConceptWeights, directory: Path) -> dict[str, Path]:
    """Write the concept set as full Custom Diffusion K/V weights of this base model plus embeddings."""
    if weights.base_fingerprint != model.fingerprint:
        raise InvalidInputError("A concept set can only be exported against the base model it was trained on.")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for layer, (base_k, base_v) in model.base_kv_weights().items():
        delta_k, delta_v = weights.deltas[layer]
        tensors[f"{layer}.processor.to_k_custom_diffusion.weight"] = (base_k.cpu() + delta_k).contiguous()
        tensors[f"{layer}.processor.to_v_custom_diffusion.weight"] = (base_v.cpu() + delta_v).contiguous()
    paths = {"weights": directory / CUSTOM_DIFFUSION_WEIGHTS}
    save_file(tensors, str(paths["weights"]))
    for placeholder, vector in zip(weights.placeholders, weights.embeddings, strict=True):
        paths[placeholder] = directory / f"{placeholder}.safetensors"
        save_file({placeholder: vector.detach().float().cpu().contiguous()}, str(paths[placeholder]))
    paths["index"] = directory / EXPORT_INDEX
    index = {
        "base_model": weights.base_model,
        "placeholders": weights.placeholders,
        # What to write for each concept in a stock pipeline's prompt: the method trained "<cat> cat" or "<cat>".
        "prompt_expansion": weights.prompt_expansion.value,
        "write_in_prompts": weights.prompt_text(weights.placeholders),
    }
    paths["index"].write_text(json.dumps(index, indent=2), encoding="utf-8")
    return paths


def load_custom_diffusion(pipeline: StableDiffusionPipeline, directory: Path) -> list[str]:
    """Install an exported concept set into a stock diffusers pipeline; returns the placeholders to prompt with."""
    index = json.loads((directory / EXPORT_INDEX).read_text(encoding="utf-8"))
    weights = load_file(str(directory / CUSTOM_DIFFUSION_WEIGHTS))
    unet = pipeline.unet
    processors = {}
    for name, processor in unet.attn_processors.items():
        key = weights.get(f"{name}.to_k_custom_diffusion.weight")
        if key is None:
            processors[name] = processor
            continue
        hidden_size, cross_attention_dim = key.shape
        custom = CustomDiffusionAttnProcessor2_0(
            train_kv=True, train_q_out=False, hidden_size=hidden_size, cross_attention_dim=cross_attention_dim
        )
        value = weights[f"{name}.to_v_custom_diffusion.weight"]
        custom.load_state_dict({"to_k_custom_diffusion.weight": key, "to_v_custom_diffusion.weight": value})
        processors[name] = custom.to(unet.device, unet.dtype)
    installed = sum(isinstance(p, CustomDiffusionAttnProcessor2_0) for p in processors.values())
    if installed != len(weights) // 2:
        raise InvalidInputError(f"The export has {len(weights) // 2} layers; the pipeline matched {installed}.")
    unet.set_attn_processor(processors)
    placeholders = index["placeholders"]
    pipeline.load_textual_inversion(
        [str(directory / f"{placeholder}.safetensors") for placeholder in placeholders], token=placeholders
    )
    return placeholders
