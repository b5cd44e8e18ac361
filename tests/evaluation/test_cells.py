"""What a cell's fingerprint depends on (a rerun reuses a cell only when it would compute the same figures): the
method settings and, for a local base model, its files."""

from dataclasses import replace

from PIL import Image

from evaluation.cells import Cell, GridSettings, model_files_digest
from evaluation.datasets import EvalImage

CELL = Cell("custom_diffusion", EvalImage("cat_dog", Image.new("RGB", (8, 8)), ["cat", "dog"]), 0)


def test_a_local_model_is_named_by_its_files_and_a_model_built_by_code_or_fetched_by_id_by_its_name(tmp_path):
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "weights.bin").write_bytes(b"before")
    before = model_files_digest(str(folder))
    (folder / "unet" / "weights.bin").write_bytes(b"after!")  # retrained: same size, other weights
    after = model_files_digest(str(folder))
    (folder / "unet" / "weights.bin").rename(folder / "unet" / "other.bin")
    renamed = model_files_digest(str(folder))

    assert len({before, after, renamed}) == 3 and all(len(digest) == 64 for digest in (before, after, renamed))
    assert model_files_digest("toy") is not None  # the shipped folder, which `toy train-model` can rewrite
    assert model_files_digest("tiny") is None and model_files_digest("owner/some-model") is None


def test_the_fingerprint_changes_with_the_model_files_the_preset_and_prior_preservation():
    settings = GridSettings(model="toy", model_files="a" * 64)
    changed = [
        replace(settings, model_files="b" * 64),
        replace(settings, preset="official"),
        replace(settings, prior_preservation=False),
    ]

    fingerprints = {CELL.fingerprint(variant) for variant in [settings, *changed]}

    assert len(fingerprints) == 4
    assert CELL.fingerprint(settings) == CELL.fingerprint(replace(settings))
