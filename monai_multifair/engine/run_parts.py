"""The objects one run is made of: device, datasets, network, collation, batch preparation, precision, and
the method's view of them; plus a prediction pass over one split."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.engines import SupervisedEvaluator
from torch import nn

from monai_multifair.config import RunConfig
from monai_multifair.data import SPLIT_NAMES, MultimodalDataset, build_datasets
from monai_multifair.engine.builders import (
    amp_settings,
    build_collate,
    build_network,
    group_names,
    resolve_device,
)
from monai_multifair.engine.loaders import make_loader
from monai_multifair.engine.monitoring import PredictionCollector
from monai_multifair.engine.outputs import json_ready
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import MultimodalPrepareBatch
from monai_multifair.methods import MethodContext

__all__ = ["RunParts", "build_run_parts", "quiet", "seed_everything"]

_LOGGER = "monai_multifair.engine"


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet(engine: Any, name: str) -> None:
    """Route an engine's log records to the package logger (silent unless the user configures logging)."""
    engine.logger = logging.getLogger(f"{_LOGGER}.{name}")


# the synthetic cohort of the last few data sections (generating it takes about a second)
_SYNTHETIC_CACHE: dict[str, dict[str, MultimodalDataset]] = {}
_SYNTHETIC_CACHE_SIZE = 2


def _datasets(
    config: RunConfig, datasets: Mapping[str, MultimodalDataset] | None, splits: tuple[str, ...] = SPLIT_NAMES
) -> dict[str, MultimodalDataset]:
    """The config's splits (the synthetic cohort is cached in-process), or the ones given (at least
    ``splits``)."""
    if datasets is None:
        if config.data.source != "synthetic":
            return build_datasets(config)
        key = json.dumps(json_ready(config.data.to_section()), sort_keys=True)
        if key not in _SYNTHETIC_CACHE:
            while len(_SYNTHETIC_CACHE) >= _SYNTHETIC_CACHE_SIZE:
                _SYNTHETIC_CACHE.pop(next(iter(_SYNTHETIC_CACHE)))
            _SYNTHETIC_CACHE[key] = build_datasets(config)
        return dict(_SYNTHETIC_CACHE[key])
    missing = [s for s in splits if s not in datasets]
    if missing:
        raise MultiFairError(f"expected `datasets` to have the splits {list(splits)}, missing {missing}")
    for split in (s for s in SPLIT_NAMES if s in datasets):
        dataset = datasets[split]
        if not isinstance(dataset, MultimodalDataset):
            raise MultiFairError(
                f"expected `datasets[{split!r}]` to be a MultimodalDataset, got {type(dataset).__name__}"
            )
        absent = [m for m in config.encoders if m not in dataset.modalities]
        if absent:
            raise MultiFairError(
                f"`datasets[{split!r}]` lacks modality {absent[0]!r} of the config's encoders "
                f"(it has {list(dataset.modalities)})"
            )
    return dict(datasets)


@dataclass
class RunParts:
    """The objects one run is made of (built by :func:`build_run_parts`)."""

    config: RunConfig
    device: torch.device
    datasets: dict[str, MultimodalDataset]
    network: nn.Module
    collate: Any
    prepare: MultimodalPrepareBatch
    amp: bool
    inferer: Any

    @property
    def group_names(self) -> list[str]:
        """The training split's group labels, usable in ``/``-separated metric names."""
        return group_names(self.datasets["train"].group_labels)

    def engine_kwargs(self) -> dict[str, Any]:
        """The arguments every MONAI engine of the run shares."""
        return {
            "device": self.device,
            "network": self.network,
            "prepare_batch": self.prepare,
            "inferer": self.inferer,
            "amp": self.amp,
            "decollate": False,
        }

    def method_context(self, stats_interval: int) -> MethodContext:
        """What the training method may read (see :class:`~monai_multifair.methods.MethodContext`)."""
        train = self.datasets["train"]
        return MethodContext(
            network=self.network,
            device=self.device,
            num_classes=train.num_classes,
            num_groups=train.num_groups,
            group_names=tuple(self.group_names),
            train_labels=torch.tensor(np.array(train.labels), dtype=torch.long),
            train_groups=torch.tensor(np.array(train.groups), dtype=torch.long),
            accumulation_steps=self.config.trainer.accumulation_steps,
            stats_interval=stats_interval,
            seed=self.config.trainer.seed,
        )

    def loader(self, split: str, *, shuffle: bool = False, weights: torch.Tensor | None = None) -> Any:
        """The batch iterable of ``split`` (see :func:`~monai_multifair.engine.make_loader`)."""
        trainer = self.config.trainer
        return make_loader(
            self.datasets[split],
            self.collate,
            batch_size=trainer.batch_size,
            shuffle=shuffle,
            seed=trainer.seed,
            num_workers=trainer.num_workers,
            weights=weights,
        )

    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """``(probabilities [N, C], labels [N], groups [N], ids)`` of ``split`` with the network as it is."""
        loader = self.loader(split)
        collector = PredictionCollector()
        evaluator = SupervisedEvaluator(
            val_data_loader=loader, epoch_length=len(loader), val_handlers=[collector], **self.engine_kwargs()
        )
        quiet(evaluator, "predict")
        evaluator.run()
        return collector.arrays()


def build_run_parts(
    config: RunConfig,
    datasets: Mapping[str, MultimodalDataset] | None = None,
    *,
    splits: tuple[str, ...] = SPLIT_NAMES,
) -> RunParts:
    """Resolve the device, build (or check) the datasets, seed, and build the network and batch plumbing.

    ``splits``: the splits that ``datasets`` must hold (all three unless the run ends on validation).
    """
    device = resolve_device(config.trainer.device)
    splits = _datasets(config, datasets, splits)
    seed_everything(config.trainer.seed)
    network = build_network(config, splits["train"]).to(device)
    amp, inferer = amp_settings(config, device)
    prepare = MultimodalPrepareBatch(
        list(network.modality_names),
        label_key="label",
        group_key="group" if config.fusion.demographic_token else None,
    )
    collate = build_collate(network, splits["train"])
    return RunParts(config, device, splits, network, collate, prepare, amp, inferer)
