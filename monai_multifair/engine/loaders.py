"""Batch iterables for the run engine: in-memory tensor batches and a per-epoch seeded sampler.

Both shuffle with a permutation that depends only on ``(seed, epoch)``, so a run resumed at epoch
``e`` sees exactly the batches an uninterrupted run sees, whatever happened before. Random transforms
(augmentation) are seeded the same way: from ``(seed, epoch)`` in the main process, and from
``(seed, epoch, worker id)`` in each ``DataLoader`` worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from monai_multifair.data import InMemoryDataset, MultimodalCollate, MultimodalDataset
from monai_multifair.errors import MultiFairError

__all__ = [
    "MATERIALIZE_LIMIT_BYTES",
    "EpochSampler",
    "TensorBatchLoader",
    "augmentation_seed",
    "epoch_permutation",
    "make_loader",
    "materialize",
    "set_loader_epoch",
]

#: In-memory datasets whose collated tensors would exceed this size are read through a ``DataLoader``.
MATERIALIZE_LIMIT_BYTES = 1 << 30
_CHUNK = 512


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of ``n`` samples in ``epoch`` (a pure function of ``seed`` and ``epoch``).

    Example:
        >>> bool((epoch_permutation(5, 0, 3) == epoch_permutation(5, 0, 3)).all())
        True
    """
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1))
    return torch.randperm(n, generator=generator)


def augmentation_seed(seed: int, epoch: int) -> int:
    """The seed of the random transforms in ``epoch`` (a pure function of ``seed`` and ``epoch``, other
    than the permutation's)."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 2 + 1) % (2**32)


def _seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn``: seed the dataset's random transforms with the worker's seed
    (``base_seed + worker_id``, ``base_seed`` drawn from the loader's generator, seeded per epoch)."""
    info = torch.utils.data.get_worker_info()
    setter = getattr(info.dataset, "set_random_state", None)
    if callable(setter):
        setter(info.seed % (2**32))


def materialize(dataset: Dataset, collate: MultimodalCollate) -> dict[str, Any]:
    """Collate a whole dataset once: ``{key: tensor [N, ...] or list of N values}``.

    Notes are tokenized here, once, instead of in every batch of every epoch.
    """
    parts: list[dict[str, Any]] = []
    for start in range(0, len(dataset), _CHUNK):
        stop = min(start + _CHUNK, len(dataset))
        parts.append(collate([dataset[i] for i in range(start, stop)]))
    if not parts:
        raise MultiFairError("cannot batch an empty dataset")
    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        if isinstance(first, torch.Tensor):
            out[key] = torch.cat([p[key] for p in parts])
        else:
            out[key] = [v for p in parts for v in p[key]]
    return out


class _EpochOrder:
    """The sample order of each epoch: :func:`epoch_permutation` with ``shuffle``, else ``0..n-1``."""

    def __init__(self, num_samples: int, shuffle: bool, seed: int) -> None:
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    def order(self) -> torch.Tensor:
        """Sample indices ``[N]`` of the current epoch."""
        if self.shuffle:
            return epoch_permutation(self.num_samples, self.seed, self.epoch)
        return torch.arange(self.num_samples)


