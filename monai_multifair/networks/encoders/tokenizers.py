"""A deterministic hashing tokenizer: no vocabulary to fit, the same ids in every process."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import torch

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks

# numbers keep their decimals ("0.7", "24"); words are runs of letters
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+")
PADDINGS = ("max_length", "longest")


def check_texts(owner: str, texts: Any) -> list[str]:
    """Return ``texts`` as a list if it is a sequence of strings (a single string is refused)."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise MultiFairError(
            f"{owner}: expected `texts` to be a sequence of strings (one per sample), got {type(texts).__name__}"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise MultiFairError(
                f"{owner}: expected `texts[{index}]` to be a string, got {type(text).__name__}"
            )
    return list(texts)


def tokenize_texts(owner: str, tokenizer: Any, texts: Any, padding: str, max_length: int) -> torch.Tensor:
    """Token ids ``[B, L]`` (long) of ``texts`` from a ``HashingTokenizer`` or a transformers tokenizer,
    truncated to ``max_length``; ``padding`` is ``"max_length"`` or ``"longest"``. ``owner`` names the
    encoder in error messages."""
    texts = check_texts(owner, texts)
    _checks.choice(owner, "padding", padding, PADDINGS)
    if isinstance(tokenizer, HashingTokenizer):
        return tokenizer(texts, padding=padding)
    encoded = tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    return encoded["input_ids"]


@functools.lru_cache(maxsize=1 << 16)
def _digest(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


class HashingTokenizer:
    """Lower-cased word (and word n-gram) tokens hashed into a fixed vocabulary.

    Token ``t`` gets id ``first_word_id + blake2b(t) mod (vocab_size - first_word_id)``, where the ids
    below ``first_word_id`` are the special tokens (padding, and optionally class/separator tokens that
    wrap each text). Identical in every process and run (no ``hash()`` salt); nothing to fit.

    Args:
        vocab_size: number of ids.
        max_length: length ``L`` texts are truncated (and, with ``padding="max_length"``, padded) to.
        ngrams: 1 for words; ``n`` adds the 2..n-grams of consecutive words after each word.
        pad_token_id: id of the padding token.
        cls_token_id: id put first in every text, or ``None``.
        sep_token_id: id put last in every text, or ``None``.

    Examples:
        >>> tok = HashingTokenizer(vocab_size=100, max_length=6)
        >>> ids = tok(["IOP 24 mmHg", "Family history of glaucoma"])
        >>> ids.shape, bool((ids[0, 3:] == 0).all())
        (torch.Size([2, 6]), True)
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 128,
        ngrams: int = 1,
        pad_token_id: int = 0,
        cls_token_id: int | None = None,
        sep_token_id: int | None = None,
    ) -> None:
        owner = type(self).__name__
        self.vocab_size = _checks.positive_int(owner, "vocab_size", vocab_size)
        self.max_length = _checks.positive_int(owner, "max_length", max_length)
        self.ngrams = _checks.positive_int(owner, "ngrams", ngrams)
        specials = {"pad_token_id": pad_token_id, "cls_token_id": cls_token_id, "sep_token_id": sep_token_id}
        for name, value in specials.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise MultiFairError(f"{owner}: expected `{name}` to be an integer >= 0, got {value!r}")
        self.pad_token_id = pad_token_id
        self.cls_token_id = cls_token_id
        self.sep_token_id = sep_token_id
        self.first_word_id = max(v for v in specials.values() if v is not None) + 1
        if self.vocab_size <= self.first_word_id:
            raise MultiFairError(
                f"{owner}: expected `vocab_size` > {self.first_word_id} (the special token ids), got {vocab_size}"
            )
        reserved = int(cls_token_id is not None) + int(sep_token_id is not None)
        if self.max_length <= reserved:
            raise MultiFairError(
                f"{owner}: expected `max_length` > {reserved} (room for the special tokens), got {max_length}"
            )

    @staticmethod
    def words(text: str) -> list[str]:
        """The lower-cased word and number tokens of ``text``."""
        return _TOKEN.findall(text.lower())

    def token_ids(self, text: str) -> list[int]:
        """Ids of one text, with special tokens, truncated to ``max_length`` (no padding)."""
        words = self.words(text)
        tokens: list[str] = []
        for i, word in enumerate(words):
            tokens.append(word)
            tokens.extend(" ".join(words[i - n + 1 : i + 1]) for n in range(2, min(self.ngrams, i + 1) + 1))
        room = self.max_length - int(self.cls_token_id is not None) - int(self.sep_token_id is not None)
        span = self.vocab_size - self.first_word_id
        ids = [self.first_word_id + _digest(token) % span for token in tokens[:room]]
        if self.cls_token_id is not None:
            ids.insert(0, self.cls_token_id)
        if self.sep_token_id is not None:
            ids.append(self.sep_token_id)
        return ids

    def __call__(self, texts: Sequence[str], padding: str = "max_length") -> torch.Tensor:
        """Token ids ``[B, L]`` (long) of ``texts``, padded with ``pad_token_id``.

        Args:
            texts: one string per sample.
            padding: ``"max_length"`` (``L = max_length``, the same shape for every batch) or
                ``"longest"`` (``L`` = the longest text of this batch, at least 1).
        """
        owner = type(self).__name__
        texts = check_texts(owner, texts)
        _checks.choice(owner, "padding", padding, PADDINGS)
        rows = [self.token_ids(text) for text in texts]
        length = self.max_length if padding == "max_length" else max([1, *map(len, rows)])
        out = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out
