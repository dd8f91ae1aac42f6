"""What a fairness method is to the run engine: :class:`FairnessMethod` (training) and :class:`PostProcessor`.

A **training method** changes how a model is trained: MONAI handlers attached to the
``SupervisedTrainer``, optionally per-sample draw weights for the training sampler, and state that
checkpoints save and restore. The engine calls, in this order::

    method.setup(context)            # the network, device, training labels and groups are known
    method.sampling_weights()        # None, or [N] draw weights for the training sampler
    method.train_handlers()          # attached to the trainer (after the loader's epoch shuffle)
    method.state_dict() / load_state_dict(...)   # in every checkpoint, under "method"

A **post-processor** maps the trained model's scores to decisions, fitted on the validation split and
applied to the test split; it composes with any training method.

Methods come from the plugin registry (:func:`monai_multifair.plugins.create_method`); the built-ins are
in this package, one module each.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import KW_ONLY, InitVar, dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from monai_multifair._deprecation import metric_label, renamed_keyword
from monai_multifair.core.distributed import world_size
from monai_multifair.core.sample_weighting import SampleWeighting
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers.sample_weighting_handler import SampleWeightingHandler

__all__ = [
    "FairnessMethod",
    "LossWeightingMethod",
    "MethodContext",
    "PostProcessor",
    "SampleWeighting",
    "all_reduce_sum",
    "cell_ids",
    "cell_counts",
    "cell_names",
    "cells_search_space",
]


@dataclass
class MethodContext:
    """What a training method may read when it is set up.

    Attributes:
        network: the (unwrapped) network being trained.
        device: where training runs.
        num_classes: ``C``.
        num_groups: ``K`` (group ids in ``[0, K)``).
        train_labels: ``[N]`` class labels of the training split (CPU, long).
        train_groups: ``[N]`` group ids of the training split (CPU, long).
        accumulation_steps: micro-batches per optimizer step.
        stats_interval: publish statistics every this many iterations (and at each epoch end).
        seed: the run's seed.
        group_key: batch key of the group ids.
        label_key: batch key of the labels.
        presence_key: batch key of a ``[B, M]`` modality-presence mask, if the data has one.
        process_group: ``torch.distributed`` group of the replicas (default the world).
        group_labels: the groups' labels (keyword only; default ``"0"``, ``"1"``, ...); statistics'
            metric names use them (a ``/`` becomes ``|`` there).
        group_names: deprecated name of ``group_labels`` (keyword only).
    """

    network: nn.Module
    device: torch.device
    num_classes: int
    num_groups: int
    train_labels: Tensor
    train_groups: Tensor
    accumulation_steps: int = 1
    stats_interval: int = 10
    seed: int = 0
    group_key: str = "group"
    label_key: str = "label"
    presence_key: str | None = None
    process_group: Any | None = None
    _: KW_ONLY
    group_labels: tuple[str, ...] | None = None
    group_names: InitVar[tuple[str, ...] | None] = None

    def __post_init__(self, group_names: tuple[str, ...] | None) -> None:
        labels = renamed_keyword(
            "MethodContext", "group_names", "group_labels", group_names, self.group_labels
        )
        if labels is None:
            labels = range(self.num_groups)
        self.group_labels = tuple(str(g) for g in labels)
        if len(self.group_labels) != self.num_groups:
            raise MultiFairError(
                f"expected MethodContext `group_labels` to have num_groups={self.num_groups} entries, got "
                f"{len(self.group_labels)}"
            )


class FairnessMethod:
    """A training method; the base class trains plainly (what ``erm`` is).

    Subclasses override what they change. ``options`` is the validated options object of the method's
    ``MethodSpec`` (``None`` for a method without options).

    Attributes:
        name: the registry name (set by the built-in specs; a plugin's spec may set it too).
        metric_prefix: prefix of the statistics the method's handlers publish in ``engine.state.metrics``
            (the run's ``training_stats.csv`` records them without the prefix).
        audit_statistics: the audit report shows the training statistics (MultiFair's modality and group
            factors) of this method.
    """

    name: str = "erm"
    metric_prefix: str = "method/"
    audit_statistics: bool = False

    def __init__(self, options: Any = None) -> None:
        self.options = options
        self.context: MethodContext | None = None

    def setup(self, context: MethodContext) -> None:
        """Called once the network and the training split exist (before a checkpoint is restored)."""
        self.context = context

    def train_handlers(self) -> list[Any]:
        """MONAI/ignite handlers (objects with ``attach(engine)``) for the trainer, in order."""
        return []

    def sampling_weights(self) -> Tensor | None:
        """``[N]`` non-negative draw weights of the training samples, or ``None`` for plain shuffling."""
        return None

    def describe(self) -> str:
        """A short display name, e.g. ``"GroupDRO (eta 0.01)"`` (report titles, logs)."""
        return self.name

    def state_dict(self) -> dict[str, Any]:
        """The method's state (saved in every checkpoint); empty for a stateless method."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if state:
            raise MultiFairError(
                f"method {self.name!r} has no state, but the checkpoint holds {sorted(state)[:5]} for it"
            )

    def _require_context(self) -> MethodContext:
        if self.context is None:
            raise MultiFairError(f"method {self.name!r} is not set up: call `setup(context)` first")
        return self.context


class PostProcessor(abc.ABC):
    """Maps scores to decisions; fitted on one split (validation), applied to another (test)."""

    name: str = ""

    def __init__(self, options: Any = None) -> None:
        self.options = options

    @abc.abstractmethod
    def fit(self, scores: np.ndarray, labels: np.ndarray, sensitive_features: Any) -> PostProcessor:
        """Fit on ``[N]`` positive-class scores, ``[N]`` binary labels and the ``[N]`` sensitive features."""

    @abc.abstractmethod
    def predict(self, scores: np.ndarray, sensitive_features: Any) -> np.ndarray:
        """``[N]`` decisions (0/1) for new scores."""

    def describe(self) -> str:
        """A short display name."""
        return self.name


# ---------------------------------------------------------------------------------------------------
# shared pieces of the loss-weighting methods
def cell_ids(labels: Tensor, groups: Tensor, by: str, num_classes: int) -> Tensor:
    """The cell of each sample: its group (``by="group"``) or its (group, label) pair
    (``by="group_label"``: ``group * C + label``)."""
    if by == "group":
        return groups.long()
    return groups.long() * num_classes + labels.long()


def cell_counts(context: MethodContext, by: str) -> Tensor:
    """``[K]`` or ``[K * C]`` training-split counts of each cell (float64, CPU)."""
    cells = cell_ids(context.train_labels, context.train_groups, by, context.num_classes)
    size = context.num_groups * (context.num_classes if by == "group_label" else 1)
    return torch.bincount(cells, minlength=size).double()


def all_reduce_sum(tensor: Tensor, process_group: Any | None = None) -> Tensor:
    """``tensor`` summed over the ranks (identity in one process); a new tensor."""
    if world_size(process_group) == 1:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=process_group)
    return out


def cell_names(context: MethodContext, by: str) -> tuple[str, ...]:
    """Display names of the cells of :func:`cell_ids` (``group`` or ``group/label=c``)."""
    labels = tuple(map(metric_label, context.group_labels))
    if by == "group":
        return labels
    return tuple(f"{g}|y={c}" for g in labels for c in range(context.num_classes))


class LossWeightingMethod(FairnessMethod):
    """A training method that reweights the per-sample losses with a :class:`SampleWeighting`.

    Subclasses implement :meth:`build_weighting`; the method attaches one
    :class:`~monai_multifair.handlers.SampleWeightingHandler` and checkpoints the weighting's buffers.
    """

    #: ``"group"`` or ``"group_label"``: what the weights are defined over (subclasses' options may set it).
    def cells(self) -> str:
        return getattr(self.options, "by", "group")

    @abc.abstractmethod
    def build_weighting(self, context: MethodContext) -> SampleWeighting:
        """The weighting module for this run (moved to the device by :meth:`setup`)."""

    def setup(self, context: MethodContext) -> None:
        super().setup(context)
        self.weighting = self.build_weighting(context).to(context.device)
        self.handler = SampleWeightingHandler(
            self.weighting,
            group_key=context.group_key,
            label_key=context.label_key,
            cell_names=cell_names(context, self.cells()),
            stats_interval=context.stats_interval,
            metric_prefix=self.metric_prefix,
        )

    def train_handlers(self) -> list[Any]:
        self._require_context()
        return [self.handler]

    def state_dict(self) -> dict[str, Any]:
        self._require_context()
        return {k: v.detach().clone() for k, v in self.weighting.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._require_context()
        self.weighting.load_state_dict(dict(state))


def cells_search_space(trial: Any) -> dict[str, Any]:
    """The tuning space of a method whose only choice is its cells: ``by`` group or group x label."""
    return {"by": trial.suggest_categorical("by", ["group", "group_label"])}