class TensorBatchLoader(_EpochOrder):
    """Batches sliced from tensors that hold a whole split (see :func:`materialize`).

    Iterating yields ``{key: tensor [B, ...] or list}`` dicts, shuffled per epoch with
    :func:`epoch_permutation` when ``shuffle``; call :meth:`set_epoch` before each epoch. The
    permutation is drawn when the first batch is requested.

    Args:
        tensors: the collated split.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: shuffle each epoch.
        seed: seed of the shuffling.
        pin_memory: pin each batch's tensors (page-locked memory, for asynchronous copies to CUDA).

    Example:
        >>> loader = TensorBatchLoader({"x": torch.arange(5), "id": list("abcde")}, batch_size=2)
        >>> [b["id"] for b in loader]
        [['a', 'b'], ['c', 'd'], ['e']]
    """

    def __init__(
        self,
        tensors: Mapping[str, Any],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MultiFairError(f"expected `batch_size` to be an integer >= 1, got {batch_size!r}")
        sizes = {key: len(value) for key, value in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise MultiFairError(
                f"expected every key of `tensors` to hold the same number of samples, got {sizes}"
            )
        super().__init__(next(iter(sizes.values())), shuffle, seed)
        self.tensors = dict(tensors)
        self.batch_size = batch_size
        self.pin_memory = bool(pin_memory)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self.order()
        for start in range(0, self.num_samples, self.batch_size):
            index = order[start : start + self.batch_size]
            rows = index.tolist()
            batch = {
                key: value[index] if isinstance(value, torch.Tensor) else [value[i] for i in rows]
                for key, value in self.tensors.items()
            }
            if self.pin_memory:
                batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            yield batch


class EpochSampler(_EpochOrder, Sampler[int]):
    """A ``DataLoader`` sampler drawing :func:`epoch_permutation` (or ``0..n-1`` without ``shuffle``).

    Args:
        num_samples: dataset length.
        shuffle: shuffle each epoch.
        seed: seed of the shuffling.
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(num_samples, shuffle, seed)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())


def _collated_bytes(dataset: Dataset, collate: MultimodalCollate) -> int:
    sample = collate([dataset[0]])
    per_sample = sum(v.element_size() * v.numel() for v in sample.values() if isinstance(v, torch.Tensor))
    return per_sample * len(dataset)


def make_loader(
    dataset: Dataset,
    collate: MultimodalCollate,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> TensorBatchLoader | DataLoader:
    """The fastest batch iterable for ``dataset``.

    A dataset without random transforms (augmentation; see
    :attr:`~monai_multifair.data.MultimodalDataset.has_random_transform`) whose collated tensors fit in
    :data:`MATERIALIZE_LIMIT_BYTES` is read, transformed and collated once into a
    :class:`TensorBatchLoader` (always for an :class:`~monai_multifair.data.InMemoryDataset` such as
    the synthetic cohort; for file-based datasets when ``num_workers`` is 0, since reading them in
    parallel is what workers are for). Anything else is read by a ``DataLoader`` with ``num_workers``
    workers and an :class:`EpochSampler`; its workers seed the random transforms (``worker_init_fn``)
    from the loader's generator, which :func:`set_loader_epoch` seeds with :func:`augmentation_seed`.
    Either way :func:`set_loader_epoch` selects an epoch's order and augmentation.

    Args:
        dataset: the split.
        collate: its collate function.
        batch_size: samples per batch.
        shuffle: shuffle per epoch.
        seed: seed of the order and the augmentation (``trainer.seed``).
        num_workers: ``DataLoader`` worker processes (``trainer.num_workers``).
        pin_memory: page-locked batches for faster host-to-GPU copies (``pipeline.pin_memory``); only
            where CUDA is available (pinning needs it).
    """
    if len(dataset) == 0:
        raise MultiFairError(f"cannot train or evaluate on an empty dataset ({dataset!r})")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise MultiFairError(f"expected `num_workers` to be an integer >= 0, got {num_workers!r}")
    pin = bool(pin_memory) and torch.cuda.is_available()
    eligible = isinstance(dataset, InMemoryDataset) or (
        isinstance(dataset, MultimodalDataset) and num_workers == 0
    )
    random = getattr(dataset, "has_random_transform", getattr(dataset, "transform", None) is not None)
    setter = getattr(dataset, "set_random_state", None)
    if num_workers == 0 and callable(setter):
        setter(augmentation_seed(seed, 1))  # deterministic even before the first set_loader_epoch
    if eligible and not random and _collated_bytes(dataset, collate) <= MATERIALIZE_LIMIT_BYTES:
        return TensorBatchLoader(
            materialize(dataset, collate), batch_size, shuffle=shuffle, seed=seed, pin_memory=pin
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle=shuffle, seed=seed),
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(augmentation_seed(seed, 1)),
    )


def set_loader_epoch(loader: TensorBatchLoader | DataLoader, epoch: int) -> None:
    """Select the shuffling and the augmentation of ``epoch`` in a loader made by :func:`make_loader`.

    Random transforms draw from :func:`augmentation_seed` ``(seed, epoch)``: directly when the loader
    reads in the main process, through each worker's seed otherwise.
    """
    target = loader.sampler if isinstance(loader, DataLoader) else loader
    if isinstance(target, _EpochOrder):
        target.set_epoch(epoch)
    if isinstance(loader, DataLoader) and isinstance(target, _EpochOrder):
        seed = augmentation_seed(target.seed, epoch)
        if loader.generator is not None:
            loader.generator.manual_seed(seed)
        setter = getattr(loader.dataset, "set_random_state", None)
        if loader.num_workers == 0 and callable(setter):
            setter(seed)
