"""`attencraft eval`: the paper's evaluation (Sec. IV-A) of one or more methods on a dataset, as a grid of
(method, image, seed) cells cached in --out, summarised in report.json, report.md and plots.

Arguments, the dataset and the output folder are checked before torch is imported.
"""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from attencraft_cli.errors import CommandError
from attencraft_cli.parsing import command, non_negative_int, positive_int
from attencraft_contract.methods import Preset
from attencraft_contract.models import Scheduler
from attencraft_core.model_spec import check_device_name, check_model_spec
from evaluation.catalog import (
    CLIP_METRICS,
    DEFAULT_CLIP,
    DEFAULT_DINO,
    DINO_METRICS,
    METHODS,
    PAPER_METRICS,
    TOY_METRICS,
    check_encoder_source,
)
from evaluation.datasets import EvalImage, folder_dataset, toy_dataset
from evaluation.prompts import SINGLE_TEMPLATES, PromptSet, load_prompt_set

RUN_FILE = "run.json"
TOY = "toy"
TOY_SCENES = 15  # as many as the paper's datasets
SERVICE_PARALLEL = 8  # cells in flight on a deployment: enough to keep several GPU workers busy


def add_eval_command(subparsers: Any) -> None:
    parser = command(
        subparsers,
        "eval",
        help="the paper's evaluation of methods on a dataset: a grid of cells, a report and plots",
        example="attencraft eval ../shared/datasets --model stabilityai/stable-diffusion-2-1-base --out eval\n"
        "attencraft eval ../shared/datasets --model tiny --steps 20 --prompts 2 --images-per-prompt 2 --seeds 1 "
        "--clip ENCODERS/clip --dino ENCODERS/dino --out eval-smoke",
    )
    parser.add_argument(
        "dataset", help="`toy` (the toy world's held-out scenes) or a folder of images named by their concepts"
    )
    parser.add_argument("--scenes", type=positive_int, default=None, help=f"with toy: how many scenes ({TOY_SCENES})")
    parser.add_argument("--methods", default="attencraft", help=f"comma-separated, of: {', '.join(METHODS)}")
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"comma-separated, of: {', '.join(PAPER_METRICS + TOY_METRICS)} (default: all the dataset has)",
    )
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 per method and image")
    parser.add_argument("--out", type=Path, required=True, help="folder for cells (a rerun reuses them) and the report")
    parser.add_argument("--manifest", type=Path, default=None, help="JSON of concept names and masks per image name")
    parser.add_argument(
        "--model",
        default=None,
        help="base model: tiny, toy, sd21-random, a hub id or a local folder (default: toy on toy scenes, else tiny)",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="training steps per cell (default: the method's)"
    )
    parser.add_argument(
        "--preset",
        choices=[preset.value for preset in Preset],
        default=Preset.ATTENCRAFT_COMPARISON.value,
        help="each method's settings as the AttenCraft paper ran it, or as its authors' code does",
    )
    parser.add_argument(
        "--prior-preservation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="class images the base model draws regularise the methods that use them (default: each method's own; "
        "--no-prior-preservation spares Custom Diffusion's 200 class images)",
    )
    parser.add_argument(
        "--prompts",
        type=positive_int,
        default=None,
        help=f"the first N single and N group templates (default: {len(SINGLE_TEMPLATES)}; on toy scenes 1, "
        "the toy world's captions `a photo of ...`)",
    )
    parser.add_argument("--prompt-file", type=Path, default=None, help='JSON {"single": [...], "group": [...]}')
    parser.add_argument("--images-per-prompt", type=positive_int, default=10, help="images drawn per prompt and seed")
    parser.add_argument("--sampling-steps", type=positive_int, default=50, help="denoising steps")
    parser.add_argument("--guidance", type=float, default=7.5, help="guidance scale")
    parser.add_argument("--scheduler", choices=[s.value for s in Scheduler], default=Scheduler.PNDM.value)
    parser.add_argument(
        "--curve-every", type=non_negative_int, default=100, help="learning-curve point every K steps (0: none)"
    )
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="CLIP encoder: a hub id or a local folder")
    parser.add_argument("--dino", default=DEFAULT_DINO, help="DINOv2 encoder: a hub id or a local folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--service", default=None, metavar="URL", help="run cells as jobs on this AttenCraft API")
    parser.add_argument("--key", default=None, help="with --service: API key (default: $ATTENCRAFT_API_KEY)")
    parser.add_argument(
        "--parallel", type=positive_int, default=None, help="with --service: cells in flight at once (default 8)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_eval)


def names_from(text: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise CommandError(f"Unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}.")
    return list(dict.fromkeys(names))


def _dataset(arguments: argparse.Namespace) -> tuple[str, list[EvalImage]]:
    if arguments.dataset == TOY:
        if arguments.manifest is not None:
            raise CommandError("--manifest describes a folder dataset; toy scenes come with their truth.")
        return f"toy ({arguments.scenes or TOY_SCENES} held-out scenes)", toy_dataset(arguments.scenes or TOY_SCENES)
    if arguments.scenes is not None:
        raise CommandError("--scenes counts toy scenes; it goes with the dataset `toy`.")
    root = Path(arguments.dataset)
    return root.name or str(root), folder_dataset(root, arguments.manifest)


def _metrics(arguments: argparse.Namespace) -> list[str]:
    toy = arguments.dataset == TOY
    if arguments.metrics is None:
        return list(PAPER_METRICS + TOY_METRICS) if toy else list(PAPER_METRICS)
    metrics = names_from(arguments.metrics, PAPER_METRICS + TOY_METRICS, "metric")
    needing_truth = [name for name in metrics if name in TOY_METRICS]
    if needing_truth and not toy:
        raise CommandError(f"{', '.join(needing_truth)} need the toy world's ground truth (use the dataset `toy`).")
    return metrics


def _check_output_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RUN_FILE).is_file())):
        raise CommandError(
            f"--out {out} holds other files; give a new folder, or one an earlier `attencraft eval` made."
        )


