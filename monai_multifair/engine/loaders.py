"""Batch iterables for the run engine: in-memory tensor batches and a per-epoch seeded sampler.

Both order each epoch with a function of ``(seed, epoch)`` alone (a permutation, or with per-sample
``weights`` a draw with replacement, e.g. group-balanced resampling), so a run resumed at epoch ``e``
sees exactly the batches an uninterrupted run sees, whatever happened before. With ``num_replicas > 1``
every rank computes the same epoch order and takes its strided share of it (``rank::num_replicas``):
for training padded to equal length by repeating the first samples, as ``DistributedSampler`` does (every
rank must step together); for evaluation (``pad=False``) not padded, so no sample is counted twice and
the gathered predictions are the split exactly. Random transforms (augmentation) are seeded the same
way: from ``(seed, epoch, rank)`` in the main process, and from ``(seed, epoch, rank, worker id)`` in each
``DataLoader`` worker.
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
    "EpochShuffle",
    "TensorBatchLoader",
    "augmentation_seed",
    "epoch_draw",
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


def augmentation_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of the random transforms in ``epoch`` on ``rank`` (a pure function of the three, other
    than the permutation's; every rank augments its share differently)."""
    return (((int(seed) * 1_000_003 + int(epoch)) * 1_009 + int(rank)) * 2 + 1) % (2**32)


