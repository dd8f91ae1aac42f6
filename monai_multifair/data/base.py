"""``MultimodalDataset``: the sample contract shared by every dataset of the package."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from monai_multifair.data.attributes import AttributeCoding, apply_unknown_policy
from monai_multifair.errors import MultiFairError

__all__ = ["MODALITY_KINDS", "RESERVED_KEYS", "MultimodalDataset"]

#: What a modality holds: ``"image"`` float ``[C, H, W]``; ``"volume"`` a stack of slices float
#: ``[S, C, H, W]`` (OCT B-scans); ``"text"`` a raw ``str``; ``"tabular"`` float ``[F]``.
MODALITY_KINDS: tuple[str, ...] = ("image", "volume", "text", "tabular")
#: Sample keys that are not modalities or attributes.
RESERVED_KEYS: tuple[str, ...] = ("group", "id", "label")


class MultimodalDataset(Dataset, abc.ABC):
    """A map-style torch ``Dataset`` of multimodal samples with sensitive attributes and group ids.

    Every sample is a ``dict``:

    - one key per modality (see :data:`MODALITY_KINDS`): image tensors float ``[C, H, W]``, OCT stacks
      float ``[S, C, H, W]``, raw note strings, tabular float ``[F]``;
    - ``"label"``: ``int`` class index;
    - one key per selected sensitive attribute: ``int`` code (``-1`` for an unknown value kept as its
      own group);
    - ``"group"``: ``int`` id in ``[0, K)`` of the intersection of the selected attributes;
    - ``"id"``: ``str`` naming the sample's source (file or manifest row).

    The dict form works with MONAI dictionary transforms (``transform``) and with
    :class:`~monai_multifair.data.MultimodalCollate`.

    Subclasses build a metadata frame (columns ``id``, ``label`` and the attributes, plus their own) and
    implement :meth:`load_modalities`.

    Args:
        metadata: one row per candidate sample.
        modalities: ``{name: kind}`` of the modalities each sample carries, in order.
        attributes: the selected sensitive attributes (metadata columns).
        unknown: unknown-value policy, ``"error"``, ``"drop"`` or ``"keep"``
            (see :func:`~monai_multifair.data.attributes.apply_unknown_policy`).
        unknown_value: the code for "unknown" (``-1``), besides empty cells.
        coding: a fitted :class:`~monai_multifair.data.attributes.AttributeCoding` (from the training
            split) so that group ids agree across splits; ``None`` fits one on this dataset.
        code_names: per attribute ``{code: name}`` tables used when fitting a coding.
        transform: applied to each sample dict (e.g. a MONAI ``Compose`` of dictionary transforms).
        name: used in messages, e.g. ``"FairVLMed[train]"``.
        num_classes: the number of classes when it is known (declared by the layout, or the training
            split's for validation and test): every label must lie in ``[0, num_classes)``, and
            :attr:`num_classes` returns it. ``None``: inferred from the labels.

    Attributes:
        metadata: the kept rows, with attribute codes and a ``group`` column.
        unknown_report: what the unknown-value policy did (:class:`UnknownReport`).
        coding: the attribute coding in use.
    """

    def __init__(
        self,
        metadata: pd.DataFrame,
        *,
        modalities: Mapping[str, str],
        attributes: Sequence[str],
        unknown: str = "error",
        unknown_value: Any = -1,
        coding: AttributeCoding | None = None,
        code_names: Mapping[str, Mapping[int, str]] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        name: str = "dataset",
        num_classes: int | None = None,
    ) -> None:
        self.name = name
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise MultiFairError(f"{name}: expected `num_classes` to be an integer >= 2, got {num_classes!r}")
        self._num_classes = num_classes
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        self.modality_kinds = dict(modalities)
        self._check_names(attributes, metadata)
        self.attributes = tuple(attributes)
        metadata = metadata.reset_index(drop=True)
        metadata["_row"] = np.arange(len(metadata))
        self._check_labels(metadata)
        metadata, self.unknown_report = apply_unknown_policy(
            metadata, attributes, unknown, unknown_value=unknown_value, id_column="id", name=name
        )
        if len(metadata) == 0:
            raise MultiFairError(f"{name}: no samples left ({self.unknown_report})")
        if coding is None:
            coding = AttributeCoding(attributes, code_names).fit(
                metadata, ids=[f"{name}: {i}" for i in metadata["id"].tolist()]
            )
        elif tuple(coding.attributes) != self.attributes:
            raise MultiFairError(
                f"{name}: `coding` was fitted for attributes {list(coding.attributes)}, "
                f"but this dataset selects {attributes}"
            )
        self.coding = coding
        ids = [f"{name}: {i}" for i in metadata["id"].tolist()]
        try:
            codes, groups = coding.encode(metadata, ids=ids)
        except MultiFairError as err:
            raise MultiFairError(str(err) if str(err).startswith(name) else f"{name}: {err}") from None
        self._display = coding.display_frame(metadata)
        for attr, values in codes.items():
            metadata[attr] = values
        metadata["group"] = groups
        metadata["label"] = metadata["label"].astype(np.int64)
        self.metadata = metadata
        #: positions, in the metadata given to the constructor, of the samples kept (after ``"drop"``)
        self.kept_rows: np.ndarray = metadata.pop("_row").to_numpy()
        self.transform = transform
        self._ids = metadata["id"].astype(str).tolist()
        self._labels = metadata["label"].to_numpy(np.int64)
        self._groups = groups.astype(np.int64)
        self._codes = {a: codes[a].astype(np.int64) for a in attributes}

    # ------------------------------------------------------------------ validation
    def _check_names(self, attributes: list[str], metadata: pd.DataFrame) -> None:
        for kind in self.modality_kinds.values():
            if kind not in ("image", "volume", "text", "tabular"):
                raise MultiFairError(f"{self.name}: unknown modality kind {kind!r}")
        if not self.modality_kinds:
            raise MultiFairError(f"{self.name}: expected at least one modality, got none")
        clash = sorted(set(attributes) & (set(self.modality_kinds) | set(RESERVED_KEYS)))
        if clash:
            raise MultiFairError(
                f"{self.name}: attribute name(s) {clash} clash with a modality or a reserved sample key "
                f"{list(RESERVED_KEYS)}"
            )
        clash = sorted(set(self.modality_kinds) & set(RESERVED_KEYS))
        if clash:
            raise MultiFairError(f"{self.name}: modality name(s) {clash} are reserved sample keys")
        missing = [c for c in ("id", "label", *attributes) if c not in metadata.columns]
        if missing:
            raise MultiFairError(f"{self.name}: metadata lacks column(s) {missing}")

    def _check_labels(self, metadata: pd.DataFrame) -> None:
        for sample_id, value in zip(metadata["id"].tolist(), metadata["label"].tolist()):
            ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            ok = ok and not (isinstance(value, float) and math.isnan(value)) and float(value).is_integer()
            if not ok or value < 0:
                raise MultiFairError(
                    f"{self.name}: {sample_id!s} has label {value!r}; expected a class index >= 0 "
                    "(samples without a known label cannot be used)"
                )
            if self._num_classes is not None and value >= self._num_classes:
                raise MultiFairError(
                    f"{self.name}: {sample_id!s} has label {value!r}; expected a class index in "
                    f"[0, {self._num_classes}) (the classes of the training split, or those the layout declares)"
                )

    # ------------------------------------------------------------------ torch Dataset
    def __len__(self) -> int:
        return len(self._ids)

    @abc.abstractmethod
    def load_modalities(self, index: int) -> dict[str, Any]:
        """The modality entries of sample ``index`` (``{modality: tensor or str}``)."""

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        index = index % len(self)
        sample = self.load_modalities(index)
        sample["label"] = int(self._labels[index])
        for attr in self.attributes:
            sample[attr] = int(self._codes[attr][index])
        sample["group"] = int(self._groups[index])
        sample["id"] = self._ids[index]
        return self.transform(sample) if self.transform is not None else sample

    # ------------------------------------------------------------------ metadata access
    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in sample order."""
        return tuple(self.modality_kinds)

    @property
    def labels(self) -> np.ndarray:
        """``int64 [N]`` class index of every sample."""
        return self._labels

    @property
    def groups(self) -> np.ndarray:
        """``int64 [N]`` group id of every sample."""
        return self._groups

    @property
    def ids(self) -> list[str]:
        """The source (file or row) of every sample."""
        return list(self._ids)

    @property
    def num_groups(self) -> int:
        """``K``: groups of the coding (those of the training split)."""
        return self.coding.num_groups

    @property
    def group_labels(self) -> tuple[str, ...]:
        """Readable label of every group id, e.g. ``"race=Black"``."""
        return self.coding.group_labels

    @property
    def num_classes(self) -> int:
        """The declared ``num_classes``, else ``max(label) + 1`` (at least 2)."""
        if self._num_classes is not None:
            return self._num_classes
        return max(2, int(self._labels.max()) + 1)

    @property
    def sensitive_features(self) -> pd.DataFrame:
        """Display values of the selected attributes (one column each), for fairlearn's ``sensitive_features``."""
        return self._display.copy()

    def describe(self) -> pd.DataFrame:
        """Composition by group: ``group``, ``label`` (readable), ``count``, ``positives``, ``prevalence``.

        ``positives`` counts label 1 (the positive class of binary tasks).
        """
        rows = []
        for gid, label in enumerate(self.group_labels):
            mask = self._groups == gid
            n = int(mask.sum())
            pos = int((self._labels[mask] == 1).sum())
            rows.append(
                {
                    "group": gid,
                    "label": label,
                    "count": n,
                    "positives": pos,
                    "prevalence": pos / n if n else math.nan,
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, samples={len(self)}, modalities={list(self.modalities)}, "
            f"attributes={list(self.attributes)}, num_groups={self.num_groups})"
        )
