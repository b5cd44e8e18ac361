"""Input rules without any file decoding: concept names and their placeholders, initializers, options, prompts,
webhook URLs. Each broken rule raises an InputError whose sentence both the API and the CLI show."""

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, HttpUrl, ValidationError

from attencraft_contract.errors import InputError
from attencraft_contract.limits import MAX_CONCEPTS, MAX_NAME_CHARS, MAX_WEBHOOK_URL_CHARS, MIN_CONCEPTS
from attencraft_contract.models import JobOptions

NAME_CHARACTERS = "A-Za-z0-9_-"
PLAIN_WORD = re.compile(rf"[{NAME_CHARACTERS}]{{1,{MAX_NAME_CHARS}}}")
PLAIN_WORD_PATTERN = f"^{PLAIN_WORD.pattern}$"  # the same rules in the OpenAPI document
OPTIONAL_PLAIN_WORD_PATTERN = f"^(?:{PLAIN_WORD.pattern})?$"  # an initializer: a plain word or empty
PLACEHOLDER = re.compile(rf"<[{NAME_CHARACTERS}]+>")
PLAIN_WORD_HINT = f"use 1 to {MAX_NAME_CHARS} letters, digits, '_' or '-'"

Options = TypeVar("Options", bound=BaseModel)


def placeholder_for(name: str) -> str:
    """What a prompt writes for the concept: ``cat`` -> ``<cat>``."""
    return f"<{name}>"


def _not_a_plain_word(what: str, raw: str, field: str, code: str) -> InputError:
    stripped = raw.strip()
    if PLACEHOLDER.fullmatch(stripped):
        bare = stripped[1:-1].lower()
        return InputError(
            f"{what} {raw!r} is written as a placeholder; give the plain word {bare!r} "
            f"(prompts then name it {placeholder_for(bare)}).",
            code=code,
            field=field,
        )
    suggestion = re.sub(r"\s+", "_", stripped.lower())
    hint = f" (e.g. {suggestion!r})" if PLAIN_WORD.fullmatch(suggestion) else ""
    return InputError(f"{what} {raw!r} is not a plain word: {PLAIN_WORD_HINT}{hint}.", code=code, field=field)


def concept_names(raw_names: Sequence[str]) -> list[str]:
    """Lower-cased class names; between MIN_CONCEPTS and MAX_CONCEPTS, plain words, all different."""
    names = [raw.lower() for raw in raw_names]
    if not MIN_CONCEPTS <= len(names) <= MAX_CONCEPTS:
        raise InputError(
            f"Give between {MIN_CONCEPTS} and {MAX_CONCEPTS} concepts (AttenCraft learns several concepts from one "
            f"photo); got {len(names)}.",
            code="concept_count",
            field="concepts",
        )
    for index, name in enumerate(names):
        field = f"concepts.{index}"
        if not name.strip():
            raise InputError(f"Concept {index + 1} has an empty name.", code="empty_concept_name", field=field)
        if not PLAIN_WORD.fullmatch(name):
            raise _not_a_plain_word("Concept name", raw_names[index], field, "invalid_concept_name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(
            f"Concept names must differ; repeated: {', '.join(repeated)}.",
            code="duplicate_concept_name",
            field="concepts",
        )
    return names


def initializer_word(raw: str, field: str) -> str | None:
    """A word whose embedding starts a concept's token; empty means the class name itself."""
    word = raw.lower()
    if word and not PLAIN_WORD.fullmatch(word):
        raise _not_a_plain_word("Initializer", raw, field, "invalid_initializer")
    return word or None


def initializer_words(raw_initializers: Sequence[str], *, concept_count: int) -> list[str | None]:
    """One initializer per concept, or none at all."""
    if not raw_initializers:
        return [None] * concept_count
    if len(raw_initializers) != concept_count:
        raise InputError(
            f"Give one initializer per concept ({concept_count}) or none; got {len(raw_initializers)}.",
            code="initializer_count",
            field="initializers",
        )
    return [initializer_word(raw, f"initializers.{index}") for index, raw in enumerate(raw_initializers)]


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "options"
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and error["type"] != "missing" else ""
    return f"{location}: {error['msg']}{shown}"


def validated_options(model: type[Options], values: Mapping[str, Any], *, field: str = "options") -> Options:
    """``values`` as ``model``, or one InputError naming every option that is out of range or unknown."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = exc.errors()
        raise InputError(
            f"Invalid {field}: {'; '.join(_describe(problem) for problem in problems)}.",
            code=f"invalid_{field}",
            field=field,
            errors=[
                {"field": ".".join([field, *map(str, problem["loc"])]), "message": problem["msg"]}
                for problem in problems
            ],
        ) from exc


def job_options(values: Mapping[str, Any]) -> JobOptions:
    """JobOptions whose method settings also make a valid recipe (an ablation switch needs method attencraft)."""
    options = validated_options(JobOptions, values)
    try:
        options.recipe()
    except InputError as error:
        raise InputError(error.message, code=error.code, field=f"options.{error.field}") from error
    return options


def job_options_json(raw_options: str | None) -> JobOptions:
    """The ``options`` form field: a JSON object such as {"steps": 300, "seed": 7}."""
    if raw_options is None or not raw_options.strip():
        return JobOptions()
    try:
        decoded = json.loads(raw_options)
    except (json.JSONDecodeError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise InputError(f"options must be a JSON object: {message}.", code="invalid_options", field="options") from exc
    if not isinstance(decoded, dict):
        raise InputError('options must be a JSON object, e.g. {"steps": 300}.', code="invalid_options", field="options")
    return job_options(decoded)


def unknown_placeholders_sentence(unknown: Sequence[str], known: Sequence[str]) -> str:
    return (
        f"The prompt names {', '.join(unknown)}, which these concepts did not learn; "
        f"known placeholders: {', '.join(known)}."
    )


def check_placeholders(prompts: Mapping[str, str], known: Sequence[str]) -> None:
    """Every `<name>` in every prompt must be one of the known placeholders."""
    unknown = {field: sorted(set(PLACEHOLDER.findall(prompt)) - set(known)) for field, prompt in prompts.items()}
    if any(unknown.values()):
        names = sorted({name for names in unknown.values() for name in names})
        raise InputError(
            unknown_placeholders_sentence(names, known),
            code="unknown_placeholder",
            field=next(field for field, names in unknown.items() if names),
            errors=[
                {"field": field, "message": f"unknown placeholder {name}"}
                for field, names in unknown.items()
                for name in names
            ],
        )


class _WebhookTarget(BaseModel):
    url: HttpUrl


def webhook_url(raw_url: str | None) -> str | None:
    """An absolute http(s) URL, or None when absent."""
    if raw_url is None or not raw_url.strip():
        return None
    if len(raw_url) > MAX_WEBHOOK_URL_CHARS:
        raise InputError(
            f"webhook_url is longer than {MAX_WEBHOOK_URL_CHARS} characters.",
            code="invalid_webhook",
            field="webhook_url",
        )
    try:
        return str(_WebhookTarget(url=raw_url.strip()).url)
    except ValidationError as exc:
        raise InputError(
            f"webhook_url {raw_url!r} is not an absolute http(s) URL such as https://example.com/hooks.",
            code="invalid_webhook",
            field="webhook_url",
        ) from exc
