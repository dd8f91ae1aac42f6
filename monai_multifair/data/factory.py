"""``build_datasets``: the train / val / test datasets a config's ``data`` section describes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from monai_multifair.data.base import MultimodalDataset
from monai_multifair.data.cohort import make_cohort
from monai_multifair.data.fairvision import FairVisionDataset
from monai_multifair.data.fairvlmed import FairVLMedDataset
from monai_multifair.data.manifest import ManifestDataset
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

    The training split is built first and its attribute coding is passed to the other two, so a group
    id means the same thing in every split (a group present in val/test but absent from train is an
    error naming it). With ``unknown: drop`` each dataset's ``unknown_report`` says what was dropped.

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
    modalities = list(data.modalities) if data.modalities is not None else None
    attributes = list(data.attributes)
    out: dict[str, MultimodalDataset] = {}
    cohort = make_cohort(data.synthetic) if data.source == "synthetic" else None
    for split in SPLIT_NAMES:
        coding = out["train"].coding if out else None
        common: dict[str, Any] = {
            "attributes": attributes,
            "unknown": data.unknown,
            "coding": coding,
            "transform": transforms.get(split),
        }
        if data.source == "synthetic":
            out[split] = cohort.dataset(split, modalities=modalities, **common)
        elif data.source == "fairvision":
            out[split] = FairVisionDataset(
                data.root,
                split,
                modalities=modalities,
                label_key=data.label_key,
                image_size=data.image_size,
                oct_slices=data.oct_slices,
                **common,
            )
        elif data.source == "fairvlmed":
            out[split] = FairVLMedDataset(
                data.root,
                split,
                modalities=modalities,
                label_key=data.label_key,
                notes_file=data.notes_file,
                filename_column=data.filename_column,
                note_column=data.note_column,
                note_source=data.note_source,
                tabular_keys=data.tabular_keys or (),
                image_size=data.image_size,
                **common,
            )
        elif data.source == "manifest":
            spec = data.manifest
            chosen = set(modalities) if modalities is not None else None

            def pick(mapping: Mapping[str, Any], chosen: set[str] | None = chosen) -> dict[str, Any]:
                return {m: v for m, v in mapping.items() if chosen is None or m in chosen}

            out[split] = ManifestDataset(
                spec.path,
                images=pick(spec.images),
                volumes=pick(spec.volumes),
                texts=pick(spec.texts),
                tabular=pick(spec.tabular),
                npz_keys=pick(spec.npz_keys),
                label_column=spec.label_column,
                split=split,
                split_column=spec.split_column,
                id_column=spec.id_column,
                base_dir=spec.base_dir,
                image_size=data.image_size,
                **common,
            )
        else:
            raise MultiFairError(
                f"expected `data.source` to be 'synthetic', 'fairvision', 'fairvlmed' or 'manifest', got {data.source!r}"
            )
    return out
