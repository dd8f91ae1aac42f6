"""Tabular data sources: a table split into modality blocks, and how its rows become train/val/test.

A :class:`TableCohort` holds one table as feature blocks (one tabular modality each), a binary label
and the sensitive attributes. :class:`TableSplit` (the options section ``data.<source>`` of every table
source: ``ad_data``, ``gse7390``, ``support2``) says how rows are split:

- **hold-out** (``folds: 0``): ``test_fraction`` of the rows, drawn with ``test_seed``, are the test
  split; ``val_fraction`` of the others, drawn with ``seed``, the validation split. Changing ``seed``
  re-draws train/val and leaves the test rows fixed.
- **k-fold** (``folds: K >= 2``): the rows are dealt into ``K`` folds with ``seed``; fold ``fold`` is the
  test split and ``val_fraction`` of the others the validation split.

Draws are stratified by label x group (the intersection of the selected attributes) when every cell
has enough rows, otherwise by label. Features are standardised with the training split's mean and
standard deviation (a constant column is left centred). :func:`table_source` builds the
data-source spec of a table source from its loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from monai_multifair.data.in_memory import InMemoryDataset
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import DataSourceSpec

__all__ = ["TableCohort", "TableSplit", "fit_standardization", "split_rows", "table_source"]

_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TableSplit:
    """How the rows of a table source become train / val / test (YAML section ``data.<source>``).

    Attributes:
        test_fraction: hold-out only: fraction of the rows in the test split, in (0, 1).
        val_fraction: fraction of the non-test rows in the validation split, in (0, 1).
        folds: 0 for hold-out, or the number of folds ``K >= 2`` of a k-fold split.
        fold: k-fold only: the test fold, in ``[0, folds)``.
        seed: draws train/val (hold-out) or the fold assignment and train/val (k-fold), >= 0.
        test_seed: hold-out only: draws the test rows (kept fixed when ``seed`` changes), >= 0.
        standardize: standardise every feature with the training split's mean and standard deviation.
    """

    test_fraction: float = 0.2
    val_fraction: float = 0.2
    folds: int = 0
    fold: int = 0
    seed: int = 0
    test_seed: int = 0
    standardize: bool = True

    def __post_init__(self) -> None:
        def fail(name: str, rule: str) -> None:
            raise MultiFairError(f"expected `{name}` {rule}, got {getattr(self, name)!r}")

        def is_int(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        for name in ("test_fraction", "val_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                fail(name, "in (0, 1)")
        if not is_int(self.folds) or self.folds < 0 or self.folds == 1:
            fail("folds", "to be 0 (hold-out) or an integer >= 2")
        if not is_int(self.fold) or self.fold < 0 or (self.folds and self.fold >= self.folds):
            fail("fold", f"to be an integer in [0, {max(self.folds, 1)})")
        for name in ("seed", "test_seed"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "to be an integer >= 0")
        if not isinstance(self.standardize, bool):
            fail("standardize", "to be true or false")

    def describe(self) -> str:
        """One line: the protocol and its seeds."""
        if self.folds:
            return (
                f"fold {self.fold} of {self.folds} (seed {self.seed}), val {self.val_fraction:g} of the rest"
            )
        return (
            f"hold-out: test {self.test_fraction:g} (test_seed {self.test_seed}), val {self.val_fraction:g} "
            f"of the rest (seed {self.seed})"
        )


def _strata(labels: np.ndarray, groups: np.ndarray, rows: np.ndarray, needed: int) -> np.ndarray | None:
    """Label x group strata of ``rows`` when every cell has ``needed`` rows, else label strata, else None."""
    for strata in (labels[rows].astype(str) + "|" + groups[rows].astype(str), labels[rows].astype(str)):
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() >= needed:
            return strata
    return None


def _holdout(
    rows: np.ndarray, fraction: float, labels: np.ndarray, groups: np.ndarray, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, drawn)``: ``fraction`` of ``rows`` drawn (stratified when possible)."""
    n_drawn = int(round(fraction * len(rows)))
    if n_drawn < 1 or n_drawn >= len(rows):
        raise MultiFairError(
            f"cannot draw the {what} split: {fraction:g} of {len(rows)} rows is {n_drawn} rows (need 1 to "
            f"{len(rows) - 1})"
        )
    strata = _strata(labels, groups, rows, 2)
    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if n_drawn < len(counts) or len(rows) - n_drawn < len(counts):
            strata = None  # fewer rows drawn than cells: sklearn cannot stratify
    kept, drawn = train_test_split(rows, test_size=n_drawn, stratify=strata, random_state=seed)
    return np.sort(kept), np.sort(drawn)


