"""``FairVLMedDataset``: the Harvard FairVLMed (FairCLIP) layout (SLO fundus + clinical note)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from monai_multifair.data._arrays import check_section_sizes
from monai_multifair.data.attributes import FAIRVLMED_CODES, AttributeCoding
from monai_multifair.data.npz_dataset import (
    LABEL_CLASSES,
    NpzSubjectDataset,
    check_attributes,
    documented_classes,
    select_modalities,
    split_files,
)
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = [
    "FAIRVLMED_ATTRIBUTES",
    "FAIRVLMED_MODALITIES",
    "NOTES_FILE",
    "FairVLMedConfig",
    "FairVLMedDataset",
    "read_notes_table",
]

#: Default notes table at the root of a FairVLMed folder.
NOTES_FILE = "data_summary.csv"
#: Modality names of the FairVLMed layout and their kinds.
FAIRVLMED_MODALITIES: dict[str, str] = {"fundus": "image", "notes": "text", "tabular": "tabular"}
#: Sensitive attributes stored in FairVLMed files (integer codes, ``-1`` unknown).
FAIRVLMED_ATTRIBUTES: tuple[str, ...] = tuple(FAIRVLMED_CODES)


@dataclass
class FairVLMedConfig:
    """``data.fairvlmed``: where a FairVLMed copy is and how its samples are read.

    Attributes:
        root: the folder holding ``Training/``, ``Validation/``, ``Test/`` and the notes table. Required.
        label_key: npz key of the label.
        image_size: ``[H, W]`` to resize fundus images to (``None``: as stored).
        notes_file: the notes table, relative to ``root``.
        filename_column: its file-name column.
        note_column: its note column.
        note_source: ``"csv"`` (the notes table) or ``"npz"`` (each file's ``note`` key).
        tabular_keys: npz keys making the ``tabular`` modality (e.g. ``[age, md]``); the modality exists
            only with at least one key.
    """

    root: str
    label_key: str = "glaucoma"
    image_size: tuple[int, int] | None = None
    notes_file: str = NOTES_FILE
    filename_column: str = "filename"
    note_column: str = "note"
    note_source: Literal["csv", "npz"] = "csv"
    tabular_keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_section_sizes(self, "fairvlmed")


def read_notes_table(
    path: str | Path, *, filename_column: str = "filename", note_column: str = "note"
) -> dict[str, str]:
    """Read ``{file name: note}`` from a FairVLMed notes table (CSV).

    Layout (one row per ``.npz``; other columns, e.g. ``use`` or the demographics of the official
    release, are not read)::

        filename,use,note
        data_00001.npz,training,"61 y/o female ... IOP 24 ... superior arcuate defect ..."

    ``filename`` is the ``.npz`` file name without folder (a path is reduced to its name). An empty
    note cell is kept as ``""``: the dataset treats that sample's note as missing (``"present"`` mask).

    Raises:
        MultiFairError: missing file or column (with the columns present and a close match), or a file
            listed twice; messages name the table and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MultiFairError(f"notes table {str(path)!r} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise MultiFairError(f"notes table {str(path)!r} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        raise MultiFairError(f"notes table {str(path)!r} could not be read as CSV: {message}") from None
    for column in (filename_column, note_column):
        if column not in table.columns:
            raise MultiFairError(
                f"notes table {str(path)!r} lacks column {column!r}; columns present: {list(table.columns)}"
                + close_match_hint(column, table.columns)
            )
    notes: dict[str, str] = {}
    for filename, note in zip(table[filename_column], table[note_column]):
        name = Path(filename.strip()).name
        if name in notes:
            raise MultiFairError(f"notes table {str(path)!r} lists file {name!r} more than once")
        notes[name] = note
    return notes


class FairVLMedDataset(NpzSubjectDataset):
    """FairVLMed data: ``root/{Training,Validation,Test}/data_XXXXX.npz`` plus ``root/data_summary.csv``.

    Each file holds ``slo_fundus`` (2D), ``glaucoma`` (0/1), ``age``, ``gender`` (0 female, 1 male),
    ``race`` (0 Asian, 1 Black, 2 White), ``ethnicity`` (0 non-Hispanic, 1 Hispanic), ``language``
    (0 English, 1 Spanish, 2 other) and usually ``maritalstatus``; ``-1`` means unknown. Notes come
    from the notes table (:func:`read_notes_table`), or from the npz key ``note`` with
    ``note_source="npz"``.

    Samples: ``"fundus"`` float ``[C, H, W]``, ``"notes"`` ``str``, ``"tabular"`` float ``[F]`` (the
    values of ``tabular_keys``, e.g. ``("age",)``), ``"label"``, one key per attribute, ``"group"``,
    ``"id"``.

    Args:
        root: the folder holding the split folders and the notes table.
        split: ``"train"``, ``"val"``, ``"test"`` or a folder name.
        modalities: any of ``"fundus"``, ``"notes"``, ``"tabular"`` (default fundus and notes;
            ``"tabular"`` needs ``tabular_keys``).
        attributes: sensitive attributes whose intersection defines the groups (default ``("race",)``).
        label_key: npz key of the label (default ``"glaucoma"``).
        unknown: ``"error"`` | ``"drop"`` | ``"keep"`` for ``-1`` in a selected attribute.
        notes_file: the notes table, relative to ``root`` (default ``data_summary.csv``).
        filename_column: the notes table's file-name column.
        note_column: the notes table's note column.
        note_source: ``"csv"`` (the notes table) or ``"npz"`` (the ``note`` key of each file).
        tabular_keys: npz keys (numbers or 1-D arrays, e.g. ``"age"``, ``"md"``, ``"tds"``) for ``"tabular"``.
        image_size: ``(H, W)`` to resize fundus images to.
        coding: the training split's :class:`~monai_multifair.data.attributes.AttributeCoding`.
        transform: applied to each sample dict.
        num_classes: the number of classes of ``label_key``; default: the documented one
            (:data:`~monai_multifair.data.npz_dataset.LABEL_CLASSES`, ``glaucoma``: 2), so a file with
            ``glaucoma=2`` is an error naming it; ``None`` for other keys: any class index.

    Example:
        >>> train = FairVLMedDataset("/data/FairVLMed", "train", attributes=["race", "gender"],
        ...                          unknown="drop", image_size=(224, 224))  # doctest: +SKIP
        >>> test = FairVLMedDataset("/data/FairVLMed", "test", attributes=["race", "gender"],
        ...                         unknown="drop", image_size=(224, 224), coding=train.coding)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        modalities: Sequence[str] | None = ("fundus", "notes"),
        attributes: Sequence[str] = ("race",),
        label_key: str = "glaucoma",
        unknown: str = "error",
        notes_file: str | Path = NOTES_FILE,
        filename_column: str = "filename",
        note_column: str = "note",
        note_source: str = "csv",
        tabular_keys: Sequence[str] = (),
        image_size: Sequence[int] | None = None,
        coding: AttributeCoding | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        num_classes: int | None = None,
    ) -> None:
        files = split_files(root, split)
        chosen = select_modalities(modalities, tuple(FAIRVLMED_MODALITIES), "FairVLMed")
        spec: dict[str, tuple[str, Any]] = {}
        for modality in chosen:
            if modality == "fundus":
                spec[modality] = ("image", "slo_fundus")
            elif modality == "notes":
                if note_source == "csv":
                    table_path = Path(root) / notes_file
                    table = read_notes_table(
                        table_path, filename_column=filename_column, note_column=note_column
                    )
                    absent = [f for f in files if f.name not in table]
                    if absent:
                        raise MultiFairError(
                            f"file {str(absent[0])!r} has no note in the notes table {str(table_path)!r} "
                            f"({len(absent)} of {len(files)} files of split {split!r} have none)"
                        )
                    spec[modality] = ("text", table)
                elif note_source == "npz":
                    spec[modality] = ("text", "note")
                else:
                    raise MultiFairError(
                        f"expected `note_source` to be 'csv' or 'npz', got {note_source!r}"
                        + close_match_hint(str(note_source), ("csv", "npz"))
                    )
            else:
                keys = [tabular_keys] if isinstance(tabular_keys, str) else list(tabular_keys)
                if not keys:
                    raise MultiFairError(
                        "modality 'tabular' needs `tabular_keys` (npz keys such as 'age', 'md', 'tds'), got none"
                    )
                spec[modality] = ("tabular", keys)
        super().__init__(
            files,
            modalities=spec,
            label_key=label_key,
            attributes=check_attributes(attributes, FAIRVLMED_ATTRIBUTES, "FairVLMed"),
            image_size=image_size,
            unknown=unknown,
            coding=coding,
            code_names=FAIRVLMED_CODES,
            transform=transform,
            name=f"FairVLMed[{split}]",
            num_classes=num_classes if num_classes is not None else LABEL_CLASSES.get(label_key),
            label_classes_note=(
                f"the documented values of {label_key!r} are {documented_classes(label_key)}"
                if num_classes is None and label_key in LABEL_CLASSES
                else ""
            ),
        )


def _fairvlmed_split(options: FairVLMedConfig, split: str, prepared: Any, **common: Any) -> FairVLMedDataset:
    return FairVLMedDataset(
        options.root,
        split,
        label_key=options.label_key,
        notes_file=options.notes_file,
        filename_column=options.filename_column,
        note_column=options.note_column,
        note_source=options.note_source,
        tabular_keys=options.tabular_keys,
        image_size=options.image_size,
        **common,
    )


def _fairvlmed_modalities(options: FairVLMedConfig) -> dict[str, str]:
    """Fundus and notes; ``tabular`` too when ``tabular_keys`` names npz keys for it."""
    return {m: kind for m, kind in FAIRVLMED_MODALITIES.items() if m != "tabular" or options.tabular_keys}


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``fairvlmed`` (options: :class:`FairVLMedConfig`)."""
    return [
        DataSourceSpec(
            name="fairvlmed",
            description="Harvard-FairVLMed: per-subject npz with SLO fundus, a notes table, tabular keys",
            build_split=_fairvlmed_split,
            modalities=_fairvlmed_modalities,
            options=FairVLMedConfig,
            options_required=True,
            default_modalities=("fundus", "notes"),
            attributes=FAIRVLMED_ATTRIBUTES,
        )
    ]
