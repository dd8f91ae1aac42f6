"""Argument and input-shape checks shared by the built-in encoders (host-side, never sync the device)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from monai_multifair.errors import MultiFairError, close_match_hint


def positive_int(owner: str, name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1, else raise naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MultiFairError(f"{owner}: expected `{name}` to be an integer >= 1, got {value!r}")
    return value


def probability(owner: str, name: str, value: Any) -> float:
    """Return ``value`` if it is a number in [0, 1), else raise (used for dropout rates)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise MultiFairError(f"{owner}: expected `{name}` to be a number in [0, 1), got {value!r}")
    return float(value)


def choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise with a close match."""
    if value not in choices:
        raise MultiFairError(
            f"{owner}: expected `{name}` to be one of {', '.join(repr(c) for c in choices)}, "
            f"got {value!r}{close_match_hint(str(value), [str(c) for c in choices])}"
        )
    return value


def positive_ints(owner: str, name: str, value: Any, min_len: int = 1) -> tuple[int, ...]:
    """Return ``value`` as a tuple if it is a sequence of at least ``min_len`` integers >= 1."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) < min_len:
        raise MultiFairError(
            f"{owner}: expected `{name}` to be a sequence of at least {min_len} integer(s) >= 1, got {value!r}"
        )
    return tuple(positive_int(owner, f"{name}[{i}]", v) for i, v in enumerate(value))


def spatial_size(owner: str, name: str, value: Any, spatial_dims: int) -> tuple[int, ...]:
    """Broadcast an int to ``spatial_dims`` sizes or check a sequence of that length."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * spatial_dims
    sizes = positive_ints(owner, name, value)
    if len(sizes) != spatial_dims:
        raise MultiFairError(
            f"{owner}: expected `{name}` to be an int or {spatial_dims} ints (spatial_dims={spatial_dims}), "
            f"got {value!r}"
        )
    return sizes


def check_input(
    owner: str,
    x: Any,
    layout: str,
    channels: int | None = None,
    channel_dim: int = 1,
    floating: bool = True,
    *,
    name: str = "x",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Check a forward input against ``layout`` (e.g. ``"[B, C, H, W]"``): rank, channels and dtype
    (floating point, or integer ids when ``floating`` is false).

    Only tensor metadata is read, so the check never synchronises the device.

    Args:
        owner: the encoder's name, for messages.
        x: the input.
        layout: its expected layout; the rank is the number of entries.
        channels: expected size of ``channel_dim`` (``None``: any).
        channel_dim: the channel dimension.
        floating: a floating-point input (``False``: integer token ids).
        name: the argument's name, for messages (``"input_ids"`` for token ids).
        dtype: cast a floating-point input to this dtype (the encoder's parameters'), so that a float64
            tensor made from a pandas or numpy array works instead of failing in a matmul.

    Returns:
        ``x``, cast to ``dtype`` when given.
    """
    ndim = layout.count(",") + 1
    if not floating and (
        isinstance(x, str) or (isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x))
    ):
        what = "a string" if isinstance(x, str) else f"a {type(x).__name__} of {len(x)} strings"
        raise MultiFairError(
            f"{owner}: expected `{name}`, integer token ids {layout}, got {what}; tokenize the texts "
            f"first: `encoder(encoder.tokenize(texts))`"
        )
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise MultiFairError(f"{owner}: expected input `{name}` of shape {layout}, got {got}")
    if floating and not x.is_floating_point():
        raise MultiFairError(
            f"{owner}: expected a floating-point input `{name}` {layout}, got dtype {x.dtype}"
        )
    if not floating and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise MultiFairError(f"{owner}: expected integer token ids `{name}` {layout}, got dtype {x.dtype}")
    if channels is not None and x.shape[channel_dim] != channels:
        raise MultiFairError(
            f"{owner}: expected input `{name}` {layout} with {channels} channel(s) (`in_channels`), "
            f"got shape {tuple(x.shape)}"
        )
    if floating and dtype is not None and x.dtype != dtype:
        return x.to(dtype)
    return x


def parameter_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``module``'s first floating-point parameter (``None`` without one)."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return None
