"""The `toy` base model: a Stable-Diffusion-shaped pipeline small enough to train on a CPU, trained on toy scenes.

Three parts, each a stock diffusers/transformers class so the core loads it like any diffusers folder:
- VAE: an exact identity (latent = pixels / 0.375, three channels, no downsampling), built by hand. A learned VAE
  this small got the colours wrong, and colour is half of every class.
- text encoder: a frozen, randomly initialised 2-layer CLIP text model whose token embeddings are scaled up and
  whose residual branches are scaled down, so a word's hidden state stays mostly that word (at random init the
  causal mixing makes the first class word of "a photo of apple and leaf" indistinct).
- UNet: 32x32 pixel-space latents, cross-attention at 16x16 and 8x8 only; the part that is trained.
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from attencraft_core.models import MODEL_SETTINGS_FILE, SD_SCHEDULER_CONFIG
from attencraft_core.tokenizer_files import write_clip_tokenizer_files
from toyworld.scenes import CLASS_NAMES, HELD_OUT_SEEDS, SIZE, random_scene

TOY_WORDS = ("a", "photo", "of", "and", *CLASS_NAMES)
MAX_TOKENS = 24  # "a photo of" + 8 concepts joined by "and" + start/end tokens fits
LATENT_SCALE = 1 / 0.375  # latent = pixels in [-1, 1] times this: unit-ish variance, as SD's scaled latents
CARRIER = 100.0  # constant channels that pin each GroupNorm group's mean to 0 and its variance to ~CARRIER**2 / 2
SILU_OFFSET = 20.0  # SiLU(x + 20) = x + 20 to fp32 precision for |x| of a few units
TEXT_WIDTH = 64
ATTENTION_GRIDS = {"cross": [16, 16], "self_attention": [16, 16]}
# Eq. 3's τ on the 16x16 self-attention grid: a patch here is 2 pixels of a 5-8 pixel object, twice as wide against
# the objects as a patch of SD's 32x32 grid against a photo's, so half the paper's 4 steps spread about as far. With
# 4 steps the walk carries a class word's map over the background and over a neighbour of the same shape (README).
RANDOM_WALK_STEPS = 2
CAPTION_DROPOUT = 0.1


def _identity_conv_in(conv: torch.nn.Conv2d) -> None:
    """3 -> 12 channels: for colour c, group c holds [x_c, -x_c, +CARRIER, -CARRIER]."""
    centre = conv.kernel_size[0] // 2
    for colour in range(3):
        conv.weight[4 * colour, colour, centre, centre] = 1.0
        conv.weight[4 * colour + 1, colour, centre, centre] = -1.0
        conv.bias[4 * colour + 2] = CARRIER
        conv.bias[4 * colour + 3] = -CARRIER


def _identity_norm_out(norm: torch.nn.GroupNorm) -> None:
    """GroupNorm of [x, -x, C, -C]: mean 0, std C/sqrt(2) up to a 1e-4 relative term; undo it and shift for SiLU."""
    for colour in range(3):
        norm.weight[4 * colour] = CARRIER / math.sqrt(2)
        norm.bias[4 * colour] = SILU_OFFSET


def _pick_conv_out(conv: torch.nn.Conv2d, scale: float) -> None:
    """12 -> 3 channels: channel c = scale * (group c's first channel - SILU_OFFSET)."""
    centre = conv.kernel_size[0] // 2
    for colour in range(3):
        conv.weight[colour, 4 * colour, centre, centre] = scale
        conv.bias[colour] = -SILU_OFFSET * scale


def identity_vae() -> AutoencoderKL:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(12,),
        layers_per_block=1,
        latent_channels=3,
        norm_num_groups=3,
        sample_size=SIZE,
        scaling_factor=LATENT_SCALE,
        force_upcast=False,
        mid_block_add_attention=False,
    )
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.zero_()  # every ResNet block becomes the identity (its residual branch outputs 0)
        for coder in (vae.encoder, vae.decoder):
            _identity_conv_in(coder.conv_in)
            _identity_norm_out(coder.conv_norm_out)
        _pick_conv_out(vae.decoder.conv_out, 1.0)
        _pick_conv_out(vae.encoder.conv_out, 1.0)  # the posterior mean; its log-variance is set to the minimum:
        vae.encoder.conv_out.bias[3:] = -30.0
        for conv in (vae.quant_conv, vae.post_quant_conv):
            conv.weight.copy_(torch.eye(conv.out_channels)[:, :, None, None])
    return vae.eval()


