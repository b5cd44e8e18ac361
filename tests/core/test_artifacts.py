import json

import pytest
import torch
from PIL import Image

from attencraft_core.artifacts import ConceptSet
from attencraft_core.errors import InvalidInputError


def test_save_and_load_round_trip(tmp_path, trained):
    concept_set, _ = trained
    paths = concept_set.save(tmp_path / "set")
    assert {"weights", "metadata", "overlay", "loss_curve", "mask_0", "mask_1"} <= paths.keys()
    loaded = ConceptSet.load(tmp_path / "set")
    assert torch.equal(loaded.embeddings, concept_set.embeddings)
    assert torch.equal(loaded.masks, concept_set.masks)
    for layer, (delta_k, delta_v) in concept_set.deltas.items():
        assert torch.equal(loaded.deltas[layer][0], delta_k) and torch.equal(loaded.deltas[layer][1], delta_v)
    assert loaded.placeholders == ["<cat>", "<dog>"]
    assert loaded.weights().base_fingerprint == concept_set.metadata["base_model"]["fingerprint"]
    metadata = json.loads(paths["metadata"].read_text())
    for key in ("seed", "hyperparameters", "library_versions", "sha256", "token_strings", "ratios", "layers"):
        assert key in metadata
    with Image.open(paths["mask_0"]) as mask, Image.open(paths["overlay"]) as overlay:
        assert mask.mode == "L" and mask.size == (256, 256)
        assert overlay.mode == "RGB" and overlay.size == (256, 256)
    rows = paths["loss_curve"].read_text().strip().splitlines()
    assert rows[0].startswith("step,subset") and len(rows) == 1 + len(concept_set.history)


def test_a_tampered_weights_file_is_refused(tmp_path, trained):
    concept_set, _ = trained
    paths = concept_set.save(tmp_path / "set")
    data = paths["weights"].read_bytes()
    paths["weights"].write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # flipped, whatever the last byte was
    with pytest.raises(InvalidInputError, match="hash"):
        ConceptSet.load(tmp_path / "set")


def test_a_folder_without_a_concept_set_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no concept set"):
        ConceptSet.load(tmp_path)


def test_low_rank_compression_reports_its_error_and_round_trips(tmp_path, trained):
    concept_set, _ = trained
    compressed = concept_set.compressed(0.6)
    report = compressed.metadata["compression"]
    assert 0 < report["relative_error_mean"] <= report["relative_error_max"] < 1
    layer, (delta_k, _) = next(iter(concept_set.deltas.items()))
    measured = float((compressed.deltas[layer][0] - delta_k).norm() / delta_k.norm())
    assert measured <= report["relative_error_max"] + 1e-6
    assert report["rank_max"] < min(delta_k.shape)
    compressed.save(tmp_path / "low-rank")
    loaded = ConceptSet.load(tmp_path / "low-rank")
    torch.testing.assert_close(loaded.deltas[layer][0], compressed.deltas[layer][0])
    assert (tmp_path / "low-rank" / "weights.safetensors").stat().st_size < (
        concept_set.save(tmp_path / "full")["weights"].stat().st_size
    )
    assert compressed.compressed(1.0).metadata["compression"]["relative_error_max"] < 1e-4
