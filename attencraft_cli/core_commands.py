"""`attencraft train` and `attencraft generate`: the core algorithm on one machine, no service involved.

Each command checks its arguments and files with the contract's rules first, then imports torch.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from attencraft_cli.errors import CommandError
from attencraft_cli.method_options import add_method_arguments, job_option_values
from attencraft_cli.parsing import command
from attencraft_contract import rules
from attencraft_contract.images import CheckedImage, check_image_file, check_masks
from attencraft_contract.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_UPLOAD_BYTES
from attencraft_contract.methods import check_masks_allowed
from attencraft_contract.models import GenerationOptions, ImageFit, JobOptions, Scheduler
from attencraft_core.model_spec import check_device_name, check_model_spec

PRIOR_CACHE = Path.home() / ".cache" / "attencraft" / "prior-images"
METADATA_FILE = "metadata.json"  # attencraft_core.artifacts.METADATA_FILE, read here without importing torch


def energy_fraction(text: str) -> float:
    try:
        energy = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < energy <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1], e.g. 0.6")
    return energy


def add_core_commands(subparsers: Any) -> None:
    train = command(
        subparsers,
        "train",
        help="learn N >= 2 concepts from one photo, on this machine",
        example="attencraft train photo.jpg --concept cat --concept dog --steps 300 --out runs/catdog",
    )
    train.add_argument("image", type=Path, help="a PNG, JPEG or WebP photo showing every concept")
    train.add_argument("--concept", action="append", required=True, dest="concepts", help="class name (repeat)")
    train.add_argument(
        "--initializer", action="append", default=[], metavar="NAME=WORD", help="initialise NAME's token from WORD"
    )
    train.add_argument("--mask", action="append", default=[], dest="masks", metavar="PNG", help="a mask per concept")
    train.add_argument("--model", default="tiny", help="tiny, sd21-random, a hub id or a local diffusers folder")
    train.add_argument("--revision", default=None, help="hub revision of the base model")
    train.add_argument("--steps", type=int, default=None, help="training steps (default: the method's preset)")
    train.add_argument("--seed", type=int, default=JobOptions().seed, help="random seed")
    train.add_argument("--fit", choices=[fit.value for fit in ImageFit], default=ImageFit.CROP.value, help="non-square")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    train.add_argument(
        "--compress", type=energy_fraction, metavar="ENERGY", help="low-rank deltas keeping ENERGY of σ, e.g. 0.6"
    )
    add_method_arguments(train)
    train.add_argument(
        "--prior-cache",
        type=Path,
        default=None,
        help="folder keeping prior preservation's class images across runs; unset: ~/.cache/attencraft/prior-images",
    )
    train.add_argument("--out", required=True, type=Path, help="a new or empty folder for the concept set")
    train.set_defaults(handler=run_train)

    generate = command(
        subparsers,
        "generate",
        help="draw a prompt with a learned concept set (a local folder, or a job on --server)",
        example='attencraft generate --concepts runs/catdog --prompt "<cat> and <dog> in Paris" --out paris.png\n'
        'attencraft generate --server http://127.0.0.1:8000 --job $JOB --prompt "<cat> on the beach" --out beach.png',
    )
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--concepts", type=Path, help="folder written by `attencraft train`")
    source.add_argument("--job", help="with --server: the id of a succeeded job whose concepts to use")
    generate.add_argument("--server", default=None, help="an AttenCraft API URL: generate there instead of here")
    generate.add_argument("--key", default=None, help="with --server: API key (default: $ATTENCRAFT_API_KEY)")
    generate.add_argument("--prompt", required=True, help='e.g. "<cat> and <dog> in Paris"')
    generate.add_argument("--negative-prompt", default="", help="what the images should not show")
    generate.add_argument("--model", default=None, help="base model (default: the one the concepts were trained on)")
    generate.add_argument("--revision", default=None, help="hub revision of the base model")
    generate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    generate.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    defaults = GenerationOptions()
    generate.add_argument("--steps", type=int, default=defaults.steps, help="denoising steps")
    generate.add_argument("--guidance", type=float, default=defaults.guidance_scale, help="guidance scale")
    generate.add_argument("--num-images", type=int, default=defaults.num_images, help="images to draw")
    generate.add_argument("--height", type=int, default=None, help="pixels, a multiple of 8 (default: the model's)")
    generate.add_argument("--width", type=int, default=None, help="pixels, a multiple of 8 (default: the model's)")
    generate.add_argument(
        "--scheduler", choices=[s.value for s in Scheduler], default=defaults.scheduler.value, help="sampler"
    )
    generate.add_argument("--out", required=True, type=Path, help="PNG file (FILE-<i>.png for several images)")
    generate.set_defaults(handler=run_generate)


def _initializers(pairs: list[str], names: list[str]) -> dict[str, str | None]:
    mapping: dict[str, str | None] = {}
    for pair in pairs:
        name, separator, word = pair.partition("=")
        if not separator or name.lower() not in names:
            raise CommandError(f"--initializer takes NAME=WORD with NAME one of {', '.join(names)}; got {pair!r}.")
        mapping[name.lower()] = rules.initializer_word(word, f"initializer {name}")
    return mapping


def _empty_output_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CommandError(
            f"--out {out} already holds files; choose a new or empty folder so two concept sets never mix."
        )


def checked_inputs(image: Path, mask_paths: list[str], concept_count: int) -> tuple[CheckedImage, list[CheckedImage]]:
    """The photo and masks, by the same rules the API applies to uploads."""
    limits = {"max_bytes": DEFAULT_MAX_UPLOAD_BYTES, "max_pixels": DEFAULT_MAX_IMAGE_PIXELS}
    photo = check_image_file(image, "image", **limits)
    masks = [check_image_file(Path(path), f"masks.{i}", **limits) for i, path in enumerate(mask_paths)]
    if masks:
        check_masks(masks, concept_count=concept_count, image_size=photo.image.size)
    return photo, masks


def run_train(arguments: argparse.Namespace) -> int:
    names = rules.concept_names(arguments.concepts)
    initializers = _initializers(arguments.initializer, names)
    options = rules.job_options(job_option_values(arguments))
    check_masks_allowed(options.method, len(arguments.masks))
    check_model_spec(arguments.model)
    check_device_name(arguments.device)
    _empty_output_folder(arguments.out)
    photo, masks = checked_inputs(arguments.image, arguments.masks, len(names))

    from tqdm import tqdm

    from attencraft_core.config import TrainingConfig
    from attencraft_core.models import load_base_model
    from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts
    from attencraft_core.prior import DirectoryPriorCache

    concepts = [ConceptSpec(name, initializers.get(name)) for name in names]
    config = TrainingConfig(recipe=options.recipe(), seed=options.seed)
    started = time.perf_counter()
    print(f"Loading base model {arguments.model} ...", file=sys.stderr)
    model = load_base_model(arguments.model, device=arguments.device, revision=arguments.revision)
    bar = tqdm(total=config.steps + 2, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_stage(stage: object) -> None:
        bar.set_description(str(stage))
        if str(stage) in ("estimating", "training"):
            bar.update(1)

    def on_step(record: Any, total: int) -> None:
        stage = config.recipe.stage_progress(record.step)
        if stage["count"] > 1:  # Break-a-Scene: "training identifiers (1/2)", then "training identifiers+kv (2/2)"
            bar.set_description(f"training {stage['name']} ({stage['number']}/{stage['count']})")
        bar.update(1)
        bar.set_postfix(loss=f"{record.loss:.4f}")

    callbacks = LearnCallbacks(on_stage=on_stage, on_step=on_step)
    try:
        concept_set = learn_concepts(
            model,
            photo.image,
            concepts,
            config,
            user_masks=[mask.image for mask in masks] or None,
            callbacks=callbacks,
            fit=options.fit,
            prior_cache=DirectoryPriorCache(arguments.prior_cache or PRIOR_CACHE),
        )
    finally:
        bar.close()
    if arguments.compress is not None:
        concept_set = concept_set.compressed(arguments.compress)
    paths = concept_set.save(arguments.out)
    elapsed = time.perf_counter() - started

    learned = ", ".join(concept_set.placeholders)
    print(f"Learned {learned} on {arguments.model} in {elapsed:.1f} s with {options.method}")
    areas = concept_set.metadata["mask_area_fractions"] or [None] * len(names)
    ratios = concept_set.ratios or [None] * len(names)
    for placeholder, area, ratio in zip(concept_set.placeholders, areas, ratios, strict=True):
        mask = f"mask {area:7.2%} of the image" if area is not None else "no mask"
        ratio_text = f"   sampling ratio {ratio:.3f}" if ratio is not None else ""
        print(f"  {placeholder:<16} {mask}{ratio_text}")
    if "compression" in concept_set.metadata:
        report = concept_set.metadata["compression"]
        print(
            f"  low-rank deltas: mean rank {report['rank_mean']:.1f}, relative error "
            f"{report['relative_error_mean']:.3f} (max {report['relative_error_max']:.3f})"
        )
    print(f"  loss curve: {paths['loss_curve']}")
    for name, path in paths.items():
        if name != "loss_curve":
            print(f"  {name}: {path}")
    print(
        f'Next: attencraft generate --concepts {arguments.out} --prompt "{concept_set.placeholders[0]} on the beach" '
        f"--out image.png"
    )
    return 0


def generation_options(arguments: argparse.Namespace) -> GenerationOptions:
    return rules.validated_options(
        GenerationOptions,
        {
            "num_images": arguments.num_images,
            "steps": arguments.steps,
            "guidance_scale": arguments.guidance,
            "height": arguments.height,
            "width": arguments.width,
            "scheduler": arguments.scheduler,
        },
    )


def _learned_placeholders(folder: Path) -> list[str]:
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        return list(metadata["placeholders"])
    except FileNotFoundError:
        raise CommandError(f"{folder} holds no concept set ({METADATA_FILE} is missing).") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CommandError(f"{folder / METADATA_FILE} is not a concept set's metadata ({error}).") from error


def run_generate(arguments: argparse.Namespace) -> int:
    if arguments.server is not None or arguments.job is not None:
        from attencraft_cli.remote_commands import run_remote_generate

        return run_remote_generate(arguments)
    options = generation_options(arguments)
    rules.check_placeholders(
        {"prompt": arguments.prompt, "negative_prompt": arguments.negative_prompt},
        _learned_placeholders(arguments.concepts),
    )
    if arguments.model is not None:
        check_model_spec(arguments.model)
    check_device_name(arguments.device)

    from attencraft_core.artifacts import ConceptSet
    from attencraft_core.generation import GenerationRequest, generate
    from attencraft_core.models import load_base_model

    concept_set = ConceptSet.load(arguments.concepts)
    request = GenerationRequest(
        prompt=arguments.prompt,
        negative_prompt=arguments.negative_prompt,
        seed=arguments.seed,
        **options.model_dump(mode="json"),
    )
    base = arguments.model or concept_set.metadata["base_model"]["name"]
    revision = arguments.revision or concept_set.metadata["base_model"]["revision"]
    model = load_base_model(base, device=arguments.device, revision=revision)
    started = time.perf_counter()
    images = generate(model, concept_set.weights(), request)
    outputs = output_paths(arguments.out, len(images))
    for image, path in zip(images, outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    print(f"{len(images)} image(s) in {time.perf_counter() - started:.1f} s: {', '.join(map(str, outputs))}")
    return 0


def output_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{index}{out.suffix or '.png'}") for index in range(count)]
