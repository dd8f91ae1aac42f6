"""The two towers of one CLIP checkpoint as an image encoder and a text encoder (the FairCLIP setting)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.networks.encoders import _checks
from monai_multifair.networks.encoders.hf_image import (
    _build_config,
    _config_size,
    _preprocessing,
    processor_settings,
)
from monai_multifair.networks.encoders.hf_text import _from_pretrained
from monai_multifair.networks.encoders.tokenizers import tokenize_texts

__all__ = ["CLIP_TOWERS", "HFCLIPTextEncoder", "HFCLIPVisionEncoder"]

#: ``model_type`` -> ``{tower: (transformers class without projection, class with projection)}``.
CLIP_TOWERS: dict[str, dict[str, tuple[str, str]]] = {
    "clip": {
        "vision": ("CLIPVisionModel", "CLIPVisionModelWithProjection"),
        "text": ("CLIPTextModel", "CLIPTextModelWithProjection"),
    },
}


def _tower(owner: str, tower: str, projection: bool, config: Any) -> tuple[type, Any]:
    """The ``transformers`` class of ``tower`` and its config (with the checkpoint's projection width)."""
    import transformers

    model_type = getattr(config, "model_type", None)
    if model_type not in CLIP_TOWERS:
        raise MultiFairError(
            f"{owner}: expected a CLIP checkpoint (model_type one of {', '.join(map(repr, CLIP_TOWERS))}), got "
            f"model_type {model_type!r}{close_match_hint(str(model_type), CLIP_TOWERS)}; for the vision tower "
            "of another image-text model use the encoder 'hf-image'"
        )
    tower_config = getattr(config, f"{tower}_config")
    # the towers' own configs default to another projection width than the checkpoint's
    tower_config.projection_dim = config.projection_dim
    name = CLIP_TOWERS[model_type][tower][int(bool(projection))]
    return getattr(transformers, name), tower_config


def _load_tower(
    owner: str, tower: str, projection: bool, model_name_or_path: Any, config: Any, hub: dict[str, Any]
) -> nn.Module:
    from transformers import AutoConfig

    if (model_name_or_path is None) == (config is None):
        raise MultiFairError(
            f"{owner}: expected exactly one of `model_name_or_path` (a CLIP folder written by save_pretrained) "
            f"and `config`, got model_name_or_path={model_name_or_path!r}, "
            f"config={'given' if config is not None else None}"
        )
    if config is not None:
        cls, tower_config = _tower(owner, tower, projection, _build_config(owner, config))
        return cls(tower_config)
    full = _from_pretrained(owner, AutoConfig, "model config", model_name_or_path, **hub)
    cls, tower_config = _tower(owner, tower, projection, full)
    return _from_pretrained(owner, cls, f"{tower} tower", model_name_or_path, config=tower_config, **hub)


def _hub(local_files_only: bool | None, cache_dir: Any) -> dict[str, Any]:
    hub: dict[str, Any] = {"cache_dir": os.fspath(cache_dir) if cache_dir is not None else None}
    if local_files_only is not None:
        hub["local_files_only"] = bool(local_files_only)
    return hub


class HFCLIPVisionEncoder(nn.Module):
    """The image tower of a CLIP checkpoint: ``image_embeds`` (projected) or the pooled class token.

    ``h = W_v LN(ViT(x)[CLS])`` with ``projection=True`` (CLIP's ``get_image_features``, width
    ``projection_dim``, the space the text tower also maps into); ``LN(ViT(x)[CLS])`` (width
    ``hidden_size``) otherwise; ``normalize=True`` divides by the L2 norm as CLIP's contrastive loss does.
    Inputs are preprocessed inside as :class:`~monai_multifair.networks.encoders.HFImageEncoder` does
    (the checkpoint's image processor: resize, centre crop, normalisation).

    Shapes:
        ``x``: ``[B, in_channels, H, W]`` in [0, 1] -> ``h``: ``[B, out_features]``.

    Args:
        model_name_or_path: a CLIP folder (``save_pretrained`` of a ``CLIPModel`` and its processor) or
            hub id; only the vision tower's weights are loaded. Exclusive with ``config``.
        config: a ``CLIPConfig`` or a dict ``{"model_type": "clip", "vision_config": {...}, ...}``
            (random initialisation).
        in_channels: input channels; 1 (grey) is repeated to the model's 3.
        projection: return the projected ``image_embeds`` (else the pooled output).
        normalize: L2-normalise the features.
        image_size: resize to this instead of the processor's size.
        image_mean: normalisation mean per channel (overrides the processor's).
        image_std: normalisation standard deviation per channel.
        local_files_only: never contact the Hub.
        cache_dir: Hugging Face cache folder.

    Raises:
        MultiFairError: not a CLIP checkpoint, a model that cannot be loaded, or bad options.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        config: Any = None,
        in_channels: int = 3,
        projection: bool = True,
        normalize: bool = False,
        image_size: int | Sequence[int] | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        hub = _hub(local_files_only, cache_dir)
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        self.projection = bool(projection)
        self.normalize = bool(normalize)
        self.model = _load_tower(owner, "vision", self.projection, model_name_or_path, config, hub)
        model_config = self.model.config
        settings = processor_settings(model_name_or_path, **hub) if model_name_or_path is not None else None
        self.preprocess = _preprocessing(
            owner,
            in_channels=self.in_channels,
            num_channels=int(getattr(model_config, "num_channels", 3)),
            settings=settings,
            from_folder=model_name_or_path is not None,
            folder=model_name_or_path,
            config_size=_config_size(model_config),
            image_size=image_size,
            image_mean=image_mean,
            image_std=image_std,
        )
        self.out_features: int = int(
            model_config.projection_dim if self.projection else model_config.hidden_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, in_channels, H, W]`` (values in [0, 1]) into ``[B, out_features]``."""
        _checks.check_input(type(self).__name__, x, "[B, C, H, W]", self.in_channels)
        outputs = self.model(pixel_values=self.preprocess(x))
        features = outputs.image_embeds if self.projection else outputs.pooler_output
        return functional.normalize(features, dim=-1) if self.normalize else features


class HFCLIPTextEncoder(nn.Module):
    """The text tower of a CLIP checkpoint with its tokenizer: ``text_embeds`` or the pooled output.

    CLIP's text transformer is causal and pools the state of the end-of-text token, so the padding that
    follows it never changes the features (no attention mask is needed; the result equals calling
    the model with the tokenizer's attention mask). ``projection=True`` gives CLIP's
    ``get_text_features`` (width ``projection_dim``), otherwise the pooled output (``hidden_size``).

    Shapes:
        ``input_ids``: long ``[B, L]`` (from ``tokenize``) -> ``h``: ``[B, out_features]``.

    Args:
        model_name_or_path: a CLIP folder (model and tokenizer, as ``save_pretrained`` writes them) or hub
            id; only the text tower's weights are loaded. Exclusive with ``config``.
        config: a ``CLIPConfig`` or a dict with ``model_type: clip`` (random initialisation; needs
            ``tokenizer``).
        tokenizer: ``None`` (the checkpoint's), a folder/hub id or a ``transformers`` tokenizer.
        projection: return the projected ``text_embeds`` (else the pooled output).
        normalize: L2-normalise the features.
        max_length: ``tokenize`` truncates and pads to this many tokens (``None``: the model's
            ``max_position_embeddings``, 77 for CLIP).
        local_files_only: never contact the Hub.
        cache_dir: Hugging Face cache folder.

    Raises:
        MultiFairError: not a CLIP checkpoint, no tokenizer for a model built from ``config``, a tokenizer
            without a padding token, or ``max_length`` above the model's position limit.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        config: Any = None,
        tokenizer: Any = None,
        projection: bool = True,
        normalize: bool = False,
        max_length: int | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoTokenizer, PreTrainedTokenizerBase

        owner = type(self).__name__
        hub = _hub(local_files_only, cache_dir)
        self.projection = bool(projection)
        self.normalize = bool(normalize)
        self.model = _load_tower(owner, "text", self.projection, model_name_or_path, config, hub)
        model_config = self.model.config
        limit = int(model_config.max_position_embeddings)
        self.max_length = (
            limit if max_length is None else _checks.positive_int(owner, "max_length", max_length)
        )
        if tokenizer is None:
            if model_name_or_path is None:
                raise MultiFairError(
                    f"{owner}: a text tower built from `config` needs `tokenizer` (CLIP pools at the end-of-text "
                    "token, which the tokenizer places); give a tokenizer folder or object"
                )
            tokenizer = model_name_or_path
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _from_pretrained(owner, AutoTokenizer, "tokenizer", tokenizer, **hub)
        elif not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise MultiFairError(
                f"{owner}: expected `tokenizer` to be None, a folder or hub id, or a transformers tokenizer, "
                f"got {type(tokenizer).__name__}"
            )
        if tokenizer.pad_token_id is None:
            raise MultiFairError(f"{owner}: the tokenizer has no padding token (`pad_token_id` is None)")
        self.tokenizer = tokenizer
        if self.max_length > limit:
            raise MultiFairError(
                f"{owner}: expected `max_length` <= {limit} (the model's max_position_embeddings), "
                f"got {self.max_length}"
            )
        self.out_features: int = int(
            model_config.projection_dim if self.projection else model_config.hidden_size
        )

    def tokenize(self, texts: Sequence[str], padding: str = "max_length") -> torch.Tensor:
        """Token ids ``[B, L]`` (long) of ``texts``, truncated to ``max_length``.

        Args:
            texts: one string per sample.
            padding: ``"max_length"`` (``L = max_length``) or ``"longest"`` (the longest of the batch).
        """
        return tokenize_texts(type(self).__name__, self.tokenizer, texts, padding, self.max_length)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Encode ``input_ids`` ``[B, L]`` into ``[B, out_features]``."""
        _checks.check_input(type(self).__name__, input_ids, "[B, L]", floating=False)
        outputs = self.model(input_ids=input_ids)
        features = outputs.text_embeds if self.projection else outputs.pooler_output
        return functional.normalize(features, dim=-1) if self.normalize else features
