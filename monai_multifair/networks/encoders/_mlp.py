"""The fully connected stack shared by the tabular and bag-of-words encoders."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from monai_multifair.networks.encoders import _checks

NORMS = ("layer", "batch", "none")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def build_mlp(
    owner: str,
    in_features: int,
    hidden_dims: Sequence[int],
    dropout: float,
    norm: str,
    activation: str,
) -> tuple[nn.Module, int]:
    """``[Linear -> norm -> activation -> Dropout]`` per entry of ``hidden_dims``; returns the stack and
    its output width (``in_features`` when ``hidden_dims`` is empty, the stack then being an identity)."""
    widths = _checks.positive_ints(owner, "hidden_dims", hidden_dims, min_len=0)
    rate = _checks.probability(owner, "dropout", dropout)
    _checks.choice(owner, "norm", norm, NORMS)
    _checks.choice(owner, "activation", activation, tuple(ACTIVATIONS))
    layers: list[nn.Module] = []
    previous = in_features
    for width in widths:
        layers.append(nn.Linear(previous, width))
        if norm == "layer":
            layers.append(nn.LayerNorm(width))
        elif norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        layers += [ACTIVATIONS[activation](), nn.Dropout(rate)]
        previous = width
    return (nn.Sequential(*layers) if layers else nn.Identity()), previous
