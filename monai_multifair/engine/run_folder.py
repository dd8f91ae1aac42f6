"""The run folder: what a run writes there, whether it may start, continue or start over, and the config
that a resumed run must match."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_multifair.atomic_io import remove_stale_temporaries
from monai_multifair.config import RunConfig, load_config
from monai_multifair.engine.checkpoint_files import intact_checkpoints, record_path
from monai_multifair.engine.checkpoint_state import checkpoint_epoch
from monai_multifair.engine.outputs import REPORT_FILES
from monai_multifair.errors import MultiFairError

__all__ = [
    "BEST_CHECKPOINT",
    "EVALUATION_FILES",
    "LOCK_FILE",
    "RESUMABLE_KEYS",
    "RUN_FILES",
    "RunFolderLock",
    "check_evaluation_folder",
    "check_resume",
    "clear_run",
    "latest_checkpoint",
    "open_run_folder",
    "with_output_dir",
]

#: Files a run writes in its folder (besides ``checkpoints/``).
RUN_FILES: tuple[str, ...] = (
    "config.yaml",
    "metrics.json",
    "predictions.csv",
    "training_stats.csv",
    "validation.csv",
    *REPORT_FILES.values(),
)
#: Config keys that may differ when a run is resumed (they do not change what was trained so far).
RESUMABLE_KEYS: tuple[str, ...] = (
    "trainer.epochs",
    "trainer.num_workers",
    "trainer.device",
    "evaluation.n_boot",
    "evaluation.ci_level",
    "evaluation.random_state",
    "postprocessing",
    "pipeline.pin_memory",
    "pipeline.cache",
    "pipeline.cache_dir",
    "pipeline.cache_rate",
    "output",
    "method.options.validate_args",  # value checks only: they change no number
)
#: The best model's checkpoint in ``checkpoints/``.
BEST_CHECKPOINT = "best.pt"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The ``checkpoints/checkpoint_epoch=N.pt`` of a run folder with the largest ``N`` (``None``: none)."""
    folder = Path(run_dir) / "checkpoints"
    found = (
        [(checkpoint_epoch(p), p) for p in folder.glob("checkpoint_epoch=*.pt")] if folder.is_dir() else []
    )
    found = [(e, p) for e, p in found if e is not None]
    return max(found)[1] if found else None


def _flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and key not in ("encoders",) and value:
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def check_resume(config: RunConfig, run_dir: Path, last: Path) -> None:
    """The config of a resumed run must equal the saved one, except :data:`RESUMABLE_KEYS`.

    Raises:
        MultiFairError: the saved config is missing, a key differs (the first five named, with both
            values), or the run already trained more epochs than ``trainer.epochs``.
    """
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise MultiFairError(f"cannot resume {str(run_dir)!r}: its config.yaml is missing")
    saved = _flatten(load_config(saved_path, check_encoders=False).to_dict())
    current = _flatten(config.to_dict())
    allowed = tuple(RESUMABLE_KEYS)
    differing = sorted(
        key
        for key in set(saved) | set(current)
        if saved.get(key) != current.get(key)
        and not any(key == a or key.startswith(f"{a}.") for a in allowed)
    )
    if differing:
        shown = ", ".join(f"`{k}` ({saved.get(k)!r} -> {current.get(k)!r})" for k in differing[:5])
        raise MultiFairError(
            f"cannot resume {str(run_dir)!r}: the config differs from the run's config.yaml in {shown}"
            + (f" and {len(differing) - 5} more" if len(differing) > 5 else "")
            + f"; only {', '.join(RESUMABLE_KEYS)} may change (or start a new run with another --output)"
        )
    done = checkpoint_epoch(last) or 0
    if done > config.trainer.epochs:
        raise MultiFairError(
            f"config key `trainer.epochs`: the run already trained {done} epochs ({last.name}), got "
            f"{config.trainer.epochs}; set it to at least {done}"
        )


