"""Atomic file writes: a file is either its complete new content or untouched, never half-written.

Every writer here writes to a temporary file in the target's own folder (``.<name>.<random>.tmp``,
so it is on the same file system), flushes and ``fsync``s it, then renames it over the target with
``os.replace`` (atomic on POSIX and Windows) and ``fsync``s the folder so the rename survives a power
loss. On any failure -- an ``OSError`` such as a full disk, an exception while serialising, or
``KeyboardInterrupt`` -- the temporary file is removed and the target keeps its previous content (or
stays absent). A ``SIGKILL`` cannot run clean-up code: it may leave a ``.*.tmp`` file behind, but
never a truncated target; :func:`remove_stale_temporaries` clears such leftovers.

For checkpoints, :func:`atomic_torch_save` returns a :class:`FileRecord` (size and SHA-256 of the
bytes written, hashed while writing) that can be stored next to the file and checked with
:func:`verify_file` before loading it.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = atomic_write_text(folder / "metrics.json", '{"auc": 0.9}\\n')
    >>> path.read_text()
    '{"auc": 0.9}\\n'
    >>> record = file_record(path)
    >>> record.size, verify_file(path, record) is None
    (13, True)
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FileRecord",
    "atomic_open",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_text",
    "file_record",
    "remove_stale_temporaries",
    "verify_file",
]

_TMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRecord:
    """Size and SHA-256 of a file's bytes, to detect a damaged or truncated file later.

    Attributes:
        size: number of bytes.
        sha256: hex digest of the bytes.
    """

    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON/YAML), restored by :meth:`from_dict`."""
        return {"size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileRecord:
        """Rebuild a record from :meth:`to_dict`.

        Raises:
            ValueError: ``data`` lacks ``size``/``sha256`` or holds values of the wrong type.
        """
        size, digest = data.get("size"), data.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"expected a file record `size` >= 0, got {size!r}")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"expected a file record `sha256` of 64 hex digits, got {digest!r}")
        return cls(size=size, sha256=digest)


def _with_filename(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` (an ``OSError`` from ``write`` often carries no file name)."""
    if err.filename is not None or err.errno is None:
        return err
    return OSError(err.errno, err.strerror or str(err), str(path))  # keeps the subclass (PermissionError...)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def _create_temporary(target: Path) -> tuple[Path, int]:
    """A new empty file next to ``target`` (mode 0o666 minus the umask, like ``open(..., "w")``)."""
    while True:
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
        try:
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as err:  # name the target, not the temporary the user never asked for
            raise OSError(err.errno, err.strerror or str(err), str(target)) from None


class _HashingWriter:
    """A binary file wrapper that hashes and counts what is written through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self.size += view.nbytes
        return self._handle.write(view)

    def flush(self) -> None:
        self._handle.flush()

    def record(self) -> FileRecord:
        return FileRecord(size=self.size, sha256=self._hash.hexdigest())


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """Yield ``(temporary path, binary handle)``; on success the data is flushed and fsynced (not yet
    renamed); on any exception the temporary is removed and the exception propagates."""
    temporary, fd = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield temporary, handle
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise _with_filename(err, target) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _commit(temporary: Path, target: Path) -> None:
    try:
        os.replace(temporary, target)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _with_filename(err, target) from None
        raise
    _fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open ``path`` for writing bytes; the content replaces ``path`` only when the block succeeds.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "data.bin"
        >>> with atomic_open(target) as handle:
        ...     _ = handle.write(b"complete")
        >>> target.read_bytes()
        b'complete'
    """
    target = Path(path)
    with _staged(target) as (temporary, handle):
        yield handle
    _commit(temporary, target)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    Raises:
        OSError: the folder is missing or not writable, the disk is full...; the message names
            ``path`` and ``path`` keeps its previous content.
    """
    target = Path(path)
    with atomic_open(target) as handle:
        handle.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (encoded with ``encoding``); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_files(
    contents: Mapping[str | os.PathLike[str], str | bytes], *, encoding: str = "utf-8"
) -> list[Path]:
    """Write several files all-or-nothing: every file is staged first, then all are renamed.

    When staging any of them fails (full disk, permissions), none of the targets is touched and every
    temporary is removed. Renames do not allocate space, so once staging has succeeded the set is
    replaced as a whole in practice (each rename is atomic; a crash between two renames can leave
    some new and some old files, each complete).

    Args:
        contents: ``{path: text or bytes}``.
        encoding: encoding of the ``str`` contents.

    Returns:
        The paths, in the given order.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, content in contents.items():
            target = Path(path)
            data = content.encode(encoding) if isinstance(content, str) else bytes(content)
            with _staged(target) as (temporary, handle):
                handle.write(data)
            staged.append((temporary, target))
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for index, (temporary, target) in enumerate(staged):
        try:
            _commit(temporary, target)
        except BaseException:
            for later, _ in staged[index + 1 :]:
                later.unlink(missing_ok=True)
            raise
    return [target for _, target in staged]


def atomic_torch_save(obj: Any, path: str | os.PathLike[str], **kwargs: Any) -> FileRecord:
    """``torch.save(obj, path)`` written atomically; returns the size and SHA-256 of the bytes.

    The hash is computed while writing (no second read of a large checkpoint). ``kwargs`` go to
    ``torch.save`` (e.g. ``pickle_protocol``).

    Example:
        >>> import tempfile, pathlib, torch
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> record = atomic_torch_save({"step": 3}, target)
        >>> verify_file(target, record) is None, torch.load(target)["step"]
        (True, 3)
    """
    import torch

    target = Path(path)
    with _staged(target) as (temporary, handle):
        writer = _HashingWriter(handle)
        torch.save(obj, writer, **kwargs)  # type: ignore[arg-type]
    _commit(temporary, target)
    return writer.record()


def file_record(path: str | os.PathLike[str]) -> FileRecord:
    """Size and SHA-256 of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileRecord(size=size, sha256=digest.hexdigest())


def verify_file(path: str | os.PathLike[str], record: FileRecord) -> str | None:
    """Check ``path`` against ``record``: ``None`` when it matches, else the reason as one line.

    The size is compared first (cheap; a truncated file fails here), then the SHA-256.

    Example:
        >>> verify_file("/nonexistent/checkpoint.pt", FileRecord(1, "0" * 64))
        "'/nonexistent/checkpoint.pt' is missing"
    """
    target = Path(path)
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return f"{str(target)!r} is missing"
    if size != record.size:
        return f"{str(target)!r} has {size} bytes, its record says {record.size} (truncated or replaced)"
    actual = file_record(target)
    if actual.sha256 != record.sha256:
        return f"{str(target)!r} does not match its SHA-256 record (damaged or replaced)"
    return None


def remove_stale_temporaries(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove the temporaries that killed writers left in ``folder`` (those of ``name`` only, if given).

    Only call this when no other process writes into ``folder`` (e.g. while holding its run lock).

    Returns:
        The removed paths.
    """
    pattern = f".{'*' if name is None else glob.escape(name)}.{'[0-9a-f]' * 12}{_TMP_SUFFIX}"
    removed = []
    for candidate in sorted(Path(folder).glob(pattern)):
        if candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed
