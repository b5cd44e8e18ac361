"""`attencraft jobs submit|get|wait|cancel|report|list` and `attencraft generate --server`: a running API, through the
Python client (attencraft_client)."""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from attencraft_cli.errors import EXIT_FAILED, CommandError
from attencraft_cli.method_options import add_method_arguments, job_option_values
from attencraft_cli.parsing import command
from attencraft_contract import rules
from attencraft_contract.methods import check_masks_allowed
from attencraft_contract.models import ImageFit, JobOptions, JobStatus

DEFAULT_SERVER = "http://127.0.0.1:8000"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, help=f"API URL (default: $ATTENCRAFT_SERVER, else {DEFAULT_SERVER})")
    parser.add_argument("--key", default=None, help="API key (default: $ATTENCRAFT_API_KEY)")


def add_remote_commands(subparsers: Any) -> None:
    jobs = command(
        subparsers,
        "jobs",
        help="submit, follow and cancel training jobs on a running API (`attencraft serve`)",
        example="export ATTENCRAFT_API_KEY=ak_...   # printed by `attencraft serve` at its first start\n"
        "JOB=$(attencraft jobs submit photo.jpg --concept cat --concept dog)\n"
        "attencraft jobs wait $JOB",
    ).add_subparsers(dest="jobs_command", required=True, metavar="ACTION")

    submit = command(
        jobs,
        "submit",
        help="upload a photo and its concepts; prints the job id",
        example="attencraft jobs submit photo.jpg --concept cat --concept dog --steps 300 --wait",
    )
    submit.add_argument("image", type=Path, help="a PNG, JPEG or WebP photo showing every concept")
    submit.add_argument("--concept", action="append", required=True, dest="concepts", help="class name (repeat)")
    submit.add_argument("--initializer", action="append", default=[], metavar="WORD", help="one per concept, in order")
    submit.add_argument("--mask", action="append", default=[], dest="masks", metavar="PNG", help="one per concept")
    submit.add_argument("--steps", type=int, default=None, help="training steps (default: the method's preset)")
    submit.add_argument("--seed", type=int, default=JobOptions().seed, help="random seed")
    submit.add_argument(
        "--fit", choices=[fit.value for fit in ImageFit], default=ImageFit.CROP.value, help="non-square"
    )
    add_method_arguments(submit)
    submit.add_argument("--webhook-url", default=None, help="http(s) URL told when the job ends")
    submit.add_argument("--wait", action="store_true", help="then wait for the end with a progress bar")
    add_server_arguments(submit)
    submit.set_defaults(handler=run_submit)

    for name, help_text, handler in (
        ("get", "print a job as JSON", run_get),
        ("wait", "wait for a job to end, with a progress bar; exit 0 only if it succeeded", run_wait),
        ("cancel", "cancel a job (a running one stops at its next step)", run_cancel),
    ):
        action = command(jobs, name, help=help_text, example=f"attencraft jobs {name} $JOB")
        action.add_argument("job", metavar="JOB", help="a job id, as `jobs submit` printed it")
        add_server_arguments(action)
        action.set_defaults(handler=handler)

    report = command(
        jobs,
        "report",
        help="a job's measures that need no generation: mask areas and overlaps, ratios, loss curves",
        example="attencraft jobs report $JOB\nattencraft jobs report $JOB --json > report.json",
    )
    report.add_argument("job", metavar="JOB", help="a job id, as `jobs submit` printed it")
    report.add_argument("--json", action="store_true", help="the whole report as JSON, every curve's points")
    add_server_arguments(report)
    report.set_defaults(handler=run_report)

    listing = command(jobs, "list", help="list jobs, newest first", example="attencraft jobs list --status training")
    listing.add_argument("--status", choices=[status.value for status in JobStatus], default=None, help="only these")
    listing.add_argument("--limit", type=int, default=20, help="at most this many")
    add_server_arguments(listing)
    listing.set_defaults(handler=run_list)


def connect(arguments: argparse.Namespace) -> Any:
    """A client for --server with --key, both checked before httpx is imported."""
    server = arguments.server or os.environ.get("ATTENCRAFT_SERVER") or DEFAULT_SERVER
    if not server.startswith(("http://", "https://")):
        raise CommandError(f"--server {server} is not an http(s) URL such as {DEFAULT_SERVER}.")
    key = arguments.key or os.environ.get("ATTENCRAFT_API_KEY")
    if not key:
        raise CommandError(
            "Give an API key with --key or ATTENCRAFT_API_KEY: `attencraft serve` prints one at its first start, "
            "`attencraft keys create --tenant NAME` makes more."
        )
    from attencraft_client import Client

    return Client(server, key)


