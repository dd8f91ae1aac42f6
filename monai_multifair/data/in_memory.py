"""``InMemoryDataset``: modalities held as arrays and lists (the synthetic cohort, tabular tables)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from monai_multifair.data._arrays import array_to_image, array_to_stack
from monai_multifair.data.attributes import AttributeCoding
from monai_multifair.data.base import MultimodalDataset
from monai_multifair.errors import MultiFairError

__all__ = ["InMemoryDataset"]


class InMemoryDataset(MultimodalDataset):
    """A :class:`~monai_multifair.data.MultimodalDataset` whose modalities are already in memory.

    Args:
        metadata: one row per sample with columns ``id``, ``label`` and the attribute columns.
        modalities: ``{name: (kind, data)}``: ``"image"`` an array ``[N, C, H, W]`` (or ``[N, H, W]``),
            ``"volume"`` ``[N, S, C, H, W]`` (or ``[N, S, H, W]``), ``"text"`` a sequence of ``N``
            strings, ``"tabular"`` an array ``[N, F]``. Unsigned-integer images are scaled to [0, 1].
        attributes: the selected sensitive attributes (metadata columns).
        unknown: unknown-value policy: ``"error"``, ``"drop"`` or ``"keep"``. See :class:`~monai_multifair.data.MultimodalDataset`.
        unknown_value: the code for "unknown" (``-1``), besides empty cells.
        coding: the training split's fitted coding (``None``: fit one here). See :class:`~monai_multifair.data.MultimodalDataset`.
        code_names: per attribute ``{code: name}`` tables.
        transform: applied to each sample dict.
        name: used in messages.

    Example:
        >>> meta = pd.DataFrame({"id": ["a", "b"], "label": [0, 1], "sex": ["F", "M"]})
        >>> ds = InMemoryDataset(meta, modalities={"x": ("tabular", np.zeros((2, 3)))}, attributes=["sex"])
        >>> sample = ds[1]
        >>> sorted(sample), sample["x"].shape
        (['group', 'id', 'label', 'sex', 'x'], torch.Size([3]))
    """

    def __init__(
        self,
        metadata: pd.DataFrame,
        *,
        modalities: Mapping[str, tuple[str, Any]],
        attributes: Sequence[str],
        unknown: str = "error",
        unknown_value: Any = -1,
        coding: AttributeCoding | None = None,
        code_names: Mapping[str, Mapping[int, str]] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        name: str = "in-memory",
    ) -> None:
        metadata = metadata.reset_index(drop=True).copy()
        n = len(metadata)
        data: dict[str, Any] = {}
        for modality, (kind, values) in modalities.items():
            if kind == "text":
                values = list(values)
                if not all(isinstance(v, str) for v in values):
                    raise MultiFairError(f"{name}: text modality {modality!r} must hold strings")
            else:
                values = np.asarray(values)
                if values.dtype.kind not in "biuf":
                    raise MultiFairError(
                        f"{name}: modality {modality!r} must hold numbers, got dtype {values.dtype}"
                    )
                expected = {"image": (3, 4), "volume": (4, 5), "tabular": (2,)}.get(kind, ())
                if values.ndim not in expected:
                    raise MultiFairError(
                        f"{name}: {kind} modality {modality!r} must have {' or '.join(map(str, expected))} "
                        f"dimensions (samples first), got shape {tuple(values.shape)}"
                    )
            if len(values) != n:
                raise MultiFairError(
                    f"{name}: modality {modality!r} has {len(values)} samples, metadata has {n}"
                )
            data[modality] = values
        super().__init__(
            metadata,
            modalities={m: kind for m, (kind, _) in modalities.items()},
            attributes=attributes,
            unknown=unknown,
            unknown_value=unknown_value,
            coding=coding,
            code_names=code_names,
            transform=transform,
            name=name,
        )
        kept = self.kept_rows
        self._data: dict[str, Any] = {}
        for modality, values in data.items():
            kind = self.modality_kinds[modality]
            if kind == "text":
                self._data[modality] = [values[i] for i in kept]
            elif kind == "tabular":
                self._data[modality] = torch.from_numpy(np.ascontiguousarray(values[kept], dtype=np.float32))
            else:
                self._data[modality] = values[kept]

    def load_modalities(self, index: int) -> dict[str, Any]:
        """Modality entries of sample ``index`` (images converted to float tensors)."""
        sample: dict[str, Any] = {}
        for modality, kind in self.modality_kinds.items():
            values = self._data[modality]
            if kind == "image":
                sample[modality] = array_to_image(values[index], key=modality, source=self.name)
            elif kind == "volume":
                sample[modality] = array_to_stack(values[index], key=modality, source=self.name)
            elif kind == "text":
                sample[modality] = values[index]
            else:
                sample[modality] = values[index].clone()
        return sample
