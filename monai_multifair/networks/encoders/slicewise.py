"""Slice-wise encoder for stacks of 2D slices (OCT B-scans): a shared 2D encoder per slice, then a
learned attention pooling over the slices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks
from monai_multifair.plugins import create_encoder, get_encoder_spec


class SliceAttentionPooling(nn.Module):
    """Gated attention pooling over a set of per-slice features (Ilse et al., 2018, attention MIL).

    With slice features ``h_s`` (``s = 1..S``):
    ``e_s = w^T (tanh(V h_s) * sigmoid(U h_s))`` (``gated=True``; ``w^T tanh(V h_s)`` otherwise),
    ``a = softmax_s(e)``, ``z = sum_s a_s h_s``.

    Shapes:
        ``h``: ``[B, S, F]`` -> ``z``: ``[B, F]``; ``weights(h)``: ``[B, S]`` (rows sum to 1).

    Args:
        in_features: slice feature width ``F``.
        attention_dim: hidden width of the attention scorer.
        gated: use the sigmoid gate ``U``.

    Examples:
        >>> pool = SliceAttentionPooling(8, attention_dim=4)
        >>> pool(torch.randn(2, 5, 8)).shape
        torch.Size([2, 8])
    """

    def __init__(self, in_features: int, attention_dim: int = 128, gated: bool = True) -> None:
        super().__init__()
        owner = type(self).__name__
        in_features = _checks.positive_int(owner, "in_features", in_features)
        attention_dim = _checks.positive_int(owner, "attention_dim", attention_dim)
        self.value = nn.Linear(in_features, attention_dim)
        self.gate = nn.Linear(in_features, attention_dim) if gated else None
        self.score = nn.Linear(attention_dim, 1, bias=False)
        self.out_features = in_features

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """Attention weights ``a`` ``[B, S]`` of slice features ``h`` ``[B, S, F]``."""
        hidden = torch.tanh(self.value(h))
        if self.gate is not None:
            hidden = hidden * torch.sigmoid(self.gate(h))
        return torch.softmax(self.score(hidden).squeeze(-1), dim=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Pool ``h`` ``[B, S, F]`` into ``[B, F]``."""
        _checks.check_input(type(self).__name__, h, "[B, S, F]", self.out_features, channel_dim=2)
        return torch.einsum("bs,bsf->bf", self.weights(h), h)


class SliceWiseEncoder(nn.Module):
    """Encode a stack of 2D slices with one shared 2D encoder and pool the slices by attention.

    ``h = SliceAttentionPooling(E_2d(x[:, s]) for s in 1..S)``; all slices go through the 2D encoder as
    one batch of ``B * S`` images.

    Shapes:
        ``x``: ``[B, S, C, H, W]`` -> ``h``: ``[B, out_features]``, ``out_features`` that of the 2D
        encoder.

    Args:
        slice_encoder: the 2D encoder: a registry name of modality ``image2d`` (built with
            ``create_encoder``) or a module with ``out_features`` mapping ``[N, C, H, W]`` to
            ``[N, out_features]``.
        slice_encoder_options: options for a named ``slice_encoder`` (not ``in_channels``, set it here).
        in_channels: channels ``C`` of each slice (1 for OCT B-scans); passed to a named slice encoder.
        attention_dim: hidden width of the attention scorer.
        gated: gated attention (see ``SliceAttentionPooling``).
        dropout: dropout on the pooled features.

    Examples:
        >>> enc = SliceWiseEncoder("small-cnn-2d", {"channels": (8,)}, in_channels=1, attention_dim=4)
        >>> enc(torch.zeros(2, 5, 1, 16, 16)).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        slice_encoder: str | nn.Module = "resnet18-2d",
        slice_encoder_options: Mapping[str, Any] | None = None,
        in_channels: int = 1,
        attention_dim: int = 128,
        gated: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        options = dict(slice_encoder_options or {})
        if isinstance(slice_encoder, str):
            spec = get_encoder_spec(slice_encoder)
            if spec.modality != "image2d":
                raise MultiFairError(
                    f"{owner}: expected `slice_encoder` to be an image2d encoder, got {slice_encoder!r} "
                    f"(modality {spec.modality!r})"
                )
            if "in_channels" in options:
                raise MultiFairError(
                    f"{owner}: set `in_channels` on the slice-wise encoder, not in `slice_encoder_options` "
                    f"(got {options['in_channels']!r})"
                )
            self.slice_encoder = create_encoder(slice_encoder, in_channels=self.in_channels, **options)
        elif isinstance(slice_encoder, nn.Module):
            if options:
                raise MultiFairError(
                    f"{owner}: `slice_encoder_options` apply to a named slice encoder only, got "
                    f"{sorted(options)} with a module"
                )
            self.slice_encoder = slice_encoder
        else:
            raise MultiFairError(
                f"{owner}: expected `slice_encoder` to be an encoder name or an nn.Module, "
                f"got {type(slice_encoder).__name__}"
            )
        width = getattr(self.slice_encoder, "out_features", None)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise MultiFairError(
                f"{owner}: expected the slice encoder to have a positive integer `out_features`, got {width!r}"
            )
        self.pool = SliceAttentionPooling(width, attention_dim=attention_dim, gated=gated)
        self.dropout = nn.Dropout(_checks.probability(owner, "dropout", dropout))
        self.out_features: int = width

    def slice_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice features ``[B, S, out_features]`` of ``x`` ``[B, S, C, H, W]``."""
        _checks.check_input(type(self).__name__, x, "[B, S, C, H, W]", self.in_channels, channel_dim=2)
        batch, slices = x.shape[:2]
        return self.slice_encoder(x.flatten(0, 1)).reshape(batch, slices, -1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weight of each slice, ``[B, S]`` (for inspection)."""
        return self.pool.weights(self.slice_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, S, C, H, W]`` into ``[B, out_features]``."""
        return self.dropout(self.pool(self.slice_features(x)))
