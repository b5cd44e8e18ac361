"""Feature-retaining training, paper Eq. 7-9 (SPEC 2.5).

Trainable: the N identifier vectors and W_k, W_v of every cross-attention layer; everything else is frozen.
A single-concept step minimises L_rec + α·L_attn; a multi-concept step minimises L_attn alone, so the
reconstruction loss of a composed prompt never fuses the concepts' features.
"""

import io
from dataclasses import dataclass, field

import torch
from diffusers import DDPMScheduler

from attencraft_core.config import TrainingConfig
from attencraft_core.masks import resize_masks
from attencraft_core.models import BaseModel


@dataclass(frozen=True)
class LossTerms:
    total: torch.Tensor
    reconstruction: torch.Tensor
    attention: torch.Tensor


def feature_retaining_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    cross_maps: torch.Tensor,
    latent_masks: torch.Tensor,
    attention_masks: torch.Tensor,
    alpha: float,
) -> LossTerms:
    """Eq. 7-9 for one step on the concept subset s (K = |s|).

    prediction, target: (B, C, h, w); cross_maps: (K, h', w') attention of the subset's tokens;
    latent_masks: (K, h, w) and attention_masks: (K, h', w') float masks of the subset's concepts.
    """
    union = latent_masks.amax(dim=0)  # M_s, (h, w)
    squared_error = (prediction - target).pow(2) * union  # (B, C, h, w)
    masked_elements = union.sum() * prediction.shape[0] * prediction.shape[1]
    reconstruction = squared_error.sum() / masked_elements.clamp_min(1.0)  # Eq. 7
    attention = (cross_maps - attention_masks).pow(2).mean(dim=(1, 2)).mean()  # Eq. 8
    if cross_maps.shape[0] == 1:
        total = reconstruction + alpha * attention  # Eq. 9, |s| = 1
    else:
        total = attention  # Eq. 9, |s| > 1: L_rec is never back-propagated
        reconstruction = reconstruction.detach()
    return LossTerms(total=total, reconstruction=reconstruction, attention=attention)


def draw_subset(probabilities: torch.Tensor, omega: float, generator: torch.Generator) -> tuple[int, ...]:
    """With probability ω a multi-concept subset (uniform size in [2, N], then a uniform subset of that size),
    otherwise one concept i drawn with probability p_i."""
    count = probabilities.shape[0]
    if torch.rand((), generator=generator).item() < omega:
        size = int(torch.randint(2, count + 1, (), generator=generator))
        return tuple(sorted(torch.randperm(count, generator=generator)[:size].tolist()))
    return (int(torch.multinomial(probabilities, 1, generator=generator)),)


def concept_prompt(tokens: list[str], subset: tuple[int, ...]) -> str:
    """SPEC 2.1: "a photo of V_i and V_j ..." for the concepts of the subset."""
    return "a photo of " + " and ".join(tokens[i] for i in subset)


