"""``NpzSubjectDataset``: one ``.npz`` file per subject (the Harvard FairVision / FairVLMed layouts)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from monai_multifair.core.distributed import rank
from monai_multifair.data._arrays import (
    array_to_image,
    array_to_stack,
    check_finite,
    check_image_shape,
    check_stack_shape,
    read_npz,
    resize_images,
    scalar_value,
    select_slices,
)
from monai_multifair.data.attributes import AttributeCoding
from monai_multifair.data.base import MultimodalDataset
from monai_multifair.errors import MultiFairError, close_match_hint

logger = logging.getLogger(__name__)

__all__ = [
    "LABEL_CLASSES",
    "SPLIT_FOLDERS",
    "NpzSubjectDataset",
    "check_attributes",
    "check_code_value",
    "check_label_value",
    "documented_classes",
    "select_modalities",
    "split_directory",
    "split_files",
]

#: Documented number of classes of the label keys of the Harvard layouts (glaucoma: 0 no, 1 yes).
LABEL_CLASSES: dict[str, int] = {"glaucoma": 2}


def documented_classes(label_key: str) -> str:
    """``"0 and 1"``: the documented class indices of ``label_key`` (:data:`LABEL_CLASSES`), in words."""
    values = [str(v) for v in range(LABEL_CLASSES[label_key])]
    return f"{', '.join(values[:-1])} and {values[-1]}"


#: Folder names looked for under a Harvard-layout root, per split.
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("Training", "Train", "train"),
    "val": ("Validation", "Val", "val"),
    "test": ("Test", "Testing", "test"),
}


def split_directory(root: str | Path, split: str) -> Path:
    """The folder of ``split`` (``"train"``/``"val"``/``"test"`` or a folder name) under ``root``.

    Raises:
        MultiFairError: ``root`` or the split folder does not exist (the message lists what is there).

    Example:
        >>> split_directory("/data/FairVLMed", "val")  # doctest: +SKIP
        PosixPath('/data/FairVLMed/Validation')
    """
    root = Path(root)
    if not root.is_dir():
        raise MultiFairError(f"data root {str(root)!r} is not a directory")
    candidates = SPLIT_FOLDERS.get(split, (split,))
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise MultiFairError(
        f"data root {str(root)!r} has no folder for split {split!r} (looked for {', '.join(candidates)}); "
        f"folders present: {present}" + close_match_hint(split, [*SPLIT_FOLDERS, *present])
    )


def split_files(root: str | Path, split: str) -> list[Path]:
    """The ``.npz`` files of ``split`` under ``root``, sorted by name (see :func:`split_directory`).

    Raises:
        MultiFairError: the split folder is missing or holds no ``.npz`` file.
    """
    folder = split_directory(root, split)
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise MultiFairError(f"split folder {str(folder)!r} holds no .npz files")
    return files


def select_modalities(requested: Sequence[str] | None, available: Sequence[str], layout: str) -> list[str]:
    """Check ``requested`` modality names against ``available`` (``None``: all of them).

    Raises:
        MultiFairError: an unknown or repeated name (with the known ones and a close match), or none.
    """
    if requested is None:
        return list(available)
    requested = [requested] if isinstance(requested, str) else list(requested)
    if not requested:
        raise MultiFairError(f"expected `modalities` to name at least one of {list(available)}, got []")
    for name in requested:
        if name not in available:
            raise MultiFairError(
                f"unknown modality {name!r} for the {layout} layout; known: {', '.join(available)}"
                + close_match_hint(name, available)
            )
    if len(set(requested)) != len(requested):
        raise MultiFairError(f"expected `modalities` without repeats, got {requested}")
    return requested


def check_label_value(
    value: Any, *, key: str, source: str, num_classes: int | None, declared: str = ""
) -> int:
    """The class index stored under ``key``: an integer ``>= 0`` (and ``< num_classes`` when declared).

    Raises:
        MultiFairError: naming the file, the key and the value (a text, a fraction, a negative number or
            a class outside the declared ones -- one file with ``glaucoma=2`` would otherwise turn a
            binary task into a three-class one).
    """
    integral = (
        not isinstance(value, (bool, str))
        and isinstance(value, (int, float, np.integer, np.floating))
        and float(value).is_integer()
    )
    if integral and value >= 0 and (num_classes is None or value < num_classes):
        return int(value)
    rule = (
        f"a class index in [0, {num_classes}){f' ({declared})' if declared else ''}"
        if num_classes is not None
        else "a class index >= 0"
    )
    raise MultiFairError(f"file {source!r}: key {key!r} has value {value!r}; expected {rule}")


def check_code_value(
    value: Any, *, key: str, source: str, codes: Mapping[int, str] | None, unknown_value: Any
) -> Any:
    """An attribute value stored under ``key``: an integer code of ``codes`` or the unknown code.

    Raises:
        MultiFairError: naming the file, the key and the value, with the documented codes (a string
            ``'1'`` in one file would otherwise become a group of its own).
    """
    if isinstance(value, float) and np.isnan(value):
        return value  # missing: the unknown-value policy decides
    integral = (
        not isinstance(value, (bool, str))
        and isinstance(value, (int, float, np.integer, np.floating))
        and float(value).is_integer()
    )
    if integral and (codes is None or int(value) in codes or int(value) == unknown_value):
        return int(value)
    documented = ", ".join(f"{code} ({name})" for code, name in codes.items()) if codes else "an integer code"
    kind = "text " if isinstance(value, str) else ""
    raise MultiFairError(
        f"file {source!r}: key {key!r} has {kind}value {value!r}; expected an integer code: {documented}"
        + (f", or {unknown_value} (unknown)" if unknown_value is not None else "")
    )


def check_attributes(attributes: Sequence[str], known: Sequence[str], layout: str) -> list[str]:
    """Check the selected sensitive attributes of a Harvard layout against the stored ones."""
    attributes = [attributes] if isinstance(attributes, str) else list(attributes)
    for attr in attributes:
        if attr not in known:
            raise MultiFairError(
                f"unknown sensitive attribute {attr!r} for the {layout} layout; known: {', '.join(known)}"
                + close_match_hint(attr, known)
            )
    return attributes


def _odd_sizes(
    name: str,
    keys: Mapping[str, str],
    stored: Mapping[str, list[tuple[tuple[int, int], Path]]],
    image_size: tuple[int, int],
) -> list[str]:
    """One line per modality whose files store images of more than one size (all are resized to
    ``image_size``): how many files differ from the most common size, and the first of them."""
    lines = []
    for modality, shapes in stored.items():
        counts = Counter(shape for shape, _ in shapes)
        if len(counts) < 2:
            continue
        usual, n_usual = counts.most_common(1)[0]
        odd = [(shape, path) for shape, path in shapes if shape != usual]
        shape, path = odd[0]
        lines.append(
            f"{name}: {len(odd)} of {len(shapes)} file(s) store key {keys[modality]!r} ({modality}) at another "
            f"size (H, W) than the {n_usual} others' {usual}, the first {str(path)!r} at {shape}; every image is "
            f"resized to `image_size` {list(image_size)}, which distorts these (check those files)"
        )
    return lines


def _check_image_settings(
    image_size: Sequence[int] | None, oct_slices: int | None
) -> tuple[tuple[int, ...] | None, int | None]:
    """``image_size`` as ``(H, W)`` with H, W >= 1 (or ``None``) and ``oct_slices`` None or >= 1."""
    if image_size is not None:
        image_size = tuple(int(s) for s in image_size)
        if len(image_size) != 2 or min(image_size) < 1:
            raise MultiFairError(f"expected `image_size` to be (H, W) with H, W >= 1, got {image_size}")
    if oct_slices is not None and (isinstance(oct_slices, bool) or int(oct_slices) < 1):
        raise MultiFairError(f"expected `oct_slices` to be None or an integer >= 1, got {oct_slices!r}")
    return image_size, oct_slices


def _scalar_row(
    arrays: Mapping[str, np.ndarray],
    source: str,
    *,
    label_key: str,
    attributes: Sequence[str],
    num_classes: int | None,
    label_classes_note: str,
    code_names: Mapping[str, Mapping[int, str]] | None,
    unknown_value: Any,
) -> dict[str, Any]:
    """One file's metadata row: its id, checked label and checked attribute codes."""
    label = scalar_value(arrays[label_key], key=label_key, source=source)
    row: dict[str, Any] = {
        "id": source,
        "label": check_label_value(
            label, key=label_key, source=source, num_classes=num_classes, declared=label_classes_note
        ),
    }
    for attr in attributes:
        row[attr] = check_code_value(
            scalar_value(arrays[attr], key=attr, source=source),
            key=attr,
            source=source,
            codes=(code_names or {}).get(attr),
            unknown_value=unknown_value,
        )
    return row


