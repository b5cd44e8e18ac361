"""`attencraft train` and `attencraft generate`: the core algorithm on one machine, no service involved."""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from attencraft_cli.errors import user_errors


def add_core_commands(subparsers: Any) -> None:
    train = subparsers.add_parser("train", help="learn N >= 2 concepts from one image")
    train.add_argument("image", help="a PNG, JPEG or WebP photo showing every concept")
    train.add_argument("--concept", action="append", required=True, dest="concepts", help="class name (repeat)")
    train.add_argument(
        "--initializer", action="append", default=[], metavar="NAME=WORD", help="initialise NAME's token from WORD"
    )
    train.add_argument("--mask", action="append", dest="masks", metavar="PNG", help="your own mask per concept")
    train.add_argument("--model", default="tiny", help="tiny, sd21-random, a hub id or a local diffusers folder")
    train.add_argument("--revision", default=None, help="hub revision of the base model")
    train.add_argument("--steps", type=int, default=300)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--compress", type=float, metavar="ENERGY", help="low-rank deltas keeping ENERGY of σ (0.6)")
    train.add_argument("--out", required=True, type=Path, help="folder for the concept set")
    train.set_defaults(handler=user_errors(run_train))

    generate = subparsers.add_parser("generate", help="draw a prompt with a learned concept set")
    generate.add_argument("--concepts", required=True, type=Path, help="folder written by `attencraft train`")
    generate.add_argument("--prompt", required=True, help='e.g. "<cat> and <dog> in Paris"')
    generate.add_argument("--negative-prompt", default="")
    generate.add_argument("--model", default=None, help="base model (default: the one the concepts were trained on)")
    generate.add_argument("--revision", default=None)
    generate.add_argument("--device", default=None)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--steps", type=int, default=50)
    generate.add_argument("--guidance", type=float, default=7.5)
    generate.add_argument("--num-images", type=int, default=1)
    generate.add_argument("--height", type=int, default=None)
    generate.add_argument("--width", type=int, default=None)
    generate.add_argument("--scheduler", default="pndm", help="pndm, ddim or dpmsolver++")
    generate.add_argument("--out", required=True, type=Path, help="PNG file (FILE-<i>.png for several images)")
    generate.set_defaults(handler=user_errors(run_generate))


def _initializers(pairs: list[str], names: list[str]) -> dict[str, str]:
    from attencraft_core.errors import InvalidInputError

    mapping: dict[str, str] = {}
    for pair in pairs:
        name, separator, word = pair.partition("=")
        if not separator or name not in names or not word.strip():
            raise InvalidInputError(f"--initializer takes NAME=WORD with NAME one of {', '.join(names)}; got {pair!r}.")
        mapping[name] = word.strip()
    return mapping


def run_train(arguments: argparse.Namespace) -> int:
    from tqdm import tqdm

    from attencraft_core.config import TrainingConfig
    from attencraft_core.images import open_image
    from attencraft_core.models import load_base_model
    from attencraft_core.pipeline import ConceptSpec, LearnCallbacks, learn_concepts, validate_concepts

    names = [name.strip() for name in arguments.concepts]
    initializers = _initializers(arguments.initializer, names)
    concepts = [ConceptSpec(name, initializers.get(name)) for name in names]
    validate_concepts(concepts)
    config = TrainingConfig(steps=arguments.steps, seed=arguments.seed)
    image = open_image(arguments.image)
    masks = [open_image(path) for path in arguments.masks] if arguments.masks else None

    started = time.perf_counter()
    print(f"Loading base model {arguments.model} ...", file=sys.stderr)
    model = load_base_model(arguments.model, device=arguments.device, revision=arguments.revision)
    bar = tqdm(total=config.steps + 2, unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_stage(stage: object) -> None:
        bar.set_description(str(stage))
        if str(stage) in ("estimating", "training"):
            bar.update(1)

    def on_step(record: Any, total: int) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{record.loss:.4f}")

    callbacks = LearnCallbacks(on_stage=on_stage, on_step=on_step)
    try:
        concept_set = learn_concepts(model, image, concepts, config, user_masks=masks, callbacks=callbacks)
    finally:
        bar.close()
    if arguments.compress is not None:
        concept_set = concept_set.compressed(arguments.compress)
    paths = concept_set.save(arguments.out)
    elapsed = time.perf_counter() - started

    print(f"Learned {', '.join(concept_set.placeholders)} on {arguments.model} in {elapsed:.1f} s")
    areas = concept_set.metadata["mask_area_fractions"]
    for placeholder, area, ratio in zip(concept_set.placeholders, areas, concept_set.ratios, strict=True):
        print(f"  {placeholder:<16} mask {area:7.2%} of the image   sampling ratio {ratio:.3f}")
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


def run_generate(arguments: argparse.Namespace) -> int:
    from attencraft_core.artifacts import ConceptSet
    from attencraft_core.generation import GenerationRequest, check_request, generate, internal_prompt
    from attencraft_core.models import load_base_model

    concept_set = ConceptSet.load(arguments.concepts)
    request = GenerationRequest(
        prompt=arguments.prompt,
        negative_prompt=arguments.negative_prompt,
        num_images=arguments.num_images,
        seed=arguments.seed,
        steps=arguments.steps,
        guidance_scale=arguments.guidance,
        height=arguments.height,
        width=arguments.width,
        scheduler=arguments.scheduler,
    )
    # Fail on a wrong placeholder or option before paying for the model load.
    internal_prompt(request.prompt, dict.fromkeys(concept_set.placeholders, ""))
    check_request(request)
    base = arguments.model or concept_set.metadata["base_model"]["name"]
    revision = arguments.revision or concept_set.metadata["base_model"]["revision"]
    model = load_base_model(base, device=arguments.device, revision=revision)
    started = time.perf_counter()
    images = generate(model, concept_set.weights(), request)
    outputs = _output_paths(arguments.out, len(images))
    for image, path in zip(images, outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    print(f"{len(images)} image(s) in {time.perf_counter() - started:.1f} s: {', '.join(map(str, outputs))}")
    return 0


def _output_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{index}{out.suffix or '.png'}") for index in range(count)]
