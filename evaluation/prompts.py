"""The prompt sets of the evaluation: 10 single-concept and 10 group templates (paper Sec. IV-A prepares 10 of
each per dataset; its list is not published, these follow the style of DisenDiff's and Custom Diffusion's).

`{}` stands for one placeholder (single) or all of an image's placeholders joined by "and" (group).
A JSON file {"single": [...], "group": [...]} replaces them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from attencraft_contract.rules import placeholder_for
from evaluation.errors import EvaluationError

SINGLE_TEMPLATES = (
    "a photo of {}",
    "{} on the beach",
    "{} in the snow",
    "{} in a city street",
    "{} on a wooden table",
    "{} in the forest",
    "a painting of {}",
    "{} in a kitchen",
    "{} on the grass in a park",
    "{} with a mountain in the background",
)
GROUP_TEMPLATES = (
    "a photo of {}",
    "{} on the beach",
    "{} in the snow",
    "{} sitting side by side in a garden",
    "{} in a living room",
    "{} on a city street at night",
    "a watercolor painting of {}",
    "{} in front of the Eiffel Tower",
    "{} on a boat on a lake",
    "{} floating in space",
)


@dataclass(frozen=True)
class PromptSet:
    single: tuple[str, ...] = SINGLE_TEMPLATES
    group: tuple[str, ...] = GROUP_TEMPLATES

    def first(self, count: int) -> "PromptSet":
        """The first `count` templates of each list."""
        return PromptSet(self.single[:count], self.group[:count])

    def single_prompts(self, concept: str) -> list[str]:
        return [template.format(placeholder_for(concept)) for template in self.single]

    def group_prompts(self, concepts: list[str]) -> list[str]:
        together = " and ".join(placeholder_for(concept) for concept in concepts)
        return [template.format(together) for template in self.group]


def load_prompt_set(path: Path) -> PromptSet:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EvaluationError(f"Cannot read the prompt file {path}: {error}.") from error
    lists = [raw.get(key) if isinstance(raw, dict) else None for key in ("single", "group")]
    valid = all(
        isinstance(templates, list) and templates and all(isinstance(t, str) and t.count("{}") == 1 for t in templates)
        for templates in lists
    )
    if not valid:
        raise EvaluationError(
            f'{path} must hold {{"single": [...], "group": [...]}}, non-empty lists of templates with one "{{}}" each.'
        )
    return PromptSet(tuple(lists[0]), tuple(lists[1]))
