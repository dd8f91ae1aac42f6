"""Fusion blocks: modality tokens, an optional demographic token, multi-head self-attention, pooling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from monai_multifair.errors import MultiFairError

__all__ = ["AttentionFusion", "DemographicToken"]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MultiFairError(f"expected `{name}` to be an integer >= 1, got {value!r}")
    return value


class DemographicToken(nn.Module):
    """A learned embedding of the group id ``a``, used as one more fusion token.

    The paper's method figure feeds the demographic attributes into the fusion; ``docs/benchmarks.md``
    measured it as the largest gain on the embedded cohort. A model with this token **needs the
    group attribute at inference**, which is a deployment choice to make knowingly.

    Args:
        num_groups: number of group ids ``K``; ids must lie in ``[0, K)``.
        dim: token width ``d``.

    Example:
        >>> token = DemographicToken(num_groups=3, dim=8)
        >>> token(torch.tensor([0, 2])).shape
        torch.Size([2, 8])
    """

    def __init__(self, num_groups: int, dim: int) -> None:
        super().__init__()
        self.num_groups = _check_positive_int("num_groups", num_groups)
        self.embedding = nn.Embedding(num_groups, _check_positive_int("dim", dim))
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, groups: Tensor) -> Tensor:
        """Map group ids ``[B]`` (integer) to tokens ``[B, d]``."""
        return self.embedding(groups.reshape(-1).long())


class AttentionFusion(nn.Module):
    """Project each modality feature to width ``d`` and fuse the tokens by multi-head self-attention.

    For modality features ``h_m`` (``[B, F_m]``, anything after the batch dimension is flattened) the
    block forms tokens ``t_m = P_m h_m + e_m`` (``P_m`` a linear projection, ``e_m`` a learned modality
    embedding), optionally appends extra tokens (the demographic token), runs a small transformer
    encoder over the ``M (+1)`` tokens and returns the mean of the output tokens that are present:

    ``z = (1 / |present|) * sum_{m present} T(t)_m``, shape ``[B, d]``.

    A missing modality (``present[:, m] == False``) is masked in attention (``src_key_padding_mask``),
    its token is zeroed before attention (so NaNs or any values in its input cannot leak) and it is left
    out of the pooling: the output does not depend on that modality's input at all.

    Args:
        feature_dims: width ``F_m`` of each modality feature, in modality order.
        fusion_dim: shared token width ``d``.
        num_heads: attention heads; must divide ``fusion_dim``.
        num_layers: transformer encoder layers.
        dropout: dropout inside the transformer layers.
        feedforward_dim: width of each layer's feed-forward block; default ``2 * fusion_dim``.

    Example:
        >>> fusion = AttentionFusion({"image": 16, "text": 12}, fusion_dim=8, num_heads=2)
        >>> z = fusion([torch.randn(4, 16), torch.randn(4, 12)])
        >>> z.shape
        torch.Size([4, 8])
    """

    def __init__(
        self,
        feature_dims: Mapping[str, int],
        fusion_dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
        feedforward_dim: int | None = None,
    ) -> None:
        super().__init__()
        if len(feature_dims) == 0:
            raise MultiFairError(
                "expected `feature_dims` to name at least one modality, got an empty mapping"
            )
        fusion_dim = _check_positive_int("fusion_dim", fusion_dim)
        num_heads = _check_positive_int("num_heads", num_heads)
        num_layers = _check_positive_int("num_layers", num_layers)
        if fusion_dim % num_heads != 0:
            raise MultiFairError(
                f"expected `fusion_dim` to be divisible by `num_heads`, got fusion_dim={fusion_dim}, "
                f"num_heads={num_heads}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise MultiFairError(f"expected `dropout` in [0, 1), got {dropout!r}")
        for name, width in feature_dims.items():
            _check_positive_int(f"feature_dims[{name!r}]", width)
        self.modality_names: tuple[str, ...] = tuple(feature_dims)
        self.fusion_dim = fusion_dim
        self.projections = nn.ModuleList(nn.Linear(int(w), fusion_dim) for w in feature_dims.values())
        self.modality_embedding = nn.Parameter(torch.zeros(len(feature_dims), fusion_dim))
        nn.init.normal_(self.modality_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=fusion_dim,
            nhead=num_heads,
            dim_feedforward=feedforward_dim or 2 * fusion_dim,
            dropout=float(dropout),
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)

    def forward(
        self,
        features: Sequence[Tensor],
        present: Tensor | None = None,
        extra_tokens: Sequence[Tensor] = (),
    ) -> Tensor:
        """Fuse the modality features.

        Args:
            features: ``M`` tensors ``[B, ...]`` in modality order.
            present: optional ``[B, M]`` bool mask, ``True`` where the modality is available.
            extra_tokens: tokens ``[B, d]`` that are always present (e.g. the demographic token).

        Returns:
            The pooled fused representation ``[B, d]``.
        """
        if len(features) != len(self.projections):
            raise MultiFairError(
                f"expected {len(self.projections)} modality features {self.modality_names}, got {len(features)}"
            )
        tokens = torch.stack([proj(h.flatten(1)) for proj, h in zip(self.projections, features)], dim=1)
        tokens = tokens + self.modality_embedding
        batch = tokens.shape[0]
        if present is None:
            keep = torch.ones(batch, tokens.shape[1], dtype=torch.bool, device=tokens.device)
        else:
            keep = present.to(device=tokens.device, dtype=torch.bool)
            tokens = torch.where(keep.unsqueeze(-1), tokens, torch.zeros_like(tokens))
        if len(extra_tokens) > 0:
            extra = torch.stack([t.to(tokens.dtype) for t in extra_tokens], dim=1)
            tokens = torch.cat([tokens, extra], dim=1)
            keep = torch.cat([keep, keep.new_ones(batch, extra.shape[1])], dim=1)
        mask = None if present is None else ~keep
        fused = self.encoder(tokens, src_key_padding_mask=mask)
        weights = keep.to(fused.dtype).unsqueeze(-1)
        fused = torch.where(keep.unsqueeze(-1), fused, torch.zeros_like(fused))
        return (fused * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
