"""One cell of the grid: a method trained on one image with one seed, its samples drawn and scored.

A cell's figures depend only on its settings, so a cell is named by their fingerprint and cached under
OUT/cells/: a rerun reuses a finished cell, and a cell cut off half-way is never trusted (its cell.json, written
last, is what marks it finished).
"""

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from attencraft_contract.methods import Recipe, build_recipe
from attencraft_core.errors import ConceptNotLocalizedError
from attencraft_core.model_spec import model_folder
from evaluation.catalog import CLIP_METRICS, DEFAULT_CLIP, DEFAULT_DINO, DINO_METRICS, PAPER_METRICS, TOY_METRICS
from evaluation.datasets import EvalImage
from evaluation.encoders import ClipEncoder, DinoEncoder, clip_encoder, dino_encoder
from evaluation.errors import CellFailed, EvaluationError
from evaluation.metrics import Sample, paper_figures
from evaluation.prompts import PromptSet
from evaluation.toy_measures import toy_figures

CELL_FILE = "cell.json"
STAGES = ("train", "generate", "score")


@dataclass(frozen=True)
class GridSettings:
    """Everything a cell's figures depend on besides its method, image and seed."""

    model: str = "tiny"
    model_files: str | None = None  # model_files_digest of a local model: a retrained model's cells are not reused
    steps: int | None = None  # None: each method's recipe
    preset: str = "attencraft_comparison"  # attencraft_contract.methods.Preset
    prior_preservation: bool | None = None  # None: each method's own
    prompts: PromptSet = field(default_factory=PromptSet)
    images_per_prompt: int = 10
    sampling_steps: int = 50  # the paper's protocol: PNDM, 50 steps, guidance 7.5
    guidance: float = 7.5
    scheduler: str = "pndm"
    metrics: tuple[str, ...] = PAPER_METRICS
    clip: str = DEFAULT_CLIP
    dino: str = DEFAULT_DINO
    curve_every: int = 0  # 0: no learning curve

    @property
    def needs_clip(self) -> bool:
        return any(name in CLIP_METRICS for name in self.metrics)

    @property
    def needs_dino(self) -> bool:
        return any(name in DINO_METRICS for name in self.metrics)

    def recipe(self, method: str) -> Recipe:
        """The recipe a cell of `method` trains with (an InputError for a combination the method refuses)."""
        return build_recipe(method, self.preset, steps=self.steps, prior_preservation=self.prior_preservation)

    def described(self) -> dict[str, Any]:
        """The settings as JSON, the encoders only where a chosen metric uses them."""
        described = asdict(self)
        described["prompts"] = {"single": list(self.prompts.single), "group": list(self.prompts.group)}
        described["metrics"] = list(self.metrics)
        if not self.needs_clip:
            del described["clip"]
        if not self.needs_dino:
            del described["dino"]
        return described