def fit_standardization(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean [F], std [F])`` of the columns of ``values [N, F]``; a constant column gets std 1 (it is only
    centred). Fit on training rows only; ``(x - mean) / std`` then standardises every split alike."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def split_rows(labels: np.ndarray, groups: np.ndarray, spec: TableSplit) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``val`` and ``test`` (sorted) as ``spec`` says (module docstring).

    Args:
        labels: ``[N]`` class labels.
        groups: ``[N]`` group ids or names (the strata besides the label).
        spec: the split settings.

    Raises:
        MultiFairError: too few rows for the requested split or folds.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    rows = np.arange(len(labels))
    if spec.folds:
        strata = _strata(labels, groups, rows, spec.folds)
        if strata is None:
            _, counts = np.unique(labels, return_counts=True)
            raise MultiFairError(
                f"cannot deal {len(rows)} rows into `folds` = {spec.folds} folds: the rarest label has "
                f"{counts.min()} rows (need at least {spec.folds})"
            )
        folds = StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=spec.seed)
        _, test = list(folds.split(rows, strata))[spec.fold]
        rest = np.setdiff1d(rows, test)
        train, val = _holdout(rest, spec.val_fraction, labels, groups, spec.seed * 1000 + spec.fold, "val")
        return {"train": train, "val": val, "test": np.sort(test)}
    rest, test = _holdout(rows, spec.test_fraction, labels, groups, spec.test_seed, "test")
    train, val = _holdout(rest, spec.val_fraction, labels, groups, spec.seed, "val")
    return {"train": train, "val": val, "test": test}


