"""``ManifestDataset``: a CSV (or DataFrame) listing image files, notes, tabular columns and attributes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from monai_multifair.data._arrays import (
    array_to_image,
    array_to_stack,
    check_section_sizes,
    load_array_file,
    resize_images,
)
from monai_multifair.data.attributes import AttributeCoding
from monai_multifair.data.base import MultimodalDataset
from monai_multifair.data.tables import TableSplit, fit_standardization, split_rows
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = ["ManifestConfig", "ManifestDataset", "fit_tabular_scaling"]


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str, role: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise MultiFairError(
                f"manifest {source!r} lacks {role} column {column!r}; columns present: {list(frame.columns)}"
                + close_match_hint(column, frame.columns)
            )


def _read_manifest(path: Path) -> pd.DataFrame:
    """The manifest CSV; an empty, header-only, unparsable or non-UTF-8 file is an error naming it."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MultiFairError(f"manifest {str(path)!r} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        raise MultiFairError(f"manifest {str(path)!r} could not be read as CSV: {message}") from None
    if len(frame) == 0:
        raise MultiFairError(
            f"manifest {str(path)!r} has a header ({', '.join(map(str, frame.columns))}) but no rows"
        )
    return frame


@dataclass
class ManifestConfig:
    """``data.manifest``: the columns of a manifest CSV (see :class:`~monai_multifair.data.ManifestDataset`).

    Attributes:
        path: the CSV file (relative to the working directory). Required.
        images: ``{modality: column}`` of 2D image paths (``.png``, ``.npy``, ``.npz``).
        volumes: ``{modality: column}`` of slice-stack paths (``.npy``, ``.npz``).
        texts: ``{modality: column}`` of notes.
        tabular: ``{modality: [columns]}`` of numeric values.
        npz_keys: ``{modality: key}`` inside ``.npz`` files.
        label_column: the class label column.
        split_column: the column whose values ``train``, ``val``, ``test`` assign the splits (a fixed
            split). Not read when :attr:`split` is given.
        split: re-split the rows instead (:class:`~monai_multifair.data.TableSplit`: a stratified
            hold-out drawn with ``seed``/``test_seed``, or fold ``fold`` of ``folds``), stratified by label x
            group; ``multifair compare`` sets it for ``protocol: cv`` and ``protocol: holdout``. Its
            ``standardize`` key is not used: :attr:`standardize` decides.
        standardize: standardise every tabular column with the mean and standard deviation of the
            training split's rows (blank rows left out), fitted on the training split only; the other
            splits use the training statistics.
        id_column: column naming each row (default ``row <i>``).
        base_dir: folder that relative file paths start from (default: the CSV's folder).
        image_size: ``[H, W]`` to resize images (and slices) to (``None``: as stored).
    """

    path: str
    images: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    tabular: dict[str, list[str]] = field(default_factory=dict)
    npz_keys: dict[str, str] = field(default_factory=dict)
    label_column: str = "label"
    split_column: str = "split"
    id_column: str | None = None
    base_dir: str | None = None
    image_size: tuple[int, int] | None = None
    split: TableSplit | None = None
    standardize: bool = True

    def __post_init__(self) -> None:
        check_section_sizes(self, "manifest")
        if self.split is not None and not self.split.standardize:
            raise MultiFairError(
                "config key `data.manifest.split.standardize`: not used by the manifest; set "
                "`data.manifest.standardize: false` instead"
            )
        seen: dict[str, str] = {}
        for kind, mapping in (
            ("images", self.images),
            ("volumes", self.volumes),
            ("texts", self.texts),
            ("tabular", self.tabular),
        ):
            for modality in mapping:
                if modality in seen:
                    raise MultiFairError(
                        f"config key `data.manifest.{kind}.{modality}`: modality {modality!r} is also given in "
                        f"`data.manifest.{seen[modality]}`"
                    )
                seen[modality] = kind
        if not seen:
            raise MultiFairError(
                "config section `data.manifest`: expected at least one modality in `images`, `volumes`, "
                "`texts` or `tabular`, got none"
            )

    def modality_kinds(self) -> dict[str, str]:
        """``{modality: kind}`` in the order images, volumes, texts, tabular."""
        kinds = {m: "image" for m in self.images}
        kinds.update({m: "volume" for m in self.volumes})
        kinds.update({m: "text" for m in self.texts})
        kinds.update({m: "tabular" for m in self.tabular})
        return kinds