def _file_notes(
    arrays: Mapping[str, np.ndarray],
    path: Path,
    npz_text: Mapping[str, str],
    csv_text: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """``{modality: note}`` of one file: from its npz key, or from the notes table by file name."""
    source = str(path)
    notes: dict[str, str] = {}
    for modality, key in npz_text.items():
        note = scalar_value(arrays[key], key=key, source=source)
        if not isinstance(note, str):
            raise MultiFairError(f"file {source!r}: expected key {key!r} to hold a string, got {note!r}")
        notes[modality] = note
    for modality, table in csv_text.items():
        if path.name not in table:
            raise MultiFairError(
                f"file {source!r} has no note in the notes table ({len(table)} entries, keyed by file name)"
            )
        notes[modality] = table[path.name]
    return notes


def _tabular_vector(
    arrays: Mapping[str, np.ndarray], source: str, keys: Sequence[str], earlier: Sequence[np.ndarray]
) -> np.ndarray:
    """One file's tabular keys concatenated to a finite float32 ``[F]``, as long as the ``earlier`` files' ones."""
    parts = []
    for key in keys:
        value = arrays[key]
        if value.ndim > 1 or value.dtype.kind not in "biuf":
            raise MultiFairError(
                f"file {source!r}: expected tabular key {key!r} to be a number or a 1-D numeric "
                f"array, got dtype {value.dtype} and shape {tuple(value.shape)}"
            )
        check_finite(value, key=key, source=source, what="tabular values")
        with np.errstate(over="ignore"):
            part = value.reshape(-1).astype(np.float32)
        check_finite(part, key=key, source=source, what="tabular values within float32's range")
        parts.append(part)
    vector = np.concatenate(parts)
    if earlier and vector.shape != earlier[0].shape:
        raise MultiFairError(
            f"file {source!r}: tabular keys {list(keys)} give {vector.shape[0]} values, but the first file "
            f"gives {earlier[0].shape[0]}"
        )
    return vector


class NpzSubjectDataset(MultimodalDataset):
    """Samples stored as one ``.npz`` per subject, read with ``allow_pickle=False``.

    At construction every file's member headers are checked (presence, image layout, consistent output
    shape) and its label, attributes, tabular values and notes are read; images are loaded lazily by
    ``__getitem__``. Unsigned-integer images are scaled to [0, 1] (``uint8 / 255``); float images are
    kept as stored.

    **Missing modalities**: a file without an image or volume key (a FairVision subject without
    ``oct_bscans``) gives a sample lacking that modality (zeros of the modality's shape, ``False`` in the
    ``"present"`` mask); so does an empty note. A key that *no* file holds is an error (a misspelt key),
    and so is a sample lacking every modality.

    Args:
        files: the ``.npz`` files, in sample order.
        modalities: ``{name: (kind, source)}``; ``kind`` ``"image"``/``"volume"``: ``source`` is the npz
            key; ``"text"``: ``source`` is an npz key holding a string, or a mapping
            ``{file name: note}`` (notes read from a CSV); ``"tabular"``: ``source`` is a sequence of npz
            keys whose values (scalars or 1-D) are concatenated to a float vector ``[F]``.
        label_key: npz key of the class label.
        attributes: npz keys of the selected sensitive attributes (scalar integer codes).
        image_size: ``(H, W)`` to resize every image / slice to; ``None`` keeps the stored size, which
            must then agree across files. With ``image_size``, files storing another size than the
            most common one are logged once (a warning with their count and the first file).
        oct_slices: keep this many evenly spaced slices of each volume; ``None`` keeps all.
        unknown: unknown-value policy: ``"error"``, ``"drop"`` or ``"keep"``. See :class:`~monai_multifair.data.MultimodalDataset`.
        unknown_value: the code for "unknown" (``-1``), besides empty cells.
        coding: the training split's fitted coding (``None``: fit one here). See :class:`~monai_multifair.data.MultimodalDataset`.
        code_names: per attribute ``{code: name}`` tables; a stored value must be one of the codes or
            ``unknown_value`` (attributes without a table: any integer code).
        transform: applied to each sample dict.
        name: used in messages.
        num_classes: the declared number of classes: labels must lie in ``[0, num_classes)``
            (``None``: any class index ``>= 0``; :func:`~monai_multifair.data.build_datasets` then
            holds the validation and test labels to the training split's classes).
        label_classes_note: why ``num_classes`` holds, for messages (e.g. "glaucoma is 0/1").

    Raises:
        MultiFairError: a file is missing a label, attribute, note or tabular key (listing those
            present), is a folder or a damaged archive, has an image of the wrong shape, a label outside
            the declared classes, an attribute that is text, a fraction or outside its code table,
            NaN/inf in a tabular value, a pickled object array, or a note missing from the notes table;
            each message names the file, the key and the value. NaN/inf in an image is reported when the
            image is loaded. No file holding an image key, or a sample with no modality at all.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        modalities: Mapping[str, tuple[str, Any]],
        label_key: str,
        attributes: Sequence[str],
        image_size: Sequence[int] | None = None,
        oct_slices: int | None = None,
        unknown: str = "error",
        unknown_value: Any = -1,
        coding: AttributeCoding | None = None,
        code_names: Mapping[str, Mapping[int, str]] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        name: str = "npz",
        num_classes: int | None = None,
        label_classes_note: str = "",
    ) -> None:
        files = [Path(f) for f in files]
        if not files:
            raise MultiFairError(f"{name}: no .npz files to read")
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        self.image_size, self.oct_slices = _check_image_settings(image_size, oct_slices)
        self._spec = dict(modalities)
        self._files = files
        read_row = partial(
            _scalar_row,
            label_key=label_key,
            attributes=attributes,
            num_classes=num_classes,
            label_classes_note=label_classes_note,
            code_names=code_names,
            unknown_value=unknown_value,
        )
        rows, tab_values, out_shapes, stored, has_image = self._read_files(
            files, scalar_keys=[label_key, *attributes], read_row=read_row, name=name
        )
        if self.image_size is not None and rank() == 0:
            for line in _odd_sizes(name, self._image_keys, stored, self.image_size):
                logger.warning(line)
        frame = pd.DataFrame(rows)
        super().__init__(
            frame,
            modalities={m: kind for m, (kind, _) in self._spec.items()},
            attributes=attributes,
            unknown=unknown,
            unknown_value=unknown_value,
            coding=coding,
            code_names=code_names,
            transform=transform,
            name=name,
            num_classes=num_classes,
        )
        self._keep_rows(files, tab_values, has_image, out_shapes)

    def _read_files(
        self,
        files: list[Path],
        *,
        scalar_keys: Sequence[str],
        read_row: Callable[[Mapping[str, np.ndarray], str], dict[str, Any]],
        name: str,
    ) -> tuple[
        list[dict[str, Any]],
        dict[str, list[np.ndarray]],
        dict[str, tuple[tuple[int, ...], Path]],
        dict[str, list[tuple[tuple[int, int], Path]]],
        dict[str, list[bool]],
    ]:
        """Read every file's headers, scalars, notes and tabular values (images stay on disk)."""
        image_keys = {m: src for m, (kind, src) in self._spec.items() if kind in ("image", "volume")}
        npz_text = {
            m: src for m, (kind, src) in self._spec.items() if kind == "text" and isinstance(src, str)
        }
        csv_text = {
            m: src for m, (kind, src) in self._spec.items() if kind == "text" and not isinstance(src, str)
        }
        tabular = {m: list(src) for m, (kind, src) in self._spec.items() if kind == "tabular"}
        load_keys = list(
            dict.fromkeys([*scalar_keys, *npz_text.values(), *(k for ks in tabular.values() for k in ks)])
        )

        rows: list[dict[str, Any]] = []
        self._texts: dict[str, list[str]] = {m: [] for m in [*npz_text, *csv_text]}
        tab_values: dict[str, list[np.ndarray]] = {m: [] for m in tabular}
        out_shapes: dict[str, tuple[tuple[int, ...], Path]] = {}
        stored: dict[str, list[tuple[tuple[int, int], Path]]] = {m: [] for m in image_keys}
        has_image: dict[str, list[bool]] = {m: [] for m in image_keys}
        first_keys: list[str] = []
        for path in files:
            source = str(path)
            # image keys are optional per file (a subject without OCT: its presence mask says so)
            infos, arrays = read_npz(path, load=load_keys)
            first_keys = first_keys or sorted(infos)
            rows.append(read_row(arrays, source))
            self._check_image_headers(infos, path, image_keys, out_shapes, stored, has_image)
            for modality, note in _file_notes(arrays, path, npz_text, csv_text).items():
                self._texts[modality].append(note)
            for modality, keys in tabular.items():
                tab_values[modality].append(_tabular_vector(arrays, source, keys, tab_values[modality]))
        for modality, key in image_keys.items():
            if not any(has_image[modality]):
                raise MultiFairError(
                    f"{name}: no file holds key {key!r} (modality {modality!r}); keys of {str(files[0])!r}: "
                    f"{first_keys}" + close_match_hint(key, first_keys)
                )
        self._image_keys = image_keys
        return rows, tab_values, out_shapes, stored, has_image

    def _check_image_headers(
        self,
        infos: Mapping[str, Any],
        path: Path,
        image_keys: Mapping[str, str],
        out_shapes: dict[str, tuple[tuple[int, ...], Path]],
        stored: dict[str, list[tuple[tuple[int, int], Path]]],
        has_image: dict[str, list[bool]],
    ) -> None:
        """Record which image keys a file holds and their sizes; a shape unlike the first file's is an error."""
        source = str(path)
        for modality, key in image_keys.items():
            has_image[modality].append(key in infos)
            if key not in infos:
                continue
            shape = self._output_shape(modality, infos[key].shape, key=key, source=source)
            stored[modality].append((self._stored_size(modality, infos[key].shape, key, source), path))
            first = out_shapes.setdefault(modality, (shape, path))
            if first[0] != shape:
                raise MultiFairError(
                    f"file {source!r}: key {key!r} gives a {modality} of shape {shape}, but "
                    f"{str(first[1])!r} gives {first[0]}; set `image_size` (and `oct_slices`) so that all "
                    "samples share one shape"
                )
            if infos[key].dtype.hasobject:
                raise MultiFairError(
                    f"file {source!r}: key {key!r} holds a pickled object array, which is refused "
                    "(arrays are read with allow_pickle=False)"
                )

    def _keep_rows(
        self,
        files: list[Path],
        tab_values: dict[str, list[np.ndarray]],
        has_image: dict[str, list[bool]],
        out_shapes: dict[str, tuple[tuple[int, ...], Path]],
    ) -> None:
        """Keep the per-modality values of the kept rows; set placeholder shapes and check presence."""
        kept = self.kept_rows
        self._texts = {m: [v[i] for i in kept] for m, v in self._texts.items()}
        self._tabular = {m: torch.from_numpy(np.stack(v)[kept]) for m, v in tab_values.items()}
        self._paths = [files[i] for i in kept]
        self._has_image = {m: [flags[i] for i in kept] for m, flags in has_image.items()}
        self.placeholder_shapes = {m: shape for m, (shape, _) in out_shapes.items()}
        self.placeholder_shapes.update({m: tuple(v.shape[1:]) for m, v in self._tabular.items()})
        absent = {m: [not f for f in flags] for m, flags in self._has_image.items()}
        absent.update({m: [not t.strip() for t in texts] for m, texts in self._texts.items()})
        absent.update({m: [False] * len(kept) for m in self._tabular})
        self._check_presence(absent)

    def _stored_size(self, modality: str, shape: tuple[int, ...], key: str, source: str) -> tuple[int, int]:
        """``(H, W)`` of an image or of a volume's slices as stored in the file."""
        if self._spec[modality][0] == "image":
            return tuple(check_image_shape(shape, key=key, source=source)[1:])
        return tuple(check_stack_shape(shape, key=key, source=source)[2:])

    def _output_shape(
        self, modality: str, shape: tuple[int, ...], *, key: str, source: str
    ) -> tuple[int, ...]:
        kind = self._spec[modality][0]
        if kind == "image":
            c, h, w = check_image_shape(shape, key=key, source=source)
            return (c, *(self.image_size or (h, w)))
        s, c, h, w = check_stack_shape(shape, key=key, source=source)
        chosen = select_slices(s, self.oct_slices, key=key, source=source)
        return (len(chosen) if chosen is not None else s, c, *(self.image_size or (h, w)))

    @property
    def files(self) -> list[Path]:
        """The ``.npz`` file of every (kept) sample."""
        return list(self._paths)

    def load_modalities(self, index: int) -> dict[str, Any]:
        """Images read from the sample's file (``None`` for a key the file lacks); notes and tabular
        values from memory."""
        path = self._paths[index]
        source = str(path)
        sample: dict[str, Any] = {}
        held = [k for m, k in self._image_keys.items() if self._has_image[m][index]]
        arrays = read_npz(path, load=held)[1] if held else {}
        for modality, (kind, _) in self._spec.items():
            if kind in ("image", "volume") and not self._has_image[modality][index]:
                sample[modality] = None
            elif kind == "image":
                key = self._image_keys[modality]
                sample[modality] = resize_images(
                    array_to_image(arrays[key], key=key, source=source), self.image_size
                )
            elif kind == "volume":
                key = self._image_keys[modality]
                array = arrays[key]
                chosen = select_slices(array.shape[0], self.oct_slices, key=key, source=source)
                if chosen is not None:
                    array = array[chosen]
                sample[modality] = resize_images(
                    array_to_stack(array, key=key, source=source), self.image_size
                )
            elif kind == "text":
                sample[modality] = self._texts[modality][index]
            else:
                sample[modality] = self._tabular[modality][index].clone()
        return sample
