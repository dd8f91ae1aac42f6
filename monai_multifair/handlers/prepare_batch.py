"""``MultimodalPrepareBatch``: turn a batch dict into ``(inputs, labels, args, kwargs)`` for MONAI engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.engines.utils import PrepareBatch

from monai_multifair.errors import MultiFairError
from monai_multifair.handlers._utils import batch_item

__all__ = ["MultimodalPrepareBatch"]


class MultimodalPrepareBatch(PrepareBatch):
    """``prepare_batch`` for :class:`~monai.engines.SupervisedTrainer` / ``SupervisedEvaluator`` with
    multimodal batch dicts.

    Returns ``(inputs, labels, (), kwargs)``: MONAI then calls ``network(inputs, **kwargs)``, where
    ``inputs`` maps each modality to its tensor (moved to the engine's device) and ``kwargs`` holds
    ``groups`` (``[B]`` long, when ``group_key`` is set: needed by a network with a demographic token,
    in training and at inference) and ``present`` (``[B, M]`` bool, when ``presence_key`` is set).
    ``labels`` is ``batch[label_key]`` moved to the device, as the loss function receives it.

    Args:
        modalities: batch keys of the modality inputs, in the network's modality order.
        label_key: batch key of the class labels.
        group_key: batch key of the group ids to pass as ``groups=``; ``None`` passes none.
        presence_key: batch key of a ``[B, M]`` modality-presence mask to pass as ``present=``.

    Example:
        >>> prepare = MultimodalPrepareBatch(["image", "text"], group_key="group")
        >>> batch = {"image": torch.zeros(2, 4), "text": torch.zeros(2, 3), "label": torch.tensor([0, 1]),
        ...          "group": torch.tensor([1, 0])}
        >>> inputs, labels, args, kwargs = prepare(batch, "cpu")
        >>> sorted(inputs), kwargs["groups"].tolist()
        (['image', 'text'], [1, 0])
    """

    def __init__(
        self,
        modalities: Sequence[str],
        label_key: str = "label",
        group_key: str | None = None,
        presence_key: str | None = None,
    ) -> None:
        if isinstance(modalities, str) or not isinstance(modalities, Sequence) or len(modalities) == 0:
            raise MultiFairError(
                f"expected `modalities` to be a non-empty list of batch keys, got {modalities!r}"
            )
        self.modalities = tuple(str(m) for m in modalities)
        self.label_key = label_key
        self.group_key = group_key
        self.presence_key = presence_key

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[dict[str, Any], Any, tuple, dict[str, torch.Tensor]]:
        """Split ``batchdata``; ``kwargs`` are passed to ``Tensor.to`` for the modality inputs."""
        inputs = {}
        for name in self.modalities:
            value = batch_item(batchdata, name, "modalities")
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, non_blocking=non_blocking, **kwargs)
            inputs[name] = value
        labels = batch_item(batchdata, self.label_key, "label_key")
        if isinstance(labels, torch.Tensor):
            labels = labels.to(device=device, non_blocking=non_blocking)
        extra: dict[str, torch.Tensor] = {}
        if self.group_key is not None:
            groups = torch.as_tensor(batch_item(batchdata, self.group_key, "group_key"))
            extra["groups"] = groups.reshape(-1).long().to(device=device, non_blocking=non_blocking)
        if self.presence_key is not None:
            present = torch.as_tensor(batch_item(batchdata, self.presence_key, "presence_key"))
            extra["present"] = present.to(device=device, dtype=torch.bool, non_blocking=non_blocking)
        return inputs, labels, (), extra