def _blank(value: Any) -> bool:
    """An empty manifest cell: NaN (what pandas reads), ``None`` or a string of whitespace."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


def _load_frame(
    manifest: str | Path | pd.DataFrame, base_dir: str | Path | None
) -> tuple[pd.DataFrame, str, Path]:
    """The manifest rows, the name messages give their source, and the folder relative paths start from."""
    if isinstance(manifest, pd.DataFrame):
        return manifest.copy(), "<DataFrame>", Path(base_dir) if base_dir is not None else Path.cwd()
    path = Path(manifest)
    if not path.is_file():
        raise MultiFairError(f"manifest {str(path)!r} does not exist")
    return _read_manifest(path), str(path), Path(base_dir) if base_dir is not None else path.parent


def _modality_kinds(
    images: Mapping[str, str],
    volumes: Mapping[str, str],
    texts: Mapping[str, str],
    tabular: Mapping[str, list[str]],
    npz_keys: Mapping[str, str],
) -> dict[str, str]:
    """``{modality: kind}``; a modality given twice, none at all, or a stray ``npz_keys`` entry is an error."""
    kinds: dict[str, str] = {}
    for mapping, kind in ((images, "image"), (volumes, "volume"), (texts, "text"), (tabular, "tabular")):
        for modality in mapping:
            if modality in kinds:
                raise MultiFairError(
                    f"modality {modality!r} is given twice (as {kinds[modality]} and {kind})"
                )
            kinds[modality] = kind
    if not kinds:
        raise MultiFairError("expected at least one modality in `images`, `volumes`, `texts` or `tabular`")
    stray = sorted(set(npz_keys) - set(images) - set(volumes))
    if stray:
        raise MultiFairError(f"`npz_keys` names modalities {stray} that are not image or volume columns")
    return kinds


def _select_split(
    frame: pd.DataFrame, source: str, split: str | None, split_column: str, rows: Sequence[int] | None = None
) -> pd.DataFrame:
    """The rows at positions ``rows`` when given, else those whose ``split_column`` equals ``split`` (all
    rows for ``None``); a split with no rows is an error."""
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0 or rows.min() < 0 or rows.max() >= len(frame):
            raise MultiFairError(
                f"expected `rows` to be a non-empty list of row positions in [0, {len(frame)}) of manifest "
                f"{source!r}, got {rows.size} row(s)"
                + (f" from {rows.min()} to {rows.max()}" if rows.size else "")
            )
        return frame.iloc[rows]
    if split is None:
        return frame
    _require_columns(frame, [split_column], source, "split")
    values = frame[split_column].astype(str)
    if not (values == str(split)).any():
        present = sorted(values.unique().tolist())
        raise MultiFairError(
            f"manifest {source!r} has no rows with {split_column}={split!r}; values present: {present}"
            + close_match_hint(str(split), present)
        )
    return frame[values == str(split)]


def _row_ids(
    frame: pd.DataFrame, source: str, split: str | None, id_column: str | None, index: Sequence[int]
) -> tuple[list[str], str]:
    """Each row's id (from ``id_column`` or ``"<source> row <i>"``, ``i`` its manifest position) and the
    dataset's name for messages."""
    name = f"manifest[{split}]" if split is not None else "manifest"
    if id_column is None:
        return [f"{source} row {i}" for i in index], name
    _require_columns(frame, [id_column], source, "id")
    name += f" {source}"  # messages name the file: the ids alone do not
    return frame[id_column].astype(str).tolist(), name


