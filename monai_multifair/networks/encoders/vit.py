"""Vision transformer feature extractor (MONAI ``ViT``), CLS token or mean of the patch tokens."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks

VIT_INSTALL_HINT = "pip install 'monai-multifair[vit]'"


class ViTEncoder(nn.Module):
    """MONAI ViT returning one feature vector per image.

    ``pooling="cls"`` prepends a learned class token and returns it after the final layer norm;
    ``pooling="mean"`` returns the mean of the patch tokens. The defaults are ViT-B/16 on 224x224
    (``out_features = hidden_size = 768``); weights are randomly initialised (nothing is downloaded).
    The cross-attention norm that MONAI's blocks create but never use is removed, so every parameter
    receives a gradient (DDP works without ``find_unused_parameters``).

    Shapes:
        ``x``: ``[B, C, *img_size]`` -> ``h``: ``[B, hidden_size]``.

    Args:
        img_size: input spatial size (int, or one per spatial dimension); inputs must have it.
        patch_size: patch size (int or one per spatial dimension); must divide ``img_size``.
        spatial_dims: 2 (images) or 3 (volumes).
        in_channels: input channels ``C``.
        hidden_size: token width (``out_features``).
        mlp_dim: width of the transformer MLP.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_size``).
        pooling: ``"cls"`` or ``"mean"``.
        dropout_rate: dropout inside the transformer.
        pos_embed_type: ``"learnable"``, ``"sincos"`` or ``"none"``.
        qkv_bias: bias on the attention projections.

    Raises:
        MultiFairError: a bad option, or the optional package ``einops`` (extra ``vit``) is missing.

    Examples:
        >>> enc = ViTEncoder(img_size=32, patch_size=16, hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2)
        >>> enc(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int | Sequence[int] = 16,
        spatial_dims: int = 2,
        in_channels: int = 3,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        pooling: str = "cls",
        dropout_rate: float = 0.0,
        pos_embed_type: str = "learnable",
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if importlib.util.find_spec("einops") is None:
            raise MultiFairError(
                f"{owner}: MONAI's ViT needs the package einops, which is not installed; install it with: "
                f"{VIT_INSTALL_HINT}"
            )
        from monai.networks.nets import ViT

        self.spatial_dims = _checks.choice(owner, "spatial_dims", spatial_dims, (2, 3))
        self.img_size = _checks.spatial_size(owner, "img_size", img_size, spatial_dims)
        patches = _checks.spatial_size(owner, "patch_size", patch_size, spatial_dims)
        if any(size % patch for size, patch in zip(self.img_size, patches)):
            raise MultiFairError(
                f"{owner}: expected `patch_size` {patches} to divide `img_size` {self.img_size}"
            )
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        hidden_size = _checks.positive_int(owner, "hidden_size", hidden_size)
        num_heads = _checks.positive_int(owner, "num_heads", num_heads)
        if hidden_size % num_heads:
            raise MultiFairError(
                f"{owner}: expected `num_heads` to divide `hidden_size` {hidden_size}, got {num_heads}"
            )
        self.pooling = _checks.choice(owner, "pooling", pooling, ("cls", "mean"))
        self.vit = ViT(
            in_channels=self.in_channels,
            img_size=self.img_size,
            patch_size=patches,
            hidden_size=hidden_size,
            mlp_dim=_checks.positive_int(owner, "mlp_dim", mlp_dim),
            num_layers=_checks.positive_int(owner, "num_layers", num_layers),
            num_heads=num_heads,
            pos_embed_type=_checks.choice(
                owner, "pos_embed_type", pos_embed_type, ("learnable", "sincos", "none")
            ),
            classification=self.pooling == "cls",
            dropout_rate=_checks.probability(owner, "dropout_rate", dropout_rate),
            spatial_dims=spatial_dims,
            qkv_bias=bool(qkv_bias),
        )
        if self.pooling == "cls":
            # MONAI applies its head to the class token after the final norm; an identity head returns it
            self.vit.classification_head = nn.Identity()
        for block in self.vit.blocks:
            # MONAI builds this norm even without cross-attention, where it is never used; unused
            # parameters would make DDP fail unless find_unused_parameters=True
            if not block.with_cross_attention:
                block.norm_cross_attn = nn.Identity()
        self.out_features = hidden_size
        self._layout = "[B, C, H, W]" if spatial_dims == 2 else "[B, C, D, H, W]"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, C, *img_size]`` into ``[B, hidden_size]``."""
        owner = type(self).__name__
        x = _checks.check_input(owner, x, self._layout, self.in_channels, dtype=_checks.parameter_dtype(self))
        if tuple(x.shape[2:]) != self.img_size:
            raise MultiFairError(
                f"{owner}: expected input spatial size `img_size` {self.img_size}, got {tuple(x.shape[2:])}"
            )
        tokens, _ = self.vit(x)
        return tokens if self.pooling == "cls" else tokens.mean(dim=1)