def model_files_digest(spec: str) -> str | None:
    """SHA-256 of a local base model's file names and contents (the built-in toy folder or a path); None for the
    models built by code and for hub ids (a hub id names its weights)."""
    folder = model_folder(spec)
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(item for item in folder.rglob("*") if item.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        with path.open("rb") as content:
            while chunk := content.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Cell:
    method: str
    image: EvalImage
    seed: int

    @property
    def label(self) -> str:
        return f"{self.method} {self.image.name} seed {self.seed}"

    def fingerprint(self, settings: GridSettings) -> str:
        identity = {"method": self.method, "image": self.image.digest(), "seed": self.seed, **settings.described()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def folder_name(self, settings: GridSettings) -> str:
        return f"{self.method}-{self.image.name}-seed{self.seed}-{self.fingerprint(settings)[:12]}"


@dataclass
class Trained:
    """A trained concept set as a backend holds it (`handle`), with the masks the method used on its input."""

    handle: Any
    masks: list[Image.Image]  # one per concept, in the frame of `input_image`
    input_image: Image.Image
    steps: int  # training steps run
    checkpoints: list[tuple[int, Any]] = field(default_factory=list)  # (step, handle) for the learning curve


class Backend(Protocol):
    """Where cells train and draw: in this process, or on a deployment through its API."""

    def train(self, cell: Cell, settings: GridSettings) -> Trained: ...

    def draw(
        self, handle: Any, requests: Sequence[tuple[str, str | None]], seed: int, settings: GridSettings
    ) -> list[Sample]:
        """Images for each (prompt, concept or None for the group), `images_per_prompt` each, seeds seed + j."""
        ...


def sample_requests(concepts: list[str], prompts: PromptSet) -> list[tuple[str, str | None]]:
    single = [(prompt, concept) for concept in concepts for prompt in prompts.single_prompts(concept)]
    return single + [(prompt, None) for prompt in prompts.group_prompts(concepts)]


class Scorer:
    """The chosen measures of a cell's samples; encoders are loaded on first use, once per process."""

    def __init__(self, settings: GridSettings, device: str = "cpu") -> None:
        self.settings = settings
        self.device = device
        self.lock = threading.Lock()

    def references(self, cell: Cell, trained: Trained) -> tuple[Image.Image, dict[str, Image.Image], str]:
        """The dataset's true masks on the original input where it has them, else the method's own masks."""
        if cell.image.masks:
            return cell.image.image, cell.image.masks, "dataset"
        if not trained.masks:
            raise EvaluationError(
                f"{cell.method} makes no masks and {cell.image.name} has none, so single-concept references cannot be "
                "cropped: give the dataset masks (mask_<concept>.png or a manifest)."
            )
        return trained.input_image, dict(zip(cell.image.concepts, trained.masks, strict=True)), "method"

    def encoders(self) -> tuple[ClipEncoder | None, DinoEncoder | None]:
        """The encoders the chosen metrics need, loaded on the first call."""
        settings = self.settings
        clip = clip_encoder(settings.clip, self.device) if settings.needs_clip else None
        dino = dino_encoder(settings.dino, self.device) if settings.needs_dino else None
        return clip, dino

    def score(self, cell: Cell, trained: Trained, samples: Sequence[Sample]) -> dict[str, Any]:
        """{"metrics": the chosen ones, "per_concept": {name: figures}, "group": figures}."""
        chosen = self.settings.metrics
        parts = []
        if any(name in PAPER_METRICS for name in chosen):
            image, masks, _ = self.references(cell, trained)
            with self.lock:  # one scoring at a time when cells run in parallel: the encoders are shared
                clip, dino = self.encoders()
                parts.append(paper_figures(samples, image, masks, clip=clip, dino=dino))
        if any(name in TOY_METRICS for name in chosen):
            parts.append(toy_figures(samples, cell.image.truth, trained.masks))
        figures: dict[str, Any] = {
            "metrics": {},
            "per_concept": {name: {} for name in cell.image.concepts},
            "group": {},
        }
        for part in parts:
            figures["metrics"].update(part["metrics"])
            figures["group"].update(part["group"])
            for name, values in part["per_concept"].items():
                figures["per_concept"][name].update(values)
        figures["metrics"] = {name: figures["metrics"][name] for name in chosen if name in figures["metrics"]}
        return figures


def curve_prompts(prompts: PromptSet) -> PromptSet:
    """A learning curve's point is drawn from the first single and the first group prompt."""
    return prompts.first(1)


def run_cell(
    cell: Cell,
    settings: GridSettings,
    backend: Backend,
    scorer: Scorer,
    folder: Path,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> dict[str, Any]:
    """Train, draw and score one cell; write its samples and masks into `folder`; return its figures."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    on_stage("train")
    trained = backend.train(cell, settings)
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    on_stage("generate")
    concepts = cell.image.concepts
    samples = backend.draw(trained.handle, sample_requests(concepts, settings.prompts), cell.seed, settings)
    curve_requests = sample_requests(concepts, curve_prompts(settings.prompts))
    curve_samples = [
        (step, backend.draw(handle, curve_requests, cell.seed, settings)) for step, handle in trained.checkpoints
    ]
    chosen = {prompt for prompt, _ in curve_requests}
    curve_samples.append((trained.steps, [sample for sample in samples if sample.prompt in chosen]))
    seconds["generate"] = time.perf_counter() - started

    started = time.perf_counter()
    on_stage("score")
    figures = scorer.score(cell, trained, samples)
    curve = (
        [{"step": step, **scorer.score(cell, trained, drawn)} for step, drawn in curve_samples]
        if trained.checkpoints
        else []
    )
    seconds["score"] = time.perf_counter() - started

    (folder / "samples").mkdir(parents=True)
    sample_files = []
    per_prompt = settings.images_per_prompt
    for index, sample in enumerate(samples):
        name = f"samples/{index:04d}.png"
        sample.image.save(folder / name)
        seed = cell.seed + index % per_prompt
        sample_files.append({"file": name, "prompt": sample.prompt, "concept": sample.concept, "seed": seed})
    (folder / "masks").mkdir()
    trained.input_image.save(folder / "input.png")
    for concept, mask in zip(concepts, trained.masks, strict=False):  # none for a method without masks
        mask.save(folder / f"masks/{concept}.png")
    return {
        "method": cell.method,
        "image": cell.image.name,
        "seed": cell.seed,
        "concepts": concepts,
        "references": scorer.references(cell, trained)[2],
        **figures,
        "curve": curve,
        "seconds": {stage: round(value, 3) for stage, value in seconds.items()},
        "samples": sample_files,
    }


class CellCache:
    """OUT/cells/<method>-<image>-seed<k>-<fingerprint>/: cell.json (written last), samples/, masks/, input.png."""

    def __init__(self, out: Path) -> None:
        self.root = out / "cells"

    def folder(self, cell: Cell, settings: GridSettings) -> Path:
        return self.root / cell.folder_name(settings)

    def finished(self, cell: Cell, settings: GridSettings) -> dict[str, Any] | None:
        path = self.folder(cell, settings) / CELL_FILE
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return result if result.get("fingerprint") == cell.fingerprint(settings) else None

    def run(
        self,
        cell: Cell,
        settings: GridSettings,
        backend: Backend,
        scorer: Scorer,
        on_stage: Callable[[str], None] = lambda stage: None,
    ) -> dict[str, Any]:
        """The cell's figures, computed into a scratch folder that becomes the cell's folder only when complete."""
        final = self.folder(cell, settings)
        scratch = final.with_name(final.name + ".partial")
        for leftover in (scratch, final):
            if leftover.exists():
                shutil.rmtree(leftover)
        try:
            result = run_cell(cell, settings, backend, scorer, scratch, on_stage)
        except (CellFailed, ConceptNotLocalizedError) as error:
            scratch.mkdir(parents=True, exist_ok=True)
            result = {
                "method": cell.method,
                "image": cell.image.name,
                "seed": cell.seed,
                "concepts": cell.image.concepts,
                "error": str(error),
                "metrics": {},
                "curve": [],
                "seconds": {},
                "samples": [],
            }
        result["fingerprint"] = cell.fingerprint(settings)
        result["folder"] = str(final.relative_to(self.root.parent))
        (scratch / CELL_FILE).write_text(json.dumps(result, indent=1), encoding="utf-8")
        scratch.rename(final)
        return result