def _service_client(arguments: argparse.Namespace) -> Any:
    if arguments.service is None:
        return None
    from attencraft_cli.remote_commands import connect

    arguments.server = arguments.service
    client = connect(arguments)
    client.list_jobs(limit=1)  # an unreachable server or a wrong key fails now, before any cell
    return client


def run_eval(arguments: argparse.Namespace) -> int:
    methods = names_from(arguments.methods, METHODS, "method")
    metrics = _metrics(arguments)
    arguments.model = arguments.model or (TOY if arguments.dataset == TOY else "tiny")
    check_model_spec(arguments.model)
    check_device_name(arguments.device)
    if set(metrics) & set(CLIP_METRICS):
        check_encoder_source(arguments.clip, "--clip")
    if set(metrics) & set(DINO_METRICS):
        check_encoder_source(arguments.dino, "--dino")
    prompts = load_prompt_set(arguments.prompt_file) if arguments.prompt_file else PromptSet()
    _check_output_folder(arguments.out)
    if arguments.parallel is not None and arguments.service is None:
        raise CommandError("--parallel runs several cells on a deployment; it needs --service URL.")
    dataset, images = _dataset(arguments)
    client = _service_client(arguments)

    from evaluation.backends import LocalBackend, ServiceBackend
    from evaluation.cells import GridSettings, Scorer, model_files_digest
    from evaluation.grid import grid_cells, run_grid
    from evaluation.report import write_report

    settings = GridSettings(
        model=arguments.model,
        model_files=model_files_digest(arguments.model) if client is None else None,  # a deployment's: unknown
        steps=arguments.steps,
        preset=arguments.preset,
        prior_preservation=arguments.prior_preservation,
        prompts=prompts.first(arguments.prompts or (1 if arguments.dataset == TOY else len(SINGLE_TEMPLATES))),
        images_per_prompt=arguments.images_per_prompt,
        sampling_steps=arguments.sampling_steps,
        guidance=arguments.guidance,
        scheduler=arguments.scheduler,
        metrics=tuple(metrics),
        clip=arguments.clip,
        dino=arguments.dino,
        curve_every=0 if client is not None else arguments.curve_every,
    )
    from attencraft_core.models import resolve_device

    device = str(resolve_device(arguments.device))  # where the encoders score (and, locally, the cells train)
    backend = ServiceBackend(client) if client is not None else LocalBackend(arguments.model, device)
    cells = grid_cells(images, methods, arguments.seeds)
    arguments.out.mkdir(parents=True, exist_ok=True)
    how = {
        "command": "attencraft " + shlex.join(sys.argv[1:]),
        "grid": f"{len(images)} images x {len(methods)} methods x {arguments.seeds} seeds = {len(cells)} cells",
        "where": f"the API at {arguments.service}" if client is not None else f"this machine ({device})",
        "base model": arguments.model,
        "training steps": arguments.steps or "each method's recipe",
        "preset": arguments.preset,
        "prior preservation": {True: "on", False: "off", None: "each method's own"}[arguments.prior_preservation],
        "prompts": f"{len(settings.prompts.single)} single-concept and {len(settings.prompts.group)} group templates",
        "images per prompt and seed": arguments.images_per_prompt,
        "sampling": f"{arguments.scheduler}, {arguments.sampling_steps} steps, guidance {arguments.guidance}",
        "encoders": ", ".join(
            [f"CLIP {arguments.clip}"] * settings.needs_clip + [f"DINOv2 {arguments.dino}"] * settings.needs_dino
        )
        or "none (no CLIP or DINO metric chosen)",
        "single-concept references": "the input cropped to each concept's mask box (the dataset's masks where it "
        "has them, else the method's own); group references: the whole input",
        "learning curve": f"every {settings.curve_every} steps" if settings.curve_every else "none",
    }
    (arguments.out / RUN_FILE).write_text(json.dumps({"settings": settings.described(), **how}, indent=1))
    started = time.perf_counter()
    try:
        run = run_grid(
            cells,
            settings,
            backend,
            arguments.out,
            scorer=Scorer(settings, device=device),
            progress=not arguments.no_progress,
            parallel=(arguments.parallel or SERVICE_PARALLEL) if client is not None else 1,
        )
    finally:
        if client is not None:
            client.close()
    write_report(
        arguments.out,
        dataset=dataset,
        methods=methods,
        metrics=metrics,
        results=run.results,
        how=how,
        settings=settings,
    )
    print(
        f"{len(cells)} cells ({len(cells) - run.reused} run, {run.reused} reused) in "
        f"{time.perf_counter() - started:.1f} s: {arguments.out / 'report.md'}"
    )
    print(
        os.linesep.join(line for line in (arguments.out / "report.md").read_text().splitlines()[2 : 4 + len(methods)])
    )
    return 0
