"""A small, fast convolutional encoder for low-resolution images (the demo's fundus-like images)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_multifair.networks.encoders import _checks


class SmallCNNEncoder(nn.Module):
    """Stacked ``Conv(3) -> BatchNorm -> ReLU -> MaxPool(2)`` blocks, then global average pooling.

    Fast on a CPU for 32x32 to 64x64 images; works for any size (pooling rounds up, so tiny inputs do not
    vanish).

    Shapes:
        ``x``: ``[B, C, H, W]`` (``spatial_dims=2``) or ``[B, C, D, H, W]`` (``spatial_dims=3``) ->
        ``h``: ``[B, out_features]`` with ``out_features = channels[-1]``.

    Args:
        in_channels: input channels ``C``.
        channels: output channels of each block (one block per entry).
        spatial_dims: 2 or 3.
        dropout: dropout rate on the pooled features.

    Examples:
        >>> enc = SmallCNNEncoder(in_channels=3, channels=(8, 16))
        >>> enc(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        spatial_dims: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        widths = _checks.positive_ints(owner, "channels", channels)
        self.spatial_dims = _checks.choice(owner, "spatial_dims", spatial_dims, (2, 3))
        conv, norm, pool = (
            (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
            if spatial_dims == 2
            else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
        )
        layers: list[nn.Module] = []
        previous = self.in_channels
        for width in widths:
            layers += [
                conv(previous, width, kernel_size=3, padding=1, bias=False),
                norm(width),
                nn.ReLU(inplace=True),
                pool(kernel_size=2, ceil_mode=True),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(_checks.probability(owner, "dropout", dropout))
        self.out_features = widths[-1]
        self._layout = "[B, C, H, W]" if spatial_dims == 2 else "[B, C, D, H, W]"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, C, *spatial]`` into ``[B, out_features]``."""
        x = _checks.check_input(
            type(self).__name__, x, self._layout, self.in_channels, dtype=_checks.parameter_dtype(self)
        )
        h = self.features(x)
        return self.dropout(h.flatten(2).mean(dim=2))
