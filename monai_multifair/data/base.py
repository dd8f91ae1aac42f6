"""``MultimodalDataset``: the sample contract shared by every dataset of the package."""

from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from monai_multifair.data.attributes import AttributeCoding, apply_unknown_policy
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins.data_source_spec import MODALITY_KINDS

__all__ = ["CACHE_MODES", "MODALITY_KINDS", "PRESENCE_KEY", "RESERVED_KEYS", "MultimodalDataset"]

#: Sample key of the modality-presence mask: bool ``[M]`` per sample (``[B, M]`` once collated), in
#: :attr:`MultimodalDataset.modalities` order; ``False`` where the sample lacks that modality.
PRESENCE_KEY = "present"
#: Sample keys that are not modalities or attributes.
RESERVED_KEYS: tuple[str, ...] = ("group", "id", "label", PRESENCE_KEY)
#: Caching of loaded (and deterministically transformed) samples: none, in memory, on disk.
CACHE_MODES: tuple[str, ...] = ("none", "memory", "disk")


class MultimodalDataset(Dataset, abc.ABC):
    """A map-style torch ``Dataset`` of multimodal samples with sensitive attributes and group ids.

    Every sample is a ``dict``:

    - one key per modality (see :data:`MODALITY_KINDS`): image tensors float ``[C, H, W]``, OCT stacks
      float ``[S, C, H, W]``, raw note strings, tabular float ``[F]``;
    - ``"label"``: ``int`` class index;
    - one key per selected sensitive attribute: ``int`` code (``-1`` for an unknown value kept as its
      own group);
    - ``"group"``: ``int`` id in ``[0, K)`` of the intersection of the selected attributes;
    - ``"id"``: ``str`` naming the sample's source (file or manifest row);
    - ``"present"`` (:data:`PRESENCE_KEY`): bool tensor ``[M]``, one entry per modality in
      :attr:`modalities` order, ``False`` where the sample lacks the modality. A missing image,
      volume or tabular modality holds zeros of the modality's shape and a missing note the empty
      string, so samples still batch; the mask says which entries are real. An empty (or blank) note
      counts as missing.

    The dict form works with MONAI dictionary transforms (``transform``) and with
    :class:`~monai_multifair.data.MultimodalCollate`, which stacks the mask to ``[B, M]``.

    Subclasses build a metadata frame (columns ``id``, ``label`` and the attributes, plus their own) and
    implement :meth:`load_modalities`, which returns ``None`` for a modality the sample lacks; a
    subclass that may do so fills :attr:`placeholder_shapes`.

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
        #: ``{modality: shape}`` of the zeros standing in for a missing image, volume or tabular entry
        self.placeholder_shapes: dict[str, tuple[int, ...]] = {}
        self._cache: Any = None
        self.cache_mode = "none"

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

    def _check_presence(self, absent: Mapping[str, Sequence[bool]]) -> None:
        """Refuse samples that lack every modality: ``absent[m][i]`` is true where sample ``i`` lacks ``m``.

        Modalities not in ``absent`` are present in every sample.
        """
        if any(m not in absent for m in self.modality_kinds):
            return
        rows = np.ones(len(self), dtype=bool)
        for flags in absent.values():
            rows &= np.asarray(flags, dtype=bool)
        if rows.any():
            first = int(np.flatnonzero(rows)[0])
            raise MultiFairError(
                f"{self.name}: {int(rows.sum())} sample(s) have none of the modalities "
                f"{list(self.modality_kinds)}, e.g. {self._ids[first]}; a sample needs at least one to be "
                "classified"
            )

    # ------------------------------------------------------------------ torch Dataset
    def __len__(self) -> int:
        return len(self._ids)

    @abc.abstractmethod
    def load_modalities(self, index: int) -> dict[str, Any]:
        """The modality entries of sample ``index`` (``{modality: tensor, str or None}``; ``None``: the
        sample lacks the modality)."""

    def placeholder(self, modality: str) -> Any:
        """What a sample lacking ``modality`` holds: ``""`` for text, else zeros of its shape."""
        if self.modality_kinds[modality] == "text":
            return ""
        if modality not in self.placeholder_shapes:
            raise MultiFairError(
                f"{self.name}: a sample lacks modality {modality!r}, but the dataset knows no shape for it "
                "(`placeholder_shapes`)"
            )
        return torch.zeros(self.placeholder_shapes[modality])

    def raw_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` (a non-negative position) before ``transform``, with its presence mask."""
        sample = self.load_modalities(index)
        present = []
        for modality, kind in self.modality_kinds.items():
            value = sample.get(modality)
            if value is None:
                sample[modality] = self.placeholder(modality)
                present.append(False)
            else:
                present.append(bool(value.strip()) if kind == "text" else True)
        if not any(present):
            raise MultiFairError(
                f"{self.name}: {self._ids[index]!s} has none of the modalities {list(self.modality_kinds)} "
                "(an absent image or an empty note); a sample needs at least one to be classified"
            )
        sample[PRESENCE_KEY] = torch.tensor(present, dtype=torch.bool)
        sample["label"] = int(self._labels[index])
        for attr in self.attributes:
            sample[attr] = int(self._codes[attr][index])
        sample["group"] = int(self._groups[index])
        sample["id"] = self._ids[index]
        return sample

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        index = index % len(self)
        if self._cache is not None:
            return self._cache[index]
        sample = self.raw_sample(index)
        return self.transform(sample) if self.transform is not None else sample

    # ------------------------------------------------------------------ transforms and caching
    @property
    def has_random_transform(self) -> bool:
        """Whether ``transform`` may differ between two reads of a sample (augmentation).

        A MONAI ``Compose`` is random when one of its transforms is (``RandomizableTrait``); any other
        callable is assumed random, since it cannot be inspected.
        """
        if self.transform is None:
            return False
        flatten = getattr(self.transform, "flatten", None)
        if not callable(flatten):
            return True
        from monai.transforms import RandomizableTrait

        return any(isinstance(t, RandomizableTrait) for t in flatten().transforms)

    def set_random_state(self, seed: int) -> None:
        """Seed the random transforms (``transform.set_random_state``, as MONAI's ``Compose`` offers).

        The batch loaders call it per epoch and per DataLoader worker, so augmentation is a function of
        ``(seed, epoch, worker)``.
        """
        setter = getattr(self.transform, "set_random_state", None)
        if callable(setter):
            setter(seed=int(seed) % (2**32))

    def set_cache(
        self,
        mode: str,
        *,
        cache_dir: str | Path | None = None,
        cache_rate: float = 1.0,
        fingerprint: str = "",
        num_workers: int | None = None,
    ) -> None:
        """Cache loaded samples and the output of the deterministic transforms (MONAI caching datasets).

        The samples are read through MONAI's ``CacheDataset`` (``"memory"``: filled now, ``cache_rate``
        of the samples) or ``PersistentDataset`` (``"disk"``: one file per sample under
        ``cache_dir/<fingerprint hash>/``, written on first read and reused by later runs), with
        ``Compose([load sample, *transform])``: MONAI caches up to the first random transform, and the
        random ones still run on every read. ``"none"`` reads files on every access again.

        Args:
            mode: ``"none"``, ``"memory"`` or ``"disk"``.
            cache_dir: folder of the disk cache (required for ``"disk"``).
            cache_rate: fraction of the samples held in memory (``"memory"``), in (0, 1].
            fingerprint: text naming everything the cached values depend on besides the sample (loader
                settings, the deterministic transforms); the disk cache keeps one folder per fingerprint,
                so a changed setting never reads stale files. The files themselves are not hashed: clear
                the folder after changing them.
            num_workers: threads filling the memory cache (``None``: one per CPU).

        Raises:
            MultiFairError: an unknown mode, ``cache_dir`` missing for ``"disk"``, ``cache_rate`` outside
                (0, 1].
        """
        if mode not in CACHE_MODES:
            raise MultiFairError(
                f"{self.name}: expected cache `mode` to be one of {', '.join(map(repr, CACHE_MODES))}, got {mode!r}"
            )
        if (
            isinstance(cache_rate, bool)
            or not isinstance(cache_rate, (int, float))
            or not 0 < cache_rate <= 1
        ):
            raise MultiFairError(f"{self.name}: expected `cache_rate` in (0, 1], got {cache_rate!r}")
        self.cache_mode = mode
        if mode == "none":
            self._cache = None
            return
        from monai.data import CacheDataset, PersistentDataset
        from monai.transforms import Compose

        from monai_multifair.data.monai_transforms import LoadSampled

        steps = [LoadSampled(self)]
        if isinstance(self.transform, Compose):
            steps += list(self.transform.transforms)
        elif self.transform is not None:
            steps.append(self.transform)
        pipeline = Compose(steps)
        items = [{"index": i, "id": sample_id} for i, sample_id in enumerate(self._ids)]
        if mode == "memory":
            self._cache = CacheDataset(
                items, pipeline, cache_rate=float(cache_rate), num_workers=num_workers, progress=False
            )
            return
        if cache_dir is None:
            raise MultiFairError(f"{self.name}: expected `cache_dir` (a folder) for the disk cache, got None")
        digest = hashlib.sha256(f"{type(self).__name__}\n{self.name}\n{fingerprint}".encode()).hexdigest()[
            :16
        ]
        folder = Path(cache_dir) / digest
        folder.mkdir(parents=True, exist_ok=True)
        self._cache = PersistentDataset(items, pipeline, cache_dir=folder)

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
