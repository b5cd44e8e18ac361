"""Which base model and device a user asked for, checked without torch (so a typo fails before a long import)."""

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from attencraft_core.errors import ModelLoadError

TINY = "tiny"
SD21_RANDOM = "sd21-random"
TOY = "toy"  # a diffusers folder shipped in the package
BUILT_IN_MODELS = (TINY, SD21_RANDOM, TOY)
BUILTIN_FOLDERS = {TOY: Path(__file__).parent / "builtin_models" / "toy"}  # the others are built by code
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class Precision(StrEnum):
    """How the UNet, text encoder and attention compute; weights, optimiser state and losses stay fp32."""

    AUTO = "auto"  # bf16 autocast on CUDA, fp32 elsewhere
    BF16 = "bf16"  # bf16 autocast on any device: on CPU it runs the CUDA code path, which is how tests prove it
    FP32 = "fp32"


@dataclass(frozen=True)
class RunOptions:
    """How a loaded base model runs on its device; none of these changes results beyond bf16 rounding."""

    precision: Precision = Precision.AUTO
    # Recompute the UNet blocks' activations in the backward pass instead of keeping them: less training memory,
    # one more forward per step.
    gradient_checkpointing: bool = False
    # torch.compile the UNet that generation samples with (training keeps the eager UNet): the first generation
    # compiles for minutes, later ones run faster; off by default.
    compile_unet: bool = False
    # The UNet's convolutions in NHWC, faster on CUDA's tensor cores; None: on CUDA only.
    channels_last: bool | None = None


def check_model_spec(spec: str) -> None:
    """A built-in name, an existing diffusers folder, or something shaped like a hub id (owner/name)."""
    if spec in BUILT_IN_MODELS:
        return
    folder = Path(spec).expanduser()
    if folder.exists():
        if not (folder / "model_index.json").is_file():
            raise ModelLoadError(f"{spec} is not a diffusers pipeline folder: it has no model_index.json.")
        return
    if not HUB_ID.fullmatch(spec):
        raise ModelLoadError(
            f"Base model {spec!r} is neither a built-in model ({', '.join(BUILT_IN_MODELS)}), an existing diffusers "
            "folder, nor a hub id (owner/name)."
        )


def check_device_name(device: str | None) -> None:
    if device is not None and not DEVICE.fullmatch(device):
        raise ModelLoadError(f"Device {device!r} is not one of auto, cpu, cuda, cuda:N or mps.")


def model_folder(spec: str) -> Path | None:
    """The local diffusers folder a checked spec loads from: a built-in one or a path; None for the models built by
    code (tiny, sd21-random) and for hub ids."""
    if spec in BUILTIN_FOLDERS:
        return BUILTIN_FOLDERS[spec]
    folder = Path(spec).expanduser()
    return folder if spec not in BUILT_IN_MODELS and folder.is_dir() else None
