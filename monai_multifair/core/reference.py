"""The ``reference`` preset: the published research code's *effective* behaviour (``docs/concepts/method.md``, "What the research code does differently").

For side-by-side comparison only. It is a separate class so that none of its cost (CPU
``roc_auc_score`` per guide and group every step, host synchronisation) or branches reach
:class:`~monai_multifair.core.DualLevelGradientModulator`. What it reproduces:

- ``B_m`` from the change of each guide's **batch** AUC (sklearn, on the host), absolute rule; the
  previous AUC starts at 0.5 (so the first step's ``B_m`` is measured from 0.5), and a batch with one
  class keeps the previous AUC;
- per-group statistics from the pairwise logistic surrogate on probabilities
  ``1 - mean log(1 + exp(-(p_i - p_j)))`` (range about -0.31..0.69, not an AUC), EMA 0.9 started at 0.5;
  a group with one class (or fewer than two samples) in the batch enters the EMA as 0.5;
- the group factor ``1 + group_strength (mean_g s - s_g) / max(1e-4, tau)`` is **not clamped**
  (``group_factor_min`` / ``group_factor_max`` do not apply; setting them is an error): it can fall
  below 0 and turn an encoder's gradient around, as in the research code;
- only group ids 0 and 1 (the research code's male/female) take part; other ids are ignored, with a
  warning the first time they appear;
- one factor per modality ``F_m = sum_g pi_g f_{m,g}`` (``pi_g`` the batch share of group g);
- the gate compares the raw batch AUC gap of the fused output between groups 0 and 1 with tau; a group
  with one class counts as AUC 0.5, a group with fewer than two samples closes the gate;
- no direction or fairness loss reaches the gradient (the research code's are 0 or a Python float), so
  the returned auxiliary loss is 0 and only the task loss trains, with encoder gradients multiplied by
  ``rho * B_m * (gate ? F_m : 1)``.

Not reproduced: the research code's second forward and discarded extra backward (they cost time but
do not change the result), and its defects (EMA state holding graphs, a whole-step ``try/except``).
Its grad-norm clipping at 0.8 and AdamW belong to the training loop (the ``reference`` run configs set
them).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from monai_multifair.core.distributed import gather_batch
from monai_multifair.core.modulator import ModulatorBase
from monai_multifair.core.multifair_config import PRESETS
from monai_multifair.errors import MultiFairError

__all__ = ["ReferenceModulator"]

_REFERENCE_GROUPS = (0, 1)


#: the research code's stand-in for a statistic it cannot compute (one class in the batch or group)
_UNDEFINED_STATISTIC = 0.5


def _sklearn_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's AUC, NaN when only one class is present (the caller decides what stands in)."""
    if labels.size == 0 or np.unique(labels).size < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def _fused_group_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The fused output's AUC in one group as the research code's gate reads it: 0.5 with one class, NaN
    (the gate stays closed) with fewer than two samples."""
    if labels.size < 2:
        return float("nan")
    auc = _sklearn_auc(labels, scores)
    return _UNDEFINED_STATISTIC if np.isnan(auc) else auc


def _logistic_surrogate(labels: np.ndarray, probs: np.ndarray) -> float:
    """``1 - mean_{i pos, j neg} log(1 + exp(-(p_i - p_j)))``, NaN without both classes."""
    pos, neg = probs[labels == 1], probs[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(1.0 - np.mean(np.log1p(np.exp(-diff))))


class ReferenceModulator(ModulatorBase, preset="reference"):
    """MultiFair as the released research code effectively runs it (binary tasks, groups 0 and 1).

    Same constructor and call signature as :class:`DualLevelGradientModulator`; ``config`` is taken
    with ``preset="reference"`` when not given.
    """

    def _init_state(self) -> None:
        if self.num_classes != 2:
            raise MultiFairError(
                f"the reference preset (research code) supports num_classes=2 only, got {self.num_classes}"
            )
        for name in ("group_factor_min", "group_factor_max"):
            if getattr(self.config, name) != PRESETS["reference"][name]:
                raise MultiFairError(
                    f"`{name}` does not apply to the reference preset (the research code does not clamp the "
                    f"group factor), got {getattr(self.config, name)!r}; use another preset to clamp it"
                )
        m = len(self.modality_names)
        self.register_buffer("previous_auc", torch.full((m,), _UNDEFINED_STATISTIC))
        self.register_buffer("group_surrogate_ema", torch.full((m, 2), 0.5))
        self._warned_groups = False

    def forward(
        self, logits: Tensor, labels: Tensor, groups: Tensor, present: Tensor | None = None
    ) -> Tensor:
        """One research-code step; returns a zero auxiliary loss (see the module docstring)."""
        if present is not None and not bool(present.all()):  # a host read, like the rest of this preset
            raise MultiFairError(
                "the reference preset (research code) cannot handle missing modalities; got a `present` mask "
                f"of shape {tuple(present.shape)} with missing entries: use another preset for missing modalities"
            )
        present = None
        self._check_inputs(logits, labels, groups, present)
        cfg = self.config
        feats, slots = self._features(labels.shape[0])
        names = self.modality_names
        with torch.autocast(device_type=logits.device.type, enabled=False):
            flat = [f.detach().flatten(1).to(self._work_dtype()) for f in feats]
            fused_probs = torch.softmax(logits.detach().float(), dim=1)
            gathered = gather_batch([*flat, fused_probs, labels.long(), groups.long()], self.process_group)
            flat = gathered[: len(names)]
            fused_p = gathered[len(names)][:, 1].cpu().numpy()
            y = gathered[len(names) + 1].cpu().numpy()
            a = gathered[len(names) + 2].cpu().numpy()
            guide_logits = self._guide_step(flat, gathered[len(names) + 1], None)
            probs = [torch.softmax(o, dim=1)[:, 1].cpu().numpy() for o in guide_logits]

        if not self._warned_groups and np.isin(a, _REFERENCE_GROUPS, invert=True).any():
            warnings.warn(
                "reference preset: the research code uses group ids 0 and 1 only; samples of other groups are "
                "ignored in its group statistics",
                UserWarning,
                stacklevel=2,
            )
            self._warned_groups = True
        # Modality balance from batch AUCs (sklearn, host); one class in the batch keeps the previous AUC.
        current = np.array([_sklearn_auc(y, p) for p in probs])
        previous = self.previous_auc.cpu().numpy().astype(np.float64)
        current = np.where(np.isnan(current), previous, current)
        delta = current - previous
        balance = 1.0 - np.abs(delta) / (np.abs(delta).sum() + cfg.eps)
        self.previous_auc.copy_(torch.as_tensor(current, dtype=torch.float32))

        # Group statistics: logistic surrogate on probabilities, EMA from 0.5, groups 0 and 1; a group
        # the surrogate is undefined for enters the EMA as 0.5. The factor is not clamped.
        ema = self.group_surrogate_ema.cpu().numpy().astype(np.float64)
        beta = cfg.ema_decay
        for m, p in enumerate(probs):
            for g in _REFERENCE_GROUPS:
                value = _logistic_surrogate(y[a == g], p[a == g])
                value = _UNDEFINED_STATISTIC if np.isnan(value) else value
                ema[m, g] = beta * ema[m, g] + (1 - beta) * value
        self.group_surrogate_ema.copy_(torch.as_tensor(ema, dtype=torch.float32))
        factor = 1.0 + cfg.group_strength * (ema.mean(axis=1, keepdims=True) - ema) / max(
            1e-4, cfg.fairness_threshold
        )
        counts = np.array([(a == g).sum() for g in _REFERENCE_GROUPS], dtype=np.float64)
        share = counts / max(counts.sum(), 1.0)
        collapsed = factor @ share if counts.sum() > 0 else np.ones(len(names))

        fused_group = np.array([_fused_group_auc(y[a == g], fused_p[a == g]) for g in _REFERENCE_GROUPS])
        gap = np.nanmax(fused_group) - np.nanmin(fused_group) if np.isfinite(fused_group).all() else 0.0
        gate = float(gap > cfg.fairness_threshold)

        scale = cfg.modality_scale * balance * (collapsed if gate else 1.0)
        device = logits.device
        scales = (
            torch.as_tensor(scale, dtype=torch.float32, device=device)
            .unsqueeze(1)
            .expand(-1, labels.shape[0])
        )
        self._set_scales(slots, scales)

        group_factor = torch.ones(len(names), self.num_groups, device=device)
        group_factor[:, :2] = torch.as_tensor(factor, dtype=torch.float32, device=device)
        guide_group = torch.full((len(names), self.num_groups), float("nan"), device=device)
        guide_group[:, :2] = torch.as_tensor(ema, dtype=torch.float32, device=device)
        fused_stat = torch.full((self.num_groups,), float("nan"), device=device)
        fused_stat[:2] = torch.as_tensor(fused_group, dtype=torch.float32, device=device)
        zero = torch.zeros((), device=device)
        self._stats = {
            "modality_scale": torch.as_tensor(
                cfg.modality_scale * balance, dtype=torch.float32, device=device
            ),
            "balance": torch.as_tensor(balance, dtype=torch.float32, device=device),
            "group_factor": group_factor,
            "gate": torch.tensor(gate, device=device),
            "guide_auc": torch.as_tensor(current, dtype=torch.float32, device=device),
            "guide_group_auc": guide_group,
            "fused_group_auc": fused_stat,
            "direction_loss": zero,
            "fairness_loss": zero,
        }
        return zero

    def reset_state(self) -> None:
        """Restart the previous AUCs and the surrogate EMAs at 0.5."""
        self.previous_auc.fill_(_UNDEFINED_STATISTIC)
        self.group_surrogate_ema.fill_(0.5)
