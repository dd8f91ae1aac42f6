"""``build_datasets``: the train / val / test datasets a config's ``data`` section describes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from monai_multifair.data.base import MultimodalDataset
from monai_multifair.data.transforms import build_sample_transform
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import get_data_source_spec

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

    The data source's plugin spec (:func:`~monai_multifair.plugins.get_data_source_spec`) builds each split. The training
    split is built first and its attribute coding is passed to the other two, so a group id means the
    same thing in every split (a group present in val/test but absent from train is an error naming
    it), and validation/test labels must be classes of the training split (an error naming the sample). With ``unknown: drop`` each dataset's ``unknown_report`` says what was dropped.

    Given a :class:`~monai_multifair.config.RunConfig`, its ``pipeline`` section applies too: each
    split gets a MONAI ``Compose`` of ``pipeline.transforms`` (and, for ``"train"`` only,
    ``pipeline.augment``; :func:`~monai_multifair.data.build_sample_transform`), tried once on the
    split's first sample so that a transform that does not fit the data fails here, and
    ``pipeline.cache`` (:meth:`~monai_multifair.data.MultimodalDataset.set_cache`).

    Args:
        config: a :class:`~monai_multifair.config.RunConfig` or its ``data`` section.
        transforms: optional ``{split: transform}`` applied to each sample dict of that split
            (e.g. MONAI dictionary augmentations for ``"train"``); not together with a config whose
            ``pipeline`` names transforms.

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
    pipeline = getattr(config, "pipeline", None)
    transforms = dict(transforms or {})
    unknown_splits = sorted(set(transforms) - set(SPLIT_NAMES))
    if unknown_splits:
        raise MultiFairError(
            f"`transforms` names unknown split(s) {unknown_splits}; splits: {', '.join(SPLIT_NAMES)}"
        )
    if pipeline is not None and (pipeline.transforms or pipeline.augment):
        if transforms:
            raise MultiFairError(
                "`transforms` and the config's `pipeline.transforms`/`pipeline.augment` both give transforms; "
                "use one of them"
            )
        kinds = data.modality_kinds()
        transforms = {
            split: build_sample_transform(
                kinds, pipeline.transforms, pipeline.augment if split == "train" else None
            )
            for split in SPLIT_NAMES
        }
    source = get_data_source_spec(data.source)
    prepared = source.prepare(data.options, list(data.attributes)) if source.prepare is not None else None
    out: dict[str, MultimodalDataset] = {}
    for split in SPLIT_NAMES:
        out[split] = source.build_split(
            data.options,
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
        if out[split].transform is not None:
            _try_transform(out[split], split)
        if pipeline is not None and pipeline.cache != "none":
            fingerprint = {
                "data": data.to_section(),
                "transforms": pipeline.transforms,
                "augment": pipeline.augment if split == "train" else {},
            }
            out[split].set_cache(
                pipeline.cache,
                cache_dir=pipeline.cache_dir,
                cache_rate=pipeline.cache_rate,
                fingerprint=json.dumps(fingerprint, sort_keys=True, default=str),
            )
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


#: rank of each modality kind's tensors (images [C, H, W], stacks [S, C, H, W], tabular [F])
_RANKS = {"image": 3, "volume": 4, "tabular": 1}


def _try_transform(dataset: MultimodalDataset, split: str) -> None:
    """Run the split's transform on its first sample: a transform that does not fit the data (a wrong
    argument value, a 3D size for a 2D image) fails here, naming the split and the sample."""
    where = f"{dataset.name}: the transforms of split {split!r}"
    try:
        sample = dataset[0]
    except MultiFairError:
        raise
    except Exception as exc:  # MONAI raises many kinds; each becomes one clear message
        cause = exc
        while cause.__cause__ is not None:  # MONAI wraps the transform's error ("applying transform ...")
            cause = cause.__cause__
        first = (str(cause).strip().splitlines() or [""])[0]
        raise MultiFairError(
            f"{where} fail on its first sample ({dataset.ids[0]}): {type(cause).__name__}: {first}; check the "
            "`pipeline` section"
        ) from exc
    for modality, kind in dataset.modality_kinds.items():
        value = sample.get(modality) if isinstance(sample, dict) else None
        rank = _RANKS.get(kind)
        if rank is not None and (not hasattr(value, "ndim") or value.ndim != rank):
            got = f"shape {tuple(value.shape)}" if hasattr(value, "shape") else type(value).__name__
            raise MultiFairError(
                f"{where} turn {kind} {modality!r} of the first sample ({dataset.ids[0]}) into {got}; expected "
                f"{rank} dimensions (a 2D size for images and B-scans, e.g. spatial_size: [H, W])"
            )
