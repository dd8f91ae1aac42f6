"""The objects one run is made of: device, datasets, network, collation, batch preparation, precision, and
the method's view of them; plus a prediction pass over one split.

Under ``torch.distributed`` (``torchrun``) every rank builds the same parts; the trainer's model is the
network wrapped in ``DistributedDataParallel`` (with ``trainer.sync_batchnorm``, its BatchNorm layers
synchronised), the training loader gives each rank its share of every epoch, and a prediction pass gives
each rank an unpadded share of the split and gathers the predictions back into the split's order.
"""

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
from monai_multifair.core.distributed import all_gather_objects, rank, world_size
from monai_multifair.data import PRESENCE_KEY, SPLIT_NAMES, MultimodalDataset, build_datasets
from monai_multifair.engine.builders import (
    amp_settings,
    build_collate,
    build_network,
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
        sections = config.to_dict()
        key = json.dumps(json_ready({k: sections[k] for k in ("data", "pipeline")}), sort_keys=True)
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
    model: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = self.network

    @property
    def world_size(self) -> int:
        """Number of ranks (1 without ``torch.distributed``)."""
        return world_size()

    @property
    def rank(self) -> int:
        """This process's rank (0 without ``torch.distributed``)."""
        return rank()

    def engine_kwargs(self, training: bool = False) -> dict[str, Any]:
        """The arguments every MONAI engine of the run shares (the trainer gets the DDP-wrapped model;
        evaluators the plain network, so that uneven evaluation shards need no collective per batch)."""
        return {
            "device": self.device,
            "network": self.model if training else self.network,
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
            group_labels=tuple(self.datasets["train"].group_labels),
            train_labels=torch.tensor(np.array(train.labels), dtype=torch.long),
            train_groups=torch.tensor(np.array(train.groups), dtype=torch.long),
            accumulation_steps=self.config.trainer.accumulation_steps,
            stats_interval=stats_interval,
            seed=self.config.trainer.seed,
            presence_key=PRESENCE_KEY,
        )

    def loader(
        self,
        split: str,
        *,
        shuffle: bool = False,
        weights: torch.Tensor | None = None,
        training: bool = False,
    ) -> Any:
        """The batch iterable of this rank's share of ``split`` (see
        :func:`~monai_multifair.engine.make_loader`): padded shares for training, unpadded for evaluation."""
        trainer = self.config.trainer
        return make_loader(
            self.datasets[split],
            self.collate,
            batch_size=trainer.batch_size,
            shuffle=shuffle,
            seed=trainer.seed,
            num_workers=trainer.num_workers,
            weights=weights,
            num_replicas=self.world_size,
            rank=self.rank,
            pad=training,
            pin_memory=self.config.pipeline.pin_memory,
        )

    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """``(probabilities [N, C], labels [N], groups [N], ids)`` of ``split`` with the network as it is,
        in the split's order; every rank predicts its share and receives the whole split."""
        loader = self.loader(split)
        collector = PredictionCollector()
        evaluator = SupervisedEvaluator(
            val_data_loader=loader, epoch_length=len(loader), val_handlers=[collector], **self.engine_kwargs()
        )
        quiet(evaluator, "predict")
        evaluator.run()
        arrays = collector.arrays()
        if self.world_size == 1:
            return arrays
        shares = all_gather_objects(arrays)  # rank r holds samples r, r + W, r + 2W, ... of the split
        n = len(self.datasets[split])
        positions = [np.arange(r, n, self.world_size) for r in range(self.world_size)]
        probabilities = np.empty((n, shares[0][0].shape[1]), dtype=shares[0][0].dtype)
        labels = np.empty(n, dtype=shares[0][1].dtype)
        groups = np.empty(n, dtype=shares[0][2].dtype)
        ids: list[str] = [""] * n
        for (p, y, g, share_ids), where in zip(shares, positions):
            probabilities[where], labels[where], groups[where] = p, y, g
            for position, sample_id in zip(where, share_ids):
                ids[position] = sample_id
        return probabilities, labels, groups, ids


def _distributed_model(config: RunConfig, network: nn.Module, device: torch.device) -> nn.Module:
    """``network`` wrapped in ``DistributedDataParallel`` (BatchNorm synchronised on request)."""
    if config.trainer.sync_batchnorm:
        if device.type != "cuda":
            raise MultiFairError(
                f"config key `trainer.sync_batchnorm`: SyncBatchNorm needs CUDA devices, got device {str(device)!r}; "
                "set it to false (each rank then normalises with its own batch statistics)"
            )
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def build_run_parts(
    config: RunConfig,
    datasets: Mapping[str, MultimodalDataset] | None = None,
    *,
    load_weights: bool = True,
    splits: tuple[str, ...] = SPLIT_NAMES,
) -> RunParts:
    """Resolve the device, build (or check) the datasets, seed, and build the network and batch plumbing.

    Under ``torch.distributed`` the device ``auto``/``cuda`` is this rank's GPU (``LOCAL_RANK``) and the
    trainer's model is wrapped in ``DistributedDataParallel``. ``load_weights=False`` skips the encoders'
    ``weights`` files (a checkpoint of the whole network is loaded next). ``splits``: the splits that
    ``datasets`` must hold (all three unless the run ends on validation).
    """
    device = resolve_device(config.trainer.device, distributed=world_size() > 1)
    splits = _datasets(config, datasets, splits)
    seed_everything(config.trainer.seed)
    network = build_network(config, splits["train"], load_weights=load_weights).to(device)
    train = splits["train"]
    for split, dataset in splits.items():
        ids = np.asarray(dataset.groups)
        if ids.size and (ids.min() < 0 or ids.max() >= train.num_groups):
            raise MultiFairError(
                f"the {split} split has group ids in [{ids.min()}, {ids.max()}], expected them in "
                f"[0, {train.num_groups}) (the training split's groups); build every split with one coding"
            )
    # the group ids are checked above and a dataset refuses a sample with no modality when it loads
    # it: the network's per-batch checks of the same would only add host synchronisations to every step
    network.validate_args = False
    if tuple(network.modality_names) != tuple(splits["train"].modalities):
        raise MultiFairError(
            f"the network's modalities {list(network.modality_names)} are not in the order of the data's "
            f"{list(splits['train'].modalities)} (the presence masks follow the data)"
        )
    amp, inferer = amp_settings(config, device)
    prepare = MultimodalPrepareBatch(
        list(network.modality_names),
        label_key="label",
        group_key="group" if config.fusion.demographic_token else None,
        presence_key=PRESENCE_KEY,
    )
    collate = build_collate(network, splits["train"])
    parts = RunParts(config, device, splits, network, collate, prepare, amp, inferer)
    if world_size() > 1:
        parts.model = _distributed_model(config, network, device)
        # SyncBatchNorm conversion replaces modules: the evaluators use the same (converted) modules
        parts.network = parts.model.module
    return parts
