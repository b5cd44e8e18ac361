"""bf16 autocast runs the CUDA code path on the CPU: compared here with fp32 on the same built-in models.

Tolerances (bf16 keeps 8 bits of mantissa, a relative rounding of 2^-9 per operation):
- recorded attention maps: within 3 % of each map's spread (max - min) (measured: 2.1 % on a CPU without native
  bf16, whose emulated kernels round otherwise; under 2 % with AVX512-BF16);
- training on the same masks, 20 steps: every step's loss within 1 % of fp32's (measured: 0.04 %), trained values
  finite, each layer's ΔW and the identifiers' change within 25 % of fp32's (relative norm; measured ≤ 12 %:
  Adam's normalised steps turn bf16 rounding of near-zero gradients into whole-size updates);
- generation, 5 steps: mean absolute pixel difference below 2 of 255 (measured: 0.43).

Masks are compared through the maps they are made of: on random-weight models every attention map is within a
fraction of a percent of uniform, so the delta masks threshold noise and bf16 rounding redraws them (IoU 0.17 and
0.06 between fp32 and bf16 on `tiny`). Uploaded masks give both precisions the same masks in the training comparison.
"""

import pytest
import torch
from diffusers.models.attention_processor import Attention
from PIL import Image

from attencraft_contract.methods import build_recipe
from attencraft_core.attention import AttentionGrids, AttentionRecorder, RecordingAttnProcessor
from attencraft_core.config import TrainingConfig
from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.methods.attencraft import concept_prompt
from attencraft_core.model_spec import Precision, RunOptions
from attencraft_core.models import BaseModel, load_base_model
from attencraft_core.pipeline import ConceptSpec, learn_concepts, record_attention

FP32 = RunOptions(precision=Precision.FP32)
BF16 = RunOptions(precision=Precision.BF16)