@dataclass
class TableCohort:
    """A table as tabular modality blocks, a binary label and sensitive attributes.

    Attributes:
        name: the source name (used in sample ids and messages).
        blocks: ``{modality: DataFrame [N, F_m]}`` of numeric features (no missing values).
        label: ``int64 [N]`` labels.
        attributes: ``[N]`` rows, one string column per sensitive attribute (``""``: unknown).
        ids: ``[N]`` sample ids.
    """

    name: str
    blocks: dict[str, pd.DataFrame]
    label: np.ndarray
    attributes: pd.DataFrame
    ids: list[str]

    def __post_init__(self) -> None:
        n = len(self.label)
        for modality, block in self.blocks.items():
            if len(block) != n:
                raise MultiFairError(f"{self.name}: block {modality!r} has {len(block)} rows, labels {n}")
            values = block.to_numpy(np.float64)
            if not np.isfinite(values).all():
                bad = [c for c in block.columns if not np.isfinite(block[c].to_numpy(np.float64)).all()]
                raise MultiFairError(
                    f"{self.name}: block {modality!r} has missing or infinite values in {bad}"
                )
        if len(self.attributes) != n or len(self.ids) != n:
            raise MultiFairError(
                f"{self.name}: {len(self.attributes)} attribute rows and {len(self.ids)} ids for {n} labels"
            )

    def split(self, spec: TableSplit, attributes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{split: {"rows", "blocks"}}``: the rows of each split and its (standardised) feature blocks."""
        groups = self.attributes[list(attributes)].astype(str).agg("|".join, axis=1).to_numpy()
        rows = split_rows(self.label, groups, spec)
        out: dict[str, dict[str, Any]] = {s: {"rows": rows[s], "blocks": {}} for s in _SPLITS}
        for modality, block in self.blocks.items():
            values = block.to_numpy(np.float64)
            if spec.standardize:
                mean, std = fit_standardization(values[rows["train"]])
                values = (values - mean) / std
            for s in _SPLITS:
                out[s]["blocks"][modality] = values[rows[s]].astype(np.float32)
        return out

    def dataset(
        self,
        part: Mapping[str, Any],
        *,
        split: str,
        modalities: Sequence[str] | None,
        attributes: Sequence[str],
        unknown: str = "error",
        coding: Any = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> InMemoryDataset:
        """One split of :meth:`split` as an :class:`~monai_multifair.data.InMemoryDataset`."""
        rows = part["rows"]
        chosen = list(self.blocks) if modalities is None else list(modalities)
        metadata = pd.DataFrame({"id": [self.ids[i] for i in rows], "label": self.label[rows]})
        for attr in attributes:
            metadata[attr] = self.attributes[attr].to_numpy()[rows]
        return InMemoryDataset(
            metadata,
            modalities={m: ("tabular", part["blocks"][m]) for m in chosen},
            attributes=list(attributes),
            unknown=unknown,
            unknown_value="",
            coding=coding,
            transform=transform,
            name=f"{self.name}[{split}]",
        )


def table_source(
    name: str,
    description: str,
    loader: Callable[..., TableCohort],
    modalities: Sequence[str],
    attributes: Sequence[str],
    *,
    options: type | None = None,
) -> DataSourceSpec:
    """The :class:`~monai_multifair.plugins.DataSourceSpec` of a table source.

    Args:
        name: the ``data.source`` value.
        description: one line for ``multifair plugins``.
        loader: reads the table (from an installed package or a file; nothing is downloaded) and returns
            a :class:`TableCohort`; it runs once per :func:`~monai_multifair.data.build_datasets` call.
            Called as ``loader()`` without ``options``, as ``loader(section)`` with them.
        modalities: the cohort's blocks, each a tabular modality.
        attributes: the sensitive attributes the table holds; the first is the default.
        options: the options dataclass of the section ``data.<name>`` (``None``: the section is a
            :class:`TableSplit`). It must have a field ``split`` holding a :class:`TableSplit` (with a
            default), which says how the rows are split.

    The rows can be re-split (``split="rows"``), so ``multifair compare`` can cross-validate the source
    (``protocol: cv``) or re-draw its hold-out per seed (``protocol: holdout``).

    Raises:
        MultiFairError: ``options`` is not a dataclass with a defaulted ``split`` field.
    """
    section = ""
    if options is not None:
        fields = {f.name: f for f in dataclasses.fields(options)} if dataclasses.is_dataclass(options) else {}
        split = fields.get("split")
        if split is None or (
            split.default is dataclasses.MISSING and split.default_factory is dataclasses.MISSING
        ):
            raise MultiFairError(
                f"table_source {name!r}: `options` must be a dataclass with a field `split` (a TableSplit "
                f"with a default, e.g. field(default_factory=TableSplit)), got {options!r}"
            )
        section = "split"

    def prepare(section_options: Any, attributes: Sequence[str]) -> dict[str, Any]:
        cohort = loader() if options is None else loader(section_options)
        spec = section_options if options is None else section_options.split
        return {"cohort": cohort, "parts": cohort.split(spec, attributes)}

    def build_split(section_options: Any, split: str, prepared: Any, **common: Any) -> InMemoryDataset:
        return prepared["cohort"].dataset(prepared["parts"][split], split=split, **common)

    return DataSourceSpec(
        name=name,
        description=description,
        build_split=build_split,
        modalities={m: "tabular" for m in modalities},
        options=TableSplit if options is None else options,
        attributes=tuple(attributes),
        default_attributes=tuple(attributes[:1]),
        prepare=prepare,
        split="rows",
        split_section=section,
    )
