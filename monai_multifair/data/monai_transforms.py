"""MONAI transforms of the data pipeline itself (this module imports MONAI; import it lazily).

- :class:`FoldSlicesd` / :class:`UnfoldSlicesd`: OCT stacks ``[S, C, H, W]`` through 2D transforms;
- :class:`LoadSampled`: the first step of a caching dataset, ``{"index": i}`` -> the dataset's sample.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import MapTransform, Transform

from monai_multifair.errors import MultiFairError

__all__ = ["FoldSlicesd", "LoadSampled", "UnfoldSlicesd", "stack_shape_key"]


def stack_shape_key(key: Hashable) -> str:
    """The sample key under which :class:`FoldSlicesd` keeps ``(S, C)`` of volume ``key``."""
    return f"_{key}_stack_shape"


class FoldSlicesd(MapTransform):
    """Fold stacks ``[S, C, H, W]`` of ``keys`` into 2D images ``[S * C, H, W]``.

    MONAI's 2D transforms then act in-plane on every slice alike; :class:`UnfoldSlicesd` restores the
    stack. ``(S, C)`` is kept in the sample under :func:`stack_shape_key` until then. Deterministic,
    so a caching dataset caches what follows it.

    Example:
        >>> import torch
        >>> out = FoldSlicesd(["oct"])({"oct": torch.zeros(4, 1, 8, 8)})
        >>> out["oct"].shape, out["_oct_stack_shape"]
        (torch.Size([4, 8, 8]), (4, 1))
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        for key in self.key_iterator(out):
            stack = out[key]
            if stack.ndim != 4:
                raise MultiFairError(
                    f"pipeline: expected the volume {key!r} as a stack [S, C, H, W], got shape {tuple(stack.shape)}"
                )
            out[stack_shape_key(key)] = (int(stack.shape[0]), int(stack.shape[1]))
            out[key] = stack.reshape(-1, *stack.shape[2:])
        return out


class UnfoldSlicesd(MapTransform):
    """Undo :class:`FoldSlicesd`: ``[S * C, H', W']`` back to ``[S, C, H', W']``.

    Raises:
        MultiFairError: a transform in between changed the number of channels.
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        for key in self.key_iterator(out):
            slices, channels = out.pop(stack_shape_key(key))
            image = out[key]
            if image.shape[0] != slices * channels:
                raise MultiFairError(
                    f"pipeline: a transform changed the channels of volume {key!r} from {slices * channels} "
                    f"({slices} slices x {channels}) to {image.shape[0]}; volume transforms must keep them"
                )
            out[key] = image.reshape(slices, channels, *image.shape[1:])
        return out


class LoadSampled(Transform):
    """``{"index": i, ...}`` -> ``dataset.raw_sample(i)``: how a caching dataset reads samples.

    A MONAI ``Transform`` (deterministic), so ``CacheDataset``/``PersistentDataset`` cache its output
    and that of the deterministic transforms after it.

    Args:
        dataset: a :class:`~monai_multifair.data.MultimodalDataset`.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return self.dataset.raw_sample(int(data["index"]))
