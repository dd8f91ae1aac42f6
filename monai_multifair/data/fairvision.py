"""``FairVisionDataset``: the Harvard FairVision glaucoma layout (SLO fundus + OCT B-scans)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_multifair.data._arrays import check_section_sizes
from monai_multifair.data.attributes import FAIRVISION_CODES, AttributeCoding
from monai_multifair.data.npz_dataset import (
    LABEL_CLASSES,
    NpzSubjectDataset,
    check_attributes,
    documented_classes,
    select_modalities,
    split_files,
)
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = ["FAIRVISION_ATTRIBUTES", "FAIRVISION_MODALITIES", "FairVisionConfig", "FairVisionDataset"]

#: Modality name -> (kind, npz key) of the FairVision layout.
FAIRVISION_MODALITIES: dict[str, tuple[str, str]] = {
    "fundus": ("image", "slo_fundus"),
    "oct": ("volume", "oct_bscans"),
}
#: Sensitive attributes stored in FairVision files (integer codes, ``-1`` unknown).
FAIRVISION_ATTRIBUTES: tuple[str, ...] = tuple(FAIRVISION_CODES)


@dataclass
class FairVisionConfig:
    """``data.fairvision``: where a FairVision copy is and how its samples are read.

    Attributes:
        root: the folder holding ``Training/``, ``Validation/`` and ``Test/`` (e.g.
            ``/data/FairVision/Glaucoma``). Required.
        label_key: npz key of the label.
        image_size: ``[H, W]`` to resize fundus images and B-scans to (``None``: as stored).
        oct_slices: number of evenly spaced B-scans to keep (``None``: all 200).
    """

    root: str
    label_key: str = "glaucoma"
    image_size: tuple[int, int] | None = None
    oct_slices: int | None = None

    def __post_init__(self) -> None:
        check_section_sizes(self, "fairvision")


class FairVisionDataset(NpzSubjectDataset):
    """FairVision glaucoma data: ``root/{Training,Validation,Test}/data_XXXXX.npz``.

    Each file holds ``slo_fundus`` (2D), ``oct_bscans`` (``[S, H, W]``, 200 B-scans), ``glaucoma``
    (0/1), ``race`` (0 Asian, 1 Black, 2 White), ``male`` (0/1), ``hispanic`` (0/1), ``language``
    (0 English, 1 Spanish, 2 other), ``maritalstatus`` (0-4); ``-1`` means unknown.

    Samples: ``"fundus"`` float ``[C, H, W]``, ``"oct"`` float ``[S, C, H, W]`` (only the requested
    modalities), ``"label"``, one key per selected attribute, ``"group"``, ``"id"``.

    Args:
        root: the folder holding the split folders.
        split: ``"train"``, ``"val"``, ``"test"`` or a folder name.
        modalities: any of ``"fundus"``, ``"oct"`` (default both).
        attributes: sensitive attributes whose intersection defines the groups (default ``("race",)``).
        label_key: npz key of the label (default ``"glaucoma"``).
        unknown: ``"error"`` | ``"drop"`` | ``"keep"`` for ``-1`` in a selected attribute.
        image_size: ``(H, W)`` to resize fundus images and B-scans to.
        oct_slices: number of evenly spaced B-scans to keep.
        coding: the training split's :class:`~monai_multifair.data.attributes.AttributeCoding`.
        transform: applied to each sample dict.
        num_classes: the number of classes of ``label_key``; default: the documented one
            (:data:`~monai_multifair.data.npz_dataset.LABEL_CLASSES`, ``glaucoma``: 2), so a file with
            ``glaucoma=2`` is an error naming it; ``None`` for other keys: any class index.

    Example:
        >>> train = FairVisionDataset("/data/FairVision/Glaucoma", "train", attributes=["race"],
        ...                           image_size=(224, 224), oct_slices=32, unknown="drop")  # doctest: +SKIP
        >>> val = FairVisionDataset("/data/FairVision/Glaucoma", "val", coding=train.coding)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        modalities: Sequence[str] | None = None,
        attributes: Sequence[str] = ("race",),
        label_key: str = "glaucoma",
        unknown: str = "error",
        image_size: Sequence[int] | None = None,
        oct_slices: int | None = None,
        coding: AttributeCoding | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        num_classes: int | None = None,
    ) -> None:
        files = split_files(root, split)
        chosen = select_modalities(modalities, tuple(FAIRVISION_MODALITIES), "FairVision")
        super().__init__(
            files,
            modalities={m: FAIRVISION_MODALITIES[m] for m in chosen},
            label_key=label_key,
            attributes=check_attributes(attributes, FAIRVISION_ATTRIBUTES, "FairVision"),
            image_size=image_size,
            oct_slices=oct_slices,
            unknown=unknown,
            coding=coding,
            code_names=FAIRVISION_CODES,
            transform=transform,
            name=f"FairVision[{split}]",
            num_classes=num_classes if num_classes is not None else LABEL_CLASSES.get(label_key),
            label_classes_note=(
                f"the documented values of {label_key!r} are {documented_classes(label_key)}"
                if num_classes is None and label_key in LABEL_CLASSES
                else ""
            ),
        )


def _fairvision_split(
    options: FairVisionConfig, split: str, prepared: Any, **common: Any
) -> FairVisionDataset:
    return FairVisionDataset(
        options.root,
        split,
        label_key=options.label_key,
        image_size=options.image_size,
        oct_slices=options.oct_slices,
        **common,
    )


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``fairvision`` (options: :class:`FairVisionConfig`)."""
    return [
        DataSourceSpec(
            name="fairvision",
            description="Harvard-FairVision glaucoma: per-subject npz with SLO fundus and OCT B-scans",
            build_split=_fairvision_split,
            modalities={m: kind for m, (kind, _) in FAIRVISION_MODALITIES.items()},
            options=FairVisionConfig,
            options_required=True,
            attributes=FAIRVISION_ATTRIBUTES,
        )
    ]
