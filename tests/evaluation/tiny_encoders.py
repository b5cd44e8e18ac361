"""Tiny randomly initialised CLIP and DINOv2 encoders saved to a folder, as a hub id's files would be: no download."""

import tempfile
from pathlib import Path

import torch
from transformers import (
    BitImageProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    Dinov2Config,
    Dinov2Model,
)

from attencraft_core.tokenizer_files import write_clip_tokenizer_files

IMAGE_SIDE = 28


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer_files(Path(tokenizer_dir)))
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIDE,
            "patch_size": 7,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIDE}, crop_size=IMAGE_SIDE).save_pretrained(folder)
    return folder


def save_tiny_dino(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=IMAGE_SIDE, patch_size=7
    )
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": IMAGE_SIDE},
        crop_size=IMAGE_SIDE,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(folder)
    return folder
