"""``DualLevelGradientModulator``: MultiFair's modality- and group-level gradient modulation.

One call per training step (``docs/concepts/method.md``, "One training step")::

    mod = DualLevelGradientModulator({"fundus": net.fundus_encoder, "notes": net.text_encoder},
                                     num_classes=2, num_groups=3, fused_head=net.head[-1])
    logits = net(batch)                     # forward hooks capture each modality feature h_m
    aux = mod(logits, labels, groups)       # guide step, coefficients, gradient scales, aux loss
    (ce + aux).backward()                   # tensor hooks scale dL/dh_m per sample
    optimizer.step()

Everything stays on the device; with ``config.validate_args=False`` a call performs no host
synchronisation (only ``torch.optim`` internals of the guide optimizer may read step counters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from monai_multifair.core.distributed import gather_batch
from monai_multifair.core.functional import grouped_auc, logistic_group_statistic, surrogate_group_auc
from monai_multifair.core.guide import GuideHead
from monai_multifair.core.multifair_config import MultiFairConfig
from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["MODULATOR_CLASSES", "DualLevelGradientModulator", "ModulatorBase", "build_modulator"]

#: Presets that build a modulator class of their own (a subclass registers itself with
#: ``class X(ModulatorBase, preset="name")``); every other preset builds a DualLevelGradientModulator.
MODULATOR_CLASSES: dict[str, type[ModulatorBase]] = {}


_GUIDE_SEED = 20_26_0731


class _ScaleSlot:
    """Per-forward holder of the per-sample gradient scale of one modality feature."""

    __slots__ = ("scale",)

    def __init__(self) -> None:
        self.scale: Tensor | None = None


def _scale_gradient(slot: _ScaleSlot, grad: Tensor) -> Tensor:
    if slot.scale is None:  # the modulator was not called for this forward: leave it alone
        return grad
    return grad * slot.scale.view(-1, *([1] * (grad.dim() - 1))).to(grad.dtype)


def _macro(auc: Tensor, valid: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Mean of ``auc`` over ``dim`` where valid (one-vs-rest macro average); NaN where none is."""
    count = valid.sum(dim)
    total = torch.where(valid, auc, torch.zeros_like(auc)).sum(dim)
    ok = count > 0
    mean = torch.where(ok, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return mean, ok


def _masked_mean(values: Tensor, mask: Tensor, dim: int) -> Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum(dim) / mask.sum(dim).clamp_min(1)


class ModulatorBase(nn.Module):
    """Shared machinery: argument checks, feature capture, per-sample gradient hooks, guide heads.

    Subclasses implement :meth:`forward` and :meth:`_init_state` (their buffers), fill the scale of each
    captured feature with :meth:`_set_scales` and record their statistics in ``self._stats``.
    """

    #: Preset used when no ``config`` is given.
    default_preset = "default"

    def __init_subclass__(cls, preset: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if preset is not None:
            MODULATOR_CLASSES[preset] = cls
            cls.default_preset = preset

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        num_classes: int,
        num_groups: int,
        fused_head: nn.Module | None = None,
        config: MultiFairConfig | Mapping[str, Any] | str | None = None,
        feature_dims: Mapping[str, int] | None = None,
        process_group: Any | None = None,
    ) -> None:
        super().__init__()
        config = MultiFairConfig.coerce(config, default_preset=self.default_preset)
        self.config = config
        if isinstance(encoders, nn.ModuleDict):  # not a collections.abc.Mapping
            encoders = dict(encoders.items())
        if not isinstance(encoders, Mapping) or len(encoders) < 2:
            got = len(encoders) if isinstance(encoders, Mapping) else type(encoders).__name__
            raise MultiFairError(f"expected `encoders` to map >= 2 modality names to modules, got {got}")
        for name, module in encoders.items():
            if not isinstance(name, str) or not name or "." in name:
                raise MultiFairError(
                    f"expected modality names to be non-empty strings without '.', got {name!r}"
                )
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"expected `encoders[{name!r}]` to be an nn.Module, got {type(module).__name__}"
                )
        for arg, value in (("num_classes", num_classes), ("num_groups", num_groups)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise MultiFairError(f"expected `{arg}` >= 2, got {value!r}")
        if config.positive_class >= num_classes:
            raise MultiFairError(
                f"expected `positive_class` < num_classes={num_classes}, got {config.positive_class}"
            )
        self.modality_names: tuple[str, ...] = tuple(encoders)
        self.num_classes = num_classes
        self.num_groups = num_groups
        self.process_group = process_group

        weight = getattr(fused_head, "weight", None) if fused_head is not None else None
        if fused_head is not None and (
            not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[0] != num_classes
        ):
            raise MultiFairError(
                f"expected `fused_head` to be the fused output layer with a [num_classes={num_classes}, hidden] weight, "
                f"got {type(fused_head).__name__} with weight shape {None if weight is None else tuple(weight.shape)}"
            )
        if config.direction_weight > 0 and fused_head is None and config.preset != "reference":
            raise MultiFairError(
                f"`direction_weight`={config.direction_weight} > 0 needs `fused_head` (the fused output layer); "
                "pass it, or set direction_weight=0"
            )
        hidden = config.guide_hidden or (weight.shape[1] if weight is not None else 128)
        if config.direction_weight > 0 and weight is not None and hidden != weight.shape[1]:
            raise MultiFairError(
                f"expected `guide_hidden` == fused head input width {weight.shape[1]} for the direction loss, got {hidden}"
            )
        if feature_dims:
            unknown = [k for k in feature_dims if k not in encoders]
            if unknown:
                raise MultiFairError(
                    f"unknown modality {unknown[0]!r} in `feature_dims`; known: {', '.join(self.modality_names)}"
                    + close_match_hint(unknown[0], self.modality_names)
                )
        dims: dict[str, int] = {}
        for name, module in encoders.items():
            dim = (feature_dims or {}).get(name, getattr(module, "out_features", None))
            if not isinstance(dim, int) or dim < 1:
                raise MultiFairError(
                    f"cannot tell the feature width of modality {name!r}: its encoder has no integer `out_features`; "
                    f"pass `feature_dims={{{name!r}: width}}`"
                )
            dims[name] = dim
        self.feature_dims = dims
        self.guides = nn.ModuleDict(
            {
                name: GuideHead(dims[name], hidden, num_classes, config.guide_dropout)
                for name in self.modality_names
            }
        )
        if config.guide_optimizer == "sgd":
            self.guide_optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.guides.parameters(),
                lr=config.guide_lr,
                momentum=0.9,
                weight_decay=config.guide_weight_decay,
            )
        else:
            # fused: one kernel for the whole update (CPU and CUDA), which matters inside a training step
            self.guide_optimizer = torch.optim.AdamW(
                self.guides.parameters(),
                lr=config.guide_lr,
                weight_decay=config.guide_weight_decay,
                fused=True,
            )
        # Not registered as submodules: they belong to the user's network and its state dict.
        object.__setattr__(self, "_encoder_modules", dict(encoders))
        object.__setattr__(self, "_fused_head", fused_head)
        self._guide_calls = 0  # host-side counter: seeds the guides' dropout stream (no device read)
        self._captured: dict[str, tuple[Tensor, _ScaleSlot]] = {}
        self._stats: dict[str, Tensor] = {}
        self._hook_handles = [
            module.register_forward_hook(self._make_capture(name)) for name, module in encoders.items()
        ]
        self._init_state()

    def _init_state(self) -> None:
        """Validate subclass-specific settings and register the subclass's state buffers."""

    # ------------------------------------------------------------------ hooks
    def _make_capture(self, name: str):
        def capture(module: nn.Module, args: Any, output: Any) -> None:
            if not isinstance(output, Tensor):
                raise MultiFairError(
                    f"encoder of modality {name!r} returned {type(output).__name__}; the modulator needs a "
                    "batch-first feature tensor [B, ...]: wrap the encoder so that its forward returns it"
                )
            slot = _ScaleSlot()
            self._captured[name] = (output, slot)
            if output.requires_grad and torch.is_grad_enabled():
                output.register_hook(lambda grad, slot=slot: _scale_gradient(slot, grad))

        return capture

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the encoders (the modulator stops seeing features)."""
        for handle in self._hook_handles:
            handle.remove()
        self._hook_handles = []
        self._captured.clear()

    @property
    def fused_head(self) -> nn.Module | None:
        """The fused output layer used by the direction loss (not owned by the modulator)."""
        return self._fused_head

    # ------------------------------------------------------------------ inputs
    def _features(self, batch_size: int) -> tuple[list[Tensor], list[_ScaleSlot]]:
        feats, slots = [], []
        for name in self.modality_names:
            if name not in self._captured:
                raise MultiFairError(
                    f"no feature captured for modality {name!r}: run the network forward (through the encoder "
                    "registered for it) before calling the modulator"
                )
            feat, slot = self._captured[name]
            if feat.dim() < 2 or feat.shape[0] != batch_size:
                raise MultiFairError(
                    f"expected the feature of modality {name!r} to be batch-first [B={batch_size}, ...], "
                    f"got shape {tuple(feat.shape)}"
                )
            feats.append(feat)
            slots.append(slot)
        # Each call consumes the features of its own forward: a later call without a new forward
        # must fail rather than silently reuse them (this also drops the reference to the graph).
        self._captured.clear()
        return feats, slots

    def _check_inputs(self, logits: Tensor, labels: Tensor, groups: Tensor, present: Tensor | None) -> None:
        if labels.dim() != 1:
            raise MultiFairError(f"expected `labels` of shape [B] (class ids), got {tuple(labels.shape)}")
        b = labels.shape[0]
        if logits.dim() != 2 or logits.shape != (b, self.num_classes):
            raise MultiFairError(
                f"expected `logits` of shape [B={b}, num_classes={self.num_classes}], got {tuple(logits.shape)}"
            )
        if groups.shape != (b,):
            raise MultiFairError(
                f"expected `groups` of shape [B={b}] (batch sizes must agree), got {tuple(groups.shape)}"
            )
        if labels.is_floating_point() or groups.is_floating_point():
            raise MultiFairError(
                "expected integer `labels` and `groups` (class and group ids), got floating point"
            )
        if present is not None and present.shape != (b, len(self.modality_names)):
            raise MultiFairError(
                f"expected `present` of shape [B={b}, M={len(self.modality_names)}] (modality order "
                f"{list(self.modality_names)}), got {tuple(present.shape)}"
            )
        guide_device = next(self.guides.parameters()).device
        if guide_device != logits.device:
            raise MultiFairError(
                f"the modulator is on {guide_device} but `logits` are on {logits.device}: call `modulator.to(device)` "
                "before training"
            )
        if self.config.validate_args:  # these read values back: they synchronise the device
            if bool(((labels < 0) | (labels >= self.num_classes)).any()):
                bad = labels[(labels < 0) | (labels >= self.num_classes)][0].item()
                raise MultiFairError(f"expected `labels` in [0, {self.num_classes}), got {bad}")
            if bool(((groups < 0) | (groups >= self.num_groups)).any()):
                bad = groups[(groups < 0) | (groups >= self.num_groups)][0].item()
                raise MultiFairError(f"expected `groups` in [0, num_groups={self.num_groups}), got {bad}")
            if not bool(torch.isfinite(logits).all()):
                raise MultiFairError("`logits` contain NaN or inf")
            for name in self.modality_names:
                if name not in self._captured:  # reported by `_features` with its own message
                    continue
                if not bool(torch.isfinite(self._captured[name][0]).all()):
                    raise MultiFairError(f"the feature of modality {name!r} contains NaN or inf")

    # ------------------------------------------------------------------ guide step
    def _guide_step(self, feats: list[Tensor], labels: Tensor, present: Tensor | None) -> list[Tensor]:
        """One optimizer step of every guide head on detached features; returns pre-step logits.

        The guides' dropout draws from a private stream seeded by a host-side call counter, so every
        DDP rank makes the same guide update and the caller's random stream is left untouched.
        """
        self.guides.train()
        outputs = []
        device = labels.device
        seed = _GUIDE_SEED + self._guide_calls
        self._guide_calls += 1
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda"):
            if device.type == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            else:
                torch.default_generator.manual_seed(seed)
            return self._guide_update(feats, labels, present, outputs)

    def _guide_update(
        self, feats: list[Tensor], labels: Tensor, present: Tensor | None, outputs: list[Tensor]
    ) -> list[Tensor]:
        with torch.enable_grad():
            self.guide_optimizer.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=labels.device)
            for m, name in enumerate(self.modality_names):
                out = self.guides[name](feats[m])
                ce = F.cross_entropy(out, labels, reduction="none")
                if present is None:
                    loss = loss + ce.mean()
                else:
                    w = present[:, m].to(ce.dtype)
                    loss = loss + (ce * w).sum() / w.sum().clamp_min(1.0)
                outputs.append(out.detach())
            loss.backward()
            self.guide_optimizer.step()
        return outputs

    def _score_columns(self, probs: Tensor) -> Tensor:
        """Binary: the positive-class column ``[N, 1]``; multi-class: every class ``[N, C]`` (one-vs-rest)."""
        if self.num_classes == 2:
            return probs[:, self.config.positive_class : self.config.positive_class + 1]
        return probs

    def _target_columns(self, labels: Tensor) -> Tensor:
        if self.num_classes == 2:
            return (labels == self.config.positive_class).unsqueeze(1)
        return labels.unsqueeze(1) == torch.arange(self.num_classes, device=labels.device)

    def _work_dtype(self) -> torch.dtype:
        """Statistics run in the guide heads' dtype, at least float32 (autocast is switched off)."""
        return torch.promote_types(next(self.guides.parameters()).dtype, torch.float32)

    def _set_scales(self, slots: list[_ScaleSlot], scales: Tensor) -> None:
        for m, slot in enumerate(slots):
            slot.scale = scales[m].detach()

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        """The guide optimizer's state (saved inside :meth:`state_dict`)."""
        return {"guide_optimizer": self.guide_optimizer.state_dict(), "guide_calls": self._guide_calls}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.guide_optimizer.load_state_dict(state["guide_optimizer"])
        self._guide_calls = int(state.get("guide_calls", 0))

    def stats(self) -> dict[str, Tensor]:
        """Factors and statistics of the last call, as detached device tensors (read them only to log)."""
        return dict(self._stats)

    def extra_repr(self) -> str:
        return (
            f"modalities={list(self.modality_names)}, num_classes={self.num_classes}, "
            f"num_groups={self.num_groups}, preset={self.config.preset!r}"
        )


