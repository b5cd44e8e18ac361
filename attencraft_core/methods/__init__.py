"""The training methods, one file each, all run by the one loop in attencraft_core.training."""

import torch

from attencraft_contract.methods import Method, Recipe
from attencraft_core.methods.attencraft import AttenCraft
from attencraft_core.methods.base import MethodContext, TrainingMethod
from attencraft_core.methods.break_a_scene import BreakAScene
from attencraft_core.methods.custom_diffusion import CustomDiffusion
from attencraft_core.methods.disendiff import DisenDiff
from attencraft_core.methods.textual_localization import TextualLocalization

METHOD_CLASSES: dict[Method, type[TrainingMethod]] = {
    Method.ATTENCRAFT: AttenCraft,
    Method.CUSTOM_DIFFUSION: CustomDiffusion,
    Method.DISENDIFF: DisenDiff,
    Method.TEXTUAL_LOCALIZATION_HARD: TextualLocalization,
    Method.TEXTUAL_LOCALIZATION_SOFT: TextualLocalization,
    Method.BREAK_A_SCENE: BreakAScene,
}


def create_method(recipe: Recipe, context: MethodContext, probabilities: torch.Tensor | None) -> TrainingMethod:
    """The recipe's method for these concepts; `probabilities` are AttenCraft's single-concept sampling ratios."""
    if recipe.method == Method.ATTENCRAFT:
        return AttenCraft(recipe, context, probabilities)
    return METHOD_CLASSES[recipe.method](recipe, context)