def _file_paths(
    frame: pd.DataFrame, ids: Sequence[str], name: str, base: Path, columns: Mapping[str, str]
) -> dict[str, list[Path | None]]:
    """``{modality: [file or None]}`` of the image and volume columns; a non-path or missing file is an error."""
    paths: dict[str, list[Path | None]] = {}
    for modality, column in columns.items():
        paths[modality] = []
        for sample_id, value in zip(ids, frame[column].tolist()):
            if _blank(value):
                paths[modality].append(None)
                continue
            if not isinstance(value, str):
                raise MultiFairError(
                    f"{name}: {sample_id}: column {column!r} holds {value!r}, expected a file path"
                )
            file = Path(value) if Path(value).is_absolute() else base / value
            if not file.is_file():
                raise MultiFairError(
                    f"{name}: {sample_id}: column {column!r} names {str(file)!r}, which does not exist"
                )
            paths[modality].append(file)
    return paths


def _notes(
    frame: pd.DataFrame, ids: Sequence[str], name: str, texts: Mapping[str, str]
) -> dict[str, list[str]]:
    """``{modality: [note]}`` of the text columns (``""`` for a blank cell); a non-string cell is an error."""
    notes: dict[str, list[str]] = {}
    for modality, column in texts.items():
        notes[modality] = []
        for sample_id, value in zip(ids, frame[column].tolist()):
            if _blank(value):
                value = ""
            elif not isinstance(value, str):
                raise MultiFairError(
                    f"{name}: {sample_id}: text column {column!r} holds {value!r}, expected a note"
                )
            notes[modality].append(value)
    return notes