def test_recorded_attention_is_computed_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    layer = Attention(query_dim=32, cross_attention_dim=16, heads=2, dim_head=16)
    recorder = AttentionRecorder()
    layer.set_processor(RecordingAttnProcessor(recorder))
    pixels = torch.randn(1, 64, 32)  # an 8x8 query grid
    prompt = torch.randn(1, 7, 16) * 4
    grids = AttentionGrids(cross=(8, 8), self_attention=(4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16), recorder.record(grids, torch.arange(7)):
        layer(pixels, encoder_hidden_states=prompt)
        query = layer.to_q(pixels)  # what the processor saw: bf16 under autocast
        key = layer.to_k(prompt)
        recorded = recorder.cross_maps()  # (1, 7, 8, 8)
    assert query.dtype == torch.bfloat16 and recorded.dtype == torch.float32
    heads = lambda x: x.float().view(1, -1, 2, 16).transpose(1, 2)  # noqa: E731
    expected = ((heads(query) @ heads(key).transpose(-1, -2)) * layer.scale).softmax(-1).mean(1)  # (1, 64, 7)
    torch.testing.assert_close(recorded, expected.transpose(1, 2).unflatten(-1, (8, 8)), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_bf16() -> BaseModel:
    """The same seeded weights as the session's fp32 `tiny`, computing under bf16 autocast."""
    return load_base_model("tiny", device="cpu", options=BF16)


def output_dtypes(module: torch.nn.Module) -> list[torch.dtype]:
    """Records the dtype of every output of `module` from now on."""
    seen: list[torch.dtype] = []
    module.register_forward_hook(lambda _, __, output: seen.append(output.dtype))
    return seen


def halves(image: Image.Image) -> list[Image.Image]:
    """Left and right half masks: both precisions train on the same masks."""
    left = Image.new("L", image.size, 0)
    right = left.copy()
    width, height = image.size
    left.paste(255, (0, 0, width // 2, height))
    right.paste(255, (width // 2, 0, width, height))
    return [left, right]


def test_options_choose_the_autocast(tiny, tiny_bf16):
    assert tiny.autocast_dtype is None  # auto on a CPU: fp32
    assert tiny_bf16.autocast_dtype == torch.bfloat16
    unet_outputs = output_dtypes(tiny_bf16.pipeline.unet.conv_out)
    with torch.no_grad(), tiny_bf16.autocast():
        tiny_bf16.pipeline.unet(torch.randn(1, 4, 32, 32), 10, encoder_hidden_states=torch.randn(1, 77, 32))
    assert unet_outputs == [torch.bfloat16]


def attention_maps(model: BaseModel, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross maps and self-attention of one recorded forward at t = 150."""
    latents = model.encode_image(image.resize((model.resolution, model.resolution)))
    model.set_identifiers(torch.stack([model.initial_identifier(word) for word in ("cat", "dog")]))
    prompt_ids = model.prompt_ids(concept_prompt(model.slot_tokens, (0, 1)))
    generator = torch.Generator().manual_seed(0)
    try:
        return record_attention(model, latents, torch.tensor([150]), prompt_ids, 2, generator, with_self_attention=True)
    finally:
        model.clear_identifiers()


def assert_maps_follow(fp32_maps: tuple[torch.Tensor, ...], bf16_maps: tuple[torch.Tensor, ...]) -> None:
    for fp32, bf16 in zip(fp32_maps, bf16_maps, strict=True):
        assert bf16.dtype == torch.float32
        spread = fp32.amax() - fp32.amin()
        assert float((bf16 - fp32).abs().max()) <= 0.03 * float(spread)


def test_bf16_attention_maps_follow_fp32(tiny, tiny_bf16, image):
    assert_maps_follow(attention_maps(tiny, image), attention_maps(tiny_bf16, image))


NATIVE_BF16 = torch.cpu._is_avx512_bf16_supported()  # these models run on the CPU


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE_BF16, reason="emulated bf16 convolutions take over 10 min for these SD 2.1 steps")
def test_bf16_follows_fp32_on_the_sd21_architecture(sd21_256, image):
    """sd21-random at 256 px: the recorded maps, and 2 training steps on the same masks (a CPU runs ~1 min a step
    of it in bf16, so 20 steps are left to the tiny model)."""
    runs = []
    for options in (FP32, BF16):
        sd21_256.configure(options)
        maps = attention_maps(sd21_256, image)
        config = TrainingConfig(recipe=build_recipe(steps=2), seed=3)
        job = learn_concepts(
            sd21_256, image, [ConceptSpec("cat"), ConceptSpec("dog")], config, user_masks=halves(image)
        )
        runs.append((maps, job))
    sd21_256.configure(RunOptions())
    (maps_32, job_32), (maps_16, job_16) = runs
    assert_maps_follow(maps_32, maps_16)
    for step_32, step_16 in zip(job_32.history, job_16.history, strict=True):
        assert step_16.loss == pytest.approx(step_32.loss, rel=0.01)
    assert all(torch.isfinite(delta).all() for pair in job_16.deltas.values() for delta in pair)


@pytest.mark.slow
def test_bf16_training_follows_fp32_for_20_steps(tiny, tiny_bf16, image):
    runs = [
        learn_concepts(
            model,
            image,
            [ConceptSpec("cat"), ConceptSpec("dog")],
            TrainingConfig(recipe=build_recipe(steps=20), seed=3),
            user_masks=halves(image),
        )
        for model in (tiny, tiny_bf16)
    ]
    fp32, bf16 = runs
    assert [r.subset for r in bf16.history] == [r.subset for r in fp32.history]
    for step_32, step_16 in zip(fp32.history, bf16.history, strict=True):
        assert step_16.loss == pytest.approx(step_32.loss, rel=0.01)
    assert torch.isfinite(bf16.embeddings).all()
    assert all(torch.isfinite(delta).all() for pair in bf16.deltas.values() for delta in pair)
    initial = torch.stack([tiny.initial_identifier(word) for word in ("cat", "dog")])
    trained = [(fp32.embeddings - initial, bf16.embeddings - initial)]
    trained += [pair for layer in fp32.deltas for pair in zip(fp32.deltas[layer], bf16.deltas[layer], strict=True)]
    differences = [float((trained_16 - trained_32).norm() / trained_32.norm()) for trained_32, trained_16 in trained]
    assert max(differences) <= 0.25


def test_bf16_generation_follows_fp32_and_decodes_in_fp32(tiny, tiny_bf16):
    decoder_outputs = output_dtypes(tiny_bf16.pipeline.vae.decoder.conv_out)
    unet_outputs = output_dtypes(tiny_bf16.pipeline.unet.conv_out)
    request = GenerationRequest("a cat and a dog on the beach", steps=5, seed=1)
    fp32, bf16 = (torch.tensor(generate(model, None, request)[0].getdata()).float() for model in (tiny, tiny_bf16))
    assert set(unet_outputs) == {torch.bfloat16}
    assert decoder_outputs == [torch.float32]
    assert float((fp32 - bf16).abs().mean()) < 2
