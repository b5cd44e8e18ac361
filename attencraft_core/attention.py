"""Attention capture as a diffusers attention processor (SPEC 2.2).

One ``AttentionRecorder`` is shared by every attention layer of the UNet. While a recording is active it names
the query grid whose cross-attention columns it wants and, for mask creation only, the grid whose self-attention
it wants: a property of the base model (``AttentionGrids``; Stable Diffusion: latent size / 4 and / 2, 16x16 and
32x32 at 512 px). Layers are chosen by the number of query positions, never by name, so any SD-shaped UNet works.
Only those layers compute an explicit softmax, in fp32 whatever the autocast; every other call, and every call
outside a recording, uses scaled_dot_product_attention.

The recorder is the one state all the processors share, so it also carries the one training switch they read:
``detaching_sot_kv`` (Custom Diffusion's code and those built on it, BASELINES §1.2) computes the key and value of
the first prompt position (<sot>) from a detached copy in every cross-attention, so no gradient reaches W_k, W_v
through it; forward values are unchanged.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from diffusers.models.attention_processor import Attention


@dataclass(frozen=True)
class AttentionGrids:
    """The query grids whose attention a base model's masks and losses use (SPEC 2.2)."""

    cross: tuple[int, int]  # A_C: cross-attention maps of the identifier tokens
    self_attention: tuple[int, int]  # A_S: self-attention graph of the random walk (mask creation only)

    @classmethod
    def stable_diffusion(cls, latent_size: tuple[int, int]) -> "AttentionGrids":
        """SD 1.x/2.x: cross-attention at latent / 4, self-attention at latent / 2."""
        height, width = latent_size
        return cls(cross=(height // 4, width // 4), self_attention=(height // 2, width // 2))


@dataclass
class _Recording:
    cross_grids: tuple[tuple[int, int], ...]
    token_positions: torch.Tensor  # (K,) prompt positions whose attention columns are kept
    self_grid: tuple[int, int] | None
    cross_sums: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # grid -> (B, K, h*w), head-mean
    cross_layers: dict[tuple[int, int], int] = field(default_factory=dict)
    self_sum: torch.Tensor | None = None  # (B, H*W, H*W) summed over layers, head-averaged
    self_layers: int = 0

    def cross_grid_of(self, query_length: int) -> tuple[int, int] | None:
        return next((grid for grid in self.cross_grids if grid[0] * grid[1] == query_length), None)


class AttentionRecorder:
    def __init__(self) -> None:
        self._recording: _Recording | None = None
        self.detach_sot_kv = False

    @contextmanager
    def detaching_sot_kv(self, enabled: bool = True) -> Iterator[None]:
        """While active (and `enabled`), cross-attention keys and values of prompt position 0 carry no gradient."""
        saved = self.detach_sot_kv
        self.detach_sot_kv = enabled
        try:
            yield
        finally:
            self.detach_sot_kv = saved

    @contextmanager
    def record(
        self,
        grids: AttentionGrids,
        token_positions: torch.Tensor,
        *,
        with_self_attention: bool = False,
        cross_grids: tuple[tuple[int, int], ...] | None = None,
    ) -> Iterator["AttentionRecorder"]:
        """Record the token columns on `cross_grids` (default: the model's cross grid) and, if asked, the
        self-attention on its self grid; every other layer keeps scaled_dot_product_attention."""
        self._recording = _Recording(
            cross_grids=cross_grids or (grids.cross,),
            token_positions=token_positions,
            self_grid=grids.self_attention if with_self_attention else None,
        )
        try:
            yield self
        finally:
            self._recording = None

    @contextmanager
    def _replaying(self, recording: _Recording | None) -> Iterator[None]:
        """During a checkpointed block's recomputation in the backward pass: the same layers take the explicit
        softmax as in its forward pass (the recomputed ops must match), into a throwaway copy of the recording."""
        saved = self._recording
        fresh = {"cross_sums": {}, "cross_layers": {}, "self_sum": None}
        self._recording = None if recording is None else replace(recording, **fresh)
        try:
            yield
        finally:
            self._recording = saved

    def checkpoint(self, block: torch.nn.Module, *args: object) -> object:
        """Gradient checkpointing of one UNet block that records in its forward pass what it recorded there, also
        when it is recomputed in the backward pass, after the recording has ended."""

        def contexts() -> tuple[AbstractContextManager[None], AbstractContextManager[None]]:
            return nullcontext(), self._replaying(self._recording)

        return torch.utils.checkpoint.checkpoint(block.__call__, *args, use_reentrant=False, context_fn=contexts)

    def wants_cross(self, query_length: int) -> bool:
        rec = self._recording
        return rec is not None and rec.cross_grid_of(query_length) is not None

    def wants_self(self, query_length: int) -> bool:
        rec = self._recording
        return rec is not None and rec.self_grid is not None and query_length == rec.self_grid[0] * rec.self_grid[1]

    def add_cross(self, probabilities: torch.Tensor) -> None:
        """probabilities: (B, heads, h*w, L) softmax over the L prompt tokens."""
        rec = self._active()
        grid = rec.cross_grid_of(probabilities.shape[2])
        columns = probabilities.mean(dim=1)[..., rec.token_positions].transpose(1, 2)  # (B, K, h*w)
        rec.cross_sums[grid] = columns if grid not in rec.cross_sums else rec.cross_sums[grid] + columns
        rec.cross_layers[grid] = rec.cross_layers.get(grid, 0) + 1

    def add_self(self, probabilities: torch.Tensor) -> None:
        """probabilities: (B, heads, H*W, H*W), row-stochastic."""
        rec = self._active()
        averaged = probabilities.mean(dim=1)
        rec.self_sum = averaged if rec.self_sum is None else rec.self_sum + averaged
        rec.self_layers += 1

    def recorded_cross_grids(self) -> list[tuple[int, int]]:
        """The asked-for grids the UNet has cross-attention layers on, in the order asked."""
        rec = self._active()
        return [grid for grid in rec.cross_grids if grid in rec.cross_sums]

    def cross_maps(self, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, K, h, w): head- and layer-averaged cross-attention of the recorded tokens on `grid` (default: the
        first grid asked for)."""
        rec = self._active()
        grid = grid or rec.cross_grids[0]
        if grid not in rec.cross_sums:
            raise RuntimeError(f"no cross-attention layer has a {grid} query grid")
        return (rec.cross_sums[grid] / rec.cross_layers[grid]).unflatten(-1, grid)

    def self_attention(self) -> torch.Tensor:
        """(B, H*W, H*W): head- and layer-averaged self-attention on the self grid."""
        rec = self._active()
        if rec.self_sum is None:
            raise RuntimeError(f"no self-attention layer has a {rec.self_grid} query grid")
        return rec.self_sum / rec.self_layers

    def _active(self) -> _Recording:
        if self._recording is None:
            raise RuntimeError("no attention recording is active")
        return self._recording


class RecordingAttnProcessor:
    """diffusers' AttnProcessor2_0, with an explicit softmax on the layers the recorder asks for."""

    def __init__(self, recorder: AttentionRecorder) -> None:
        self.recorder = recorder

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)

        is_cross = encoder_hidden_states is not None
        query_length = hidden_states.shape[1]
        batch_size, key_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        if is_cross and self.recorder.detach_sot_kv:
            key = torch.cat([key[:, :1].detach(), key[:, 1:]], dim=1)
            value = torch.cat([value[:, :1].detach(), value[:, 1:]], dim=1)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, Lq, d)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, Lk, d)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        record_cross = is_cross and self.recorder.wants_cross(query_length)
        record_self = not is_cross and self.recorder.wants_self(query_length)
        if record_cross or record_self:
            # The recorded maps feed masks, ratios and L_attn: scores and softmax in fp32, even under bf16 autocast.
            with torch.autocast(query.device.type, enabled=False):
                scores = (query.float() @ key.float().transpose(-1, -2)) * attn.scale  # (B, heads, Lq, Lk)
                if attention_mask is not None:
                    scores = scores + attention_mask.float()
                probabilities = scores.softmax(dim=-1)
            if record_cross:
                self.recorder.add_cross(probabilities)
            else:
                self.recorder.add_self(probabilities)
            hidden_states = probabilities.to(value.dtype) @ value
        else:
            hidden_states = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False, scale=attn.scale
            )

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
