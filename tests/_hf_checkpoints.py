"""Tiny random ``transformers`` checkpoints written with ``save_pretrained`` (nothing is downloaded).

Importable from any test folder (``tests/`` is on ``sys.path`` through its ``conftest.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOKENS = ["high", "pressure", "normal", "disc", "cup", "iop", "glaucoma", "cupping"]
TINY_TRANSFORMER = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}


def vision_config(model_type: str, image_size: int = 32):
    """A tiny config of a vision backbone ``model_type`` (vit, deit, swin, convnext, dinov2, clip)."""
    from transformers import AutoConfig

    if model_type in ("vit", "deit"):
        return AutoConfig.for_model(model_type, image_size=image_size, patch_size=8, **TINY_TRANSFORMER)
    if model_type == "dinov2":
        return AutoConfig.for_model(
            "dinov2", image_size=image_size, patch_size=8, hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, mlp_ratio=2,
        )  # fmt: skip
    if model_type == "swin":
        return AutoConfig.for_model(
            "swin", image_size=image_size, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
            window_size=4,
        )  # fmt: skip
    if model_type == "convnext":
        return AutoConfig.for_model(
            "convnext", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=image_size
        )
    if model_type == "clip":
        return clip_config(vocab_size=80, bos=78, eos=79, image_size=image_size)
    raise ValueError(model_type)


def clip_config(vocab_size: int, bos: int, eos: int, image_size: int = 32):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": vocab_size, "max_position_embeddings": 24, "bos_token_id": bos, "eos_token_id": eos,
            "pad_token_id": eos, **TINY_TRANSFORMER,
        },
        vision_config={"image_size": image_size, "patch_size": 8, **TINY_TRANSFORMER},
        projection_dim=12,
    )  # fmt: skip


def write_vision_model(
    folder: Path, model_type: str, *, image_size: int = 32, processor: bool = True, seed: int = 0
):
    """Save a tiny ``model_type`` model (and a ViT-style image processor) into ``folder``; return the model."""
    from transformers import AutoModel, ViTImageProcessor

    torch.manual_seed(seed)
    model = AutoModel.from_config(vision_config(model_type, image_size)).eval()
    model.save_pretrained(folder)
    if processor:
        ViTImageProcessor(
            size={"height": image_size, "width": image_size},
            image_mean=[0.4, 0.5, 0.6],
            image_std=[0.2, 0.3, 0.25],
        ).save_pretrained(folder)
    return model


def clip_tokenizer(folder: Path):
    """A CLIP tokenizer over single characters (plus '</w>' word ends) and the two special tokens."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,")
    vocab = {token: i for i, token in enumerate([*chars, *(c + "</w>" for c in chars)])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(folder)


def write_clip(folder: Path, *, seed: int = 0):
    """Save a tiny CLIP model, its tokenizer and a CLIP image processor (shortest edge + centre crop)."""
    from transformers import CLIPImageProcessor, CLIPModel

    tokenizer = clip_tokenizer(folder / "tokenizer-files")
    torch.manual_seed(seed)
    config = clip_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return model, tokenizer


def bert_tokenizer(folder: Path):
    """A ``BertTokenizer`` over a small vocabulary file."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TOKENS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizer.from_pretrained(folder)


def write_bert(folder: Path, *, seed: int = 0):
    """Save a tiny BERT model and its tokenizer into ``folder``; return the model."""
    from transformers import BertConfig, BertModel

    tokenizer = bert_tokenizer(folder / "tokenizer-files")
    torch.manual_seed(seed)
    model = BertModel(
        BertConfig(vocab_size=len(tokenizer), max_position_embeddings=64, **TINY_TRANSFORMER)
    ).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model