def token_positions(input_ids: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    """(K,) positions of the given token ids in a (1, L) prompt, in the order given."""
    row = input_ids[0]
    return torch.stack([(row == token_id).nonzero()[0, 0] for token_id in token_ids])


def noise_scheduler(model: BaseModel) -> DDPMScheduler:
    return DDPMScheduler.from_config(model.pipeline.scheduler.config)


@dataclass(frozen=True)
class StepRecord:
    step: int
    subset: tuple[int, ...]
    timestep: int
    loss: float
    reconstruction: float
    attention: float


@dataclass
class TrainingCheckpoint:
    """Everything needed to continue training exactly where it stopped."""

    step: int
    identifiers: torch.Tensor
    kv: dict[str, torch.Tensor]
    optimizer: dict
    generator_state: torch.Tensor
    history: list[StepRecord] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(
            {
                "step": self.step,
                "identifiers": self.identifiers,
                "kv": self.kv,
                "optimizer": self.optimizer,
                "generator_state": self.generator_state,
                "history": [list(vars(r).values()) for r in self.history],
            },
            buffer,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TrainingCheckpoint":
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        history = [StepRecord(step, tuple(subset), t, a, b, c) for step, subset, t, a, b, c in raw["history"]]
        return cls(raw["step"], raw["identifiers"], raw["kv"], raw["optimizer"], raw["generator_state"], history)


class FeatureRetainingTrainer:
    def __init__(
        self,
        model: BaseModel,
        latents: torch.Tensor,
        masks: torch.Tensor,
        probabilities: torch.Tensor,
        initial_identifiers: torch.Tensor,
        config: TrainingConfig,
        *,
        seed_offset: int = 2,
    ) -> None:
        """latents: (1, 4, h, w); masks: bool (N, H, W) on any grid; probabilities: (N,); identifiers: (N, D)."""
        self.model = model
        self.config = config
        self.latents = latents
        self.probabilities = probabilities.float().cpu()
        self.latent_masks = resize_masks(masks, model.latent_size).float().to(model.device)  # (N, h, w)
        self.attention_masks = resize_masks(masks, model.attention_grids.cross).float().to(model.device)  # (N, h', w')
        self.scheduler = noise_scheduler(model)
        self.generator = torch.Generator().manual_seed(config.seed + seed_offset)
        self.step_count = 0
        self.history: list[StepRecord] = []

        self.identifiers = torch.nn.Parameter(initial_identifiers.detach().float().clone().to(model.device))
        model.set_identifiers(self.identifiers)
        self.kv_weights = {name: (layer.to_k.weight, layer.to_v.weight) for name, layer in model.kv_layers.items()}
        for pair in self.kv_weights.values():
            for weight in pair:
                weight.requires_grad_(True)
        self.parameters = [self.identifiers, *(w for pair in self.kv_weights.values() for w in pair)]
        self.optimizer = torch.optim.AdamW(
            self.parameters,
            lr=config.learning_rate,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
            eps=config.adam_epsilon,
        )
        self._tokens = model.slot_tokens[: initial_identifiers.shape[0]]
        self._prompts: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def _prompt(self, subset: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if subset not in self._prompts:
            ids = self.model.prompt_ids(concept_prompt(self._tokens, subset))
            positions = token_positions(ids, [self.model.slot_ids[i] for i in subset])
            self._prompts[subset] = (ids, positions.to(self.model.device))
        return self._prompts[subset]

    def step(self) -> StepRecord:
        model = self.model
        subset = draw_subset(self.probabilities, self.config.omega, self.generator)
        input_ids, positions = self._prompt(subset)
        timestep = torch.randint(0, self.scheduler.config.num_train_timesteps, (1,), generator=self.generator)
        noise = torch.randn(self.latents.shape, generator=self.generator).to(model.device)
        timestep = timestep.to(model.device)
        noisy = self.scheduler.add_noise(self.latents, noise, timestep)
        with model.autocast(), model.recorder.record(model.attention_grids, positions):
            text_states = model.encode_prompt_ids(input_ids)
            prediction = model.pipeline.unet(noisy, timestep, encoder_hidden_states=text_states).sample
            cross_maps = model.recorder.cross_maps()[0]  # (K, h', w')
        if model.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(self.latents, noise, timestep)
        else:
            target = noise
        index = list(subset)
        terms = feature_retaining_loss(
            prediction.float(),
            target,
            cross_maps.float(),
            self.latent_masks[index],
            self.attention_masks[index],
            self.config.alpha,
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.optimizer.step()
        self.step_count += 1
        record = StepRecord(
            step=self.step_count,
            subset=subset,
            timestep=int(timestep.item()),
            loss=float(terms.total.detach()),
            reconstruction=float(terms.reconstruction.detach()),
            attention=float(terms.attention.detach()),
        )
        self.history.append(record)
        return record

    def checkpoint(self) -> TrainingCheckpoint:
        kv = {}
        for name, (key_weight, value_weight) in self.kv_weights.items():
            kv[f"{name}.to_k"] = key_weight.detach().cpu().clone()
            kv[f"{name}.to_v"] = value_weight.detach().cpu().clone()
        return TrainingCheckpoint(
            step=self.step_count,
            identifiers=self.identifiers.detach().cpu().clone(),
            kv=kv,
            optimizer=self.optimizer.state_dict(),
            generator_state=self.generator.get_state(),
            history=list(self.history),
        )

    def load_checkpoint(self, checkpoint: TrainingCheckpoint) -> None:
        with torch.no_grad():
            self.identifiers.copy_(checkpoint.identifiers)
            for name, (key_weight, value_weight) in self.kv_weights.items():
                key_weight.copy_(checkpoint.kv[f"{name}.to_k"])
                value_weight.copy_(checkpoint.kv[f"{name}.to_v"])
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.generator.set_state(checkpoint.generator_state)
        self.step_count = checkpoint.step
        self.history = list(checkpoint.history)

    def learned(self) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """(N, D) identifier vectors and per-layer (ΔW_k, ΔW_v) = trained − base, on the CPU."""
        base = self.model.base_kv_weights()
        deltas = {
            name: (
                (key_weight.detach() - base[name][0]).cpu().clone(),
                (value_weight.detach() - base[name][1]).cpu().clone(),
            )
            for name, (key_weight, value_weight) in self.kv_weights.items()
        }
        return self.identifiers.detach().cpu().clone(), deltas

    def close(self) -> None:
        """Freeze the K/V weights again and put the base model back exactly as it was."""
        for pair in self.kv_weights.values():
            for weight in pair:
                weight.requires_grad_(False)
                weight.grad = None
        self.model.restore_kv()
        self.model.clear_identifiers()
