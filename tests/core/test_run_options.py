"""Run options that change speed only: the compiled UNet for generation and channels_last."""

import functools
from collections.abc import Callable

import pytest
import torch
from torch._dynamo.backends.registry import lookup_backend

from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.model_spec import RunOptions
from attencraft_core.models import BaseModel, ConceptWeights, load_base_model


def test_generation_samples_with_the_compiled_unet_and_training_keeps_the_eager_one():
    model = load_base_model("tiny", device="cpu", options=RunOptions(compile_unet=True))
    eager = model.pipeline.unet
    with model.generating() as pipeline:
        compiled = pipeline.unet
        assert isinstance(compiled, torch._dynamo.eval_frame.OptimizedModule)
        assert compiled._orig_mod is eager  # the same parameters: applied K/V deltas are seen
    assert model.pipeline.unet is eager
    model.configure(RunOptions())
    with model.generating() as pipeline:
        assert pipeline.unet is eager


def test_channels_last_changes_the_layout_not_the_images():
    request = GenerationRequest("a cat and a dog", steps=2, seed=1)
    model = load_base_model("tiny", device="cpu")
    assert model.pipeline.unet.conv_in.weight.is_contiguous()  # auto: channels_last on CUDA only
    plain = generate(model, None, request)[0]
    model.configure(RunOptions(channels_last=True))
    assert model.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc = generate(model, None, request)[0]
    difference = torch.tensor(plain.getdata()).float() - torch.tensor(nhwc.getdata()).float()
    assert float(difference.abs().mean()) < 0.5


def random_concepts(model: BaseModel) -> ConceptWeights:
    """Two identifiers and K/V deltas large enough to change every image."""
    generator = torch.Generator().manual_seed(0)
    noise = lambda weight: 0.05 * torch.randn(weight.shape, generator=generator)  # noqa: E731
    return ConceptWeights(
        placeholders=["<cat>", "<dog>"],
        embeddings=torch.randn(2, model.identifier_embedding.embedding_dim, generator=generator),
        deltas={name: (noise(k), noise(v)) for name, (k, v) in model.base_kv_weights().items()},
        base_fingerprint=model.fingerprint,
        base_model=model.name,
        class_names=["cat", "dog"],
    )


@pytest.mark.slow
def test_the_compiled_unet_draws_the_eager_images_with_a_concept_set_applied(monkeypatch):
    """torch.compile runs for real up to its last stage: dynamo captures the UNet with its recording processors and
    AOTAutograd traces it; inductor's code generation is swapped for eager kernels (backend aot_eager), since it
    takes minutes of a CPU for tiny's UNet (measured: 2 CPU-minutes, 14 min on this shared machine). On a GPU,
    benchmarks/gpu.sh runs the inductor path."""
    graphs: list[torch.fx.GraphModule] = []
    aot_eager = lookup_backend("aot_eager")

    def backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., object]:
        graphs.append(graph)
        return aot_eager(graph, example_inputs)

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    model = load_base_model("tiny", device="cpu")
    weights = random_concepts(model)
    request = GenerationRequest("<cat> and <dog> on the beach", steps=2, seed=1)
    plain = GenerationRequest("a cat and a dog on the beach", steps=2, seed=1)
    eager = [generate(model, None, plain)[0].tobytes(), generate(model, weights, request)[0].tobytes()]
    assert eager[0] != eager[1]  # the concept set changes the image
    try:
        model.configure(RunOptions(compile_unet=True))
        compiled = [generate(model, None, plain)[0].tobytes(), generate(model, weights, request)[0].tobytes()]
    finally:
        torch._dynamo.reset()
    assert graphs  # generation ran through the compiled UNet
    assert compiled == eager  # which sees the applied K/V deltas
