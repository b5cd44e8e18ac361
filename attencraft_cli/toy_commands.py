"""`attencraft toy ...`: draw toy scenes, judge pictures with the oracle, train and assess the `toy` base model."""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from attencraft_cli.errors import CommandError
from attencraft_cli.parsing import command, non_negative_int, positive_int


def add_toy_commands(subparsers: Any) -> None:
    toy = subparsers.add_parser(
        "toy",
        help="the toy world: scenes with known truth, an oracle, the `toy` model",
        example="attencraft toy scene --seed 3 --out scene3 && attencraft toy judge scene3/image.png",
    )
    toy_commands = toy.add_subparsers(dest="toy_command", required=True, metavar="COMMAND")

    scene = command(
        toy_commands,
        "scene",
        help="draw a held-out toy scene (seeds training never used) with its ground-truth masks",
        example="attencraft toy scene --seed 3 --out scene3   # scene3/image.png, scene3/scene.json, scene3/masks/",
    )
    scene.add_argument("--seed", type=int, default=0, help="which held-out scene (0, 1, ...)")
    scene.add_argument("--objects", type=int, default=2, help="objects in the scene, at most one per class")
    scene.add_argument("--out", required=True, type=Path, help="folder to write into")
    scene.set_defaults(handler=run_scene)

    judge = command(
        toy_commands,
        "judge",
        help="print as JSON what the oracle sees in toy pictures: each object's class, identity, size, shape",
        example="attencraft toy judge generated.png",
    )
    judge.add_argument("images", nargs="+", type=Path, help="32x32 PNG pictures")
    judge.set_defaults(handler=run_judge)

    train = command(
        toy_commands,
        "train-model",
        help="train the `toy` base model on toy scenes (resumes from --work; about 45 min on 2 cores)",
        example="attencraft toy train-model --out attencraft_core/builtin_models/toy --work runs/toy-training",
    )
    train.add_argument("--out", required=True, type=Path, help="where the diffusers folder is saved")
    train.add_argument("--work", required=True, type=Path, help="checkpoints, to resume an interrupted run")
    train.add_argument("--steps", type=positive_int, default=4000, help="training steps (batch 16)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (cosine schedule)")
    train.add_argument("--seed", type=int, default=0, help="draws the training scenes (and the weights, fresh)")
    train.add_argument(
        "--scene-mix",
        type=float,
        nargs=3,
        default=(0.3, 0.6, 0.1),
        metavar=("ONE", "TWO", "THREE"),
        help="shares of training scenes with 1, 2 and 3 objects",
    )
    train.add_argument(
        "--start-from", default=None, help="continue from a saved toy model's weights: toy or a folder it saved"
    )
    train.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    train.set_defaults(handler=run_train_model)

    assess = command(
        toy_commands,
        "assess",
        help="measure a base model on held-out toy scenes: stage-one mask IoU and what its samples show",
        example="attencraft toy assess --model toy --scenes 30",
    )
    assess.add_argument("--model", default="toy", help="toy or a diffusers folder trained on toy scenes")
    assess.add_argument("--scenes", type=positive_int, default=30, help="held-out scenes to measure on")
    assess.add_argument("--samples", type=positive_int, default=4, help="pictures drawn per prompt and scene")
    assess.add_argument(
        "--walk-steps",
        type=non_negative_int,
        default=None,
        help="Eq. 3's τ for the masks (default: the model's own, from its attencraft.json; the paper's is 4)",
    )
    assess.set_defaults(handler=run_assess)


def run_scene(arguments: argparse.Namespace) -> int:
    from PIL import Image

    from toyworld.scenes import CLASS_NAMES, held_out_scene

    if arguments.seed < 0:
        raise CommandError(f"Seed {arguments.seed} is negative: held-out scenes are numbered from 0.")
    if not 1 <= arguments.objects <= len(CLASS_NAMES):
        raise CommandError(f"A scene holds 1 to {len(CLASS_NAMES)} objects (one per class), not {arguments.objects}.")
    scene = held_out_scene(arguments.seed, arguments.objects)
    (arguments.out / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image).save(arguments.out / "image.png")
    description = []
    for obj, mask in zip(scene.objects, scene.masks, strict=True):
        mask_path = f"masks/{obj.class_name}.png"
        Image.fromarray(mask.astype("uint8") * 255, mode="L").save(arguments.out / mask_path)
        description.append({"class": obj.class_name, "identity": obj.shade, "mask": mask_path})
    (arguments.out / "scene.json").write_text(json.dumps({"objects": description}, indent=2) + "\n")
    print(" and ".join(f"{obj.shade} {obj.class_name}" for obj in scene.objects))
    return 0


def run_judge(arguments: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from toyworld.oracle import read_picture

    for path in arguments.images:
        try:
            image = np.asarray(Image.open(path).convert("RGB"))
        except (OSError, UnidentifiedImageError):
            raise CommandError(f"{path} is not a readable picture.") from None
        objects = [
            {
                "class": obj.class_name,
                "identity": obj.shade,
                "area": int(obj.mask.sum()),
                "shape": obj.best_shape,
                "shape_fit": round(obj.shape_fit, 3),
                "well_formed": obj.well_formed,
            }
            for obj in read_picture(image)
        ]
        print(json.dumps({"image": str(path), "objects": objects}))
    return 0


def run_train_model(arguments: argparse.Namespace) -> int:
    from attencraft_core.model_spec import model_folder

    start_from = None
    if arguments.start_from is not None:
        start_from = model_folder(arguments.start_from)
        if start_from is None or not (start_from / "unet").is_dir():
            raise CommandError(f"{arguments.start_from} is not a saved toy model (it has no unet folder).")

    import torch

    from toyworld.base_model import ToyTrainingConfig, train_toy_model

    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    try:
        config = ToyTrainingConfig(
            steps=arguments.steps,
            learning_rate=arguments.learning_rate,
            seed=arguments.seed,
            object_count_weights=tuple(arguments.scene_mix),
            start_from=None if start_from is None else str(start_from.resolve()),
        )
    except ValueError as error:
        raise CommandError(f"The training settings are invalid: {error}.") from error
    train_toy_model(arguments.out, arguments.work, config, lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def run_assess(arguments: argparse.Namespace) -> int:
    from attencraft_core.model_spec import check_model_spec
    from attencraft_core.models import load_base_model
    from toyworld.quality import assess_base_model
    from toyworld.scenes import held_out_scenes

    check_model_spec(arguments.model)
    model = load_base_model(arguments.model, device="cpu")
    if model.resolution != 32:
        raise CommandError(f"{arguments.model} draws {model.resolution} px pictures; toy scenes are 32 px.")
    scenes = held_out_scenes(arguments.scenes)
    for line in assess_base_model(model, scenes, arguments.samples, walk_steps=arguments.walk_steps).lines():
        print(line)
    return 0
