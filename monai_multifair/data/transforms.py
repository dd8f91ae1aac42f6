"""Per-modality MONAI dictionary transforms from plain (YAML) specifications.

A specification is ``{"name": <a name of TRANSFORM_NAMES>, **arguments}``; the transform is built
for the modality's sample key (``keys`` is set here, never in the specification). The names map to
MONAI's own dictionary transforms through one lookup table (:func:`transform_table`), so a YAML file
can name exactly the transforms listed there, with the arguments of their constructors.

Images (``[C, H, W]``) go through the transforms as MONAI channel-first 2D images. OCT stacks
(``[S, C, H, W]``) are folded to a 2D image of ``S * C`` channels first
(:class:`~monai_multifair.data.monai_transforms.FoldSlicesd`) and
unfolded after (:class:`~monai_multifair.data.monai_transforms.UnfoldSlicesd`), so every spatial transform acts in-plane and on every B-scan
of a sample alike (one flip, one rotation angle per volume). The pipeline ends with ``EnsureTyped``
(``track_meta=False``), so batches hold plain ``torch.Tensor`` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from monai_multifair.config.transform_specs import (
    DETERMINISTIC_TRANSFORMS,
    RANDOM_TRANSFORMS,
    TRANSFORM_KINDS,
    TRANSFORM_NAMES,
    build_transform,
    check_transform_specs,
    is_random_transform,
    transform_table,
)
from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = [
    "DETERMINISTIC_TRANSFORMS",
    "RANDOM_TRANSFORMS",
    "TRANSFORM_KINDS",
    "TRANSFORM_NAMES",
    "build_sample_transform",
    "build_transform",
    "check_transform_specs",
    "is_random_transform",
    "transform_table",
]


def build_sample_transform(
    modality_kinds: Mapping[str, str],
    transforms: Mapping[str, Sequence[Any]] | None = None,
    augment: Mapping[str, Sequence[Any]] | None = None,
    *,
    path: str = "pipeline",
) -> Any:
    """A MONAI ``Compose`` of the transforms of every modality, or ``None`` when there are none.

    Order: fold the OCT stacks, every modality's ``transforms`` (deterministic), every modality's
    ``augment`` (random), ``EnsureTyped(track_meta=False, dtype=float32)``, unfold the stacks.

    Args:
        modality_kinds: ``{modality: kind}`` of the dataset (kinds: image, volume, text, tabular).
        transforms: ``{modality: [spec, ...]}`` for this split (deterministic ones).
        augment: ``{modality: [spec, ...]}`` (pass it for the training split only).
        path: the config section, for messages.

    Raises:
        MultiFairError: a modality the dataset does not have, or of a kind transforms do not apply to
            (text, tabular); the errors of :func:`build_transform`.

    Example:
        >>> flip = {"fundus": [{"name": "RandFlipd", "prob": 1.0}]}
        >>> compose = build_sample_transform({"fundus": "image"}, augment=flip)
        >>> " -> ".join(type(t).__name__ for t in compose.transforms)
        'RandFlipd -> EnsureTyped'
    """
    from monai.transforms import Compose, EnsureTyped

    from monai_multifair.data.monai_transforms import FoldSlicesd, UnfoldSlicesd

    steps: list[Any] = []
    touched: list[str] = []
    for section_name, section in (("transforms", transforms or {}), ("augment", augment or {})):
        for modality, specs in section.items():
            where = f"{path}.{section_name}.{modality}"
            if modality not in modality_kinds:
                raise MultiFairError(
                    f"config key `{where}`: {modality!r} is not a modality of the data "
                    f"({', '.join(modality_kinds)}){close_match_hint(modality, modality_kinds)}"
                )
            kind = modality_kinds[modality]
            if kind not in TRANSFORM_KINDS:
                raise MultiFairError(
                    f"config key `{where}`: transforms apply to image and volume modalities, but {modality!r} "
                    f"is {kind} data"
                )
            steps += [build_transform(spec, modality, f"{where}[{i}]") for i, spec in enumerate(specs)]
            if specs and modality not in touched:
                touched.append(modality)
    if not steps:
        return None
    volumes = [m for m in touched if modality_kinds[m] == "volume"]
    pipeline = [FoldSlicesd(volumes)] if volumes else []
    pipeline += [*steps, EnsureTyped(keys=touched, data_type="tensor", dtype=torch.float32, track_meta=False)]
    if volumes:
        pipeline.append(UnfoldSlicesd(volumes))
    return Compose(pipeline)
