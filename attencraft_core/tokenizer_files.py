"""Write the vocab.json / merges.txt of a small CLIP byte-level BPE tokenizer, so the tiny model needs no download.

The vocabulary holds every byte symbol (alone and word-final) plus whole-word merges for a fixed word list, so
prompts such as "a photo of cat and dog" become one token per word while any other text still tokenizes
(byte by byte).
"""

import itertools
import json
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
WORD_END = "</w>"

_WORD_LIST = """
a an the of and in on at with by photo picture painting drawing image style sitting standing next to
beach paris city forest snow street room table grass water sky garden park mountain road house kitchen
cat dog penguin pig horse cow bird bear teddy toy baby child mother man woman person chair lamp vase boot
backpack duck car bag cup flower tree red blue green white black small big cute old new
"""
COMMON_WORDS = tuple(_WORD_LIST.split())


def byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: 256 printable symbols, one per byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def apply_merges(parts: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding: repeatedly merge the adjacent pair of lowest rank."""
    while len(parts) > 1:
        pairs = [(ranks.get((a, b)), index) for index, (a, b) in enumerate(itertools.pairwise(parts))]
        ranked = [(rank, index) for rank, index in pairs if rank is not None]
        if not ranked:
            break
        _, index = min(ranked)
        parts = [*parts[:index], parts[index] + parts[index + 1], *parts[index + 2 :]]
    return parts


def word_merges(words: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """Merges under which each word (lower-case ASCII) encodes to one word-final token.

    Each new merge gets the next rank, after every merge already made, so earlier words keep their encoding.
    """
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        parts = apply_merges([*word[:-1], word[-1] + WORD_END], ranks)
        while len(parts) > 1:
            ranks[(parts[0], parts[1])] = len(ranks)
            parts = apply_merges(parts, ranks)
    return list(ranks)


def write_clip_tokenizer_files(
    directory: Path, words: tuple[str, ...] | list[str] = COMMON_WORDS, max_length: int = 77
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    merges = word_merges(words)
    tokens = [*symbols, *(s + WORD_END for s in symbols), *(a + b for a, b in merges), BOS_TOKEN, EOS_TOKEN]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merge_lines = "\n".join(f"{a} {b}" for a, b in merges)
    (directory / "merges.txt").write_text(f"#version: 0.2\n{merge_lines}\n", encoding="utf-8")
    config = {
        "model_max_length": max_length,
        "do_lower_case": True,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "tokenizer_class": "CLIPTokenizer",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory
