"""What a run's checkpoints hold besides the model: adapters that give ``state_dict()`` / ``load_state_dict()``
to the pieces of a run that lack them (random state, AMP scaler, selection record), and reading a model
state back with a clear error. Writing the files is :mod:`~monai_multifair.engine.checkpoint_files`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ignite.engine import Engine

from monai_multifair.engine.selection import SelectionScore
from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders.weights import load_tensors_file

__all__ = [
    "CHECKPOINT_PATTERN",
    "RNGState",
    "ScalerState",
    "SelectionRecord",
    "apply_model_state",
    "checkpoint_epoch",
    "load_model_state",
]

#: File names of the per-epoch ("last") checkpoints (:class:`~monai_multifair.engine.checkpoint_files.EpochCheckpointWriter`).
CHECKPOINT_PATTERN = re.compile(r"^checkpoint_epoch=(\d+)\.pt$")


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch in a ``checkpoint_epoch=N.pt`` file name, else ``None``."""
    match = CHECKPOINT_PATTERN.match(path.name)
    return int(match.group(1)) if match else None


class SelectionRecord:
    """Saved with the best model: the epoch and validation metrics it was selected at."""

    def __init__(self, evaluator: Engine, metric: str) -> None:
        self.evaluator = evaluator
        self.metric = metric
        self.loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in self.evaluator.state.metrics.items() if k != SelectionScore.KEY}
        return {"epoch": int(self.evaluator.state.epoch), "metric": self.metric, "validation": metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loaded = dict(state)


class RNGState:
    """The global torch random state (CPU and CUDA): dropout masks continue exactly after a resume."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a checkpoint loaded with map_location=cuda holds the states on the GPU; torch wants CPU bytes
        torch.set_rng_state(state["cpu"].cpu())
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


class ScalerState:
    """The CUDA AMP grad scaler of a MONAI trainer as a checkpointable object.

    ``SupervisedTrainer.run`` creates its ``GradScaler`` anew right before ``Events.STARTED``, so the
    scaler is looked up on the trainer when the checkpoint is written (epoch end) and read (start).
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        scaler = getattr(self.trainer, "scaler", None)
        return dict(scaler.state_dict()) if scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scaler = getattr(self.trainer, "scaler", None)
        if scaler is not None and state:
            scaler.load_state_dict(state)


def load_model_state(path: Path, device: torch.device) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(model state dict, selection record or None)`` of a checkpoint file (``weights_only`` loading).

    Raises:
        MultiFairError: a missing, unreadable or foreign file, or NaN/inf weights, naming the file.
    """
    if not path.is_file():
        raise MultiFairError(f"checkpoint {str(path)!r} does not exist or is not a file")
    content = load_tensors_file(path, what="checkpoint", map_location=device)
    if not isinstance(content, Mapping):
        raise MultiFairError(f"checkpoint {str(path)!r} holds a {type(content).__name__}, expected a dict")
    if "model" in content and isinstance(content["model"], Mapping):
        return _finite(dict(content["model"]), path), content.get("selection")
    if content and all(isinstance(v, torch.Tensor) for v in content.values()):
        return _finite(dict(content), path), None
    raise MultiFairError(
        f"checkpoint {str(path)!r} has no `model` entry (keys: {sorted(map(str, content))[:8]}); expected a "
        "checkpoint written by `multifair train` or a model state dict"
    )


def _finite(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state``, refused when a floating-point tensor holds NaN or inf (a diverged or damaged model
    would otherwise surface later as non-finite scores)."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise MultiFairError(
                    f"checkpoint {str(path)!r} holds {bad} NaN/inf value(s) in {name!r}; expected finite "
                    "weights (the file is damaged, or training diverged: lower trainer.lr)"
                )
    return state


def apply_model_state(network: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    """Load ``state`` into ``network``; a mismatch names the checkpoint and the first differences."""
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).split("\n\t")
        raise MultiFairError(
            f"checkpoint {str(path)!r} does not fit the network this config builds: "
            + "; ".join(d.strip() for d in detail[1:4] if d.strip())
            + " (was it trained with another config?)"
        ) from None