class DualLevelGradientModulator(ModulatorBase):
    """Dual-level (modality x group) gradient modulation (``docs/concepts/method.md``, "One training step").

    Each call (after the network's forward, before the backward):

    1. reads the features ``h_m`` that the forward hooks captured on the encoder modules;
    2. takes one guide step: ``sum_m CE(G_m(sg(h_m)), y)`` into the guide heads only;
    3. ``A_m(t)``: exact batch ROC-AUC of each guide (carried over when the batch has one class);
    4. ``B_m = 1 - |dA_m| / (sum_k |dA_k| + eps)`` (or the signed CGGM rule), optionally smoothed by an
       EMA; modality multiplier ``rho * B_m``;
    5. ``E_{m,g}``: EMA (beta) of each guide's AUC on group ``g``, updated where the group has both classes;
    6. group factor ``f_{m,g} = clamp(1 + kappa (mean_m - E_{m,g}) / tau, f_min, f_max)`` (or ``routing``);
    7. gate: 1 when the gap between the best and worst group AUC of the fused output exceeds tau;
    8. per-sample gradient scale of ``h_m``: ``rho B_m (gate f_{m,a_i} + 1 - gate)`` (0 for a missing modality);
    9. direction loss ``L_gm = (1/M) (sum_m |B_m| - sum_m B_m cos(W_F, sg(W_{G_m})))``;
    10. fairness loss ``F_G``: dispersion (or shortfall) of the per-group surrogate AUC of the fused output;
    11. returns ``lambda_gm L_gm + gamma gate F_G`` (add it to the task loss; one backward).

    Under ``torch.distributed`` the detached features, labels, groups and fused scores are all-gathered
    first, so every rank computes identical statistics, coefficients and guide updates.

    Args:
        encoders: modality name -> encoder module whose forward output is the feature ``h_m``
            (batch-first). The modulator registers a forward hook on each.
        num_classes: ``C >= 2``.
        num_groups: ``K >= 2`` (intersections of several attributes: see :class:`GroupEncoder`).
        fused_head: the fused output layer (``weight`` of shape ``[C, hidden]``), for the direction loss.
        config: a :class:`MultiFairConfig`, a mapping of its fields, or a preset name.
        feature_dims: feature width per modality; default each encoder's ``out_features``.
        process_group: ``torch.distributed`` group to gather over (default: the world, when initialised).

    Example:
        >>> mod = DualLevelGradientModulator({"img": img_enc, "txt": txt_enc}, 2, 3, fused_head=head)
        >>> aux = mod(net(batch), labels, groups)
        >>> (F.cross_entropy(logits, labels) + aux).backward()
    """

    def _init_state(self) -> None:
        if self.config.preset == "reference":
            raise MultiFairError(
                "the 'reference' preset reproduces the research code and is built by `ReferenceModulator` "
                "(or `build_modulator`), not DualLevelGradientModulator"
            )
        m, k = len(self.modality_names), self.num_groups
        self.register_buffer("previous_auc", torch.zeros(m))
        self.register_buffer("has_previous_auc", torch.zeros(m, dtype=torch.bool))
        self.register_buffer("balance_ema", torch.ones(m))
        self.register_buffer("group_auc_ema", torch.zeros(m, k))
        self.register_buffer("group_seen", torch.zeros(m, k, dtype=torch.bool))
        self.register_buffer("fused_auc_ema", torch.zeros(k))
        self.register_buffer("fused_seen", torch.zeros(k, dtype=torch.bool))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def reset_state(self) -> None:
        """Forget the EMAs and previous AUCs (guide heads and their optimizer are kept)."""
        for name in ("previous_auc", "group_auc_ema", "fused_auc_ema", "steps"):
            getattr(self, name).zero_()
        for name in ("has_previous_auc", "group_seen", "fused_seen"):
            getattr(self, name).fill_(False)
        self.balance_ema.fill_(1.0)

    def forward(
        self, logits: Tensor, labels: Tensor, groups: Tensor, present: Tensor | None = None
    ) -> Tensor:
        """Run one modulation step; returns the auxiliary loss to add to the task loss.

        Args:
            logits: ``[B, C]`` fused logits of this forward (with their graph).
            labels: ``[B]`` class ids.
            groups: ``[B]`` group ids in ``[0, K)``.
            present: optional ``[B, M]`` modality-presence mask (modality order ``modality_names``).

        Returns:
            The scalar ``lambda_gm L_gm + gamma gate F_G``.
        """
        self._check_inputs(logits, labels, groups, present)
        cfg = self.config
        batch_size = labels.shape[0]
        feats, slots = self._features(batch_size)
        labels = labels.long()
        groups = groups.long()
        present_local = None if present is None else present.to(torch.bool)
        num_modalities = len(self.modality_names)
        work = self._work_dtype()
        with torch.autocast(device_type=logits.device.type, enabled=False):
            flat = [f.detach().flatten(1).to(work) for f in feats]
            fused_probs = torch.softmax(logits.detach().to(work), dim=1)
            extra = [] if present_local is None else [present_local]
            gathered = gather_batch([*flat, fused_probs, labels, groups, *extra], self.process_group)
            flat, fused_probs = gathered[:num_modalities], gathered[num_modalities]
            all_labels, all_groups = gathered[num_modalities + 1], gathered[num_modalities + 2]
            all_present = gathered[num_modalities + 3] if present_local is not None else None

            # Step 2: guide step. Steps 3 and 5: exact AUCs of every guide, overall and per group.
            guide_logits = self._guide_step(flat, all_labels, all_present)
            # One grouped_auc call for everything: columns are every guide's scores and then the fused
            # scores; rows are the batch twice, once with its group ids and once as group K ("overall").
            columns = [self._score_columns(torch.softmax(o, dim=1)) for o in guide_logits]
            columns.append(self._score_columns(fused_probs))
            scores = torch.cat(columns, dim=1)
            cols = columns[0].shape[1]
            k = self.num_groups
            targets = self._target_columns(all_labels).repeat(1, num_modalities + 1)
            rows_groups = torch.cat([all_groups, torch.full_like(all_groups, k)])
            weights = None
            if all_present is not None:
                fused_present = torch.ones_like(all_present[:, :1])
                weights = torch.cat([all_present, fused_present], dim=1).to(scores.dtype)
                weights = weights.repeat_interleave(cols, dim=1).repeat(2, 1)
            auc, valid = grouped_auc(scores.repeat(2, 1), targets.repeat(2, 1), rows_groups, k + 1, weights)
            auc = auc.view(num_modalities + 1, cols, k + 1)
            valid = valid.view(num_modalities + 1, cols, k + 1)
            guide_auc, guide_valid = _macro(auc[:num_modalities, :, k], valid[:num_modalities, :, k], dim=1)
            group_auc, group_valid = _macro(auc[:num_modalities, :, :k], valid[:num_modalities, :, :k], dim=1)
            fused_auc, fused_valid = _macro(auc[num_modalities, :, :k], valid[num_modalities, :, :k], dim=0)
            if cfg.group_statistic == "logistic":  # ablation: the research code's surrogate statistic
                group_auc, group_valid = self._logistic_group_statistic(
                    columns[:num_modalities], all_labels, all_groups, all_present
                )

            # Step 4: modality balance coefficient B_m from the change of each guide's AUC.
            current = torch.where(guide_valid, guide_auc, self.previous_auc)
            delta = torch.where(
                self.has_previous_auc & guide_valid, current - self.previous_auc, torch.zeros_like(current)
            )
            if cfg.coefficient_rule == "none":
                balance = torch.ones_like(delta)
            elif cfg.coefficient_rule == "signed":
                total = delta.sum()
                safe_total = torch.where(total.abs() > cfg.eps, total, torch.ones_like(total))
                balance = torch.where(
                    total.abs() > cfg.eps, (total - delta) / safe_total, torch.ones_like(delta)
                )
            else:
                balance = 1.0 - delta.abs() / (delta.abs().sum() + cfg.eps)
            self.previous_auc.copy_(current)
            self.has_previous_auc.logical_or_(guide_valid)
            decay = cfg.coefficient_ema_decay
            self.balance_ema.mul_(decay).add_((1.0 - decay) * balance)
            modality_scale = cfg.modality_scale * self.balance_ema

            # Step 5: per-group EMAs of guide AUCs; step 7 input: fused per-group AUCs.
            beta = cfg.ema_decay
            updated = torch.where(
                self.group_seen, beta * self.group_auc_ema + (1 - beta) * group_auc, group_auc
            )
            self.group_auc_ema.copy_(torch.where(group_valid, updated, self.group_auc_ema))
            self.group_seen.logical_or_(group_valid)
            if cfg.gate_smoothing:
                f_updated = torch.where(
                    self.fused_seen, beta * self.fused_auc_ema + (1 - beta) * fused_auc, fused_auc
                )
                self.fused_auc_ema.copy_(torch.where(fused_valid, f_updated, self.fused_auc_ema))
                self.fused_seen.logical_or_(fused_valid)
                fused_level, fused_known = self.fused_auc_ema, self.fused_seen
            else:
                fused_level = torch.where(fused_valid, fused_auc, torch.zeros_like(fused_auc))
                fused_known = fused_valid

            # Step 6: group factor f_{m,g}.
            ema, seen = self.group_auc_ema, self.group_seen
            tau = cfg.fairness_threshold
            if cfg.group_factor_rule == "routing":
                fused_mean = _masked_mean(fused_level, fused_known, dim=0)
                shortfall = torch.where(
                    fused_known, (fused_mean - fused_level).clamp_min(0), torch.zeros_like(fused_level)
                )
                across = _masked_mean(ema, seen, dim=0)  # [K]: mean guide AUC over modalities, per group
                advantage = torch.tanh((ema - across.unsqueeze(0)) / tau)
                raw = 1.0 + cfg.group_strength * (shortfall / tau).unsqueeze(0) * advantage
                known = seen & fused_known.unsqueeze(0)
            else:
                modality_mean = _masked_mean(ema, seen, dim=1)  # [M]
                raw = 1.0 + cfg.group_strength * (modality_mean.unsqueeze(1) - ema) / tau
                known = seen
            group_factor = torch.where(
                known, raw.clamp(cfg.group_factor_min, cfg.group_factor_max), torch.ones_like(raw)
            )

            # Step 7: fairness gate on the gap of the fused per-group AUCs.
            best = torch.where(fused_known, fused_level, torch.full_like(fused_level, -float("inf"))).max()
            worst = torch.where(fused_known, fused_level, torch.full_like(fused_level, float("inf"))).min()
            gate = ((fused_known.sum() >= 2) & ((best - worst) > tau)).to(modality_scale.dtype)

            # Step 8: per-sample scale of dL/dh_m.
            sample_factor = group_factor.index_select(1, groups)  # [M, B]
            if cfg.group_factor_reduction == "batch":  # one scalar per modality (research-code style)
                sample_factor = sample_factor.mean(dim=1, keepdim=True).expand_as(sample_factor)
            per_sample = gate * sample_factor + (1.0 - gate)
            scales = modality_scale.unsqueeze(1) * per_sample
            if present_local is not None:
                scales = scales * present_local.t().to(scales.dtype)
            self._set_scales(slots, scales)

            # Step 9: direction loss (gradient into the fused head only).
            aux = torch.zeros((), device=logits.device)
            direction = torch.zeros((), device=logits.device)
            if cfg.direction_weight > 0:
                fused_weight = self.fused_head.weight.to(work).reshape(1, -1)
                coeff = self.balance_ema.detach()
                cosines = torch.stack(
                    [
                        F.cosine_similarity(
                            fused_weight, self.guides[n].output.weight.detach().reshape(1, -1)
                        )[0]
                        for n in self.modality_names
                    ]
                )
                direction = (coeff.abs().sum() - (coeff * cosines).sum()) / num_modalities
                aux = aux + cfg.direction_weight * direction

            # Step 10: fairness loss on the local batch's fused logits (carries gradient).
            fairness = torch.zeros((), device=logits.device)
            if cfg.fairness_weight > 0:
                fairness = self._fairness_loss(logits.to(work), labels, groups)
                aux = aux + cfg.fairness_weight * gate * fairness

        self.steps.add_(1)
        self._stats = {
            "modality_scale": modality_scale.detach(),
            "balance": balance.detach(),
            "group_factor": group_factor.detach(),
            "gate": gate.detach(),
            "guide_auc": guide_auc.detach(),
            "guide_group_auc": group_auc.detach(),
            "fused_group_auc": fused_auc.detach(),
            "direction_loss": direction.detach(),
            "fairness_loss": fairness.detach(),
        }
        return aux

    def _logistic_group_statistic(
        self, columns: list[Tensor], labels: Tensor, groups: Tensor, present: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``[M, K]`` logistic surrogate of each guide per group (macro over one-vs-rest columns)."""
        targets = self._target_columns(labels)
        values, valids = [], []
        for m, scores in enumerate(columns):
            w = None if present is None else present[:, m].to(scores.dtype)
            per_class = [
                logistic_group_statistic(scores[:, c], targets[:, c], groups, self.num_groups, w)
                for c in range(scores.shape[1])
            ]
            value, valid = _macro(
                torch.stack([v for v, _ in per_class]), torch.stack([o for _, o in per_class]), 0
            )
            values.append(value)
            valids.append(valid)
        return torch.stack(values), torch.stack(valids)

    def _fairness_loss(self, logits: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        """Dispersion (or shortfall) of the per-group surrogate AUC of the fused margins."""
        cfg = self.config
        if self.num_classes == 2:
            pos = cfg.positive_class
            margins = [logits[:, pos] - logits[:, 1 - pos]]
            targets = [labels == pos]
        else:
            eye = torch.eye(self.num_classes, dtype=torch.bool, device=logits.device)
            margins = [
                logits[:, c] - torch.logsumexp(logits.masked_fill(eye[c], -float("inf")), dim=1)
                for c in range(self.num_classes)
            ]
            targets = [labels == c for c in range(self.num_classes)]
        per_class = [
            surrogate_group_auc(z, t, groups, self.num_groups, cfg.surrogate_temperature)
            for z, t in zip(margins, targets)
        ]
        surrogate, valid = _macro(
            torch.stack([a for a, _ in per_class]), torch.stack([v for _, v in per_class]), 0
        )
        surrogate = torch.where(valid, surrogate, torch.zeros_like(surrogate))  # no NaN reaches the backward
        mean = _masked_mean(surrogate, valid, dim=0)
        if cfg.fairness_loss == "shortfall":
            # The reference level is a stop-gradient: the loss lifts lagging groups and never rewards
            # lowering the best one (a differentiable mean would, by 1/K per lagging group).
            spread = (mean.detach() - surrogate).clamp_min(0)
        else:
            spread = (surrogate - mean).abs()
        return _masked_mean(spread, valid, dim=0)


def build_modulator(
    encoders: Mapping[str, nn.Module],
    num_classes: int,
    num_groups: int,
    fused_head: nn.Module | None = None,
    config: MultiFairConfig | Mapping[str, Any] | str | None = None,
    **kwargs: Any,
) -> ModulatorBase:
    """Build the modulator a config asks for: the class its preset registered in
    :data:`MODULATOR_CLASSES` (``reference`` -> :class:`~monai_multifair.core.ReferenceModulator`), else
    :class:`DualLevelGradientModulator`. Arguments as for :class:`ModulatorBase`."""
    config = MultiFairConfig.coerce(config)
    cls = MODULATOR_CLASSES.get(config.preset, DualLevelGradientModulator)
    return cls(encoders, num_classes, num_groups, fused_head=fused_head, config=config, **kwargs)
