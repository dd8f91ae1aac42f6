"""``build_datasets``: the train / val / test datasets a config's ``data`` section describes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from monai_multifair.data.base import MultimodalDataset
from monai_multifair.data.sources import get_data_source
from monai_multifair.errors import MultiFairError

if TYPE_CHECKING:
    from monai_multifair.config.schema import DataConfig, RunConfig

__all__ = ["SPLIT_NAMES", "build_datasets"]

#: The splits :func:`build_datasets` returns, in order.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def build_datasets(
    config: RunConfig | DataConfig,
    *,
    transforms: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
) -> dict[str, MultimodalDataset]:
    """Build ``{"train", "val", "test"}`` datasets from a config's ``data`` section.

    The source's entry in :data:`~monai_multifair.data.DATA_SOURCES` builds each split. The training
    split is built first and its attribute coding is passed to the other two, so a group id means the
    same thing in every split (a group present in val/test but absent from train is an error naming
    it), and validation/test labels must be classes of the training split (an error naming the sample). With ``unknown: drop`` each dataset's ``unknown_report`` says what was dropped.

    Args:
        config: a :class:`~monai_multifair.config.RunConfig` or its ``data`` section.
        transforms: optional ``{split: transform}`` applied to each sample dict of that split
            (e.g. MONAI dictionary augmentations for ``"train"``).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``, each a
        :class:`~monai_multifair.data.MultimodalDataset` with the selected modalities and attributes.

    Example:
        >>> from monai_multifair.config import load_config
        >>> cfg = load_config("demo-quick", ["data.synthetic.n_patients=300"])
        >>> sets = build_datasets(cfg)
        >>> [len(sets[s]) for s in ("train", "val", "test")], sets["train"].group_labels
        ([180, 60, 60], ('race=Asian', 'race=Black', 'race=White'))
    """
    data = getattr(config, "data", config)
    transforms = dict(transforms or {})
    unknown_splits = sorted(set(transforms) - set(SPLIT_NAMES))
    if unknown_splits:
        raise MultiFairError(
            f"`transforms` names unknown split(s) {unknown_splits}; splits: {', '.join(SPLIT_NAMES)}"
        )
    source = get_data_source(data.source)
    prepared = source.prepare(data) if source.prepare is not None else None
    out: dict[str, MultimodalDataset] = {}
    for split in SPLIT_NAMES:
        out[split] = source.build_split(
            data,
            split,
            prepared,
            modalities=list(data.modalities) if data.modalities is not None else None,
            attributes=list(data.attributes),
            unknown=data.unknown,
            coding=out["train"].coding if out else None,
            transform=transforms.get(split),
        )
        if split != "train":
            _check_classes(out["train"], out[split])
    return out


def _check_classes(train: MultimodalDataset, other: MultimodalDataset) -> None:
    """Validation and test labels must be classes of the training split (the model has no others)."""
    classes = train.num_classes
    beyond = np.flatnonzero(other.labels >= classes)
    if beyond.size:
        first = int(beyond[0])
        raise MultiFairError(
            f"{other.name}: {other.ids[first]} has label {int(other.labels[first])}, a class the training "
            f"split does not have (its classes: 0 to {classes - 1}); {beyond.size} of {len(other)} sample(s) "
            "are affected"
        )
