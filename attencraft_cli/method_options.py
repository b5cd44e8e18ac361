"""The training method flags of `attencraft train` and `attencraft jobs submit`: one definition for both."""

import argparse
from typing import Any

from attencraft_contract.methods import Method, Preset


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """The training method and its settings, for `train` and `jobs submit` (checked by the contract's rules)."""
    methods = ", ".join(method.value for method in Method)
    parser.add_argument("--method", default=Method.ATTENCRAFT.value, help=f"one of {methods}")
    parser.add_argument(
        "--preset", default=Preset.ATTENCRAFT_COMPARISON.value, help="attencraft_comparison or official"
    )
    parser.add_argument(
        "--prior-preservation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="regularise with class images the base model draws; unset: the method's own choice",
    )
    parser.add_argument(
        "--prior-images", type=int, default=None, help="class images per class prompt; unset: the preset's"
    )
    ablation = "AttenCraft ablation: "
    parser.add_argument("--ratios", default=None, help=ablation + "adaptive, equal or no_softmax; unset: adaptive")
    loss_help = ablation + "attention or attention_and_reconstruction; unset: attention"
    parser.add_argument("--multi-concept-loss", default=None, help=loss_help)
    parser.add_argument("--omega", type=float, default=None, help=ablation + "share of multi-concept steps; unset: 0.3")


def job_option_values(arguments: argparse.Namespace) -> dict[str, Any]:
    """The JobOptions fields the command line sets; unset method settings stay unset (the preset's)."""
    values = {
        "steps": arguments.steps,
        "seed": arguments.seed,
        "fit": arguments.fit,
        "method": arguments.method,
        "preset": arguments.preset,
        "prior_preservation": arguments.prior_preservation,
        "prior_images": arguments.prior_images,
        "ratios": arguments.ratios,
        "multi_concept_loss": arguments.multi_concept_loss,
        "omega": arguments.omega,
    }
    return {name: value for name, value in values.items() if value is not None}