def clear_run(run_dir: Path) -> None:
    """Remove the files a previous run wrote (only those: other files in the folder stay)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    folder = run_dir / "checkpoints"
    if folder.is_dir():
        for path in [*folder.glob("checkpoint_epoch=*.pt"), folder / BEST_CHECKPOINT]:
            path.unlink(missing_ok=True)
            record_path(path).unlink(missing_ok=True)
        remove_stale_temporaries(folder)
    remove_stale_temporaries(run_dir)


def open_run_folder(
    config: RunConfig, run_dir: Path, *, resume: bool, overwrite: bool
) -> tuple[Path | None, list[str]]:
    """Make ``run_dir`` ready for a training run; returns the checkpoint to resume from (or ``None``) and
    one line per damaged checkpoint that was skipped.

    A folder that already holds a run is continued (``resume``, from the newest checkpoint that matches
    its record), cleared (``overwrite``) or refused.

    Raises:
        MultiFairError: ``resume`` and ``overwrite`` together, a file where the folder should be,
            nothing (intact) to resume, a resumed config that differs, or a run in the way.
    """
    if resume and overwrite:
        raise MultiFairError("`resume` and `overwrite` exclude each other: continue the run or start it over")
    if run_dir.exists() and not run_dir.is_dir():
        raise MultiFairError(f"run folder {str(run_dir)!r} is an existing file, expected a folder")
    ckpt_dir = run_dir / "checkpoints"
    last = latest_checkpoint(run_dir)
    skipped: list[str] = []
    if resume:
        if last is None:
            raise MultiFairError(
                f"nothing to resume in {str(ckpt_dir)!r}: no checkpoint_epoch=N.pt; start the run without --resume"
            )
        intact, skipped = intact_checkpoints(ckpt_dir)
        if not intact:
            raise MultiFairError(
                f"nothing intact to resume in {str(ckpt_dir)!r}: {'; '.join(skipped)}; start the run over with "
                "--overwrite"
            )
        last = intact[0]
        check_resume(config, run_dir, last)
    elif last is not None or (ckpt_dir / BEST_CHECKPOINT).exists():
        if not overwrite:
            raise MultiFairError(
                f"run folder {str(run_dir)!r} already holds a run ({(last or ckpt_dir / BEST_CHECKPOINT).name}); "
                "continue it with --resume, start it over with --overwrite, or choose another --output"
            )
        clear_run(run_dir)
    elif overwrite:
        clear_run(run_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(run_dir)  # left by a killed writer; the caller holds the folder's lock
    return (last if resume else None), skipped


#: What an evaluation writes into its output folder.
EVALUATION_FILES: tuple[str, ...] = ("config.yaml", "metrics.json", "predictions.csv", *REPORT_FILES.values())


def check_evaluation_folder(folder: Path, *, overwrite: bool) -> None:
    """An evaluation may write into ``folder``: not a training run's own folder (whose results it would
    replace), and no earlier evaluation's files unless ``overwrite``.

    Raises:
        MultiFairError: naming the folder, what is in the way and what to do.
    """
    if folder.exists() and not folder.is_dir():
        raise MultiFairError(f"output folder {str(folder)!r} is an existing file, expected a folder")
    if (folder / "checkpoints").is_dir() or (folder / "training_stats.csv").is_file():
        raise MultiFairError(
            f"output folder {str(folder)!r} is a training run's folder: an evaluation must not replace that "
            "run's results; write it to another folder (the default is <run>/evaluation)"
        )
    existing = [name for name in EVALUATION_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise MultiFairError(
            f"output folder {str(folder)!r} already holds results ({', '.join(existing)}); replace them with "
            "--overwrite or choose another --output"
        )


def with_output_dir(config: RunConfig, run_dir: Path) -> RunConfig:
    """``config`` with ``output.dir`` set to ``run_dir`` (so config.yaml names the folder it is in)."""
    return dataclasses.replace(config, output=dataclasses.replace(config.output, dir=str(run_dir)))


LOCK_FILE = ".multifair.lock"


class RunFolderLock:
    """An exclusive lock on a run folder, held while a run (or an evaluation) writes into it.

    The lock is an ``flock`` on ``<folder>/.multifair.lock``, which records the owner (pid, host, start
    time, command). The operating system releases it when the owner ends, however it ends, so a lock
    left by a killed run never blocks the next one: the next run takes it over and reports it
    (:attr:`stale_owner`). Where ``fcntl`` is missing (Windows), the file is created exclusively instead,
    and a stale one must be removed by hand (the error says so).

    Raises:
        MultiFairError: another live process holds the folder (its pid, host and start time named).

    Example:
        >>> with RunFolderLock(Path("runs/mine"), "multifair train"):  # doctest: +SKIP
        ...     train(config, "runs/mine")
    """

    def __init__(self, folder: Path, command: str = "multifair") -> None:
        self.folder = Path(folder)
        self.command = command
        self.path = self.folder / LOCK_FILE
        self.stale_owner: dict[str, Any] | None = None
        self._fd: int | None = None

    def _owner(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
            owner = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _busy(self, owner: dict[str, Any] | None) -> MultiFairError:
        who = (
            f"pid {owner.get('pid')} on host {owner.get('host')!r} ({owner.get('command')}, since {owner.get('started')})"
            if owner
            else "another process"
        )
        return MultiFairError(
            f"run folder {str(self.folder)!r} is in use by {who}: two runs must not write into one folder; "
            "wait for it to finish or choose another --output"
        )

    def acquire(self) -> RunFolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.command,
        }
        try:
            import fcntl
        except ImportError:  # Windows: an exclusively created file
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                error = self._busy(self._owner())
                raise MultiFairError(
                    f"{error}; if that process has ended, remove {str(self.path)!r}"
                ) from None
        else:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._busy(self._owner()) from None
            self.stale_owner = self._owner()  # a lock file with an owner nobody holds: that run was killed
            os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> RunFolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
