"""Hyperparameters of the method, each cited to the paper (arXiv 2405.17965) or to SPEC.md."""

from dataclasses import dataclass, field

from attencraft_contract.methods import Recipe, build_recipe


@dataclass(frozen=True)
class MaskConfig:
    """Attention-guided mask creation, paper Eq. 3-4 (SPEC 2.3)."""

    upsilon: float = 2.0  # Eq. 3: cross-attention suppression exponent, Â_C = (A_C)^υ
    # Eq. 3: self-attention enhancement, A_C^S = (A_S)^τ · vec(Â_C); None takes the base model's τ
    # (models.ModelSettings: the paper's 4 on SD's 32x32 grid unless the model's attencraft.json gives its own)
    tau: int | None = None
    gamma: float = 0.1  # Eq. 4: delta-masking margin, M_i(p) = 1 iff A_i(p) − A_j(p) > γ for all j ≠ i
    max_timestep: int = 300  # t ~ U[0, 300) of the 1000-step schedule for the single mask forward pass
    min_area_fraction: float = 0.005  # a mask below 0.5 % of the image means the concept was not localised
    attempts: int = 4  # timesteps tried before a concept counts as not localised


@dataclass(frozen=True)
class RatioConfig:
    """Adaptive sampling-ratio estimation, paper Eq. 5-6 (SPEC 2.4)."""

    timesteps: tuple[int, ...] = (0, 20, 40, 60, 80)  # T, m = 5
    top_n: int = 5  # n largest masked attention values averaged per timestep


@dataclass(frozen=True)
class TrainingConfig:
    """A training run: the method's recipe (attencraft_contract.methods: steps, stages and learning rates, loss
    weights such as Eq. 9's α, ω, prior preservation) and what every method shares."""

    recipe: Recipe = field(default_factory=build_recipe)
    seed: int = 0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    prior_sampling_steps: int = 50  # denoising steps of a class image (the diffusers class-image scripts' default)
    masks: MaskConfig = field(default_factory=MaskConfig)
    ratios: RatioConfig = field(default_factory=RatioConfig)

    @property
    def steps(self) -> int:
        return self.recipe.steps