def _tabular_values(
    frame: pd.DataFrame, ids: Sequence[str], name: str, tabular: Mapping[str, list[str]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``{modality: float32 [N, F]}`` of the tabular columns and ``{modality: [N] bool}`` of all-blank rows."""
    values: dict[str, np.ndarray] = {}
    tab_absent: dict[str, np.ndarray] = {}
    for modality, columns in tabular.items():
        block = frame[columns]
        cells = block.to_numpy(dtype=object)
        blank = np.array([[_blank(v) for v in row] for row in cells], dtype=bool).reshape(cells.shape)
        tab_absent[modality] = blank.all(axis=1)
        numeric = block.apply(pd.to_numeric, errors="coerce")
        bad = numeric.isna() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        bad = bad.to_numpy() & ~tab_absent[modality][:, None]
        if bad.any():
            row, col = np.argwhere(bad)[0]
            value = block.iloc[row, col]
            value = value.item() if isinstance(value, np.generic) else value
            raise MultiFairError(
                f"{name}: {ids[row]}: tabular column {columns[col]!r} has {value!r}; expected a finite number"
            )
        values[modality] = np.nan_to_num(numeric.to_numpy(np.float32, na_value=np.nan), nan=0.0)
    return values, tab_absent


def fit_tabular_scaling(
    values: Mapping[str, np.ndarray], absent: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{modality: (mean, std)}`` of each tabular block ``[N, F]`` over its present rows (``absent`` marks
    all-blank rows); a constant column gets std 1 (it is only centred).

    Raises:
        MultiFairError: a tabular modality with no present row (nothing to fit on).
    """
    out = {}
    for modality, block in values.items():
        present = block[~np.asarray(absent[modality], dtype=bool)].astype(np.float64)
        if len(present) == 0:
            raise MultiFairError(
                f"cannot standardise tabular modality {modality!r}: the training split has no row with its values"
            )
        out[modality] = fit_standardization(present)
    return out


def _scale(
    values: dict[str, np.ndarray],
    absent: Mapping[str, np.ndarray],
    scaling: Mapping[str, tuple[Any, Any]] | None,
    name: str,
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Standardise ``values`` in place with ``scaling`` (absent rows stay 0); return it as arrays."""
    if scaling is None:
        return None
    missing = sorted(set(values) - set(scaling))
    if missing:
        raise MultiFairError(f"{name}: `tabular_scaling` has no (mean, std) for tabular modality {missing}")
    out = {}
    for modality, block in values.items():
        mean, std = (np.asarray(v, dtype=np.float64) for v in scaling[modality])
        if mean.shape != (block.shape[1],) or std.shape != (block.shape[1],) or not (std > 0).all():
            raise MultiFairError(
                f"{name}: `tabular_scaling[{modality!r}]` must be (mean, std) of {block.shape[1]} value(s) each, "
                f"std > 0; got shapes {mean.shape} and {std.shape}"
            )
        scaled = ((block - mean) / std).astype(np.float32)
        scaled[np.asarray(absent[modality], dtype=bool)] = 0.0
        values[modality] = scaled
        out[modality] = (mean, std)
    return out


class ManifestDataset(MultimodalDataset):
    """Samples described by one manifest row each.

    Manifest columns (names are arguments; any number of each kind)::

        id,split,fundus_path,oct_path,note,age,iop,race,sex,label
        p001,train,img/p001.png,oct/p001.npy,"IOP 24, cupping",61,24,Black,F,1

    - image columns (``images``): paths to ``.png``, ``.npy`` or ``.npz`` files (relative to
      ``base_dir``) giving float ``[C, H, W]``; ``.npz`` files hold one array or name it in ``npz_keys``;
    - volume columns (``volumes``): ``.npy``/``.npz`` stacks giving float ``[S, C, H, W]``;
    - text columns (``texts``): the raw note, passed through as ``str``;
    - tabular modalities (``tabular``): a modality name mapped to numeric columns, giving float ``[F]``;
    - attribute columns: strings or integer codes; an empty cell (or ``unknown_value``) is unknown;
    - the label column: integer class indices.

    **Missing modalities**: a blank image, volume or note cell, or a tabular modality whose cells are all
    blank, gives a sample lacking that modality: zeros of the modality's shape (read from the first file
    of the column) or ``""``, and ``False`` in the ``"present"`` mask. A tabular modality with only
    *some* cells blank is an error (impute it first), and so is a row with no modality at all.

    Files are checked for existence at construction and read by ``__getitem__`` with
    ``allow_pickle=False``; unsigned-integer images are scaled to [0, 1].

    Args:
        manifest: path of the CSV, or a DataFrame.
        images: ``{modality: column}`` of 2D image paths.
        volumes: ``{modality: column}`` of slice-stack paths.
        texts: ``{modality: column}`` of notes.
        tabular: ``{modality: [columns]}`` of numeric values.
        attributes: sensitive attribute columns whose intersection defines the groups.
        label_column: the class label column.
        split: keep only rows whose ``split_column`` equals this (``None``: all rows); with ``rows``, only
            the split's name in messages.
        rows: keep the rows at these positions of the manifest instead (a re-drawn split).
        tabular_scaling: ``{modality: (mean [F], std [F])}``: each tabular modality's present rows become
            ``(x - mean) / std`` (see :func:`fit_tabular_scaling`; ``None``: values as stored).
        split_column: the column holding ``train``/``val``/``test`` (any strings).
        id_column: column naming each row (default: ``"row <i>"``).
        npz_keys: ``{modality: key}`` inside ``.npz`` files.
        base_dir: folder that relative paths start from (default: the CSV's folder, or the working
            directory for a DataFrame).
        image_size: ``(H, W)`` to resize images (and slices) to; without it all files of a modality must
            share a shape for batching.
        unknown: unknown-value policy: ``"error"``, ``"drop"`` or ``"keep"``. See :class:`~monai_multifair.data.MultimodalDataset`.
        unknown_value: the code for "unknown" (``-1``), besides empty cells.
        coding: the training split's fitted coding (``None``: fit one here). See :class:`~monai_multifair.data.MultimodalDataset`.
        transform: applied to each sample dict.

    Example:
        >>> ds = ManifestDataset("cohort.csv", images={"fundus": "fundus_path"}, texts={"notes": "note"},
        ...                      tabular={"vitals": ["age", "iop"]}, attributes=["race"], split="train")  # doctest: +SKIP
    """

    def __init__(
        self,
        manifest: str | Path | pd.DataFrame,
        *,
        images: Mapping[str, str] | None = None,
        volumes: Mapping[str, str] | None = None,
        texts: Mapping[str, str] | None = None,
        tabular: Mapping[str, Sequence[str]] | None = None,
        attributes: Sequence[str] = (),
        label_column: str = "label",
        split: str | None = None,
        split_column: str = "split",
        rows: Sequence[int] | None = None,
        tabular_scaling: Mapping[str, tuple[Any, Any]] | None = None,
        id_column: str | None = None,
        npz_keys: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
        image_size: Sequence[int] | None = None,
        unknown: str = "error",
        unknown_value: Any = -1,
        coding: AttributeCoding | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        frame, source, base = _load_frame(manifest, base_dir)
        images, volumes, texts = dict(images or {}), dict(volumes or {}), dict(texts or {})
        tabular = {m: [c] if isinstance(c, str) else list(c) for m, c in (tabular or {}).items()}
        self._npz_keys = dict(npz_keys or {})
        kinds = _modality_kinds(images, volumes, texts, tabular, self._npz_keys)
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        if not attributes:
            raise MultiFairError(
                "expected `attributes` to name at least one sensitive attribute column, got []"
            )
        _require_columns(frame, [*images.values(), *volumes.values()], source, "image path")
        _require_columns(frame, list(texts.values()), source, "text")
        _require_columns(frame, [c for cols in tabular.values() for c in cols], source, "tabular")
        _require_columns(frame, [*attributes, label_column], source, "attribute/label")
        frame = _select_split(frame, source, split, split_column, rows)
        index = frame.index  # positions in the manifest: ids of unnamed rows say which row they are
        frame = frame.reset_index(drop=True)
        ids, name = _row_ids(frame, source, split, id_column, index)
        self.base_dir = base
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)

        file_columns = {**images, **volumes}
        paths = _file_paths(frame, ids, name, base, file_columns)
        notes = _notes(frame, ids, name, texts)
        values, tab_absent = _tabular_values(frame, ids, name, tabular)
        self.tabular_scaling = _scale(values, tab_absent, tabular_scaling, name)

        metadata = pd.DataFrame(
            {"id": ids, "label": frame[label_column].tolist(), "_row": np.arange(len(frame))}
        )
        for attr in attributes:
            metadata[attr] = frame[attr].astype(object).tolist()
        super().__init__(
            metadata,
            modalities=kinds,
            attributes=attributes,
            unknown=unknown,
            unknown_value=unknown_value,
            coding=coding,
            transform=transform,
            name=name,
        )
        self._keep_rows(paths, notes, values, tab_absent, file_columns, source)

    @property
    def tabular_values(self) -> dict[str, torch.Tensor]:
        """``{modality: float [N, F]}`` of the tabular modalities (kept rows; blank rows are zeros)."""
        return dict(self._values)

    def standardize_tabular(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Fit :func:`fit_tabular_scaling` on this dataset's kept rows, standardise them in place and
        return the scaling (pass it as ``tabular_scaling`` to the other splits).

        Raises:
            MultiFairError: the values are already scaled, or a modality has no present row.
        """
        if self.tabular_scaling is not None:
            raise MultiFairError(f"{self.name}: the tabular values are already standardised")
        absent = self._tab_absent
        scaling = fit_tabular_scaling({m: v.numpy() for m, v in self._values.items()}, absent)
        values = {m: v.numpy().copy() for m, v in self._values.items()}
        self.tabular_scaling = _scale(values, absent, scaling, self.name)
        self._values = {m: torch.from_numpy(v) for m, v in values.items()}
        return scaling

    def _keep_rows(
        self,
        paths: dict[str, list[Path | None]],
        notes: dict[str, list[str]],
        values: dict[str, np.ndarray],
        tab_absent: dict[str, np.ndarray],
        file_columns: Mapping[str, str],
        source: str,
    ) -> None:
        """Keep the per-modality columns of the kept rows; set placeholder shapes and check presence."""
        kept = self.kept_rows
        self._paths = {m: [p[i] for i in kept] for m, p in paths.items()}
        self._notes = {m: [n[i] for i in kept] for m, n in notes.items()}
        self._values = {m: torch.from_numpy(v[kept]) for m, v in values.items()}
        self._tab_absent = {m: a[kept] for m, a in tab_absent.items()}
        for modality, files in self._paths.items():
            if all(f is None for f in files):
                column = file_columns[modality]
                raise MultiFairError(
                    f"manifest {source!r}: column {column!r} (modality {modality!r}) names no file in any kept row"
                )
            if any(f is None for f in files):
                first = next(i for i, f in enumerate(files) if f is not None)
                self.placeholder_shapes[modality] = tuple(self._read_image(modality, first).shape)
        self.placeholder_shapes.update({m: (v.shape[1],) for m, v in self._values.items()})
        absent = {m: [f is None for f in files] for m, files in self._paths.items()}
        absent.update({m: [not n.strip() for n in notes] for m, notes in self._notes.items()})
        absent.update({m: list(a) for m, a in self._tab_absent.items()})
        self._check_presence(absent)

    def _read_image(self, modality: str, index: int) -> torch.Tensor:
        path = self._paths[modality][index]
        array = load_array_file(path, self._npz_keys.get(modality))
        convert = array_to_image if self.modality_kinds[modality] == "image" else array_to_stack
        tensor = convert(array, key=self._npz_keys.get(modality, path.suffix), source=str(path))
        return resize_images(tensor, self.image_size)

    def load_modalities(self, index: int) -> dict[str, Any]:
        """Images read from their files; notes and tabular values from memory."""
        sample: dict[str, Any] = {}
        for modality, kind in self.modality_kinds.items():
            if kind in ("image", "volume"):
                missing = self._paths[modality][index] is None
                sample[modality] = None if missing else self._read_image(modality, index)
            elif kind == "text":
                sample[modality] = self._notes[modality][index]
            elif self._tab_absent[modality][index]:
                sample[modality] = None
            else:
                sample[modality] = self._values[modality][index].clone()
        return sample


def _manifest_prepare(options: ManifestConfig, attributes: list[str]) -> dict[str, Any]:
    """The rows of each split (re-drawn when ``options.split`` is given); the tabular scaling is fitted
    when the training split is built (on its kept rows), then used by the other splits."""
    rows: dict[str, np.ndarray] | None = None
    if options.split is not None:
        frame, source, _ = _load_frame(options.path, options.base_dir)
        _require_columns(frame, [*attributes, options.label_column], source, "attribute/label")
        cells = frame[attributes].astype(object).where(frame[attributes].notna(), "")
        groups = cells.astype(str).agg("|".join, axis=1).to_numpy()
        rows = split_rows(frame[options.label_column].astype(str).to_numpy(), groups, options.split)
    return {"rows": rows, "scaling": None}


def _manifest_dataset(
    options: ManifestConfig,
    split: str,
    rows: Mapping[str, np.ndarray] | None,
    scaling: Mapping[str, tuple[Any, Any]] | None,
    *,
    modalities: Sequence[str] | None,
    **common: Any,
) -> ManifestDataset:
    chosen = set(modalities) if modalities is not None else None

    def pick(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {m: v for m, v in mapping.items() if chosen is None or m in chosen}

    tabular = pick(options.tabular)
    return ManifestDataset(
        options.path,
        images=pick(options.images),
        volumes=pick(options.volumes),
        texts=pick(options.texts),
        tabular=tabular,
        npz_keys=pick(options.npz_keys),
        label_column=options.label_column,
        split=split,
        split_column=options.split_column,
        rows=None if rows is None else rows[split],
        tabular_scaling=None if scaling is None else {m: scaling[m] for m in tabular},
        id_column=options.id_column,
        base_dir=options.base_dir,
        image_size=options.image_size,
        **common,
    )


def _manifest_split(options: ManifestConfig, split: str, prepared: Any, **common: Any) -> ManifestDataset:
    if split == "train" or not options.standardize:
        dataset = _manifest_dataset(options, split, prepared["rows"], None, **common)
        if options.standardize and dataset.tabular_values:
            prepared["scaling"] = dataset.standardize_tabular()
        return dataset
    if prepared["scaling"] is None and any(
        m in options.tabular for m in common.get("modalities") or options.tabular
    ):
        raise MultiFairError(
            f"manifest split {split!r} is built before the training split that fits its scaling"
        )
    return _manifest_dataset(options, split, prepared["rows"], prepared["scaling"], **common)


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``manifest`` (options: :class:`ManifestConfig`)."""
    return [
        DataSourceSpec(
            name="manifest",
            description="a CSV of image/volume paths, notes, tabular columns, labels, splits and attributes",
            build_split=_manifest_split,
            modalities=ManifestConfig.modality_kinds,
            options=ManifestConfig,
            options_required=True,
            prepare=_manifest_prepare,
            split="rows",
            split_section="split",
        )
    ]
