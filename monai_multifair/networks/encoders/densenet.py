"""DenseNet feature extractor (MONAI ``DenseNet``, classification layer removed)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_multifair.networks.encoders import _checks


class DenseNetEncoder(nn.Module):
    """MONAI DenseNet without its output layer: dense blocks, ReLU, global average pooling.

    The defaults are DenseNet-121 (``init_features=64, growth_rate=32, block_config=(6, 12, 24, 16)``,
    ``out_features=1024``); weights are randomly initialised (nothing is downloaded; load your own with
    ``load_state_dict``). Smaller ``block_config``/``growth_rate`` give a tiny network for tests.

    Shapes:
        ``x``: ``[B, C, H, W]`` or ``[B, C, D, H, W]`` -> ``h``: ``[B, out_features]``, where
        ``out_features = init_features // 2**(n-1) + sum(block_config) * growth_rate`` after the
        transitions that halve the width between the ``n`` blocks.

    Args:
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels: input channels ``C``.
        init_features: channels of the stem convolution.
        growth_rate: channels each dense layer adds.
        block_config: number of dense layers in each block.
        bn_size: bottleneck width multiplier.
        dropout_prob: dropout inside dense layers.

    Examples:
        >>> enc = DenseNetEncoder(spatial_dims=2, in_channels=1, init_features=8, growth_rate=4,
        ...                       block_config=(1, 1))
        >>> enc(torch.zeros(2, 1, 32, 32)).shape == (2, enc.out_features)
        True
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        init_features: int = 64,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        bn_size: int = 4,
        dropout_prob: float = 0.0,
    ) -> None:
        super().__init__()
        from monai.networks.nets import DenseNet

        owner = type(self).__name__
        self.spatial_dims = _checks.choice(owner, "spatial_dims", spatial_dims, (2, 3))
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        self.net = DenseNet(
            spatial_dims=spatial_dims,
            in_channels=self.in_channels,
            out_channels=1,
            init_features=_checks.positive_int(owner, "init_features", init_features),
            growth_rate=_checks.positive_int(owner, "growth_rate", growth_rate),
            block_config=_checks.positive_ints(owner, "block_config", block_config),
            bn_size=_checks.positive_int(owner, "bn_size", bn_size),
            dropout_prob=_checks.probability(owner, "dropout_prob", dropout_prob),
        )
        self.out_features: int = self.net.class_layers.out.in_features
        self.net.class_layers.out = nn.Identity()
        self._layout = "[B, C, H, W]" if spatial_dims == 2 else "[B, C, D, H, W]"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, C, *spatial]`` into ``[B, out_features]``."""
        x = _checks.check_input(
            type(self).__name__, x, self._layout, self.in_channels, dtype=_checks.parameter_dtype(self)
        )
        return self.net(x)
