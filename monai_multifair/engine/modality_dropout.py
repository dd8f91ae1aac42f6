"""``ModalityDropout``: train with modalities missing at random (``trainer.modality_dropout``)."""

from __future__ import annotations

from typing import Any

import torch

from monai_multifair.errors import MultiFairError

__all__ = ["ModalityDropout"]


class ModalityDropout:
    """At the trainer's ``ITERATION_STARTED``: drop each available modality of each sample with
    probability ``rate``, keeping at least one per sample.

    Dropping sets the sample's entry of the batch's presence mask (``batch[presence_key]``, ``[B, M]``
    bool, built by the data) to false, before the batch is prepared: the fusion network then masks that
    modality's token out, and MultiFair's per-sample gradient scales give its encoder no gradient from
    that sample. The draw is a function of ``(seed, iteration, rank)``, so a resumed run drops exactly
    what an uninterrupted one drops. It works on the host copy of the batch (no device synchronisation).

    Args:
        rate: drop probability, in [0, 1).
        seed: the run's seed.
        presence_key: batch key of the presence mask.
        rank: this process's rank (ranks drop independently).
    """

    def __init__(self, rate: float, seed: int, presence_key: str = "present", rank: int = 0) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise MultiFairError(f"expected `rate` (trainer.modality_dropout) in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = int(seed)
        self.presence_key = presence_key
        self.rank = int(rank)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def drop(self, present: torch.Tensor, iteration: int) -> torch.Tensor:
        """The mask with random entries switched off (at least one true entry left per row that had one)."""
        generator = torch.Generator().manual_seed(
            ((self.seed * 1_000_003 + int(iteration)) * 1_009 + self.rank) % (2**63 - 1)
        )
        present = present.to(torch.bool)
        drop = torch.rand(present.shape, generator=generator) < self.rate
        kept = present & ~drop
        emptied = present.any(dim=1) & ~kept.any(dim=1)
        return torch.where(emptied[:, None], present, kept)

    def __call__(self, engine: Any) -> None:
        batch = engine.state.batch
        if not isinstance(batch, dict) or self.presence_key not in batch:
            raise MultiFairError(
                f"trainer.modality_dropout needs the batch's presence mask `{self.presence_key}`; the batch has "
                f"keys {sorted(batch) if isinstance(batch, dict) else type(batch).__name__}"
            )
        mask = torch.as_tensor(batch[self.presence_key])
        batch[self.presence_key] = self.drop(mask.cpu(), engine.state.iteration).to(mask.device)
