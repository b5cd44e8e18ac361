"""Identifier tokens (SPEC 2.1) kept apart from the frozen base embedding table.

The text encoder's token embedding is wrapped once: ids below the base vocabulary size read the untouched base
table, ids above it read a small table of identifier vectors that training optimises and generation swaps per
concept set. The base table is never resized or written, so it stays bit-identical by construction.
"""

import torch
from torch import nn

SLOT_TOKEN_FORMAT = "<attencraft-slot-{index}>"
# Custom Diffusion's rare-token initialisation ("ktn+pll+ucd", diffusers' default), then further rare
# three-letter words for up to MAX_CONCEPTS concepts (BASELINES §1.2).
RARE_WORDS = ("ktn", "pll", "ucd", "xjv", "qzb", "vwk", "fpq", "zxh")


class IdentifierEmbedding(nn.Module):
    def __init__(self, base: nn.Embedding, first_identifier_id: int) -> None:
        super().__init__()
        self.base = base
        self.first_identifier_id = first_identifier_id
        self.identifiers: torch.Tensor = base.weight.new_zeros(0, base.embedding_dim)

    def set_identifiers(self, vectors: torch.Tensor) -> None:
        """(S, D) vectors for slots 0..S-1. Kept out of the module's parameters: the trainer owns them."""
        self.__dict__["identifiers"] = vectors

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def embedding_dim(self) -> int:
        return self.base.embedding_dim

    @property
    def num_embeddings(self) -> int:
        return self.base.num_embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_identifier = input_ids >= self.first_identifier_id
        embeds = self.base(input_ids.masked_fill(is_identifier, 0))  # (B, L, D)
        if not bool(is_identifier.any()):
            return embeds
        slots = (input_ids - self.first_identifier_id).clamp(min=0)
        identifier_embeds = self.identifiers[slots].to(embeds.dtype)  # (B, L, D)
        return torch.where(is_identifier.unsqueeze(-1), identifier_embeds, embeds)


def slot_token_strings(vocabulary: dict[str, int], count: int) -> list[str]:
    """Token strings that collide with nothing in the vocabulary (lower case: CLIP lower-cases prompts)."""
    strings: list[str] = []
    index = 0
    while len(strings) < count:
        candidate = SLOT_TOKEN_FORMAT.format(index=index)
        if candidate not in vocabulary:
            strings.append(candidate)
        index += 1
    return strings


def class_name_embedding(token_embedding: nn.Embedding, token_ids: list[int]) -> torch.Tensor:
    """Initial identifier vector: the class name's embedding, the mean over its sub-tokens (SPEC 2.1)."""
    if not token_ids:
        raise ValueError("an initializer word must contain at least one token")
    return token_embedding.weight[token_ids].detach().float().mean(dim=0)
