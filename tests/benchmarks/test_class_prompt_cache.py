import subprocess
import sys
from pathlib import Path

import pytest

from attencraft_core.model_spec import Precision, RunOptions
from attencraft_core.models import BaseModel, load_base_model
from benchmarks.class_prompt_cache import ReencodingTrainer, custom_diffusion_trainer

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4


@pytest.fixture(scope="module")
def tiny_bf16() -> BaseModel:
    """bf16 autocast, as on a GPU: the cached states must be the ones a step computes under it."""
    return load_base_model("tiny", device="cpu", options=RunOptions(precision=Precision.BF16))


def run(model: BaseModel, reencode: bool) -> tuple[list[float], list[int]]:
    """Losses of STEPS steps and the batch size of every text-encoder call, from building the trainer on."""
    calls: list[int] = []
    hook = model.pipeline.text_encoder.register_forward_hook(lambda _, inputs, __: calls.append(inputs[0].shape[0]))
    trainer: ReencodingTrainer | None = None
    try:
        trainer = custom_diffusion_trainer(model)
        trainer.reencode = reencode
        losses = [trainer.step().loss for _ in range(STEPS)]
    finally:
        hook.remove()
        if trainer is not None:
            trainer.close()
    return losses, calls


def test_class_prompts_are_encoded_once_per_job_with_the_losses_of_encoding_them_every_step(tiny_bf16):
    cached_losses, cached_calls = run(tiny_bf16, reencode=False)
    reencoded_losses, reencoded_calls = run(tiny_bf16, reencode=True)
    assert cached_calls == [1, 1] + [1] * STEPS  # "cat" and "dog" once per job, then each step's instance prompt
    assert reencoded_calls == [1, 1] + [1, 1] * STEPS  # the candidate encodes the step's class prompt again
    assert cached_losses == reencoded_losses


@pytest.mark.slow
def test_the_benchmark_reports_a_paired_ratio():
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.class_prompt_cache", "--model", "tiny", "--pairs", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "step_ratio (re-encoding class prompts / cached)=" in finished.stdout
    assert "2 pairs" in finished.stdout and "saved per step:" in finished.stdout
