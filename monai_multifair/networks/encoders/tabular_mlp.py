"""Multilayer perceptron for tabular features (vitals, lab values, CSF proteins)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_multifair.networks.encoders import _checks
from monai_multifair.networks.encoders._mlp import build_mlp


class TabularMLPEncoder(nn.Module):
    """``[Linear -> LayerNorm -> ReLU -> Dropout]`` blocks over a feature vector.

    Shapes:
        ``x``: float ``[B, in_features]`` -> ``h``: ``[B, hidden_dims[-1]]``.

    Args:
        in_features: number of input columns ``F``.
        hidden_dims: width of each block; the last is ``out_features``.
        dropout: dropout after each block.
        norm: ``"layer"``, ``"batch"`` or ``"none"``.
        activation: ``"relu"``, ``"gelu"``, ``"silu"`` or ``"tanh"``.

    Examples:
        >>> enc = TabularMLPEncoder(in_features=5, hidden_dims=(16, 8))
        >>> enc(torch.randn(3, 5)).shape
        torch.Size([3, 8])
    """

    def __init__(
        self,
        in_features: int,
        hidden_dims: Sequence[int] = (64, 64),
        dropout: float = 0.1,
        norm: str = "layer",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_features = _checks.positive_int(owner, "in_features", in_features)
        _checks.positive_ints(owner, "hidden_dims", hidden_dims, min_len=1)
        self.mlp, self.out_features = build_mlp(
            owner, self.in_features, hidden_dims, dropout, norm, activation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, in_features]`` into ``[B, out_features]``."""
        x = _checks.check_input(
            type(self).__name__, x, "[B, F]", self.in_features, dtype=_checks.parameter_dtype(self)
        )
        return self.mlp(x)