def _seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn``: seed the dataset's random transforms with the worker's seed
    (``base_seed + worker_id``, ``base_seed`` drawn from the loader's generator, seeded per epoch)."""
    info = torch.utils.data.get_worker_info()
    setter = getattr(info.dataset, "set_random_state", None)
    if callable(setter):
        setter(info.seed % (2**32))


def epoch_draw(weights: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """``N`` sample indices drawn with replacement, with probability proportional to ``weights [N]``
    (a pure function of ``weights``, ``seed`` and ``epoch``).

    Example:
        >>> draw = epoch_draw(torch.tensor([0.0, 1.0, 0.0]), 0, 1)
        >>> draw.tolist()
        [1, 1, 1]
    """
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1))
    return torch.multinomial(weights.double(), weights.numel(), replacement=True, generator=generator)


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
    """The sample order of each epoch and this rank's share of it.

    :func:`epoch_permutation` with ``shuffle``, :func:`epoch_draw` with ``weights``, else ``0..n-1``;
    then, with ``num_replicas > 1``, the indices ``rank::num_replicas`` of that order, padded to
    ``ceil(n / num_replicas)`` by wrapping around when ``pad`` (training), unpadded otherwise (evaluation).
    """

    def __init__(
        self,
        num_samples: int,
        shuffle: bool,
        seed: int,
        weights: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
            if weights.numel() != num_samples:
                raise MultiFairError(
                    f"expected `weights` to hold one draw weight per sample ({num_samples}), got {weights.numel()}"
                )
            if (
                not bool(torch.isfinite(weights).all())
                or bool((weights < 0).any())
                or not bool(weights.sum() > 0)
            ):
                raise MultiFairError("expected `weights` to be finite, non-negative and not all zero")
        for arg, value, low in (("num_replicas", num_replicas, 1), ("rank", rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise MultiFairError(f"expected `{arg}` to be an integer >= {low}, got {value!r}")
        if rank >= num_replicas:
            raise MultiFairError(f"expected `rank` < num_replicas={num_replicas}, got {rank}")
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.weights = weights
        self.num_replicas = num_replicas
        self.rank = rank
        self.pad = pad
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    @property
    def local_size(self) -> int:
        """Samples this rank yields per epoch."""
        if self.pad:
            return math.ceil(self.num_samples / self.num_replicas)
        return len(range(self.rank, self.num_samples, self.num_replicas))

    def order(self) -> torch.Tensor:
        """Sample indices of the current epoch on this rank."""
        if self.weights is not None:
            order = epoch_draw(self.weights, self.seed, self.epoch)
        elif self.shuffle:
            order = epoch_permutation(self.num_samples, self.seed, self.epoch)
        else:
            order = torch.arange(self.num_samples)
        if self.num_replicas == 1:
            return order
        if not self.pad:
            return order[self.rank :: self.num_replicas]
        total = self.local_size * self.num_replicas
        if total > order.numel():
            order = torch.cat([order, order[: total - order.numel()]])
        return order[self.rank : total : self.num_replicas]


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
        weights: per-sample draw weights: each epoch draws ``N`` samples with replacement instead.
        num_replicas: ranks sharing the split (each yields its share, see the module docstring).
        rank: this rank.
        pad: pad the shares to equal length (training); ``False`` for evaluation.
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
        weights: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
        pin_memory: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MultiFairError(f"expected `batch_size` to be an integer >= 1, got {batch_size!r}")
        sizes = {key: len(value) for key, value in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise MultiFairError(
                f"expected every key of `tensors` to hold the same number of samples, got {sizes}"
            )
        super().__init__(next(iter(sizes.values())), shuffle, seed, weights, num_replicas, rank, pad)
        self.tensors = dict(tensors)
        self.batch_size = batch_size
        self.pin_memory = bool(pin_memory)

    def __len__(self) -> int:
        return math.ceil(self.local_size / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self.order()
        for start in range(0, order.numel(), self.batch_size):
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
        weights: per-sample draw weights (each epoch draws ``N`` samples with replacement).
        num_replicas: ranks sharing the dataset.
        rank: this rank.
        pad: pad the shares to equal length (training); ``False`` for evaluation.
    """

    def __init__(
        self,
        num_samples: int,
        shuffle: bool = True,
        seed: int = 0,
        weights: torch.Tensor | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        super().__init__(num_samples, shuffle, seed, weights, num_replicas, rank, pad)

    def __len__(self) -> int:
        return self.local_size

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
    weights: torch.Tensor | None = None,
    num_replicas: int = 1,
    rank: int = 0,
    pad: bool = True,
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
        weights: per-sample draw weights (a weighted draw with replacement each epoch).
        num_replicas: ranks sharing the split; each yields its share.
        rank: this rank.
        pad: pad the shares to equal length (training); ``False`` for evaluation.
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
        setter(augmentation_seed(seed, 1, rank))  # deterministic even before the first set_loader_epoch
    if eligible and not random and _collated_bytes(dataset, collate) <= MATERIALIZE_LIMIT_BYTES:
        return TensorBatchLoader(
            materialize(dataset, collate),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            weights=weights,
            num_replicas=num_replicas,
            rank=rank,
            pad=pad,
            pin_memory=pin,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(
            len(dataset),
            shuffle=shuffle,
            seed=seed,
            weights=weights,
            num_replicas=num_replicas,
            rank=rank,
            pad=pad,
        ),
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(augmentation_seed(seed, 1, rank)),
    )


def set_loader_epoch(loader: TensorBatchLoader | DataLoader, epoch: int) -> None:
    """Select the shuffling and the augmentation of ``epoch`` in a loader made by :func:`make_loader`.

    Random transforms draw from :func:`augmentation_seed` ``(seed, epoch, rank)``: directly when the
    loader reads in the main process, through each worker's seed otherwise.
    """
    target = loader.sampler if isinstance(loader, DataLoader) else loader
    if isinstance(target, _EpochOrder):
        target.set_epoch(epoch)
    if isinstance(loader, DataLoader) and isinstance(target, _EpochOrder):
        seed = augmentation_seed(target.seed, epoch, target.rank)
        if loader.generator is not None:
            loader.generator.manual_seed(seed)
        setter = getattr(loader.dataset, "set_random_state", None)
        if loader.num_workers == 0 and callable(setter):
            setter(seed)


class EpochShuffle:
    """At ``EPOCH_STARTED``: select the epoch's order in the training loader (before it is iterated)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Any) -> None:
        set_loader_epoch(self.loader, engine.state.epoch)
