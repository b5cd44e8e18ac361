"""The GPU check, in one go: a job's stages and peak memory, and generation speed, on sd21-random at 512 px.

(a) one job per method, 300 steps each: AttenCraft (mask + ratio + train + save) and Custom Diffusion, the baseline
    (class images + train + save): seconds per stage and peak memory of tensors above the loaded model (CUDA's
    allocator; on a CPU torch's profiler: benchmarks/peak_memory.py); (b) 50-step generation at the model's
    resolution, batch 1 and 4, eager and with torch.compile, with each job's concept set applied. Prints one table
    and writes it as JSON.
Custom Diffusion's recipe generates 200 class images per concept (50 steps each, cached across jobs in service);
here it generates 8 (`Plan.prior_images`) so the run fits in minutes: "prior" is that one-off cost for them.
Runs from benchmarks/gpu.sh; `--quick` runs the same code on the CPU with the tiny model and few steps (no
compile: inductor needs minutes on a CPU), which a test keeps working.

    benchmarks/gpu.sh                       # on a CUDA machine: sd21-random, 512 px, bf16 autocast
    benchmarks/gpu.sh --quick --out /tmp/gpu.json
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import Method, build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.model_spec import SD21_RANDOM, TINY, RunOptions
from attencraft_core.models import BaseModel, ConceptWeights, load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from benchmarks.peak_memory import peak_bytes

METHODS = (Method.ATTENCRAFT, Method.CUSTOM_DIFFUSION)
CONCEPTS = [ConceptSpec("cat"), ConceptSpec("dog")]


@dataclass(frozen=True)
class Plan:
    model: str
    job_steps: int
    generation_steps: int
    batches: tuple[int, ...]
    compile: bool
    repeats: int
    prior_images: int  # class images per concept of a method with prior preservation


FULL = Plan(SD21_RANDOM, job_steps=300, generation_steps=50, batches=(1, 4), compile=True, repeats=3, prior_images=8)
QUICK = Plan(TINY, job_steps=3, generation_steps=3, batches=(1, 2), compile=False, repeats=1, prior_images=2)


@dataclass
class Report:
    device: str
    model: str
    resolution: int
    precision: str
    jobs: dict[str, dict[str, object]] = field(default_factory=dict)
    generation: list[dict[str, object]] = field(default_factory=list)


def synchronize(model: BaseModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def seconds(model: BaseModel, work: Callable[[], object]) -> float:
    synchronize(model)
    started = time.perf_counter()
    work()
    synchronize(model)
    return time.perf_counter() - started


def run_job(model: BaseModel, method: Method, plan: Plan) -> tuple[dict[str, object], ConceptWeights]:
    """One job end to end: stage seconds, the job's total, and its peak memory."""
    outcome = {}
    recipe = build_recipe(method, steps=plan.job_steps, prior_images=plan.prior_images)
    config = TrainingConfig(recipe=recipe, prior_sampling_steps=plan.generation_steps)

    def job() -> None:
        started = time.perf_counter()
        concept_set = learn_concepts(model, two_object_photo(model.resolution), CONCEPTS, config)
        saving = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            concept_set.save(Path(folder) / "set")
        synchronize(model)
        outcome["stage_seconds"] = {**concept_set.metadata["stage_seconds"], "saving": time.perf_counter() - saving}
        outcome["total_s"] = time.perf_counter() - started
        outcome["weights"] = concept_set.weights()

    peak = peak_bytes(job, model.device)
    weights = outcome.pop("weights")
    prior = recipe.prior_images if recipe.prior_preservation else 0
    job = {"method": method.value, "steps": plan.job_steps, "prior_images": prior, **outcome, "peak_memory_bytes": peak}
    return job, weights


def time_generation(model: BaseModel, weights: ConceptWeights, steps: int, batch: int, repeats: int) -> list[float]:
    request = GenerationRequest("<cat> and <dog> on the beach", steps=steps, num_images=batch)

    def draw() -> None:
        generate_batch(model, weights, [request], max_batch_images=batch)

    return [seconds(model, draw) for _ in range(repeats + 1)]  # the first is the warm-up (or the compilation)


def run(plan: Plan, device: str | None) -> Report:
    model = load_base_model(plan.model, device=device)
    report = Report(str(model.device), plan.model, model.resolution, str(model.autocast_dtype or torch.float32))
    for method in METHODS:
        job, weights = run_job(model, method, plan)
        report.jobs[method.value] = job
        for compiled in (False, True) if plan.compile else (False,):
            model.configure(RunOptions(compile_unet=compiled))
            for batch in plan.batches:
                first, *timed = time_generation(model, weights, plan.generation_steps, batch, plan.repeats)
                median = statistics.median(timed)
                report.generation.append(
                    {
                        "method": method.value,
                        "batch": batch,
                        "steps": plan.generation_steps,
                        "compiled": compiled,
                        "first_s": round(first, 3),
                        "seconds": round(median, 3),
                        "images_per_s": round(batch / median, 3),
                    }
                )
        model.configure(RunOptions())
    return report


def table(report: Report) -> str:
    lines = [f"device={report.device} model={report.model} {report.resolution}px precision={report.precision}"]
    lines.append(
        f"{'job':<18}{'steps':>6}{'masking':>9}{'ratios':>8}{'prior':>8}{'images':>7}{'training':>10}{'saving':>8}"
        f"{'total':>8}{'peak MiB':>10}"
    )
    for method, job in report.jobs.items():
        stages = {name: f"{value:.2f}" for name, value in job["stage_seconds"].items()}
        lines.append(
            f"{method:<18}{job['steps']:>6}{stages.get('masking', '-'):>9}{stages.get('estimating', '-'):>8}"
            f"{stages.get('prior', '-'):>8}{job['prior_images'] or '-':>7}{stages['training']:>10}"
            f"{stages['saving']:>8}{job['total_s']:>8.2f}{job['peak_memory_bytes'] / 2**20:>10.0f}"
        )
    lines.append(f"{'generation':<18}{'steps':>6}{'batch':>6}{'compiled':>9}{'first s':>9}{'median s':>10}{'img/s':>8}")
    for row in report.generation:
        lines.append(
            f"{row['method']:<18}{row['steps']:>6}{row['batch']:>6}{row['compiled']!s:>9}{row['first_s']:>9.2f}"
            f"{row['seconds']:>10.2f}{row['images_per_s']:>8.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps, CPU, no compile")
    parser.add_argument("--device", default=None, help="default: cpu with --quick, else auto (CUDA when available)")
    parser.add_argument("--out", type=Path, default=Path("gpu-benchmark.json"))
    arguments = parser.parse_args()
    plan = QUICK if arguments.quick else FULL
    report = run(plan, arguments.device or ("cpu" if arguments.quick else None))
    print(table(report))
    arguments.out.write_text(json.dumps(vars(report), indent=2) + "\n", encoding="utf-8")
    print(f"written to {arguments.out}")


if __name__ == "__main__":
    main()
