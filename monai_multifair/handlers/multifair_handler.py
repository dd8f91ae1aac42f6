"""``MultiFairHandler``: runs the MultiFair modulator inside a MONAI ``SupervisedTrainer`` iteration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import
from monai.utils.enums import CommonKeys as Keys
from torch import nn

from monai_multifair._deprecation import metric_label, renamed_keyword
from monai_multifair.core import MultiFairConfig, build_modulator
from monai_multifair.core.modulator import ModulatorBase
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers._utils import (
    batch_ids,
    batch_item,
    iteration_logits,
    named_statistics,
    register_iteration_event,
)

if TYPE_CHECKING:
    from ignite.engine import Engine, Events
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")
    Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["MultiFairHandler", "unwrap_network"]

#: How each statistic of ``modulator.stats()`` is indexed: by modality, by group, or both.
_STAT_LAYOUT = {
    "modality_scale": "m",
    "update_scale": "m",
    "balance": "m",
    "guide_auc": "m",
    "group_factor": "mg",
    "guide_group_auc": "mg",
    "fused_group_auc": "g",
    "gate": "",
    "direction_loss": "",
    "fairness_loss": "",
}


def unwrap_network(network: nn.Module) -> nn.Module:
    """The user's module inside ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile`` wrappers."""
    while True:
        if isinstance(network, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            network = network.module
        elif hasattr(network, "_orig_mod") and isinstance(network._orig_mod, nn.Module):
            network = network._orig_mod
        else:
            return network


class MultiFairHandler:
    """Adds MultiFair's dual-level gradient modulation to a MONAI ``SupervisedTrainer``.

    The handler builds the core modulator (:func:`monai_multifair.core.build_modulator`, so every
    preset including ``"reference"`` works) on the encoder modules of the trainer's network and, in
    every iteration, after the task loss ``L_task`` is computed and before MONAI's backward:

    ``L = L_task + aux``,  ``aux = modulator(pred, y, a[, present])``

    ``aux = lambda_gm L_gm + gamma gate F_G``; the same call takes the guide step and sets the per-sample
    scales ``rho B_m (gate f_{m,a_i} + 1 - gate)`` that tensor hooks apply to ``dL/dh_m`` during the
    backward (``docs/concepts/method.md``, "One training step").

    Events and ``engine.state`` keys:

    - ``IterationEvents.LOSS_COMPLETED``: reads ``engine.state.output[Keys.PRED]`` (logits ``[B, C]``),
      ``engine.state.batch[label_key]``, ``engine.state.batch[group_key]`` and, if set,
      ``engine.state.batch[presence_key]`` (``[B, M]`` bool); replaces ``engine.state.output[Keys.LOSS]``
      by ``loss + aux`` (MONAI back-propagates that value).
    - ``Events.ITERATION_COMPLETED`` every ``stats_interval`` iterations and ``Events.EPOCH_COMPLETED``:
      writes ``modulator.stats()`` to ``engine.state.metrics`` as floats named
      ``{metric_prefix}modality_scale/<modality>``, ``balance/<modality>``, ``guide_auc/<modality>``,
      ``group_factor/<modality>/<group>``, ``guide_group_auc/<modality>/<group>``,
      ``fused_group_auc/<group>``, ``gate``, ``direction_loss``, ``fairness_loss``. The statistics
      are read on the host only then (one transfer).

    Behaviour with MONAI features:

    - **AMP**: the modulator computes its statistics in fp32 and its guide heads have their own
      optimizer (no GradScaler); the gradient hooks are linear, so MONAI's ``scaler.scale(loss)``
      commutes with them. The handler never calls ``scaler.unscale_``.
    - **Gradient accumulation** (``accumulation_steps > 1``): the modulator runs on **every
      micro-batch**: one guide step, one update of the statistics and EMAs, and that micro-batch's
      gradient scales. ``aux`` is divided by ``accumulation_steps`` together with the task loss.
    - **DDP**: the modulator all-gathers the detached features, labels and groups itself, so every rank
      computes identical coefficients; its guide heads and buffers are broadcast from rank 0 when the
      handler attaches. Encoders default to ``network.module.encoders`` of a wrapped network.
    - **modulate="update"**: at ``Events.STARTED`` the handler hands ``engine.optimizer`` to the
      modulator, whose step hooks scale each encoder's parameter update by its modality magnitude
      (:meth:`~monai_multifair.core.ModulatorBase.attach_optimizer`); with gradient accumulation the
      magnitudes of the micro-batches are averaged into the one step; a GradScaler-skipped step is left
      alone.
    - **Checkpoints**: ``state_dict()`` / ``load_state_dict()`` delegate to the modulator (guide heads,
      their optimizer, EMAs, previous AUCs): put the handler in ``CheckpointSaver(save_dict=...)`` and
      ``CheckpointLoader(load_dict=...)`` to resume exactly. A state loaded before ``attach`` is applied
      when the modulator is built.

    Args:
        num_classes: number of classes ``C``.
        num_groups: number of group ids ``K`` (``batch[group_key]`` in ``[0, K)``).
        encoders: modality name -> encoder module, or -> dotted attribute path of the module inside the
            (unwrapped) network (``"fundus_encoder"``, ``"backbone.text"``). Default: the network's
            ``encoders`` (``MultimodalFusionClassifier.encoders``).
        group_key: batch key of the group ids.
        label_key: batch key of the class labels (``[B]`` or ``[B, 1]`` class ids).
        presence_key: batch key of an optional ``[B, M]`` modality-presence mask (modality order).
        fused_head: the fused output layer (``W_F`` of the direction loss): a module, or a dotted
            attribute path in the network. Default: the network's ``fused_head`` if it has one.
        config: a :class:`~monai_multifair.core.MultiFairConfig`, a dict of its fields (may contain
            ``preset``) or a preset name; default the ``default`` preset.
        feature_dims: width of each modality feature; default the network's ``feature_dims`` when the
            encoders are taken from it, else each encoder's ``out_features``.
        stats_interval: publish the statistics every this many iterations (and at each epoch end).
        metric_prefix: prefix of the published metric names.
        group_labels: the groups' labels (e.g. a dataset's ``group_labels``; default ``"0"``, ``"1"``,
            ...), used in metric names (a ``/`` in a label becomes ``|`` there).
        process_group: ``torch.distributed`` group of the replicas (default the world).
        group_names: deprecated name of ``group_labels``.

    Example:
        >>> handler = MultiFairHandler(num_classes=2, num_groups=3, group_key="sex", config="paper")
        >>> trainer = SupervisedTrainer(..., network=net, train_handlers=[handler, StatsHandler()])
    """

    def __init__(
        self,
        num_classes: int,
        num_groups: int,
        encoders: Mapping[str, nn.Module | str] | None = None,
        group_key: str = "group",
        label_key: str = "label",
        presence_key: str | None = None,
        fused_head: nn.Module | str | None = None,
        config: MultiFairConfig | Mapping[str, Any] | str | None = None,
        feature_dims: Mapping[str, int] | None = None,
        stats_interval: int = 50,
        metric_prefix: str = "multifair/",
        group_labels: Sequence[str] | None = None,
        process_group: Any | None = None,
        group_names: Sequence[str] | None = None,
    ) -> None:
        group_labels = renamed_keyword(
            "MultiFairHandler", "group_names", "group_labels", group_names, group_labels
        )
        for arg, value in (("num_classes", num_classes), ("num_groups", num_groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise MultiFairError(f"expected `{arg}` to be an integer >= 2, got {value!r}")
        if isinstance(stats_interval, bool) or not isinstance(stats_interval, int) or stats_interval < 1:
            raise MultiFairError(f"expected `stats_interval` to be an integer >= 1, got {stats_interval!r}")
        if encoders is not None and (not isinstance(encoders, Mapping) or len(encoders) == 0):
            raise MultiFairError(
                f"expected `encoders` to be a non-empty mapping of modality name -> module or attribute path, "
                f"got {encoders!r}"
            )
        if group_labels is not None and len(group_labels) != num_groups:
            raise MultiFairError(
                f"expected `group_labels` to have num_groups={num_groups} entries, got {len(group_labels)}"
            )
        for arg, value in (
            ("group_key", group_key),
            ("label_key", label_key),
            ("metric_prefix", metric_prefix),
        ):
            if not isinstance(value, str):
                raise MultiFairError(f"expected `{arg}` to be a string, got {value!r}")
        try:
            config = MultiFairConfig.coerce(config)
        except TypeError as error:
            raise MultiFairError(str(error)) from None
        self.num_classes = num_classes
        self.num_groups = num_groups
        self.encoders = encoders
        self.group_key = group_key
        self.label_key = label_key
        self.presence_key = presence_key
        self.fused_head = fused_head
        self.config = config
        self.feature_dims = dict(feature_dims) if feature_dims is not None else None
        self.stats_interval = stats_interval
        self.metric_prefix = metric_prefix
        self.group_labels = tuple(str(g) for g in group_labels) if group_labels is not None else None
        self.process_group = process_group
        self.modulator: ModulatorBase | None = None
        self._pending_state: Mapping[str, Any] | None = None

    # ------------------------------------------------------------------ building
    def _resolve(self, network: nn.Module | None, value: nn.Module | str, argument: str) -> nn.Module:
        if isinstance(value, nn.Module):
            return value
        if not isinstance(value, str):
            raise MultiFairError(
                f"expected `{argument}` to be an nn.Module or an attribute path in the network, got {value!r}"
            )
        if network is None:
            raise MultiFairError(
                f"`{argument}`={value!r} names a submodule but the engine has no `network` to look it up in"
            )
        try:
            return network.get_submodule(value)
        except AttributeError as error:
            raise MultiFairError(
                f"`{argument}`={value!r} is not a submodule of the network ({type(network).__name__}): {error}"
            ) from error

    def build(self, network: nn.Module | None, device: torch.device | str | None = None) -> ModulatorBase:
        """Build the modulator on ``network``'s encoders (``attach`` calls this); returns it.

        Args:
            network: the trainer's network (wrappers such as DDP are looked through) or ``None`` when
                ``encoders`` and ``fused_head`` are given as modules.
            device: where to put the guide heads and statistics (the engine's device).
        """
        if self.modulator is not None:
            return self.modulator
        inner = unwrap_network(network) if network is not None else None
        feature_dims = self.feature_dims
        if self.encoders is None:
            found = getattr(inner, "encoders", None)
            if not isinstance(found, (Mapping, nn.ModuleDict)) or len(found) == 0:
                raise MultiFairError(
                    "`encoders` was not given and the network has no `encoders` mapping "
                    f"({type(inner).__name__}); pass `encoders={{modality: module or attribute path}}`"
                )
            encoders = dict(found.items())
            if feature_dims is None and isinstance(getattr(inner, "feature_dims", None), Mapping):
                feature_dims = dict(inner.feature_dims)
        else:
            encoders = {
                name: self._resolve(inner, enc, f"encoders[{name!r}]") for name, enc in self.encoders.items()
            }
        if self.fused_head is not None:
            fused_head = self._resolve(inner, self.fused_head, "fused_head")
        else:
            fused_head = getattr(inner, "fused_head", None)
        modulator = build_modulator(
            encoders,
            self.num_classes,
            self.num_groups,
            fused_head=fused_head,
            config=self.config,
            feature_dims=feature_dims,
            process_group=self.process_group,
        )
        if device is not None:
            modulator.to(device)
        self._broadcast_from_rank0(modulator)
        if self._pending_state is not None:
            modulator.load_state_dict(self._pending_state)
            self._pending_state = None
        self.modulator = modulator
        return modulator

    def _broadcast_from_rank0(self, modulator: ModulatorBase) -> None:
        """Make every replica start from rank 0's guide heads and buffers (as DDP does for the network)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        source = dist.get_global_rank(self.process_group, 0) if self.process_group is not None else 0
        for tensor in [*modulator.parameters(), *modulator.buffers()]:
            if tensor.dtype == torch.bool:
                carrier = tensor.detach().to(torch.uint8)
                dist.broadcast(carrier, src=source, group=self.process_group)
                tensor.data.copy_(carrier.to(torch.bool))
            else:
                dist.broadcast(tensor.data, src=source, group=self.process_group)

    # ------------------------------------------------------------------ engine
    def attach(self, engine: Engine) -> None:
        """Register the handler on ``engine`` (idempotent).

        The modulator is built at ``Events.STARTED`` (MONAI attaches ``train_handlers`` before the trainer
        stores its network), unless :meth:`build` was called before.
        """
        event = IterationEvents.LOSS_COMPLETED
        if not register_iteration_event(
            engine, event, self.iteration_loss, "MultiFairHandler", "SupervisedTrainer"
        ):
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.stats_interval), self.publish_stats)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.publish_stats)

    def started(self, engine: Engine) -> None:
        """At ``Events.STARTED``: build the modulator on ``engine.network`` if it is not built yet and,
        with ``modulate="update"``, hand it ``engine.optimizer`` (:meth:`ModulatorBase.attach_optimizer`)."""
        if self.modulator is None:
            self.build(getattr(engine, "network", None), engine.state.device)
        if self.modulator.config.modulate == "update":
            optimizer = getattr(engine, "optimizer", None)
            if optimizer is None:
                raise MultiFairError(
                    "`modulate`='update' scales the encoders' parameter updates, but the engine has no "
                    "`optimizer`: attach MultiFairHandler to a SupervisedTrainer"
                )
            self.modulator.attach_optimizer(optimizer)

    def iteration_loss(self, engine: Engine) -> None:
        """At ``LOSS_COMPLETED``: run the modulator and add its auxiliary loss to ``output[Keys.LOSS]``."""
        modulator = self._require_modulator()
        output = engine.state.output
        pred = iteration_logits(engine)
        batch_size = pred.shape[0]
        batch = engine.state.batch
        labels = batch_ids(batch, self.label_key, "label_key", batch_size, pred.device)
        groups = batch_ids(batch, self.group_key, "group_key", batch_size, pred.device)
        present = None
        if self.presence_key is not None:
            present = torch.as_tensor(batch_item(batch, self.presence_key, "presence_key"))
            present = present.to(device=pred.device, dtype=torch.bool, non_blocking=True)
        aux = modulator(pred, labels, groups, present)
        output[Keys.LOSS] = output[Keys.LOSS] + aux.to(output[Keys.LOSS].dtype)

    def metrics(self) -> dict[str, float]:
        """The last statistics as ``{name: float}`` (one host transfer); empty before the first step."""
        names = self._require_modulator().modality_names
        groups = tuple(map(metric_label, self.group_labels or range(self.num_groups)))

        def labels(key: str, count: int) -> list[str]:
            layout = _STAT_LAYOUT.get(key)
            if layout == "m" and count == len(names):
                return list(names)
            if layout == "g" and count == len(groups):
                return list(groups)
            if layout == "mg" and count == len(names) * len(groups):
                return [f"{m}/{g}" for m in names for g in groups]
            return [""] if count == 1 else [str(i) for i in range(count)]

        return named_statistics(self._require_modulator().stats(), labels, self.metric_prefix)

    def publish_stats(self, engine: Engine) -> None:
        """Write :meth:`metrics` into ``engine.state.metrics``."""
        engine.state.metrics.update(self.metrics())

    # ------------------------------------------------------------------ state
    def _require_modulator(self) -> ModulatorBase:
        if self.modulator is None:
            raise MultiFairError(
                "MultiFairHandler has no modulator yet: attach it to a trainer (or call `build(network)`) first"
            )
        return self.modulator

    def state_dict(self) -> dict[str, Any]:
        """The modulator's state (guide heads, guide optimizer, EMAs, previous AUCs)."""
        return self._require_modulator().state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; before ``attach`` it is kept and applied when the modulator is built."""
        if self.modulator is None:
            self._pending_state = state_dict
        else:
            self.modulator.load_state_dict(state_dict)
