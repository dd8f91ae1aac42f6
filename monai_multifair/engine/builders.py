"""Build the pieces of a run from a :class:`~monai_multifair.config.RunConfig`: device, network, optimizer."""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch
from monai.inferers import SimpleInferer
from torch import nn

from monai_multifair.config import RunConfig
from monai_multifair.data import MultimodalCollate, MultimodalDataset
from monai_multifair.errors import MultiFairError
from monai_multifair.networks import MultimodalFusionClassifier
from monai_multifair.networks.encoders import freeze_parameters, load_encoder_weights
from monai_multifair.plugins import create_encoder, get_encoder_spec

__all__ = [
    "AutocastInferer",
    "build_collate",
    "build_network",
    "build_optimizer",
    "encoder_specs",
    "parameter_groups",
    "resolve_device",
]

logger = logging.getLogger(__name__)


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


def _build_encoders(
    config: RunConfig, train_dataset: MultimodalDataset, load_weights: bool
) -> dict[str, nn.Module]:
    """Each encoder built from the registry, its ``weights`` loaded and its ``freeze`` applied; errors
    name the config key."""
    encoders: dict[str, nn.Module] = {}
    for modality, spec in encoder_specs(config, train_dataset).items():
        encoder_config = config.encoders[modality]
        path = f"encoders.{modality}"
        options = {k: v for k, v in spec.items() if k != "name"}
        try:
            encoder = create_encoder(spec["name"], **options)
        except MultiFairError as err:
            unset = [k for k in ("model_name_or_path",) if k in options and options[k] is None]
            hint = f"; set it with --set {path}.options.{unset[0]}=PATH" if unset else ""
            raise MultiFairError(f"config key `{path}`: {err}{hint}") from None
        weights = encoder_config.weights
        if weights is not None and load_weights:
            try:
                report = load_encoder_weights(
                    encoder,
                    weights.path,
                    key=weights.key,
                    prefix_map=weights.prefix_map,
                    exclude=weights.exclude,
                    strict=weights.strict,
                )
            except MultiFairError as err:
                raise MultiFairError(f"config key `{path}.weights`: {err}") from None
            logger.info("encoders.%s.weights: %s", modality, report.summary())
        if encoder_config.freeze:
            try:
                kept = freeze_parameters(encoder, encoder_config.trainable)
            except MultiFairError as err:
                raise MultiFairError(f"config key `{path}.trainable`: {err}") from None
            if encoder_config.lr is not None and not kept:
                raise MultiFairError(
                    f"config key `{path}.lr`: expected trainable parameters to apply it to, but the `trainable` "
                    f"patterns {encoder_config.trainable} match only parameters the encoder keeps frozen"
                )
        encoders[modality] = encoder
    return encoders


def build_network(
    config: RunConfig, train_dataset: MultimodalDataset, *, load_weights: bool = True
) -> MultimodalFusionClassifier:
    """The :class:`~monai_multifair.networks.MultimodalFusionClassifier` a config describes.

    Encoders come from the plugin registry (:func:`encoder_specs`); then each encoder's
    ``encoders.<modality>.weights`` file is loaded (the report of loaded, missing and unexpected keys
    is logged at INFO level) and ``freeze``/``trainable`` applied. The number of classes and groups
    come from the training split.

    Args:
        config: the run config.
        train_dataset: the training split.
        load_weights: load the ``weights`` files (``False`` when a checkpoint of the whole network is
            loaded next, e.g. to evaluate a trained run).

    Raises:
        MultiFairError: an encoder that cannot be built, a weights file that does not fit, a
            ``trainable`` pattern matching nothing; each message names the config key.
    """
    fusion = config.fusion
    return MultimodalFusionClassifier(
        _build_encoders(config, train_dataset, load_weights),
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


def parameter_groups(config: RunConfig, network: nn.Module) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per encoder with its own ``lr``, then the rest at ``trainer.lr``.

    Only parameters that require a gradient are included (frozen ones stay out of the optimizer, so
    neither its update nor weight decay touches them). Each group has a ``"name"``
    (``"encoders.<modality>"`` or ``"default"``); empty groups are left out. A DDP-wrapped network is
    unwrapped (``network.module``).

    Example:
        >>> groups = parameter_groups(cfg, network)  # doctest: +SKIP
        >>> [(g["name"], g.get("lr")) for g in groups]  # doctest: +SKIP
        [('encoders.fundus', 1e-05), ('default', None)]
    """
    module = getattr(network, "module", network)
    encoders = getattr(module, "encoders", {})
    groups: list[dict[str, Any]] = []
    claimed: set[int] = set()
    for modality, encoder_config in config.encoders.items():
        if encoder_config.lr is None:
            continue
        if modality not in encoders:
            raise MultiFairError(
                f"config key `encoders.{modality}.lr`: the network has no encoder {modality!r} "
                f"(encoders: {', '.join(encoders)})"
            )
        params = [p for p in encoders[modality].parameters() if p.requires_grad and id(p) not in claimed]
        claimed.update(id(p) for p in params)
        if params:
            groups.append({"name": f"encoders.{modality}", "params": params, "lr": encoder_config.lr})
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in claimed]
    if rest:
        groups.append({"name": "default", "params": rest})
    if not groups:
        raise MultiFairError(
            "the network has no trainable parameters (every encoder frozen and nothing else?)"
        )
    return groups


def build_optimizer(config: RunConfig, parameters: Any) -> torch.optim.Optimizer:
    """``trainer.optimizer``: AdamW (decoupled weight decay) or SGD with momentum (L2 weight decay).

    Args:
        config: the run config (``trainer.lr``, ``trainer.weight_decay``, ``trainer.momentum``, and the
            per-encoder ``encoders.<modality>.lr``).
        parameters: the network (an ``nn.Module``: :func:`parameter_groups` gives one group per encoder
            with its own ``lr`` and leaves frozen parameters out), or an iterable of parameters or
            groups (then no encoder may set ``lr``).

    Raises:
        MultiFairError: an encoder ``lr`` with plain parameters (the groups need the network).
    """
    trainer = config.trainer
    if isinstance(parameters, nn.Module):
        parameters = parameter_groups(config, parameters)
    else:
        with_lr = [m for m, e in config.encoders.items() if e.lr is not None]
        if with_lr:
            raise MultiFairError(
                f"config key `encoders.{with_lr[0]}.lr`: a per-encoder learning rate needs "
                "build_optimizer(config, network) (the network, to find the encoder's parameters), got an "
                "iterable of parameters"
            )
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
