"""Reading arrays safely (``.npz`` headers and members, ``.npy``, ``.png``) and shaping them as tensors.

Everything here reads with ``allow_pickle=False``: an object array inside an ``.npz``/``.npy`` is a
pickle and could run code when loaded, so it is refused with an error that names the file and key.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from monai_multifair.errors import MultiFairError

__all__ = [
    "check_section_sizes",
    "ArrayInfo",
    "array_to_image",
    "array_to_stack",
    "check_finite",
    "check_image_shape",
    "check_stack_shape",
    "load_array_file",
    "read_npz",
    "resize_images",
    "scalar_value",
    "select_slices",
]


@dataclass(frozen=True)
class ArrayInfo:
    """Shape and dtype of one ``.npz`` member, read from its header without loading the data."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _pickle_error(path: Path | str, key: str) -> MultiFairError:
    return MultiFairError(
        f"file {str(path)!r}: key {key!r} holds a pickled object array, which is refused "
        "(arrays are read with allow_pickle=False); store it as a numeric or fixed-width string array"
    )


def read_npz(
    path: str | Path, load: Iterable[str] = (), require: Iterable[str] = ()
) -> tuple[dict[str, ArrayInfo], dict[str, np.ndarray]]:
    """Read the header of every member of an ``.npz`` and the data of the members in ``load``.

    Headers are read without loading the arrays, so checking the shape of a 200-slice OCT volume costs
    no more than checking a scalar.

    Args:
        path: the ``.npz`` file.
        load: keys whose arrays are returned (small ones: labels, attributes, notes).
        require: keys that must exist (``load`` keys are always required).

    Returns:
        ``(infos, arrays)``: ``infos[key]`` is an :class:`ArrayInfo` for every member; ``arrays[key]`` the
        loaded array for each key of ``load``.

    Raises:
        MultiFairError: the file is missing or not a zip archive; a required key is missing (the message
            lists the keys present); a requested key holds a pickled object array.

    Example:
        >>> infos, arrays = read_npz("data_00001.npz", load=["glaucoma"], require=["slo_fundus"])  # doctest: +SKIP
    """
    path = Path(path)
    load = list(load)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise MultiFairError(f"file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise MultiFairError(f"file {str(path)!r} is a folder, not an .npz archive") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError):
        raise MultiFairError(f"file {str(path)!r} is not a valid .npz archive (not a zip file)") from None
    except OSError as err:
        raise MultiFairError(f"file {str(path)!r} cannot be read: {err.strerror or err}") from None
    infos: dict[str, ArrayInfo] = {}
    arrays: dict[str, np.ndarray] = {}
    with archive:
        members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
        missing = [k for k in dict.fromkeys([*load, *require]) if k not in members]
        if missing:
            raise MultiFairError(
                f"file {str(path)!r} lacks key(s) {missing}; keys present: {sorted(members)}"
            )
        for key, member in members.items():
            try:
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                infos[key] = ArrayInfo(tuple(int(s) for s in shape), np.dtype(dtype))
                if key in load:
                    if infos[key].dtype.hasobject:
                        raise _pickle_error(path, key)
                    with archive.open(member) as handle:
                        arrays[key] = np.lib.format.read_array(handle, allow_pickle=False)
            except MultiFairError:
                raise
            except _CORRUPT as err:
                raise _corrupt_error(path, key, err) from None
    return infos, arrays


#: What a damaged ``.npz`` member raises while it is read (a bad CRC or header, deflate data cut
#: short, fewer bytes than the header promises).
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)


def _corrupt_error(path: Path | str, key: str, err: BaseException) -> MultiFairError:
    reason = " ".join(str(err).split()) or type(err).__name__
    return MultiFairError(
        f"file {str(path)!r}: key {key!r} is corrupt or truncated ({type(err).__name__}: {reason})"
    )


def load_array_file(path: str | Path, key: str | None = None) -> np.ndarray:
    """Load one array from a ``.npy``, ``.npz`` (``key``, or its only member) or ``.png`` file.

    Args:
        path: the file; the format is chosen by the suffix.
        key: member of an ``.npz``; may be omitted when the archive holds exactly one array.

    Returns:
        The array (``.png``: ``uint8`` ``[H, W]`` for grey, ``[H, W, 3]`` for colour).

    Raises:
        MultiFairError: unknown suffix, missing file or key, or a pickled object array.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise MultiFairError(f"file {str(path)!r} is a folder, not a {suffix or 'data'} file")
    if not path.is_file():
        raise MultiFairError(f"file {str(path)!r} does not exist")
    if suffix == ".npz":
        infos, _ = read_npz(path)
        if key is None:
            if len(infos) != 1:
                raise MultiFairError(
                    f"file {str(path)!r} holds {len(infos)} arrays {sorted(infos)}; name the one to use"
                )
            key = next(iter(infos))
        return read_npz(path, load=[key])[1][key]
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise _pickle_error(path, "<array>") from None
            raise MultiFairError(f"file {str(path)!r} is not a valid .npy file ({err})") from None
        except (EOFError, OSError) as err:
            raise MultiFairError(
                f"file {str(path)!r} is not a valid .npy file ({type(err).__name__}: {err})"
            ) from None
    if suffix == ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                mode = image.mode
                if mode not in ("L", "RGB"):
                    image = image.convert("RGB" if mode in ("RGBA", "P", "CMYK") else "L")
                return np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise MultiFairError(f"file {str(path)!r} is not a valid .png image ({err})") from None
    raise MultiFairError(f"file {str(path)!r}: unsupported suffix {suffix!r}; expected .npy, .npz or .png")


def scalar_value(array: np.ndarray, *, key: str, source: str) -> Any:
    """The single value of a 0-d or one-element array, as a Python scalar.

    Raises:
        MultiFairError: the array holds more than one value.
    """
    if array.size != 1:
        raise MultiFairError(
            f"file {source!r}: expected key {key!r} to hold one value, got shape {tuple(array.shape)}"
        )
    value = array.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


def check_image_shape(shape: Sequence[int], *, key: str, source: str) -> tuple[int, int, int]:
    """``[C, H, W]`` that :func:`array_to_image` makes of an array of ``shape``.

    Accepted: ``[H, W]`` (grey), ``[C, H, W]`` or ``[H, W, C]`` with ``C`` in {1, 3}.

    Raises:
        MultiFairError: naming the file, key and shape otherwise.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape
    if len(shape) == 3 and shape[-1] in (1, 3):
        return (shape[2], shape[0], shape[1])
    raise MultiFairError(
        f"file {source!r}: expected key {key!r} to be a 2D image of shape [H, W], [C, H, W] or [H, W, C] "
        f"with C in {{1, 3}}, got shape {shape}"
    )


