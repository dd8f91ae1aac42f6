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

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from monai_multifair.core.compiled_step import CompiledStep
from monai_multifair.core.distributed import gather_batch
from monai_multifair.core.functional import auc_by_group_and_overall, logistic_group_statistic
from monai_multifair.core.guide import GuideHead, guide_logits_and_gradients, step_guide_optimizer
from monai_multifair.core.multifair_config import MultiFairConfig
from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["MODULATOR_CLASSES", "DualLevelGradientModulator", "ModulatorBase", "build_modulator"]

#: Presets that build a modulator class of their own (a subclass registers itself with
#: ``class X(ModulatorBase, preset="name")``); every other preset builds a DualLevelGradientModulator.
MODULATOR_CLASSES: dict[str, type[ModulatorBase]] = {}


_GUIDE_SEED = 20_26_0731
_COSINE_EPS = 1e-8  # floor of |W_F| |W_G| in the direction loss's cosine (as F.cosine_similarity)


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


def _below_mean(values: Tensor, mask: Tensor, dim: int) -> Tensor:
    """``mean(values over dim where mask) - values``, for finite ``values``.

    Computed as the mean of the differences ``values_h - values_g`` so that equal values give exactly
    0 (a mean taken first need not round back to the values it averages).
    """
    differences = values.unsqueeze(dim) - values.unsqueeze(dim + 1)  # [..., g, h, ...]: v_h - v_g
    return (differences * mask.unsqueeze(dim)).sum(dim + 1) / mask.sum(dim, keepdim=True).clamp_min(1)


