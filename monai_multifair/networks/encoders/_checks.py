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
) -> None:
    """Check a forward input against ``layout`` (e.g. ``"[B, C, H, W]"``): rank, channels and dtype
    (floating point, or integer ids when ``floating`` is false).

    Only tensor metadata is read, so the check never synchronises the device.
    """
    ndim = layout.count(",") + 1
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise MultiFairError(f"{owner}: expected input `x` of shape {layout}, got {got}")
    if floating and not x.is_floating_point():
        raise MultiFairError(f"{owner}: expected a floating-point input `x` {layout}, got dtype {x.dtype}")
    if not floating and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise MultiFairError(f"{owner}: expected integer token ids {layout}, got dtype {x.dtype}")
    if channels is not None and x.shape[channel_dim] != channels:
        raise MultiFairError(
            f"{owner}: expected input `x` {layout} with {channels} channel(s) (`in_channels`), "
            f"got shape {tuple(x.shape)}"
        )