def check_stack_shape(shape: Sequence[int], *, key: str, source: str) -> tuple[int, int, int, int]:
    """``[S, C, H, W]`` that :func:`array_to_stack` makes of an array of ``shape``.

    Accepted: ``[S, H, W]`` (grey B-scans) or ``[S, C, H, W]`` with ``C`` in {1, 3}.

    Raises:
        MultiFairError: naming the file, key and shape otherwise.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2])
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape
    raise MultiFairError(
        f"file {source!r}: expected key {key!r} to be a stack of 2D slices of shape [S, H, W] or "
        f"[S, C, H, W] with C in {{1, 3}}, got shape {shape}"
    )


def check_finite(array: np.ndarray, *, key: str, source: str, what: str = "image values") -> None:
    """Raise naming the file, the key, the first NaN/inf value, its index and how many there are."""
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    index = tuple(int(i) for i in bad[0])
    value = array[index] if array.ndim else array.item()
    raise MultiFairError(
        f"file {source!r}: key {key!r} holds {float(value)!r} at index {list(index)} "
        f"({len(bad)} NaN/inf value(s)); expected finite {what}"
    )


def _to_float(array: np.ndarray, *, key: str, source: str) -> torch.Tensor:
    """Float32 tensor; unsigned integers are scaled by their maximum (uint8 / 255) to [0, 1].

    NaN or infinite values (also values beyond float32's range) are an error naming the file and key.
    """
    if array.dtype.kind == "u":
        scale = float(np.iinfo(array.dtype).max)
        return torch.from_numpy(array.astype(np.float32) / scale)
    if array.dtype.kind in "bif":
        check_finite(array, key=key, source=source)
        with np.errstate(over="ignore"):
            values = np.array(array, dtype=np.float32)  # a copy: samples never alias storage
        check_finite(values, key=key, source=source, what="values within float32's range")
        return torch.from_numpy(values)
    raise MultiFairError(
        f"file {source!r}: expected key {key!r} to hold numbers, got dtype {array.dtype} "
        "(object arrays and strings are not images)"
    )


def array_to_image(array: np.ndarray, *, key: str, source: str) -> torch.Tensor:
    """A 2D image array as a float tensor ``[C, H, W]`` (layouts of :func:`check_image_shape`)."""
    check_image_shape(array.shape, key=key, source=source)
    tensor = _to_float(array, key=key, source=source)
    if tensor.ndim == 2:
        return tensor.unsqueeze(0)
    if tensor.shape[0] in (1, 3):
        return tensor
    return tensor.permute(2, 0, 1).contiguous()


def array_to_stack(array: np.ndarray, *, key: str, source: str) -> torch.Tensor:
    """A stack of slices as a float tensor ``[S, C, H, W]`` (layouts of :func:`check_stack_shape`)."""
    check_stack_shape(array.shape, key=key, source=source)
    tensor = _to_float(array, key=key, source=source)
    return tensor.unsqueeze(1) if tensor.ndim == 3 else tensor


def resize_images(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize of ``[C, H, W]`` or ``[S, C, H, W]`` to ``size = (H', W')`` (antialiased).

    ``None`` or a size equal to the current one returns the input unchanged.
    """
    if size is None or tuple(images.shape[-2:]) == tuple(size):
        return images
    batch = images.unsqueeze(0) if images.ndim == 3 else images
    out = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return out.squeeze(0) if images.ndim == 3 else out


def select_slices(num_slices: int, keep: int | None, *, key: str, source: str) -> np.ndarray | None:
    """Indices of ``keep`` evenly spaced slices out of ``num_slices`` (``None``: keep all).

    Example:
        >>> select_slices(200, 5, key="oct_bscans", source="x").tolist()
        [0, 50, 100, 149, 199]
    """
    if keep is None:
        return None
    if keep > num_slices:
        raise MultiFairError(
            f"file {source!r}: expected `oct_slices` <= the {num_slices} slices of key {key!r}, got {keep}"
        )
    return np.linspace(0, num_slices - 1, keep).round().astype(np.int64)


def check_section_sizes(options: Any, section: str) -> None:
    """Check the ``image_size`` (two integers >= 1) and ``oct_slices`` (an integer >= 1) of an options
    section ``data.<section>`` that has them; ``None`` leaves the size as it is."""
    size = getattr(options, "image_size", None)
    if size is not None and (
        len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)
    ):
        raise MultiFairError(
            f"config key `data.{section}.image_size`: expected two integers >= 1 ([H, W]), got {list(size)!r}"
        )
    slices = getattr(options, "oct_slices", None)
    if slices is not None and (isinstance(slices, bool) or not isinstance(slices, int) or slices < 1):
        raise MultiFairError(
            f"config key `data.{section}.oct_slices`: expected an integer >= 1, got {slices!r}"
        )
