"""Run options that change speed only: the compiled UNet for generation and channels_last."""

import torch

from attencraft_core.generation import GenerationRequest, generate
from attencraft_core.model_spec import RunOptions
from attencraft_core.models import load_base_model


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
