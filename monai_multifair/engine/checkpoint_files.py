"""Checkpoint files that survive a kill: written atomically with a size and SHA-256 record, the previous
one removed only once the new one is complete, and the newest intact one found for ``--resume``.

A run folder's ``checkpoints/`` holds ``checkpoint_epoch=N.pt`` (the last epoch: everything needed to
resume) and ``best.pt`` (the selected model), each next to a record ``<file>.json`` (size and SHA-256 of
its bytes, :class:`~monai_multifair.atomic_io.FileRecord`). A file is written to a temporary file,
fsynced and renamed (:func:`~monai_multifair.atomic_io.atomic_torch_save`), then its record is written
the same way; only then is the previous epoch's checkpoint removed. A kill at any moment therefore leaves
either the new checkpoint with its record or the previous one with its own; a checkpoint without a record
(killed between the two writes) or one that does not match its record is not trusted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai_multifair.atomic_io import (
    FileRecord,
    atomic_torch_save,
    atomic_write_text,
    remove_stale_temporaries,
    verify_file,
)
from monai_multifair.core.distributed import rank
from monai_multifair.engine.checkpoint_state import checkpoint_epoch
from monai_multifair.engine.selection import SelectionScore
from monai_multifair.errors import MultiFairError

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = [
    "BestModelWriter",
    "EpochCheckpointWriter",
    "check_checkpoint_record",
    "checkpoint_state",
    "intact_checkpoints",
    "record_path",
    "save_checkpoint",
    "verify_checkpoint",
]

RECORD_SUFFIX = ".json"


def record_path(path: Path) -> Path:
    """The record file of a checkpoint: ``<file>.json``."""
    return path.with_name(path.name + RECORD_SUFFIX)


def checkpoint_state(objects: Mapping[str, Any]) -> dict[str, Any]:
    """``{name: object.state_dict()}``, the layout ``CheckpointLoader`` restores."""
    return {name: obj.state_dict() for name, obj in objects.items()}


def save_checkpoint(state: Mapping[str, Any], path: Path) -> FileRecord:
    """Write ``state`` to ``path`` and then its record, both atomically; returns the record."""
    record = atomic_torch_save(dict(state), path)
    atomic_write_text(record_path(path), json.dumps(record.to_dict()) + "\n")
    return record


def verify_checkpoint(path: Path) -> str | None:
    """``None`` when ``path`` matches its record, else why it cannot be trusted (one line)."""
    record_file = record_path(path)
    if not record_file.is_file():
        return f"{path.name} has no record {record_file.name} (the run was stopped while writing it)"
    try:
        record = FileRecord.from_dict(json.loads(record_file.read_text(encoding="utf-8")))
    except (ValueError, OSError) as error:
        return f"the record {record_file.name} is unreadable ({error})"
    problem = verify_file(path, record)
    return None if problem is None else f"{path.name}: {problem.replace(repr(str(path)), 'the file')}"


def check_checkpoint_record(path: Path) -> str | None:
    """Before a checkpoint is loaded (``evaluate``, the best model after training): check it against
    its record when it has one.

    Returns:
        ``None`` when ``path`` matches its record (or is not a file: loading it reports that); a note
        when it has no record (a checkpoint from elsewhere, or a bare state dict): it is loaded unchecked.

    Raises:
        MultiFairError: the file does not match its record (changed after it was written: damaged,
            truncated or replaced) or the record is unreadable; one line naming both files.
    """
    path = Path(path)
    record_file = record_path(path)
    if not path.is_file():
        return None
    if not record_file.is_file():
        return (
            f"checkpoint {str(path)!r} has no record {record_file.name} (size and SHA-256); "
            "it was loaded without an integrity check"
        )
    try:
        data = json.loads(record_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        record = FileRecord.from_dict(data)
    except (ValueError, OSError) as error:
        raise MultiFairError(
            f"cannot check checkpoint {str(path)!r}: its record {record_file.name} is unreadable ({error}); "
            "remove the record to load the checkpoint unchecked"
        ) from None
    problem = verify_file(path, record)
    if problem is not None:
        raise MultiFairError(
            f"checkpoint {str(path)!r} fails its integrity check against {record_file.name}: "
            f"{problem.replace(repr(str(path)), 'the file')}; refused"
        )
    return None


def intact_checkpoints(folder: Path) -> tuple[list[Path], list[str]]:
    """``(intact, skipped)``: the ``checkpoint_epoch=N.pt`` files of ``folder`` that match their
    records, newest first, and one line per file that does not."""
    candidates = sorted(
        (
            (checkpoint_epoch(p), p)
            for p in folder.glob("checkpoint_epoch=*.pt")
            if checkpoint_epoch(p) is not None
        ),
        reverse=True,
    )
    intact, skipped = [], []
    for _, path in candidates:
        problem = verify_checkpoint(path)
        if problem is None:
            intact.append(path)
        else:
            skipped.append(problem)
    return intact, skipped


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    record_path(path).unlink(missing_ok=True)


class EpochCheckpointWriter:
    """At the trainer's ``EPOCH_COMPLETED``: write ``checkpoint_epoch=N.pt`` (and its record), then remove
    the older ones. Rank 0 alone writes under ``torch.distributed``.

    Args:
        folder: the run's ``checkpoints/``.
        objects: ``{name: object with state_dict()}`` to save (model, optimizer, trainer, method...).
        log: receives one line when leftovers of a killed write are removed.
    """

    def __init__(
        self, folder: Path, objects: Mapping[str, Any], log: Callable[[str], None] | None = None
    ) -> None:
        self.folder = Path(folder)
        self.objects = dict(objects)
        self.log = log

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def started(self, engine: Engine) -> None:
        """Remove temporaries a killed writer left (the run folder is locked by this run)."""
        if rank() != 0:
            return
        removed = remove_stale_temporaries(self.folder)
        if removed and self.log is not None:
            self.log(f"removed {len(removed)} unfinished checkpoint file(s) of an interrupted write")

    def __call__(self, engine: Engine) -> None:
        if rank() != 0:
            return
        epoch = int(engine.state.epoch)
        path = self.folder / f"checkpoint_epoch={epoch}.pt"
        save_checkpoint(checkpoint_state(self.objects), path)
        for older in self.folder.glob("checkpoint_epoch=*.pt"):
            number = checkpoint_epoch(older)
            if number is not None and number != epoch:
                _remove(older)


class BestModelWriter:
    """At the evaluator's ``EPOCH_COMPLETED`` (after :class:`~monai_multifair.engine.selection.SelectionScore`):
    when the selection score beats the best so far, write ``best.pt`` (the model and the selection record)
    atomically with its record. Ties keep the earlier epoch. Its own state (the best score) is saved in
    the epoch checkpoints so that a resumed run keeps selecting as an uninterrupted one.

    Args:
        path: ``checkpoints/best.pt``.
        objects: ``{"model": network, "selection": SelectionRecord}``.
    """

    def __init__(self, path: Path, objects: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.objects = dict(objects)
        self.best_score = -math.inf
        self.saved = False

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        score = float(engine.state.metrics[SelectionScore.KEY])
        if self.saved and not score > self.best_score:
            return
        self.best_score, self.saved = score, True
        if rank() == 0:
            save_checkpoint(checkpoint_state(self.objects), self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "saved": self.saved}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.saved = bool(state["saved"])
