"""Build the pieces of a run from a :class:`~monai_multifair.config.RunConfig`: device, network, optimizer."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import torch
from monai.inferers import SimpleInferer
from torch import nn

from monai_multifair.config import RunConfig
from monai_multifair.data import MultimodalCollate, MultimodalDataset
from monai_multifair.errors import MultiFairError
from monai_multifair.networks import MultimodalFusionClassifier

__all__ = [
    "AutocastInferer",
    "build_collate",
    "build_network",
    "build_optimizer",
    "encoder_specs",
    "resolve_device",
]


def resolve_device(name: str, distributed: bool = False) -> torch.device:
    """``trainer.device`` as a ``torch.device`` (``"auto"``: CUDA when available, else CPU).

    With ``distributed`` (a ``torchrun`` rank), ``"auto"`` and ``"cuda"`` mean this rank's GPU,
    ``cuda:LOCAL_RANK``.

    Raises:
        MultiFairError: a CUDA/MPS device was asked for but is not available.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if distributed and name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MultiFairError(
                f"config key `trainer.device`: {name!r} asked for, but CUDA is not available; use 'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MultiFairError(
                f"config key `trainer.device`: {name!r} asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise MultiFairError(
            f"config key `trainer.device`: {name!r} asked for, but MPS is not available; use 'auto' or 'cpu'"
        )
    return device


def encoder_specs(config: RunConfig, dataset: MultimodalDataset) -> dict[str, dict[str, Any]]:
    """``{modality: {"name": ..., **options}}`` of the config's encoders, with input widths filled in.

    An encoder option ``in_channels`` (images: ``C`` of ``[C, H, W]``; OCT stacks: ``C`` of
    ``[S, C, H, W]``) or ``in_features`` (tabular: ``F``) that the config leaves out is read from the
    first training sample, when the encoder's factory takes it.
    """
    from monai_multifair.plugins import get_encoder_spec

    sample = dataset[0]
    kinds = dataset.modality_kinds
    specs: dict[str, dict[str, Any]] = {}
    for modality, encoder in config.encoders.items():
        spec = encoder.to_spec()
        parameters = inspect.signature(get_encoder_spec(encoder.name).factory).parameters
        value = sample.get(modality)
        if isinstance(value, torch.Tensor):
            kind = kinds.get(modality)
            if kind == "image" and "in_channels" in parameters and "in_channels" not in spec:
                spec["in_channels"] = int(value.shape[0])
            elif kind == "volume" and "in_channels" in parameters and "in_channels" not in spec:
                spec["in_channels"] = int(value.shape[1])
            elif kind == "tabular" and "in_features" in parameters and "in_features" not in spec:
                spec["in_features"] = int(value.shape[-1])
        specs[modality] = spec
    return specs


def build_network(config: RunConfig, train_dataset: MultimodalDataset) -> MultimodalFusionClassifier:
    """The :class:`~monai_multifair.networks.MultimodalFusionClassifier` a config describes.

    Encoders come from the plugin registry (:func:`encoder_specs`); the number of classes and groups
    from the training split.
    """
    fusion = config.fusion
    return MultimodalFusionClassifier(
        encoder_specs(config, train_dataset),
        num_classes=train_dataset.num_classes,
        fusion_dim=fusion.fusion_dim,
        num_heads=fusion.num_heads,
        num_layers=fusion.num_layers,
        dropout=fusion.dropout,
        head_hidden=fusion.head_hidden,
        demographic_token=fusion.demographic_token,
        num_groups=train_dataset.num_groups,
    )


def build_collate(network: MultimodalFusionClassifier, dataset: MultimodalDataset) -> MultimodalCollate:
    """A :class:`~monai_multifair.data.MultimodalCollate` tokenizing each text modality with its encoder."""
    tokenizers = {
        modality: network.encoders[modality]
        for modality, kind in dataset.modality_kinds.items()
        if kind == "text" and modality in network.encoders
    }
    for modality, encoder in tokenizers.items():
        if not callable(getattr(encoder, "tokenize", None)):
            raise MultiFairError(
                f"the encoder of text modality {modality!r} ({type(encoder).__name__}) has no `tokenize(texts)` "
                "method; text encoders must turn notes into token ids"
            )
    return MultimodalCollate(tokenizers)


def build_optimizer(config: RunConfig, parameters: Any) -> torch.optim.Optimizer:
    """``trainer.optimizer``: AdamW (decoupled weight decay) or SGD with momentum (L2 weight decay)."""
    trainer = config.trainer
    if trainer.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=trainer.lr, momentum=trainer.momentum, weight_decay=trainer.weight_decay
        )
    return torch.optim.AdamW(parameters, lr=trainer.lr, weight_decay=trainer.weight_decay)


class AutocastInferer(SimpleInferer):
    """``SimpleInferer`` under ``torch.autocast(device_type, dtype)``, logits returned in float32.

    MONAI's engines autocast on CUDA only; this runs bfloat16 mixed precision on the CPU
    (``trainer.amp: true`` on a CPU device).
    """

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, inputs: Any, network: nn.Module, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = network(inputs, *args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out


def amp_settings(config: RunConfig, device: torch.device) -> tuple[bool, SimpleInferer]:
    """``(engine_amp, inferer)``: MONAI's float16 AMP with a grad scaler on CUDA, bfloat16 autocast on CPU."""
    if not config.trainer.amp:
        return False, SimpleInferer()
    if device.type == "cuda":
        return True, SimpleInferer()
    return False, AutocastInferer(device.type, torch.bfloat16)


def group_names(labels: Mapping[int, str] | tuple[str, ...]) -> list[str]:
    """Group labels usable inside ``/``-separated metric names (``/`` replaced by ``|``)."""
    values = labels.values() if isinstance(labels, Mapping) else labels
    return [str(label).replace("/", "|") for label in values]