def toy_text_encoder(tokenizer: CLIPTokenizer, seed: int) -> CLIPTextModel:
    torch.manual_seed(seed)
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_attention_heads=2,
            num_hidden_layers=2,
            projection_dim=TEXT_WIDTH,
            max_position_embeddings=MAX_TOKENS,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    with torch.no_grad():
        encoder.get_input_embeddings().weight.mul_(5.0)
        for name, module in encoder.named_modules():
            if name.endswith(("self_attn.out_proj", "mlp.fc2")):  # the residual branches
                module.weight.mul_(0.2)
    return encoder.eval()


def toy_unet(seed: int) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=SIZE,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        attention_head_dim=4,
        cross_attention_dim=TEXT_WIDTH,
        norm_num_groups=8,
        use_linear_projection=True,
    )


def toy_tokenizer(directory: Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(write_clip_tokenizer_files(directory, TOY_WORDS, MAX_TOKENS))


def build_untrained_pipeline(tokenizer_dir: Path, seed: int = 0) -> StableDiffusionPipeline:
    tokenizer = toy_tokenizer(tokenizer_dir)
    return StableDiffusionPipeline(
        vae=identity_vae(),
        text_encoder=toy_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        unet=toy_unet(seed),
        scheduler=PNDMScheduler(**SD_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_toy_model(pipeline: StableDiffusionPipeline, out: Path) -> None:
    """A diffusers folder: UNet and text encoder in fp16 (the model ships in the repository), the VAE in fp32
    (its hand-set constants need the precision), plus the attention grids the core's masks use."""
    out.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(out, safe_serialization=True)
    for part in ("unet", "text_encoder"):
        getattr(pipeline, part).to(torch.float16).save_pretrained(out / part, safe_serialization=True)
        getattr(pipeline, part).to(torch.float32)
    settings = {"attention_grids": ATTENTION_GRIDS, "random_walk_steps": RANDOM_WALK_STEPS}
    (out / MODEL_SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")


@dataclass(frozen=True)
class ToyTrainingConfig:
    steps: int = 4000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 100
    object_count_weights: tuple[float, float, float] = (0.3, 0.6, 0.1)  # scenes of 1, 2, 3 objects
    start_from: str | None = None  # a saved toy model whose UNet and text encoder training continues from

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch size must be at least 1")
        if min(self.object_count_weights) < 0 or not math.isclose(sum(self.object_count_weights), 1.0):
            raise ValueError("the object count weights must be non-negative and sum to 1")
        if self.seed * self.steps * self.batch_size >= HELD_OUT_SEEDS:
            raise ValueError("training scenes would reach the held-out seeds")


@dataclass(frozen=True)
class ToyBatch:
    pixels: torch.Tensor  # (B, 3, 32, 32) in [-1, 1]
    captions: tuple[str, ...]


def training_batch(config: ToyTrainingConfig, step: int) -> ToyBatch:
    """The batch of a step: a function of (seed, step) alone, so training resumes exactly from a checkpoint."""
    rng = np.random.default_rng(config.seed * config.steps * config.batch_size + step * config.batch_size)
    images, captions = [], []
    for _ in range(config.batch_size):
        weights = config.object_count_weights
        scene = random_scene(rng, int(rng.choice(len(weights), p=weights)) + 1)
        images.append(scene.image)
        captions.append("" if rng.random() < CAPTION_DROPOUT else scene.caption())
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return ToyBatch(pixels=pixels, captions=tuple(captions))


class ToyModelTrainer:
    """Denoising training of the toy UNet (epsilon prediction, SD's noise schedule) with an EMA copy that is saved."""

    def __init__(self, pipeline: StableDiffusionPipeline, config: ToyTrainingConfig) -> None:
        self.pipeline = pipeline
        self.config = config
        self.unet = pipeline.unet.train()
        self.ema = {name: p.detach().clone() for name, p in self.unet.named_parameters()}
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=config.learning_rate, weight_decay=1e-2)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.noise_schedule = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
        self.step_count = 0
        self._text_states: dict[str, torch.Tensor] = {}

    def _lr_factor(self, step: int) -> float:
        if step < self.config.warmup_steps:
            return (step + 1) / self.config.warmup_steps
        progress = (step - self.config.warmup_steps) / max(1, self.config.steps - self.config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    @torch.no_grad()
    def _encode_captions(self, captions: tuple[str, ...]) -> torch.Tensor:
        """(B, MAX_TOKENS, D); the text encoder is frozen, so each caption is encoded once."""
        tokenizer = self.pipeline.tokenizer
        for caption in set(captions) - set(self._text_states):
            ids = tokenizer(
                caption, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
            ).input_ids
            self._text_states[caption] = self.pipeline.text_encoder(ids)[0][0]
        return torch.stack([self._text_states[c] for c in captions])

    def step(self) -> float:
        batch = training_batch(self.config, self.step_count)
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + self.step_count)
        with torch.no_grad():
            latents = self.pipeline.vae.encode(batch.pixels).latent_dist.mean * LATENT_SCALE
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (latents.shape[0],), generator=generator)
        noisy = self.noise_schedule.add_noise(latents, noise, timesteps)
        prediction = self.unet(noisy, timesteps, encoder_hidden_states=self._encode_captions(batch.captions)).sample
        loss = F.mse_loss(prediction, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.step_count += 1
        decay = min(self.config.ema_decay, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            for name, parameter in self.unet.named_parameters():
                self.ema[name].lerp_(parameter.detach(), 1 - decay)
        return loss.item()

    def state(self) -> dict:
        return {
            "step": self.step_count,
            "unet": self.unet.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "config": self.config.__dict__,
        }

    def load_state(self, state: dict) -> None:
        if state["config"] != self.config.__dict__:
            raise ValueError(f"the checkpoint was made with other settings: {state['config']}")
        self.unet.load_state_dict(state["unet"])
        self.ema = state["ema"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step_count = state["step"]

    def ema_pipeline(self) -> StableDiffusionPipeline:
        """The pipeline with the EMA weights in its UNet (the live weights are kept aside and restored by train)."""
        with torch.no_grad():
            for name, parameter in self.unet.named_parameters():
                parameter.copy_(self.ema[name])
        self.unet.eval()
        return self.pipeline


def _continue_from(pipeline: StableDiffusionPipeline, saved: Path) -> None:
    """Take the UNet and the frozen text encoder of a saved toy model (a longer or differently mixed run that
    builds on an earlier one instead of starting again from noise)."""
    unet = UNet2DConditionModel.from_pretrained(saved, subfolder="unet", torch_dtype=torch.float32)
    text_encoder = CLIPTextModel.from_pretrained(saved, subfolder="text_encoder", torch_dtype=torch.float32)
    pipeline.unet.load_state_dict(unet.state_dict())
    pipeline.text_encoder.load_state_dict(text_encoder.state_dict())


def train_toy_model(
    out: Path,
    work: Path,
    config: ToyTrainingConfig,
    log: Callable[[str], None],
    snapshot: Callable[[StableDiffusionPipeline, int], None] | None = None,
) -> None:
    """Train (resuming from work/checkpoint.pt when present) and save the EMA model to `out`."""
    work.mkdir(parents=True, exist_ok=True)
    pipeline = build_untrained_pipeline(work / "tokenizer", config.seed)
    if config.start_from is not None:
        _continue_from(pipeline, Path(config.start_from))
    trainer = ToyModelTrainer(pipeline, config)
    checkpoint = work / "checkpoint.pt"
    if checkpoint.exists():
        trainer.load_state(torch.load(checkpoint, weights_only=False))
        log(f"resumed at step {trainer.step_count}")
    losses: list[float] = []
    started = time.perf_counter()
    while trainer.step_count < config.steps:
        losses.append(trainer.step())
        if trainer.step_count % 50 == 0:
            rate = (time.perf_counter() - started) / len(losses)
            log(f"step {trainer.step_count}/{config.steps} loss {np.mean(losses[-50:]):.4f} {rate:.2f} s/step")
        if trainer.step_count % config.checkpoint_every == 0 or trainer.step_count == config.steps:
            scratch = checkpoint.with_suffix(".tmp")
            torch.save(trainer.state(), scratch)
            scratch.replace(checkpoint)
            if snapshot is not None:
                live = {k: v.clone() for k, v in trainer.unet.state_dict().items()}
                snapshot(trainer.ema_pipeline(), trainer.step_count)
                trainer.unet.load_state_dict(live)
                trainer.unet.train()
    save_toy_model(trainer.ema_pipeline(), out)
    log(f"saved the toy model to {out}")
