import json
from dataclasses import asdict

import pytest

from attencraft_contract.errors import InputError
from attencraft_contract.methods import Method, MultiConceptLoss, Preset, Ratios, Recipe, build_recipe


def _differences(first: Recipe, second: Recipe) -> set[str]:
    a, b = asdict(first), asdict(second)
    return {key for key in a if a[key] != b[key]}


def test_the_default_is_attencraft_as_the_paper_ran_it():
    recipe = build_recipe()
    assert recipe.method == Method.ATTENCRAFT and recipe.preset == Preset.ATTENCRAFT_COMPARISON
    assert recipe.steps == 300 and recipe.stages[0].learning_rate == 1e-4
    assert (recipe.omega, recipe.attention_weight, recipe.ratios) == (0.3, 0.01, Ratios.ADAPTIVE)
    assert recipe.multi_concept_loss == MultiConceptLoss.ATTENTION
    assert not recipe.prior_preservation


@pytest.mark.parametrize(
    ("switch", "value"),
    [
        ("ratios", "equal"),
        ("ratios", "no_softmax"),
        ("multi_concept_loss", "attention_and_reconstruction"),
        ("omega", 0.5),
    ],
)
def test_an_ablation_changes_exactly_the_one_setting_it_names(switch, value):
    assert _differences(build_recipe(), build_recipe(**{switch: value})) == {switch}


@pytest.mark.parametrize("method", [m for m in Method if m != Method.ATTENCRAFT])
def test_ablation_switches_are_refused_with_another_method(method):
    with pytest.raises(InputError, match=f"only valid with method attencraft, not {method.value}") as caught:
        build_recipe(method, ratios="equal")
    assert caught.value.field == "ratios"
    with pytest.raises(InputError, match="omega is an ablation"):
        build_recipe(method, omega=0.3)


@pytest.mark.parametrize(
    ("arguments", "field", "listed"),
    [
        ({"method": "dreambooth"}, "method", "attencraft, custom_diffusion, disendiff"),
        ({"preset": "paper"}, "preset", "attencraft_comparison, official"),
        ({"ratios": "uniform"}, "ratios", "adaptive, equal, no_softmax"),
        ({"multi_concept_loss": "both"}, "multi_concept_loss", "attention, attention_and_reconstruction"),
    ],
)
def test_unknown_values_name_the_valid_ones(arguments, field, listed):
    with pytest.raises(InputError, match=listed) as caught:
        build_recipe(**arguments)
    assert caught.value.field == field


@pytest.mark.parametrize(("arguments", "field"), [({"omega": 1.5}, "omega"), ({"prior_images": 0}, "prior_images")])
def test_out_of_range_values_are_refused(arguments, field):
    with pytest.raises(InputError) as caught:
        build_recipe(**arguments)
    assert caught.value.field == field


def test_break_a_scene_runs_two_stages_with_their_own_learning_rates():
    recipe = build_recipe("break_a_scene")
    first, second = recipe.stages
    assert (first.steps, first.learning_rate, first.trains_kv) == (400, 5e-4, False)
    assert (second.steps, second.learning_rate, second.trains_kv) == (200, 5e-5, True)
    assert [recipe.stage_at(step) for step in (0, 399, 400, 599)] == [0, 0, 1, 1]
    official = build_recipe("break_a_scene", "official")
    assert [(s.steps, s.learning_rate) for s in official.stages] == [(400, 5e-4), (400, 2e-6)]


@pytest.mark.parametrize(
    ("method", "detached", "flips", "resizes"),
    [
        ("attencraft", (False, False), (False, False), (False, False)),
        ("custom_diffusion", (True, True), (False, True), (False, True)),  # official: --hflip, no --noaug
        ("disendiff", (True, True), (False, True), (False, True)),  # official: flip_p 0.5, aug=True
        ("textual_localization_hard", (True, True), (False, False), (False, False)),  # --noaug, no flip
        ("break_a_scene", (False, False), (True, True), (False, False)),  # photo and masks flipped together
    ],
)
def test_each_recipe_detaches_sot_flips_and_augments_as_baselines_says(method, detached, flips, resizes):
    """BASELINES §1.2 (<sot> K/V detached in CD, DisenDiff, TL), §1.3/§2.3/§3.3/§4.3 (flip, resize augmentation),
    per preset (attencraft_comparison, official)."""
    recipes = [build_recipe(method, preset) for preset in ("attencraft_comparison", "official")]
    assert tuple(recipe.detach_sot_kv for recipe in recipes) == detached
    assert tuple(recipe.hflip for recipe in recipes) == flips
    assert tuple(recipe.resize_augmentation for recipe in recipes) == resizes


def test_progress_names_break_a_scenes_stages():
    recipe = build_recipe("break_a_scene", steps=3)
    assert [recipe.stage_progress(step) for step in (1, 2, 3)] == [
        {"name": "identifiers", "number": 1, "count": 2},
        {"name": "identifiers", "number": 1, "count": 2},
        {"name": "identifiers+kv", "number": 2, "count": 2},
    ]
    assert [stage["name"] for stage in recipe.as_dict()["stages"]] == ["identifiers", "identifiers+kv"]
    assert build_recipe().stage_progress(1) == {"name": "identifiers+kv", "number": 1, "count": 1}


def test_a_step_budget_keeps_the_stage_proportions():
    recipe = build_recipe("break_a_scene", steps=30)
    assert [stage.steps for stage in recipe.stages] == [20, 10]
    assert build_recipe("break_a_scene", steps=2).steps == 2
    with pytest.raises(InputError, match="between 2 and"):
        build_recipe("break_a_scene", steps=1)


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("preset", list(Preset))
def test_every_recipe_shows_its_settings_and_only_attencraft_its_ablations(method, preset):
    recipe = build_recipe(method, preset)
    shown = json.loads(json.dumps(recipe.as_dict()))
    assert shown["method"] == method.value and shown["steps"] == sum(s["steps"] for s in shown["stages"])
    assert ({"ratios", "multi_concept_loss", "omega"} <= shown.keys()) == (method == Method.ATTENCRAFT)


def test_baselines_preserve_a_prior_and_expand_prompts_as_they_trained():
    assert build_recipe("custom_diffusion").prior_preservation
    assert build_recipe("custom_diffusion").prompt_expansion == "token+class"
    assert build_recipe("break_a_scene").prompt_expansion == "token"
    assert not build_recipe("custom_diffusion", prior_preservation=False).prior_preservation
