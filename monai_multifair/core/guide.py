"""Guide heads ``G_m``: one small classifier per modality, trained on detached features."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["GuideHead"]


class GuideHead(nn.Module):
    """``Linear(in, hidden) -> ReLU -> Dropout -> Linear(hidden, C)`` (the research code's ClassifierGuided).

    With ``hidden`` equal to the fused head's input width, ``output.weight`` has the shape of the fused
    head's output weight ``W_F``, which the direction loss compares it with.

    Args:
        in_features: width of the modality feature ``h_m`` (flattened).
        hidden: hidden width.
        num_classes: ``C``.
        dropout: dropout probability.

    Example:
        >>> head = GuideHead(64, 32, 2)
        >>> head(torch.zeros(4, 64)).shape
        torch.Size([4, 2])
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """Map ``[B, in_features]`` features to ``[B, C]`` logits."""
        return self.output(self.dropout(self.activation(self.hidden(features))))
