"""The one training loop every method runs (BASELINES §6.3).

Per step: the method draws a concept subset and its prompt; the photo's cached latent (and, with prior
preservation, one or more class images' latents) is noised at a random timestep; one UNet forward records the
cross-attention the method's loss reads (SDPA everywhere else); the method's loss is back-propagated into the
stage's trainable parameters (the N identifier vectors, and W_k, W_v of every cross-attention layer when the stage
says so); gradients are clipped and AdamW steps. A new stage starts with a fresh AdamW at its own learning rate.
What the photo looks like in a step (as given, mirrored, resize-augmented with its prompt prefix and validity
mask) is attencraft_core.augmentation's; where the recipe says so, no gradient reaches W_k, W_v through the <sot>
position.
Everything else of the base model stays frozen and is restored bit-identically at the end.
"""

import io
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from diffusers import DDPMScheduler

from attencraft_core.augmentation import TrainingPhoto
from attencraft_core.config import TrainingConfig
from attencraft_core.methods.base import StepInputs, TrainingMethod
from attencraft_core.models import BaseModel


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
    stage: int  # index of the recipe stage the optimizer state belongs to
    weights: dict[str, torch.Tensor]  # "identifiers" (N, D) and "<layer>.to_k" / "<layer>.to_v" of every K/V layer
    optimizer: dict
    generator_state: torch.Tensor
    history: list[StepRecord] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(
            {
                "step": self.step,
                "stage": self.stage,
                "weights": self.weights,
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
        return cls(raw["step"], raw["stage"], raw["weights"], raw["optimizer"], raw["generator_state"], history)


@dataclass(frozen=True)
class PriorImages:
    """Class images for prior preservation: per class prompt, its (count, 4, h, w) latents and its token ids."""

    latents: list[torch.Tensor]
    prompt_ids: list[torch.Tensor]  # (1, 77) each


class Trainer:
    def __init__(
        self,
        model: BaseModel,
        method: TrainingMethod,
        photo: TrainingPhoto,
        initial_identifiers: torch.Tensor,
        config: TrainingConfig,
        prior: PriorImages | None = None,
        *,
        seed_offset: int = 2,
    ) -> None:
        """initial_identifiers: (N, D)."""
        self.model = model
        self.method = method
        self.config = config
        self.recipe = config.recipe
        self.photo = photo
        self.scheduler = noise_scheduler(model)
        self.generator = torch.Generator().manual_seed(config.seed + seed_offset)
        self.step_count = 0
        self.history: list[StepRecord] = []

        self.identifiers = torch.nn.Parameter(initial_identifiers.detach().float().clone().to(model.device))
        model.set_identifiers(self.identifiers)
        self.kv_weights = {name: (layer.to_k.weight, layer.to_v.weight) for name, layer in model.kv_layers.items()}
        self.prior = prior
        # Class prompts hold no identifier, so their text states never change: each is encoded once per job, under
        # the autocast a step runs in, giving the values a step would compute itself.
        self._prior_states: list[torch.Tensor] = []
        if prior is not None:
            with torch.no_grad(), model.autocast():
                self._prior_states = [model.encode_prompt_ids(ids) for ids in prior.prompt_ids]  # (1, 77, D) each
        self._prompts: dict[tuple[tuple[int, ...], str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.stage = -1
        self.parameters: list[torch.Tensor] = []
        self.optimizer: torch.optim.Optimizer
        self._enter_stage(0)

    def _enter_stage(self, stage: int) -> None:
        """Trainable parameters and a fresh AdamW at the stage's learning rate; K/V frozen when it trains none, so
        weight decay cannot touch them."""
        settings = self.recipe.stages[stage]
        self.stage = stage
        kv = [w for pair in self.kv_weights.values() for w in pair]
        for weight in kv:
            weight.requires_grad_(settings.trains_kv)
            weight.grad = None
        self.parameters = [self.identifiers, *(kv if settings.trains_kv else [])]
        self.optimizer = torch.optim.AdamW(
            self.parameters,
            lr=settings.learning_rate,
            betas=self.config.adam_betas,
            weight_decay=self.config.weight_decay,
            eps=self.config.adam_epsilon,
        )

    def _prompt(self, subset: tuple[int, ...], prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (subset, prefix) not in self._prompts:
            ids = self.model.prompt_ids(prefix + self.method.prompt(subset))
            positions = self.method.recorded_positions(ids, subset)
            self._prompts[subset, prefix] = (ids, positions.to(self.model.device))
        return self._prompts[subset, prefix]

    def _noise(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy z_t, target y, t) for a (1, 4, h, w) latent, drawn from the run's generator."""
        device = self.model.device
        timestep = torch.randint(0, self.scheduler.config.num_train_timesteps, (1,), generator=self.generator)
        noise = torch.randn(clean.shape, generator=self.generator).to(device)
        timestep = timestep.to(device)
        noisy = self.scheduler.add_noise(clean, noise, timestep)
        if self.model.prediction_type == "v_prediction":
            return noisy, self.scheduler.get_velocity(clean, noise, timestep), timestep
        return noisy, noise, timestep

    def step(self) -> StepRecord:
        model = self.model
        stage = self.recipe.stage_at(self.step_count)
        if stage != self.stage:
            self._enter_stage(stage)
        subset = self.method.draw_subset(self.generator)
        shown = self.photo.draw(self.generator)
        input_ids, positions = self._prompt(subset, shown.prefix)
        items = [self._noise(shown.latents)]
        draws: list[tuple[int, int]] = []
        if self.prior is not None:
            draws = self.method.prior_draws(self.step_count, len(self.prior.latents), self.prior.latents[0].shape[0])
            items += [self._noise(self.prior.latents[p][i : i + 1].to(model.device)) for p, i in draws]
        noisy = torch.cat([item[0] for item in items])  # (1 + P, 4, h, w)
        targets = torch.cat([item[1] for item in items])
        timesteps = torch.cat([item[2] for item in items])
        grids = self.method.cross_grids()
        recording = (
            model.recorder.record(model.attention_grids, positions, cross_grids=grids) if grids else nullcontext()
        )
        with model.autocast(), recording, model.recorder.detaching_sot_kv(self.recipe.detach_sot_kv):
            text_states = model.encode_prompt_ids(input_ids)  # (1, 77, D)
            if draws:
                text_states = torch.cat([text_states, *self.prior_text_states([p for p, _ in draws])])
            prediction = model.pipeline.unet(noisy, timesteps, encoder_hidden_states=text_states).sample.float()
            recorded = model.recorder.recorded_cross_grids() if grids else []
            maps = {grid: model.recorder.cross_maps(grid)[0].float() for grid in recorded}
        terms = self.method.loss(
            StepInputs(
                subset=subset,
                flipped=shown.flipped,
                valid=shown.valid,
                prediction=prediction[:1],
                target=targets[:1],
                prior_prediction=prediction[1:] if draws else None,
                prior_target=targets[1:] if draws else None,
                maps=maps,
            )
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
        self.optimizer.step()
        self.step_count += 1
        record = StepRecord(
            step=self.step_count,
            subset=subset,
            timestep=int(timesteps[0].item()),
            loss=float(terms.total.detach()),
            reconstruction=float(terms.reconstruction.detach()),
            attention=float(terms.attention.detach()),
        )
        self.history.append(record)
        return record

    def prior_text_states(self, prompts: list[int]) -> list[torch.Tensor]:
        """(1, 77, D) text states of each class prompt drawn in a step, from the job's cache."""
        return [self._prior_states[prompt] for prompt in prompts]

    def checkpoint(self) -> TrainingCheckpoint:
        weights = {"identifiers": self.identifiers.detach().cpu().clone()}
        for name, (key_weight, value_weight) in self.kv_weights.items():
            weights[f"{name}.to_k"] = key_weight.detach().cpu().clone()
            weights[f"{name}.to_v"] = value_weight.detach().cpu().clone()
        return TrainingCheckpoint(
            step=self.step_count,
            stage=self.stage,
            weights=weights,
            optimizer=self.optimizer.state_dict(),
            generator_state=self.generator.get_state(),
            history=list(self.history),
        )

    def load_checkpoint(self, checkpoint: TrainingCheckpoint) -> None:
        with torch.no_grad():
            self.identifiers.copy_(checkpoint.weights["identifiers"])
            for name, (key_weight, value_weight) in self.kv_weights.items():
                key_weight.copy_(checkpoint.weights[f"{name}.to_k"])
                value_weight.copy_(checkpoint.weights[f"{name}.to_v"])
        self._enter_stage(checkpoint.stage)
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