def _guide_gradients(
    mod: ModulatorBase, feats: list[Tensor], labels: Tensor, present: Tensor | None, masks: Tensor | None
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Pre-step guide logits ``[M, N, C]`` and the gradients of the guide loss (step 2), a pure function
    of its inputs and the guide parameters (compiled when ``config.compile`` says so)."""
    heads = [mod.guides[name] for name in mod.modality_names]
    return guide_logits_and_gradients(heads, feats, labels, present, masks)


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
        self._dropout_generators: dict[torch.device, torch.Generator] = {}
        self._guide_param_slots = [
            (m, param_name, param)
            for m, name in enumerate(self.modality_names)
            for param_name, param in self.guides[name].named_parameters()
        ]
        self._guide_gradient_step = CompiledStep(_guide_gradients, "guide step", config.compile)
        self._captured: dict[str, tuple[Tensor, _ScaleSlot]] = {}
        self._earlier: dict[str, list[Any]] = {}  # grad_fns of outputs a later call replaced
        self._warned_repeats: set[str] = set()
        self._stats: dict[str, Tensor] = {}
        self._hook_handles = [
            module.register_forward_hook(self._make_capture(name)) for name, module in encoders.items()
        ]
        # modulate="update": the per-modality magnitudes of the calls since the last optimizer step
        # (summed on the device, counted on the host), the optimizer whose step they scale and its hooks.
        self.register_buffer("pending_update_scale", torch.zeros(len(self.modality_names)), persistent=False)
        self._pending_update_calls = 0
        self._update_optimizer: torch.optim.Optimizer | None = None
        self._update_params: list[list[Tensor]] = []
        self._update_snapshots: list[list[Tensor]] = []
        self._optimizer_hook_handles: list[Any] = []
        self._last_update_scale: Tensor | None = None
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
            previous = self._captured.get(name)
            if previous is not None and previous[0].grad_fn is not None and output.requires_grad:
                self._earlier.setdefault(name, []).append(previous[0].grad_fn)
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
        self._earlier.clear()

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
        if self._earlier:
            self._warn_repeated_calls(logits)
        self._check_input_values(logits, labels, groups, present)

    def _warn_repeated_calls(self, logits: Tensor) -> None:
        """Warn (once per modality) when an encoder ran more than once in the forward that produced
        ``logits`` (two eyes through one encoder): only its last output is modulated. An earlier output
        that ``logits`` does not depend on (a separate forward, e.g. a reference pass) is no concern.
        This walks the autograd graph on the host, only in the rare step where an encoder ran twice."""
        earlier, self._earlier = self._earlier, {}
        pending = {name: set(fns) for name, fns in earlier.items() if name not in self._warned_repeats}
        if not pending or logits.grad_fn is None:
            return
        seen: set[int] = set()
        stack = [logits.grad_fn]
        while stack and pending:
            fn = stack.pop()
            if fn is None or id(fn) in seen:
                continue
            seen.add(id(fn))
            for name in [n for n, fns in pending.items() if fn in fns]:
                del pending[name]
                self._warned_repeats.add(name)
                warnings.warn(
                    f"the encoder of modality {name!r} ran more than once in the forward that produced the "
                    "logits (e.g. two eyes through one encoder): the modulator scales the gradient of its last "
                    "output only. Give each call an encoder of its own, or register the module that combines "
                    "the calls as the encoder.",
                    RuntimeWarning,
                    stacklevel=4,
                )
            stack.extend(next_fn for next_fn, _ in fn.next_functions)

    def _check_input_values(
        self, logits: Tensor, labels: Tensor, groups: Tensor, present: Tensor | None
    ) -> None:
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
        guide_device = self.guides[self.modality_names[0]].output.weight.device
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
    def _guide_step(self, feats: list[Tensor], labels: Tensor, present: Tensor | None) -> Tensor:
        """One optimizer step of every guide head on detached features; returns the pre-step logits
        ``[M, N, C]`` (modality order ``modality_names``).

        The guides' dropout masks are drawn from a private stream seeded by a host-side call counter,
        so every DDP rank makes the same guide update, the caller's random stream is left untouched, and
        an eager and a compiled step (``config.compile``) apply the same masks.
        """
        masks = self._dropout_masks(labels.shape[0], labels.device, feats[0].dtype)
        outputs, grads = self._guide_gradient_step(labels.device, self, list(feats), labels, present, masks)
        for m, param_name, param in self._guide_param_slots:
            param.grad = grads[m][param_name]
        step_guide_optimizer(self.guide_optimizer)
        return outputs

    def _dropout_masks(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor | None:
        """``[M, N, hidden]`` guide dropout multipliers (``1/(1-p)`` kept, 0 dropped); None when ``p = 0``."""
        p = self.config.guide_dropout
        seed = _GUIDE_SEED + self._guide_calls
        self._guide_calls += 1
        if p == 0:
            return None
        hidden = self.guides[self.modality_names[0]].output.in_features
        shape = (len(self.modality_names), batch_size, hidden)
        generator = self._dropout_generators.get(device)
        if generator is None:
            generator = self._dropout_generators[device] = torch.Generator(device=device)
        generator.manual_seed(seed)
        draws = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return draws.lt_(1.0 - p).div_(1.0 - p)  # kept with probability 1 - p, as 1 / (1 - p)

    def _work_dtype(self) -> torch.dtype:
        """Statistics run in the guide heads' dtype, at least float32 (autocast is switched off)."""
        return torch.promote_types(self.guides[self.modality_names[0]].output.weight.dtype, torch.float32)

    def _set_scales(self, slots: list[_ScaleSlot], scales: Tensor, magnitude: Tensor | None = None) -> None:
        """Hand each captured feature its per-sample gradient scale ``scales[m]`` (``[M, B]``).

        With ``modulate="update"`` the scales are split: ``magnitude`` ``[M]`` (default: the batch mean of
        ``scales``; subclasses pass the mean over the gathered batch, equal on every DDP rank) is added to
        the pending update scale that :meth:`attach_optimizer`'s hooks apply to the parameter update, and
        the gradient keeps the relative weights ``scales / magnitude`` (0 where the magnitude is 0).
        """
        if self.config.modulate == "update":
            if self._update_optimizer is None:
                raise MultiFairError(
                    "`modulate`='update' scales each encoder's parameter update, so the modulator needs the "
                    "optimizer: call `modulator.attach_optimizer(optimizer)` once before training (the MONAI "
                    "handler and `multifair train` do it), or use modulate='gradient'"
                )
            if magnitude is None:
                magnitude = scales.mean(dim=1)
            magnitude = magnitude.detach().to(self.pending_update_scale.dtype)
            safe = torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))
            scales = scales / safe.unsqueeze(1).to(scales.dtype)
            self.pending_update_scale.add_(magnitude)
            self._pending_update_calls += 1
            self._last_update_scale = magnitude
        for m, slot in enumerate(slots):
            slot.scale = scales[m].detach()

    # ------------------------------------------------------------------ update mode
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Let ``modulate="update"`` scale each encoder's parameter update in ``optimizer.step()``.

        Registers a step pre-hook that copies the encoders' parameters and a step post-hook that sets
        ``p <- p_old + c_m (p_new - p_old)`` for every parameter of encoder ``m`` that ``optimizer``
        updates, with ``c_m`` the mean per-modality magnitude of the modulator calls since the previous
        step (gradient accumulation: every micro-batch's call counts once). The optimizer's own step
        (Adam's moments, weight decay, momentum) is left as it is; only the distance the parameters
        move is scaled, so the coefficient reaches them whatever the optimizer. Device-side foreach
        operations only: no host synchronisation. A step that ``GradScaler`` skips (inf/NaN gradients)
        runs no hook, and its calls are averaged into the next step. Costs one copy of the optimised
        encoder parameters. Idempotent for the same optimizer; a second optimizer replaces the first.
        Does nothing with ``modulate="gradient"``.

        Raises:
            MultiFairError: a parameter belongs to two encoders (its update could not be scaled once).
        """
        if self.config.modulate != "update" or optimizer is self._update_optimizer:
            return
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"expected `optimizer` to be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        self.detach_optimizer()
        optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
        owner: dict[int, str] = {}
        params: list[list[Tensor]] = []
        for name in self.modality_names:
            own = []
            for param in self._encoder_modules[name].parameters():
                if id(param) in owner and owner[id(param)] != name:
                    raise MultiFairError(
                        f"a parameter of shape {tuple(param.shape)} belongs to the encoders of both "
                        f"{owner[id(param)]!r} and {name!r}; modulate='update' scales each encoder's update "
                        "once, so encoders must not share parameters (use modulate='gradient')"
                    )
                owner[id(param)] = name
                if param.requires_grad and id(param) in optimised:
                    own.append(param)
            params.append(own)
        self._update_optimizer = optimizer
        self._update_params = params
        self._update_snapshots = []
        self._optimizer_hook_handles = [
            optimizer.register_step_pre_hook(self._snapshot_parameters),
            optimizer.register_step_post_hook(self._scale_update),
        ]

    def detach_optimizer(self) -> None:
        """Remove the hooks of :meth:`attach_optimizer` (the pending update scale is dropped)."""
        for handle in self._optimizer_hook_handles:
            handle.remove()
        self._optimizer_hook_handles = []
        self._update_optimizer = None
        self._update_params = []
        self._update_snapshots = []
        self.pending_update_scale.zero_()
        self._pending_update_calls = 0

    def _snapshot_parameters(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._pending_update_calls == 0:  # no modulator call since the last step: leave it alone
            return
        if not self._update_snapshots:
            self._update_snapshots = [[torch.empty_like(p) for p in own] for own in self._update_params]
        with torch.no_grad():
            for own, snapshot in zip(self._update_params, self._update_snapshots):
                if own:
                    torch._foreach_copy_(snapshot, own)

    def _scale_update(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._pending_update_calls == 0:
            return
        scale = self.pending_update_scale / self._pending_update_calls  # [M], on the device
        with torch.no_grad():
            for m, (own, snapshot) in enumerate(zip(self._update_params, self._update_snapshots)):
                if not own:
                    continue
                factor = scale[m]
                torch._foreach_sub_(own, snapshot)  # p_new - p_old
                torch._foreach_mul_(own, factor)
                torch._foreach_add_(own, snapshot)
        self.pending_update_scale.zero_()
        self._pending_update_calls = 0

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        """The guide optimizer's state (saved inside :meth:`state_dict`)."""
        return {"guide_optimizer": self.guide_optimizer.state_dict(), "guide_calls": self._guide_calls}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.guide_optimizer.load_state_dict(state["guide_optimizer"])
        self._guide_calls = int(state.get("guide_calls", 0))

    def stats(self) -> dict[str, Tensor]:
        """Factors and statistics of the last call, as detached device tensors (read them only to log).

        With ``modulate="update"`` also ``update_scale`` ``[M]``: the magnitude ``c_m`` the call added to
        the next parameter update."""
        stats = dict(self._stats)
        if self._last_update_scale is not None:
            stats["update_scale"] = self._last_update_scale
        return stats

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
        self._statistics_step = CompiledStep(_statistics, "statistics step", self.config.compile)

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
        feats, slots = self._features(labels.shape[0])
        labels = labels.long()
        groups = groups.long()
        present_local = None if present is None else present.to(torch.bool)
        num_modalities = len(self.modality_names)
        work = self._work_dtype()
        with torch.autocast(device_type=logits.device.type, enabled=False):
            flat = [f.detach().flatten(1).to(work) for f in feats]
            extra = [] if present_local is None else [present_local]
            gathered = gather_batch(
                [*flat, logits.detach().to(work), labels, groups, *extra], self.process_group
            )
            flat = gathered[:num_modalities]
            all_logits, all_labels, all_groups = gathered[num_modalities : num_modalities + 3]
            all_present = gathered[num_modalities + 3] if present_local is not None else None
            # Step 2: guide step. Steps 3-10: one pure function of tensors (compiled when configured).
            guide_logits = self._guide_step(flat, all_labels, all_present)
            if not isinstance(guide_logits, Tensor):
                guide_logits = torch.stack(list(guide_logits))
            head = self.fused_head if self.config.direction_weight > 0 else None
            with torch.no_grad():
                value, grad_logits, grad_weight, scales, magnitude, state, stats = self._statistics_step(
                    logits.device,
                    self,
                    guide_logits,
                    all_logits,
                    all_labels,
                    all_groups,
                    all_present,
                    logits.detach().to(work),
                    labels,
                    groups,
                    present_local,
                    tuple(self._buffers[name] for name in _STATE),
                    None if head is None else head.weight.detach(),
                )
                torch._foreach_copy_([self._buffers[name] for name in _STATE], list(state))
        self._set_scales(slots, scales, magnitude)
        self._stats = dict(zip(_STAT_NAMES, stats))
        if grad_logits is None and grad_weight is None:
            return value
        return _AuxLoss.apply(
            value,
            grad_logits,
            grad_weight,
            None if grad_logits is None else logits,
            None if grad_weight is None else head.weight,
        )


#: State buffers of DualLevelGradientModulator, in the order the statistics step takes and returns them.
_STATE = (
    "previous_auc",
    "has_previous_auc",
    "balance_ema",
    "group_auc_ema",
    "group_seen",
    "fused_auc_ema",
    "fused_seen",
    "steps",
)
#: Keys of ``stats()``, in the order the statistics step returns them.
_STAT_NAMES = (
    "modality_scale",
    "balance",
    "group_factor",
    "gate",
    "guide_auc",
    "guide_group_auc",
    "fused_group_auc",
    "direction_loss",
    "fairness_loss",
)


def _statistics(
    mod: DualLevelGradientModulator,
    guide_logits: Tensor,
    all_logits: Tensor,
    all_labels: Tensor,
    all_groups: Tensor,
    all_present: Tensor | None,
    logits: Tensor,
    labels: Tensor,
    groups: Tensor,
    present: Tensor | None,
    state: tuple[Tensor, ...],
    fused_weight: Tensor | None,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Steps 3-10 of the training step (``docs/concepts/method.md``) as one pure function of tensors.

    Args:
        mod: the modulator (read for its config, sizes and guide output weights only).
        guide_logits: ``[M, N, C]`` pre-step guide logits of the (gathered) batch.
        all_logits, all_labels, all_groups, all_present: the gathered batch's detached fused logits
            ``[N, C]``, labels, groups and optional presence mask ``[N, M]``.
        logits, labels, groups, present: the local batch (``logits`` detached, in the work dtype).
        state: the buffers named in ``_STATE``, in that order.
        fused_weight: the fused head's detached weight when the direction loss is on.

    Returns:
        ``(aux, grad_logits, grad_weight, scales [M, B], magnitude [M] or None, new state (as _STATE),
        statistics (as _STAT_NAMES))``: the auxiliary loss value and its gradients with respect to
        ``logits`` and ``fused_weight`` (``None`` when the corresponding loss is off), and with
        ``modulate="update"`` the per-modality magnitude ``c_m`` over the gathered batch.
    """
    cfg = mod.config
    num_modalities, k, c = guide_logits.shape[0], mod.num_groups, mod.num_classes
    previous_auc, has_previous, balance_ema, group_ema, group_seen, fused_ema, fused_seen, steps = state
    n = all_labels.shape[0]

    # Steps 3, 5 and 7 (inputs): exact AUC of every guide and of the fused output, per group and over
    # the batch, from one sort per score row. Rows: each guide, then the fused output (x C one-vs-rest).
    probs = torch.softmax(torch.cat([guide_logits, all_logits.unsqueeze(0)]), dim=2)  # [M+1, N, C]
    if c == 2:
        scores = probs[:, :, cfg.positive_class]  # [M+1, N]
        positive = all_labels == cfg.positive_class
    else:
        scores = probs.transpose(1, 2).reshape((num_modalities + 1) * c, n)
        positive = (all_labels == torch.arange(c, device=all_labels.device).unsqueeze(1)).repeat(
            num_modalities + 1, 1
        )
    weights = None
    if all_present is not None:  # a missing modality drops the sample from that guide's AUCs
        weights = torch.cat([all_present.t(), all_present.new_ones((1, n))]).to(scores.dtype)
        if c > 2:
            weights = weights.repeat_interleave(c, dim=0)
    auc, valid = auc_by_group_and_overall(scores, positive, all_groups, k, weights)  # [S, K+1]
    if c > 2:  # one-vs-rest macro average over classes
        auc, valid = _macro(
            auc.view(num_modalities + 1, c, k + 1), valid.view(num_modalities + 1, c, k + 1), 1
        )
    guide_auc, guide_valid = auc[:num_modalities, k], valid[:num_modalities, k]
    group_auc, group_valid = auc[:num_modalities, :k], valid[:num_modalities, :k]
    fused_auc, fused_valid = auc[num_modalities, :k], valid[num_modalities, :k]
    if cfg.group_statistic == "logistic":  # ablation: the research code's surrogate statistic
        group_auc, group_valid = _logistic_group_statistic(
            mod, probs[:num_modalities], all_labels, all_groups, all_present
        )

    # Step 4: modality balance coefficient B_m from the change of each guide's AUC.
    current = torch.where(guide_valid, guide_auc, previous_auc)
    delta = (current - previous_auc) * has_previous  # 0 where carried over (current is previous there)
    if cfg.coefficient_rule == "none":
        balance = torch.ones_like(delta)
    elif cfg.coefficient_rule == "signed":
        total = delta.sum()
        ok = total.abs() > cfg.eps
        balance = torch.where(ok, (total - delta) / torch.where(ok, total, 1.0), 1.0)
    else:
        magnitude = delta.abs()
        balance = 1.0 - magnitude / (magnitude.sum() + cfg.eps)
    balance_ema = torch.lerp(balance_ema, balance, 1.0 - cfg.coefficient_ema_decay)
    modality_scale = cfg.modality_scale * balance_ema

    # Step 5: per-group EMAs of guide AUCs (updated where a group has both classes); step 7 input.
    beta = cfg.ema_decay
    group_ema = torch.where(
        group_valid, torch.where(group_seen, torch.lerp(group_auc, group_ema, beta), group_auc), group_ema
    )
    group_seen = group_seen | group_valid
    if cfg.gate_smoothing:
        fused_ema = torch.where(
            fused_valid, torch.where(fused_seen, torch.lerp(fused_auc, fused_ema, beta), fused_auc), fused_ema
        )
        fused_seen = fused_seen | fused_valid
        fused_level, fused_known = fused_ema, fused_seen
    else:
        fused_level, fused_known = torch.where(fused_valid, fused_auc, 0.0), fused_valid

    # Step 6: group factor f_{m,g}.
    tau = cfg.fairness_threshold
    fused_gaps = fused_level.unsqueeze(0) - fused_level.unsqueeze(1)  # [g, h]: level_h - level_g
    if cfg.group_factor_rule == "routing":
        # [K]: how far group g lies below the mean fused level (0 above it or where unknown)
        below = (fused_gaps * fused_known).sum(1) / fused_known.sum().clamp_min(1)
        shortfall = below.clamp_min(0) * fused_known
        # [M, K]: how much better guide m is on group g than the mean guide (over modalities)
        advantage = torch.tanh(_below_mean(group_ema, group_seen, dim=0) / -tau)
        raw = (shortfall * (cfg.group_strength / tau)) * advantage + 1.0
        known = group_seen & fused_known
    else:
        raw = _below_mean(group_ema, group_seen, dim=1) * (cfg.group_strength / tau) + 1.0
        known = group_seen
    group_factor = torch.where(known, raw.clamp(cfg.group_factor_min, cfg.group_factor_max), 1.0)

    # Step 7: fairness gate: the largest gap between two groups of known fused level exceeds tau
    # (0 with fewer than two such groups: tau > 0 keeps the gate closed then).
    both_known = fused_known.unsqueeze(0) & fused_known.unsqueeze(1)
    gate = ((fused_gaps * both_known).amax() > tau).to(modality_scale.dtype)

    # Step 8: per-sample scale of dL/dh_m: rho B_m (gate f_{m,a_i} + 1 - gate), 0 where missing.
    scales = (modality_scale.unsqueeze(1) * ((group_factor - 1.0) * gate + 1.0)).index_select(1, groups)
    if cfg.group_factor_reduction == "batch":  # one scalar per modality (research-code style)
        scales = scales.mean(dim=1, keepdim=True).expand_as(scales)
    if present is not None:
        scales = scales * present.t()
    magnitude = None
    if cfg.modulate == "update":  # c_m: the mean scale over the gathered batch (equal on every rank)
        gathered = (modality_scale.unsqueeze(1) * ((group_factor - 1.0) * gate + 1.0)).index_select(
            1, all_groups
        )
        if all_present is None:
            magnitude = gathered.mean(dim=1)
        else:
            weight = all_present.t().to(gathered.dtype)
            count = weight.sum(dim=1)
            magnitude = torch.where(
                count > 0, (gathered * weight).sum(dim=1) / count.clamp_min(1), modality_scale
            )

    # Steps 9 and 10: the auxiliary losses, with their gradients in closed form (``_AuxLoss``).
    aux = direction = fairness = logits.new_zeros(())
    grad_logits = grad_weight = None
    if fused_weight is not None:  # direction loss: gradient into the fused head only
        direction, grad_direction = _direction_loss_and_grad(mod, balance_ema, fused_weight.to(logits.dtype))
        aux = cfg.direction_weight * direction
        grad_weight = (cfg.direction_weight * grad_direction).to(fused_weight.dtype)
    if cfg.fairness_weight > 0:  # fairness loss on the local batch's fused logits, gated
        fairness, grad_fairness = _fairness_loss_and_grad(mod, logits, labels, groups)
        aux = aux + (cfg.fairness_weight * gate) * fairness
        grad_logits = (cfg.fairness_weight * gate) * grad_fairness

    new_state = (
        current,
        has_previous | guide_valid,
        balance_ema,
        group_ema,
        group_seen,
        fused_ema,
        fused_seen,
        steps + 1,
    )
    stats = (
        modality_scale,
        balance,
        group_factor,
        gate,
        guide_auc,
        group_auc,
        fused_auc,
        direction.detach(),
        fairness.detach(),
    )
    return aux, grad_logits, grad_weight, scales, magnitude, new_state, stats


def _logistic_group_statistic(
    mod: ModulatorBase, probs: Tensor, labels: Tensor, groups: Tensor, present: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``[M, K]`` logistic surrogate of each guide per group (macro over one-vs-rest columns)."""
    c = mod.num_classes
    classes = [mod.config.positive_class] if c == 2 else list(range(c))
    values, valids = [], []
    for m in range(probs.shape[0]):
        w = None if present is None else present[:, m].to(probs.dtype)
        per_class = [
            logistic_group_statistic(probs[m, :, cls], labels == cls, groups, mod.num_groups, w)
            for cls in classes
        ]
        value, valid = _macro(
            torch.stack([v for v, _ in per_class]), torch.stack([o for _, o in per_class]), 0
        )
        values.append(value)
        valids.append(valid)
    return torch.stack(values), torch.stack(valids)


def _direction_loss_and_grad(
    mod: ModulatorBase, balance: Tensor, fused_weight: Tensor
) -> tuple[Tensor, Tensor]:
    """``L_gm = (1/M) sum_m (|B_m| - B_m cos(W_F, sg(W_{G_m})))`` (step 9) and ``dL_gm / dW_F``.

    With ``cos_m = <G_m, w> / max(|G_m| |w|, eps)``:
    ``dcos_m/dw = G_m / max(|G_m||w|, eps) - [|G_m||w| >= eps] cos_m w / |w|^2``.
    """
    num_modalities = balance.shape[0]
    w = fused_weight.reshape(-1)
    guides = torch.stack([mod.guides[name].output.weight.reshape(-1) for name in mod.modality_names]).to(
        w.dtype
    )
    w_norm = w.norm()
    norms = guides.norm(dim=1) * w_norm  # [M]
    denom = norms.clamp_min(_COSINE_EPS)
    cosines = (guides @ w) / denom
    value = (balance.abs() - balance * cosines).sum() / num_modalities
    coeff = balance / -num_modalities  # dL/dcos_m
    radial = (coeff * cosines * (norms >= _COSINE_EPS)).sum() / w_norm.square().clamp_min(1e-30)
    grad = (coeff / denom) @ guides - radial * w
    return value, grad.view_as(fused_weight)


def _fairness_loss_and_grad(
    mod: ModulatorBase, logits: Tensor, labels: Tensor, groups: Tensor
) -> tuple[Tensor, Tensor]:
    """Fairness loss ``F_G`` (step 10) of the local batch and ``dF_G / dlogits``, in closed form.

    Per one-vs-rest column ``c`` (one column for a binary task), the surrogate group AUC of the margins
    ``z`` (positive logit minus the log-sum-exp of the others, over the temperature ``T``) is
    ``A_{c,g} = sum_{i pos, j neg in g} sigmoid(z_i - z_j) / (P_g N_g)``
    (:func:`~monai_multifair.core.functional.surrogate_group_auc`), macro-averaged over columns into
    ``A_g``; ``F_G`` is the shortfall ``mean_g relu(sg(mean A) - A_g)`` or the dispersion
    ``mean_g |A_g - mean A|`` over groups with both classes. The gradient follows the same chain as
    autograd would (``relu`` passing at 0, ``|x|`` with ``sign``), through
    ``dA_{c,g}/dz_i = sum_j sigmoid'(z_i - z_j) / (P_g N_g)`` for a positive ``i`` (minus the mirror
    term for a negative one); the test suite checks it against autograd on ``surrogate_group_auc``.
    """
    cfg = mod.config
    c, k = mod.num_classes, mod.num_groups
    dtype = logits.dtype
    if c == 2:
        pos = cfg.positive_class
        margins = (logits[:, pos] - logits[:, 1 - pos]).unsqueeze(0)  # [1, B]
        targets = (labels == pos).unsqueeze(0)
        others = None
    else:
        eye = torch.eye(c, dtype=torch.bool, device=logits.device)
        masked = logits.unsqueeze(0).masked_fill(
            eye.unsqueeze(1), -float("inf")
        )  # [C, B, C]: class c removed
        margins = logits.t() - torch.logsumexp(masked, dim=2)  # [C, B]
        others = torch.softmax(masked, dim=2)  # d logsumexp_{k != c} / d logit_k
        targets = labels.unsqueeze(0) == torch.arange(c, device=labels.device).unsqueeze(1)
    z = margins / cfg.surrogate_temperature
    member = (groups.unsqueeze(1) == torch.arange(k, device=groups.device)).to(dtype)  # [B, K]
    pos_member = targets.to(dtype).unsqueeze(2) * member  # [C', B, K]
    neg_member = member - pos_member
    pair = torch.sigmoid(z.unsqueeze(2) - z.unsqueeze(1))  # [C', B, B]: sigmoid(z_i - z_j)
    numerator = (torch.bmm(pair, neg_member) * pos_member).sum(1)  # [C', K]
    pairs = pos_member.sum(1) * neg_member.sum(1)  # [C', K]
    valid = pairs > 0
    surrogate = (numerator / pairs).nan_to_num_(0.0)  # 0 / 0 where a group lacks a class
    if c == 2:
        level, known = surrogate[0], valid[0]
    else:  # macro average over the one-vs-rest columns
        count = valid.sum(0)
        level, known = surrogate.sum(0) / count.clamp_min(1), count > 0
    num_known = known.sum().clamp_min(1)
    mean = (level * known).sum() / num_known
    if cfg.fairness_loss == "shortfall":
        # The reference level is a stop-gradient: the loss lifts lagging groups and never rewards
        # lowering the best one (a differentiable mean would, by 1/K per lagging group).
        gap = mean - level
        active = known & (gap >= 0)  # relu(gap) passes its gradient at 0, as autograd's does
        value = (gap * active).sum() / num_known
        grad_level = active.to(dtype) / -num_known
    else:
        diff = level - mean
        signs = diff.sign() * known
        value = (diff * signs).sum() / num_known
        grad_level = (signs - signs.sum() * known / num_known) / num_known
    if c > 2:  # through the macro average
        grad_level = grad_level * valid / count.clamp_min(1)
    # dF/dA_{c,g} / (P N), spread over the pairs (i pos, j neg) of group g: weight[c, i, j]
    coeff = (grad_level / pairs).nan_to_num_(0.0)  # [C', K]; 0 where the group lacks a class
    weight = torch.bmm(pos_member * coeff.unsqueeze(1), neg_member.transpose(1, 2))  # [C', B, B]
    flow = weight * pair * (1.0 - pair)  # dF/dz_i from pair (i, j) is +flow, to z_j -flow
    grad_margins = (flow.sum(2) - flow.sum(1)) / cfg.surrogate_temperature  # [C', B]
    if c == 2:
        signed = grad_margins[0] if pos == 1 else -grad_margins[0]
        grad = torch.stack([-signed, signed], dim=1)  # margin = logit_pos - logit_neg
    else:
        grad = grad_margins.t() - torch.einsum("cb,cbk->bk", grad_margins, others)
    return value, grad


class _AuxLoss(torch.autograd.Function):
    """The auxiliary loss value with its gradients computed in the step (no autograd graph to walk).

    ``backward`` scales the precomputed ``dL/dlogits`` and ``dL/dW_F`` by the incoming gradient (the
    loss is added to the task loss, so that gradient is the loss scale under AMP). Not twice
    differentiable.
    """

    @staticmethod
    def forward(ctx, value, grad_logits, grad_weight, logits, weight):
        ctx.save_for_backward(grad_logits, grad_weight)
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (logits, weight))
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grad_logits, grad_weight = ctx.saved_tensors
        out_logits = None if grad_logits is None else (grad_output * grad_logits).to(ctx.dtypes[0])
        out_weight = None if grad_weight is None else (grad_output * grad_weight).to(ctx.dtypes[1])
        return None, None, None, out_logits, out_weight


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
