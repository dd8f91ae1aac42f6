"""The run folder: what a run writes there, whether it may start, continue or start over, and the config
that a resumed run must match."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai_multifair.config import RunConfig, load_config
from monai_multifair.engine.checkpoint_state import checkpoint_epoch
from monai_multifair.engine.outputs import REPORT_FILES
from monai_multifair.errors import MultiFairError

__all__ = [
    "BEST_CHECKPOINT",
    "RESUMABLE_KEYS",
    "RUN_FILES",
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
        for path in folder.glob("checkpoint_epoch=*.pt"):
            path.unlink()
        (folder / BEST_CHECKPOINT).unlink(missing_ok=True)


def open_run_folder(config: RunConfig, run_dir: Path, *, resume: bool, overwrite: bool) -> Path | None:
    """Make ``run_dir`` ready for a training run; returns the checkpoint to resume from (or ``None``).

    A folder that already holds a run is continued (``resume``), cleared (``overwrite``) or refused.

    Raises:
        MultiFairError: ``resume`` and ``overwrite`` together, a file where the folder should be,
            nothing to resume, a resumed config that differs, or a run in the way.
    """
    if resume and overwrite:
        raise MultiFairError("`resume` and `overwrite` exclude each other: continue the run or start it over")
    if run_dir.exists() and not run_dir.is_dir():
        raise MultiFairError(f"run folder {str(run_dir)!r} is an existing file, expected a folder")
    ckpt_dir = run_dir / "checkpoints"
    last = latest_checkpoint(run_dir)
    if resume:
        if last is None:
            raise MultiFairError(
                f"nothing to resume in {str(ckpt_dir)!r}: no checkpoint_epoch=N.pt; start the run without --resume"
            )
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
    return last if resume else None


def with_output_dir(config: RunConfig, run_dir: Path) -> RunConfig:
    """``config`` with ``output.dir`` set to ``run_dir`` (so config.yaml names the folder it is in)."""
    return dataclasses.replace(config, output=dataclasses.replace(config.output, dir=str(run_dir)))
