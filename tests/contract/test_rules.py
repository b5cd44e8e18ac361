"""The contract's rules on their own: what they accept, how they normalise, the sentence of each mistake."""

import re

import pytest

from attencraft_contract import rules
from attencraft_contract.errors import InputError
from attencraft_contract.limits import MAX_CONCEPTS
from attencraft_contract.models import GenerationOptions, JobOptions


def test_names_are_lower_cased_and_get_their_placeholder() -> None:
    assert rules.concept_names(["Cat", "teddy_bear"]) == ["cat", "teddy_bear"]
    assert rules.placeholder_for("teddy_bear") == "<teddy_bear>"


@pytest.mark.parametrize(
    ("names", "code", "sentence"),
    [
        (["cat"], "concept_count", f"Give between 2 and {MAX_CONCEPTS} concepts"),
        (["cat", "<Bear>"], "invalid_concept_name", "give the plain word 'bear' (prompts then name it <bear>)"),
        (["cat", "teddy bear"], "invalid_concept_name", "(e.g. 'teddy_bear')"),
        (["cat", " dog"], "invalid_concept_name", "not a plain word"),
        (["cat", ""], "empty_concept_name", "Concept 2 has an empty name."),
        (["cat", "CAT"], "duplicate_concept_name", "repeated: cat"),
    ],
)
def test_each_naming_mistake_has_its_code_and_sentence(names: list[str], code: str, sentence: str) -> None:
    with pytest.raises(InputError) as caught:
        rules.concept_names(names)
    assert caught.value.code == code and sentence in str(caught.value)


def test_options_name_every_field_out_of_range() -> None:
    with pytest.raises(InputError) as caught:
        rules.validated_options(GenerationOptions, {"height": 1023, "steps": 0})
    assert str(caught.value) == (
        "Invalid options: steps: Input should be greater than or equal to 1 (got 0); "
        "height: Input should be a multiple of 8 (got 1023)."
    )
    assert [error["field"] for error in caught.value.errors] == ["options.steps", "options.height"]


def test_job_options_from_the_form_field() -> None:
    assert rules.job_options_json(None) == JobOptions()
    assert rules.job_options_json('{"fit": "pad"}').fit == "pad"
    with pytest.raises(InputError, match="options must be a JSON object"):
        rules.job_options_json("[1]")


def test_placeholders_the_concepts_did_not_learn() -> None:
    rules.check_placeholders({"prompt": "<cat> and <dog>"}, ["<cat>", "<dog>"])
    with pytest.raises(InputError) as caught:
        rules.check_placeholders({"prompt": "<cow>", "negative_prompt": "<pig>"}, ["<cat>"])
    assert (
        str(caught.value)
        == "The prompt names <cow>, <pig>, which these concepts did not learn; known placeholders: <cat>."
    )
    assert [error["field"] for error in caught.value.errors] == ["prompt", "negative_prompt"]


@pytest.mark.parametrize("raw", ["", "furry", "Teddy_bear-2", ":", " cat", "a" * 33, "<cat>"])
def test_the_initializer_pattern_of_the_schema_is_the_rule(raw: str) -> None:
    stated = re.fullmatch(rules.OPTIONAL_PLAIN_WORD_PATTERN, raw) is not None
    try:
        rules.initializer_word(raw, "initializers.0")
        enforced = True
    except InputError:
        enforced = False
    assert stated == enforced