def run_submit(arguments: argparse.Namespace) -> int:
    from attencraft_cli.core_commands import checked_inputs

    names = rules.concept_names(arguments.concepts)
    rules.initializer_words(arguments.initializer, concept_count=len(names))
    options = rules.job_options(job_option_values(arguments))
    check_masks_allowed(options.method, len(arguments.masks))
    rules.webhook_url(arguments.webhook_url)
    checked_inputs(arguments.image, arguments.masks, len(names))
    with connect(arguments) as client:
        job = client.create_job(
            arguments.image,
            names,
            initializers=arguments.initializer or None,
            masks=[Path(mask) for mask in arguments.masks] or None,
            webhook_url=arguments.webhook_url,
            **options.model_dump(exclude_none=True),
        )
        print(job.id)
        sys.stdout.flush()
        if arguments.wait:
            return _report_end(job.wait(progress=True))
    return 0


def _report_end(job: Any) -> int:
    error = job.data.error
    print(f"Job {job.id} {job.status}" + (f": {error.message}" if error else ""), file=sys.stderr)
    return 0 if job.status == JobStatus.SUCCEEDED else EXIT_FAILED


def run_get(arguments: argparse.Namespace) -> int:
    with connect(arguments) as client:
        print(client.get_job(arguments.job).data.model_dump_json(indent=2))
    return 0


def run_wait(arguments: argparse.Namespace) -> int:
    with connect(arguments) as client:
        return _report_end(client.get_job(arguments.job).wait(progress=True))


def run_cancel(arguments: argparse.Namespace) -> int:
    with connect(arguments) as client:
        job = client.cancel(arguments.job)
    print(f"Job {job.id} is {job.status}" + (" (stopping at its next step)" if not job.status.is_terminal else ""))
    return 0


def _curve_ends(points: list[Any]) -> str:
    if not points:
        return "no steps yet"
    first, last = points[0], points[-1]
    return f"L_rec {first.reconstruction:.4f} -> {last.reconstruction:.4f} (steps {first.to_step} -> {last.to_step})"


def run_report(arguments: argparse.Namespace) -> int:
    with connect(arguments) as client:
        report = client.report(arguments.job)
    if arguments.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(
        f"Job {report.job_id} {report.status.value}, {report.method.value}, {report.steps_trained}/"
        f"{report.total_steps} steps, masks: {report.masks_source.value}"
    )
    for concept in report.concepts:
        mask = f"mask {concept.mask_area:7.2%}" if concept.mask_area is not None else "no mask     "
        ratio = f"ratio {concept.ratio:.3f}" if concept.ratio is not None else "no ratio   "
        print(
            f"  {concept.placeholder:<14} {mask}  {ratio}  {concept.single_steps:>5} steps alone  "
            f"{_curve_ends(concept.loss_curve)}"
        )
    for overlap in report.mask_overlaps:
        print(f"  masks of {' and '.join(overlap.concepts)} overlap: IoU {overlap.iou:.3f}")
    print(f"  all steps: {_curve_ends(report.loss_curve)}")
    return 0


def run_list(arguments: argparse.Namespace) -> int:
    with connect(arguments) as client:
        page = client.list_jobs(arguments.status, limit=arguments.limit)
    for job in page.items:
        concepts = " ".join(concept.placeholder for concept in job.concepts)
        print(f"{job.id}  {job.status.value:<10}  {job.progress.step:>5}/{job.progress.total:<5}  {concepts}")
    return 0


def run_remote_generate(arguments: argparse.Namespace) -> int:
    from attencraft_cli.core_commands import generation_options

    if arguments.job is None:
        raise CommandError("With --server, name the job whose concepts to use: --job JOB.")
    options = generation_options(arguments)
    with connect(arguments) as client:
        generation = client.generate(
            arguments.job,
            arguments.prompt,
            negative_prompt=arguments.negative_prompt,
            seed=arguments.seed,
            **options.model_dump(exclude_none=True),
        )
    paths = generation.save(arguments.out)
    print(f"{len(paths)} image(s), seed {generation.data.seed}: {', '.join(map(str, paths))}")
    return 0
