"""A fast bag-of-words text encoder over hashed word n-grams."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_multifair.networks.encoders import _checks
from monai_multifair.networks.encoders._mlp import build_mlp
from monai_multifair.networks.encoders.tokenizers import HashingTokenizer


class BagOfWordsEncoder(nn.Module):
    """Mean of learned embeddings of the hashed word n-grams of a text, optionally followed by an MLP.

    ``h = MLP(mean_{t in text, t != pad} E[t])``; token ids come from ``tokenize`` (a
    ``HashingTokenizer``: lower-cased words and numbers, plus n-grams of consecutive words, hashed into
    ``vocab_size`` ids; id 0 is padding). Nothing to fit or download; fast on a CPU.

    Shapes:
        ``input_ids``: long ``[B, L]`` -> ``h``: ``[B, out_features]`` (``embedding_dim``, or
        ``hidden_dims[-1]``). A text with no token gives the zero vector before the MLP.

    Args:
        vocab_size: number of hashed ids (collisions become rare as it grows).
        embedding_dim: embedding width.
        max_length: tokens kept per text (``tokenize`` pads/truncates to it).
        ngrams: 1 for single words; 2 also uses word pairs ("no family", "family history").
        hidden_dims: widths of an MLP after the pooling (empty: none).
        dropout: dropout inside the MLP.

    Examples:
        >>> enc = BagOfWordsEncoder(vocab_size=1000, embedding_dim=16, max_length=32)
        >>> enc(enc.tokenize(["IOP 24 mmHg, cup-to-disc 0.7", "normal exam"])).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        vocab_size: int = 1 << 15,
        embedding_dim: int = 128,
        max_length: int = 256,
        ngrams: int = 2,
        hidden_dims: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.tokenizer = HashingTokenizer(
            vocab_size=vocab_size, max_length=max_length, ngrams=ngrams, pad_token_id=0
        )
        self.pad_token_id = 0
        self.max_length = self.tokenizer.max_length
        dim = _checks.positive_int(owner, "embedding_dim", embedding_dim)
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=self.pad_token_id)
        self.mlp, self.out_features = build_mlp(owner, dim, hidden_dims, dropout, "layer", "relu")

    def tokenize(self, texts: Sequence[str], padding: str = "max_length") -> torch.Tensor:
        """Token ids ``[B, max_length]`` (long) of ``texts`` (see ``HashingTokenizer``)."""
        return self.tokenizer(texts, padding=padding)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Encode ``input_ids`` ``[B, L]`` into ``[B, out_features]``."""
        _checks.check_input(type(self).__name__, input_ids, "[B, L]", floating=False, name="input_ids")
        return self.mlp(self.embedding(input_ids))
