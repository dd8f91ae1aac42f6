"""``MultimodalCollate``: batch sample dicts, tokenizing notes with the text encoders' ``tokenize``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from monai_multifair.errors import MultiFairError

__all__ = ["MultimodalCollate"]


class MultimodalCollate:
    """Collate function for :class:`~monai_multifair.data.MultimodalDataset` samples.

    For every key of the samples:

    - tensors are stacked to ``[B, ...]`` (shapes must agree; the error names the key and both shapes);
    - ``int`` values become a ``LongTensor [B]`` (``label``, attribute codes, ``group``), ``float`` values
      a ``FloatTensor [B]``, ``bool`` values a ``BoolTensor [B]``;
    - ``str`` values of a key in ``tokenizers`` are tokenized to a ``LongTensor [B, L]``; other strings
      (e.g. ``id``) stay a ``list[str]``.

    A tokenizer is an object with a ``tokenize(texts) -> LongTensor[B, L]`` method (the text encoders of
    the plugin registry) or such a callable.

    Args:
        tokenizers: ``{modality: encoder or callable}`` for the text modalities.
        keep_text: also keep the raw strings of tokenized keys under ``"<key>_text"``.

    Example:
        >>> collate = MultimodalCollate(tokenizers={"notes": text_encoder})  # doctest: +SKIP
        >>> loader = torch.utils.data.DataLoader(dataset, batch_size=32, collate_fn=collate)  # doctest: +SKIP
        >>> batch = next(iter(loader))  # doctest: +SKIP
        >>> batch["fundus"].shape, batch["notes"].shape, batch["group"].shape  # doctest: +SKIP
        (torch.Size([32, 1, 32, 32]), torch.Size([32, 64]), torch.Size([32]))
    """

    def __init__(self, tokenizers: Mapping[str, Any] | None = None, *, keep_text: bool = False) -> None:
        self.tokenizers: dict[str, Callable[[list[str]], torch.Tensor]] = {}
        for key, tok in (tokenizers or {}).items():
            method = getattr(tok, "tokenize", None)
            if callable(method):
                self.tokenizers[key] = method
            elif callable(tok):
                self.tokenizers[key] = tok
            else:
                raise MultiFairError(
                    f"tokenizer for {key!r} must have a `tokenize(texts)` method or be callable, got {type(tok).__name__}"
                )
        self.keep_text = keep_text

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise MultiFairError("cannot collate an empty list of samples")
        keys = list(samples[0])
        for i, sample in enumerate(samples):
            if set(sample) != set(keys):
                raise MultiFairError(
                    f"sample {i} has keys {sorted(sample)}, but sample 0 has {sorted(keys)}; all samples of a "
                    "batch need the same keys"
                )
        batch: dict[str, Any] = {}
        for key in keys:
            values = [s[key] for s in samples]
            batch[key] = self._collate_key(key, values)
            if self.keep_text and key in self.tokenizers:
                batch[f"{key}_text"] = list(values)
        return batch

    def _collate_key(self, key: str, values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, torch.Tensor):
            for i, value in enumerate(values):
                if not isinstance(value, torch.Tensor) or value.shape != first.shape:
                    got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    raise MultiFairError(
                        f"cannot stack key {key!r}: sample 0 has shape {tuple(first.shape)}, sample {i} has {got}; "
                        "resize the images to one size (e.g. `image_size`)"
                    )
            return torch.stack(values)
        if isinstance(first, str):
            if not all(isinstance(v, str) for v in values):
                raise MultiFairError(f"key {key!r} mixes strings with other values")
            if key not in self.tokenizers:
                return list(values)
            tokens = self.tokenizers[key](list(values))
            if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] != len(values):
                got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
                raise MultiFairError(
                    f"tokenizer for {key!r} must return a LongTensor [B={len(values)}, L], got {got}"
                )
            if tokens.dtype not in (torch.int64, torch.int32):
                raise MultiFairError(
                    f"tokenizer for {key!r} must return integer token ids, got dtype {tokens.dtype}"
                )
            return tokens.long()
        for kind, dtype in ((bool, torch.bool), (int, torch.int64), (float, torch.float32)):
            if isinstance(first, kind):
                if kind is int and any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                    break
                if kind is float and not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                ):
                    break
                if kind is bool and not all(isinstance(v, bool) for v in values):
                    break
                return torch.tensor(values, dtype=dtype)
        raise MultiFairError(
            f"cannot collate key {key!r}: values of types {sorted({type(v).__name__ for v in values})}"
        )
