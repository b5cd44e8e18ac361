"""The attention processor's training switch: Custom Diffusion's detached <sot> key and value (BASELINES §1.2)."""

import torch
from diffusers.models.attention_processor import Attention

from attencraft_core.attention import AttentionGrids, AttentionRecorder, RecordingAttnProcessor

GRIDS = AttentionGrids(cross=(4, 4), self_attention=(4, 4))


def _layer() -> tuple[Attention, AttentionRecorder]:
    torch.manual_seed(0)
    layer = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)
    recorder = AttentionRecorder()
    layer.set_processor(RecordingAttnProcessor(recorder))
    return layer, recorder


def _key_value_gradients(detach: bool, *, recording: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output and the W_k, W_v gradients of one cross-attention whose prompt is zero after position 0: W_k and W_v
    (no bias) then see only the <sot> position's input, so their whole gradient comes through it."""
    layer, recorder = _layer()
    pixels = torch.randn(1, 16, 8)  # a 4x4 query grid
    prompt = torch.zeros(1, 5, 6)
    prompt[:, 0] = torch.randn(6)
    record = recorder.record(GRIDS, torch.arange(5)) if recording else recorder.detaching_sot_kv(False)
    with record, recorder.detaching_sot_kv(detach):
        output = layer(pixels, encoder_hidden_states=prompt)
    output.pow(2).sum().backward()
    return output.detach(), layer.to_k.weight.grad, layer.to_v.weight.grad


def test_detached_sot_stops_the_gradient_through_position_0_and_changes_no_value():
    for recording in (False, True):  # scaled_dot_product_attention, and the explicit softmax of recorded layers
        plain, plain_key, plain_value = _key_value_gradients(False, recording=recording)
        detached, key, value = _key_value_gradients(True, recording=recording)
        assert torch.equal(plain, detached)
        assert plain_key.abs().sum() > 0 and plain_value.abs().sum() > 0
        assert torch.equal(key, torch.zeros_like(key)) and torch.equal(value, torch.zeros_like(value))


def test_detaching_applies_to_cross_attention_only_and_ends_with_its_context():
    recorder = AttentionRecorder()
    self_layer = Attention(query_dim=8, heads=2, dim_head=4)
    self_layer.set_processor(RecordingAttnProcessor(recorder))
    pixels = torch.zeros(1, 16, 8)
    pixels[:, 0] = torch.randn(8)
    with recorder.detaching_sot_kv():
        self_layer(pixels).pow(2).sum().backward()
    assert self_layer.to_k.weight.grad.abs().sum() > 0  # self-attention's first pixel is no <sot>
    assert not recorder.detach_sot_kv


def test_a_checkpointed_block_recomputes_with_the_sot_detached_as_in_its_forward():
    layer, recorder = _layer()
    pixels = torch.randn(1, 16, 8)
    prompt = torch.zeros(1, 5, 6)
    prompt[:, 0] = torch.randn(6)
    with recorder.detaching_sot_kv():
        output = recorder.checkpoint(layer, pixels, prompt)
    output.pow(2).sum().backward()  # recomputed outside the context; the gradient follows the forward's graph
    assert torch.equal(layer.to_k.weight.grad, torch.zeros_like(layer.to_k.weight))
