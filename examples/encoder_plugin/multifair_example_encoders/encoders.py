"""Two small encoders following monai_multifair's encoder contract.

Every encoder is an ``nn.Module`` with an integer ``out_features`` whose ``forward`` returns
``[B, out_features]``. Image encoders take ``x: [B, C, H, W]``; text encoders take
``input_ids: LongTensor [B, L]`` and provide ``tokenize(texts) -> LongTensor [B, L]`` (padded to
``max_length``) so data collation can turn notes into ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from monai_multifair.errors import MultiFairError


class GeMCNNEncoder(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks, then generalized-mean pooling ``(mean_{hw} x^p)^(1/p)`` with a learned
    ``p`` (Radenovic et al., 2018).

    Args:
        in_channels: input channels.
        channels: output channels of each block; the last is ``out_features``.
        p: initial GeM exponent (1 = average pooling, large = max pooling).
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (16, 32), p: float = 3.0) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise MultiFairError(
                f"GeMCNNEncoder: expected `in_channels` to be an integer >= 1, got {in_channels!r}"
            )
        if not channels or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise MultiFairError(f"GeMCNNEncoder: expected `channels` to be integers >= 1, got {channels!r}")
        if not p >= 1:
            raise MultiFairError(f"GeMCNNEncoder: expected `p` >= 1, got {p!r}")
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.in_channels = in_channels
        self.out_features = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` -> ``[B, out_features]``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise MultiFairError(
                f"GeMCNNEncoder: expected `x` of shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )
        h = self.features(x).clamp_min(1e-6)
        return h.pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class CharCNNTextEncoder(nn.Module):
    """Byte embeddings, one 1D convolution, max pooling over positions (padding masked out).

    Args:
        channels: convolution channels (``out_features``).
        kernel_size: convolution width in characters.
        max_length: ``tokenize`` truncates and pads to this many characters.
    """

    pad_token_id = 0

    def __init__(self, channels: int = 64, kernel_size: int = 5, max_length: int = 512) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("kernel_size", kernel_size), ("max_length", max_length)):
            if not isinstance(value, int) or value < 1:
                raise MultiFairError(
                    f"CharCNNTextEncoder: expected `{name}` to be an integer >= 1, got {value!r}"
                )
        self.max_length = max_length
        self.embedding = nn.Embedding(257, 32, padding_idx=self.pad_token_id)  # byte b -> id b + 1
        self.conv = nn.Conv1d(32, channels, kernel_size, padding="same")
        self.out_features = channels

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """UTF-8 bytes of each text (+1, so 0 is padding) as ``LongTensor [B, max_length]``."""
        if isinstance(texts, str):
            raise MultiFairError("CharCNNTextEncoder: expected `texts` to be a sequence of strings, got str")
        out = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for i, text in enumerate(texts):
            data = list(text.lower().encode("utf-8"))[: self.max_length]
            out[i, : len(data)] = torch.tensor(data, dtype=torch.long) + 1
        return out

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` ``[B, L]`` -> ``[B, out_features]``; an empty text gives zeros."""
        mask = (input_ids != self.pad_token_id).unsqueeze(1)
        h = functional.relu(self.conv(self.embedding(input_ids).transpose(1, 2)))
        h = h.masked_fill(~mask, float("-inf")).amax(dim=2)
        return torch.where(torch.isfinite(h), h, torch.zeros_like(h))
