"""The record a plugin returns for each encoder it provides."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai_multifair.errors import MultiFairError, close_match_hint

if TYPE_CHECKING:  # the record itself needs no torch: ``multifair --help`` lists MODALITIES without it
    from torch import nn

#: The input kinds an encoder can declare, with the tensor layout its ``forward`` takes.
MODALITIES: dict[str, str] = {
    "image2d": "x: float [B, C, H, W]",
    "image3d": "x: float [B, C, D, H, W]",
    "oct": "x: float [B, S, C, H, W] (a stack of S 2D slices, e.g. OCT B-scans)",
    "tabular": "x: float [B, F]",
    "text": "input_ids: long [B, L] (from the encoder's tokenize(texts))",
}


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """One encoder offered by a plugin through the ``multifair_encoders`` hook.

    ``factory(**options)`` builds the encoder: an ``nn.Module`` with an integer attribute
    ``out_features`` whose ``forward`` takes the layout of its modality (see ``MODALITIES``) and
    returns features ``h_m`` of shape ``[B, out_features]``. Text encoders also expose
    ``tokenize(texts) -> LongTensor [B, L]`` so data collation can turn notes into ``input_ids``.

    Args:
        name: registry name, unique across all plugins (e.g. ``"resnet18-2d"``); no whitespace.
        modality: one of ``"image2d"``, ``"image3d"``, ``"oct"``, ``"tabular"``, ``"text"``.
        factory: callable building the encoder from keyword options.
        description: one line shown by ``multifair plugins``.
        plugin: the plugin that registered the spec; filled in by the registry, leave it empty.

    Examples:
        >>> from torch import nn
        >>> class Flat(nn.Module):
        ...     def __init__(self, in_features: int = 8):
        ...         super().__init__()
        ...         self.out_features = in_features
        ...     def forward(self, x):
        ...         return x
        >>> EncoderSpec("flat", "tabular", Flat, "identity on tabular features").modality
        'tabular'
    """

    name: str
    modality: str
    factory: Callable[..., nn.Module]
    description: str = ""
    plugin: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() for c in self.name):
            raise MultiFairError(
                f"expected EncoderSpec `name` to be a non-empty string without whitespace, got {self.name!r}"
            )
        if self.modality not in MODALITIES:
            raise MultiFairError(
                f"expected EncoderSpec `modality` of encoder {self.name!r} to be one of "
                f"{', '.join(sorted(MODALITIES))}, got {self.modality!r}"
                f"{close_match_hint(self.modality, MODALITIES)}"
            )
        if not callable(self.factory):
            raise MultiFairError(
                f"expected EncoderSpec `factory` of encoder {self.name!r} to be callable, "
                f"got {type(self.factory).__name__}"
            )
        if not isinstance(self.description, str):
            raise MultiFairError(
                f"expected EncoderSpec `description` of encoder {self.name!r} to be a string, "
                f"got {type(self.description).__name__}"
            )

    def with_plugin(self, plugin: str) -> EncoderSpec:
        """Return a copy recording the plugin that registered this spec."""
        return dataclasses.replace(self, plugin=plugin)

    def describe(self) -> dict[str, Any]:
        """Plain-value summary (name, modality, plugin, description) for listings and JSON."""
        return {
            "name": self.name,
            "modality": self.modality,
            "plugin": self.plugin,
            "description": self.description,
        }
