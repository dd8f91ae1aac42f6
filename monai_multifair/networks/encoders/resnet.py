"""ResNet feature extractor (MONAI ``ResNet`` without its fully connected layer)."""

from __future__ import annotations

import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks

#: Depths MONAI provides (``monai.networks.nets.resnet<depth>``).
RESNET_DEPTHS = (10, 18, 34, 50, 101, 152, 200)


class ResNetEncoder(nn.Module):
    """MONAI ResNet with ``feed_forward=False``: residual stages, then global average pooling.

    Weights are randomly initialised (nothing is downloaded). ``out_features`` is 512 for depths 10-34
    and 2048 for 50 and deeper, times ``widen_factor``.

    Shapes:
        ``x``: ``[B, C, H, W]`` or ``[B, C, D, H, W]`` -> ``h``: ``[B, out_features]``.

    Args:
        depth: one of 10, 18, 34, 50, 101, 152, 200.
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels: input channels ``C``.
        widen_factor: multiplies every stage width (e.g. 0.125 for a tiny test network).
        conv1_t_size: kernel size of the stem convolution.
        conv1_t_stride: stride of the stem convolution (2, as in the usual ResNet; MONAI's default is 1).
        no_max_pool: skip the max-pooling after the stem.

    Examples:
        >>> enc = ResNetEncoder(depth=18, spatial_dims=2, in_channels=1, widen_factor=0.125)
        >>> enc(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        depth: int = 18,
        spatial_dims: int = 2,
        in_channels: int = 3,
        widen_factor: float = 1.0,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 2,
        no_max_pool: bool = False,
    ) -> None:
        super().__init__()
        from monai.networks import nets

        owner = type(self).__name__
        _checks.choice(owner, "depth", depth, RESNET_DEPTHS)
        self.spatial_dims = _checks.choice(owner, "spatial_dims", spatial_dims, (2, 3))
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, (int, float)) or widen_factor <= 0:
            raise MultiFairError(f"{owner}: expected `widen_factor` to be a number > 0, got {widen_factor!r}")
        self.net = getattr(nets, f"resnet{depth}")(
            pretrained=False,
            spatial_dims=spatial_dims,
            n_input_channels=self.in_channels,
            widen_factor=float(widen_factor),
            conv1_t_size=_checks.positive_int(owner, "conv1_t_size", conv1_t_size),
            conv1_t_stride=_checks.positive_int(owner, "conv1_t_stride", conv1_t_stride),
            no_max_pool=bool(no_max_pool),
            feed_forward=False,
        )
        # after the last stage MONAI's ResNet keeps its width (planes * expansion) in ``in_planes``
        self.out_features: int = self.net.in_planes
        self._layout = "[B, C, H, W]" if spatial_dims == 2 else "[B, C, D, H, W]"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, C, *spatial]`` into ``[B, out_features]``."""
        x = _checks.check_input(
            type(self).__name__, x, self._layout, self.in_channels, dtype=_checks.parameter_dtype(self)
        )
        return self.net(x)
