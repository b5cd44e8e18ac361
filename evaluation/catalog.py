"""The names an evaluation is asked for (methods, metrics, encoders), torch-free so the CLI checks them in well under
a second."""

from pathlib import Path

from attencraft_contract.methods import Method
from evaluation.errors import EvaluationError

METHODS = tuple(method.value for method in Method)  # attencraft_contract.methods

# The paper's encoders (Sec. IV-A): CLIP ViT-L/14 and DINOv2 ViT-B.
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
DEFAULT_DINO = "facebook/dinov2-base"

PAPER_METRICS = (
    "clip_i_single",
    "clip_i_group",
    "clip_t_single",
    "clip_t_group",
    "dino_single",
    "dino_group",
    "clip_i_sync",
)
CLIP_METRICS = ("clip_i_single", "clip_i_group", "clip_t_single", "clip_t_group", "clip_i_sync")
DINO_METRICS = ("dino_single", "dino_group")
# The toy world's measures with ground truth (toyworld/measures.py), for toy scenes only.
TOY_METRICS = ("mask_iou", "identity", "leakage", "sync", "group_identity", "size_ratio")
LOWER_IS_BETTER = frozenset({"clip_i_sync", "leakage", "sync"})
BEST_AT_ONE = frozenset({"size_ratio"})  # drawn size / true size: 1 is right, above or below is wrong
# Measures where a cell that could not train scores 0 (it draws nothing right); report.json also gives them so.
FAILED_COUNTS_AS_ZERO = ("mask_iou", "identity", "group_identity")

# One bar chart per family.
FAMILIES = {
    "clip_i": ("clip_i_single", "clip_i_group"),
    "clip_t": ("clip_t_single", "clip_t_group"),
    "dino": ("dino_single", "dino_group"),
    "clip_i_sync": ("clip_i_sync",),
    "toy": ("mask_iou", "identity", "group_identity", "leakage", "sync"),
    "size_ratio": ("size_ratio",),
}


def check_encoder_source(source: str, option: str) -> None:
    """A value that names a local path must be a folder; anything else is taken as a hub id."""
    path = Path(source).expanduser()
    if (source.startswith(("/", ".", "~")) or path.exists()) and not (path / "config.json").is_file():
        raise EvaluationError(f"{option} {source} is not a model folder (no config.json there) nor a hub id.")
