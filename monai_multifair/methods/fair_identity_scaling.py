"""``fis``: Fair Identity Scaling (Luo et al., "FairVision: Equitable Deep Learning for Eye Disease
Screening via Fair Identity Scaling", CVPR 2024; the Harvard-Ophthalmology-AI-Lab FairVision code,
``src/modules.py``, ``Fair_Loss_Scaler``).

Each sample's loss ``l_i`` is scaled by a mix of an **individual** weight (samples with a larger loss
weigh more) and a **group** weight (samples of groups whose loss distribution is further from the
pooled one weigh more):

    w_ind_i = B * softmax_i(l_i / T)
    w_grp_i = B * softmax_i(D_{a_i} / T)
    w_i = (1 - c) w_ind_i + c w_grp_i,        loss = mean_i w_i l_i

with ``T`` the temperature, ``c`` the scaling coefficient (``fair_scaling_coef``, 0.5 in their scripts)
and ``D_g`` the distance between the loss distribution of group ``g`` and that of all groups.

Choices their paper and code leave open, or where we depart from the code (documented in
``docs/howto/fairness_methods.md``):

- **Distance.** Their code computes a Sinkhorn divergence (geomloss, ``p=2``, blur 0.1) between group
  ``g``'s losses and the pooled losses. We use its small-blur limit, the exact one-dimensional optimal
  transport cost ``W_2^2 / 2`` between the two empirical distributions (a sort and a merge of their
  quantile functions, on the device, no extra dependency). ``quantiles=Q`` reads both quantile
  functions at ``Q`` levels only instead, an approximation kept as an explicit option.
- **Which losses.** Their code draws, every step, one extra batch per group from per-group loaders and
  runs a no-grad forward on each (``K`` extra forwards per step); each group is measured against the
  concatenation of those equal-size batches, a group-balanced pool. We use the losses of the current
  batch (all-gathered under ``torch.distributed``), measured against ``pool="balanced"`` (the equal
  mixture of the groups present: their pool, without the extra forwards) or ``pool="batch"`` (the
  whole batch, in which groups weigh by their frequency: the default, kept from earlier releases).
  The pool decides which group is up-weighted: against the batch a small group with larger losses is
  the far one, against the balanced pool the large group can be. Each group's distance is smoothed over
  steps with an EMA (``distance_ema_decay``); a group absent from a batch keeps its previous distance.
- **Scale.** Their weights sum to ``right_asymptote`` (1) over the batch, which divides the loss by the
  batch size (nearly invisible under Adam, a ``B``-fold smaller step under SGD). Ours average 1 (the
  factor ``B`` above), so the loss keeps the cross-entropy's scale.
- **Gradient.** Their individual weights are not detached, so the gradient also flows through the
  softmax. Ours are detached (importance weights), which is also what makes the weights over the
  gathered batch exact under DDP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from monai_multifair.config.validation import check
from monai_multifair.core.distributed import gather_batch, world_size
from monai_multifair.errors import MultiFairError
from monai_multifair.methods.base import LossWeightingMethod, MethodContext, SampleWeighting
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = [
    "FIS_SPEC",
    "FairIdentityScaling",
    "FairIdentityScalingOptions",
    "FairIdentityScalingWeighting",
    "group_loss_distances",
]


@dataclass
class FairIdentityScalingOptions:
    """Options of ``fis``.

    Attributes:
        scaling_coefficient: ``c``, the share of the group weight, in [0, 1] (their ``fair_scaling_coef``).
        temperature: ``T`` of both softmaxes, > 0 (their ``fair_scaling_temperature``).
        distance_ema_decay: decay of the per-group distance EMA, in [0, 1) (0: the batch's distance).
        pool: what each group's losses are measured against: ``"balanced"`` (the default: the equal
            mixture of the groups present, as FairVision's one equal-size batch per group; chosen by
            validation rank over the suite, docs/benchmarks.md) or ``"batch"`` (all of the batch's
            losses, groups weighted by their frequency).
        quantiles: ``None`` (the exact one-dimensional transport cost) or an integer >= 2: the cost
            read at this many evenly spaced quantile levels only, an approximation.
    """

    scaling_coefficient: float = field(
        default=0.5, metadata=check(lambda v: 0 <= v <= 1, "a number in [0, 1]")
    )
    temperature: float = field(default=1.0, metadata=check(lambda v: v > 0, "a number > 0"))
    distance_ema_decay: float = field(default=0.9, metadata=check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    pool: Literal["batch", "balanced"] = "balanced"
    quantiles: int | None = field(
        default=None, metadata=check(lambda v: v is None or v >= 2, "null (exact) or an integer >= 2")
    )


def _cdf_dtype(device: torch.device) -> torch.dtype:
    """float64 for the cumulative weights (exact enough to tell breakpoints ``1 / (n m)`` apart); MPS has
    no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def group_loss_distances(
    losses: Tensor,
    groups: Tensor,
    num_groups: int,
    quantiles: int | None = None,
    *,
    pool: str = "balanced",
) -> tuple[Tensor, Tensor]:
    """``(distance [K], present [K])``: ``W_2^2 / 2`` between each group's losses and the pool's.

    The pool (``P``) is the distribution of all of the batch's losses (``pool="batch"``: each sample
    weighs ``1 / N``, so groups weigh by their frequency) or the equal mixture of the groups present
    (``pool="balanced"``: a sample of group ``g`` weighs ``1 / (K' n_g)`` with ``K'`` groups present,
    the pool FairVision draws with one equal-size batch per group).

    With ``quantiles=None`` the distance is exact: both quantile functions are step functions, and
    ``W_2^2 = int_0^1 (F_g^{-1}(t) - F_P^{-1}(t))^2 dt`` is a sum over the merged breakpoints of the
    two (a sort of ``2N`` breakpoints per group). With an integer ``quantiles = Q`` both quantile
    functions are read at the levels ``(j + 0.5) / Q`` only (``F^{-1}(l)`` taken as the sample of rank
    ``floor(l n)``), an approximation whose error grows when ``Q`` is smaller than the group's size
    (``docs/howto/fairness_methods.md``). A group with no sample has ``present`` false and distance 0.
    No host synchronisation.

    Example:
        >>> d, _ = group_loss_distances(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([0, 0, 1, 1]), 2)
        >>> d.tolist()  # group 0 against the pool: (0, 0, 1, 1) vs (0, 1, 2, 3): W2^2 = (0 + 1 + 1 + 4) / 4
        [0.75, 0.75]
    """
    if pool not in ("batch", "balanced"):
        raise MultiFairError(f"expected `pool` to be 'batch' or 'balanced', got {pool!r}")
    n = losses.numel()
    device = losses.device
    cdf_dtype = _cdf_dtype(device)
    counts = torch.zeros(num_groups, dtype=torch.long, device=device).index_add_(
        0, groups, torch.ones_like(groups)
    )
    present = counts > 0
    # the pool: sorted losses and their cumulative weights (its quantile function's breakpoints)
    pool_order = torch.argsort(losses, stable=True)
    pooled = losses[pool_order]
    if pool == "batch":
        pool_cdf = torch.arange(1, n + 1, device=device, dtype=cdf_dtype) / n
    else:
        share = 1.0 / (present.sum().to(cdf_dtype) * counts.clamp_min(1).to(cdf_dtype))
        pool_cdf = torch.cumsum(share[groups[pool_order]], 0)
        pool_cdf = torch.cat([pool_cdf[:-1], pool_cdf.new_ones(1)])  # the last breakpoint is 1 exactly
    # each group's sorted losses: samples sorted by (group, loss) make each group a contiguous slice
    order = torch.argsort(losses, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_losses = losses[order]
    starts = torch.cumsum(counts, 0) - counts
    sizes = counts.to(cdf_dtype)[:, None]
    if quantiles is None:
        ranks = torch.arange(1, n + 1, device=device, dtype=cdf_dtype)
        group_cdf = (ranks[None, :] / sizes.clamp_min(1)).clamp_max(1.0)  # [K, N]
        breaks = torch.cat(
            [
                torch.zeros(num_groups, 1, device=device, dtype=cdf_dtype),
                group_cdf,
                pool_cdf.expand(num_groups, n),
            ],
            dim=1,
        )
        breaks = torch.sort(breaks, dim=1).values  # [K, 2N + 1]
        width = breaks[:, 1:] - breaks[:, :-1]
        levels = (breaks[:, 1:] + breaks[:, :-1]) / 2  # inside each interval both functions are constant
        pool_rank = torch.searchsorted(pool_cdf, levels.contiguous()).clamp_max(n - 1)
        weight = width.to(losses.dtype)
    else:
        levels = ((torch.arange(quantiles, device=device, dtype=cdf_dtype) + 0.5) / quantiles).expand(
            num_groups, quantiles
        )
        pool_rank = torch.searchsorted(pool_cdf, levels.contiguous(), right=True).clamp_max(n - 1)
        weight = torch.full((num_groups, quantiles), 1.0 / quantiles, device=device, dtype=losses.dtype)
    group_rank = torch.minimum(torch.floor(levels * sizes).long(), (counts[:, None] - 1).clamp_min(0))
    group_q = sorted_losses[(starts[:, None] + group_rank).clamp(0, n - 1)]
    distance = 0.5 * (weight * (group_q - pooled[pool_rank]) ** 2).sum(dim=1)
    return torch.where(present, distance, torch.zeros_like(distance)), present


class FairIdentityScalingWeighting(SampleWeighting):
    """The FIS loss (see the module docstring); buffers: the per-group distance EMA and its seen mask, and
    the last batch's mean group weight per group (NaN for a group absent from that batch)."""

    def __init__(
        self,
        num_groups: int,
        scaling_coefficient: float,
        temperature: float,
        distance_ema_decay: float,
        quantiles: int | None = None,
        process_group: Any | None = None,
        *,
        pool: str = "balanced",
    ) -> None:
        super().__init__(process_group)
        if pool not in ("batch", "balanced"):
            raise MultiFairError(f"expected `pool` to be 'batch' or 'balanced', got {pool!r}")
        if quantiles is not None and (
            isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 2
        ):
            raise MultiFairError(
                f"expected `quantiles` to be None (exact) or an integer >= 2, got {quantiles!r}"
            )
        self.num_groups = num_groups
        self.scaling_coefficient = float(scaling_coefficient)
        self.temperature = float(temperature)
        self.decay = float(distance_ema_decay)
        self.quantiles = quantiles
        self.pool = pool
        self.register_buffer("distance", torch.zeros(num_groups))
        self.register_buffer("seen", torch.zeros(num_groups, dtype=torch.bool))
        self.register_buffer("last_group_weight", torch.zeros(num_groups))

    def forward(self, losses: Tensor, labels: Tensor, groups: Tensor) -> Tensor:
        losses = losses.float()
        local = losses.detach()
        gathered_losses, gathered_groups = gather_batch([local, groups.long()], self.process_group)
        total = gathered_losses.numel()
        distance, present = group_loss_distances(
            gathered_losses, gathered_groups, self.num_groups, self.quantiles, pool=self.pool
        )
        fresh = present & ~self.seen
        smoothed = torch.where(fresh, distance, self.decay * self.distance + (1 - self.decay) * distance)
        self.distance.copy_(torch.where(present, smoothed, self.distance))
        self.seen.copy_(self.seen | present)
        individual = torch.softmax(gathered_losses / self.temperature, dim=0) * total
        group = torch.softmax(self.distance[gathered_groups] / self.temperature, dim=0) * total
        weight = (1 - self.scaling_coefficient) * individual + self.scaling_coefficient * group
        # the mean group weight of each group in the batch: undefined (NaN) for a group absent from it
        zeros = torch.zeros(self.num_groups, device=losses.device)
        in_batch = zeros.index_add(0, gathered_groups, torch.ones_like(group))
        mean_weight = zeros.index_add(0, gathered_groups, group) / in_batch.clamp_min(1)
        self.last_group_weight.copy_(
            torch.where(in_batch > 0, mean_weight, torch.full_like(mean_weight, float("nan")))
        )
        # this rank's slice of the gathered batch (ranks hold equal batch sizes, in rank order)
        size = local.numel()
        rank = 0 if world_size(self.process_group) == 1 else torch.distributed.get_rank(self.process_group)
        mine = weight[rank * size : (rank + 1) * size]
        return (mine * losses).sum() * world_size(self.process_group) / total

    def statistics(self) -> dict[str, Tensor]:
        return {"distance": self.distance, "group_weight": self.last_group_weight}


class FairIdentityScaling(LossWeightingMethod):
    """FairVision's Fair Identity Scaling of the per-sample losses."""

    name = "fis"
    metric_prefix = "fis/"

    def __init__(self, options: FairIdentityScalingOptions | None = None) -> None:
        super().__init__(options or FairIdentityScalingOptions())

    def build_weighting(self, context: MethodContext) -> SampleWeighting:
        o = self.options
        return FairIdentityScalingWeighting(
            context.num_groups, o.scaling_coefficient, o.temperature, o.distance_ema_decay, o.quantiles,
            context.process_group, pool=o.pool,
        )  # fmt: skip

    def describe(self) -> str:
        return (
            f"Fair Identity Scaling (c {self.options.scaling_coefficient:g}, T {self.options.temperature:g})"
        )


def _search_space(trial: Any) -> dict[str, Any]:
    return {
        "scaling_coefficient": trial.suggest_float("scaling_coefficient", 0.0, 1.0),
        "temperature": trial.suggest_float("temperature", 0.1, 10.0, log=True),
    }


FIS_SPEC = MethodSpec(
    name="fis",
    factory=FairIdentityScaling,
    options=FairIdentityScalingOptions,
    description="FairVision's Fair Identity Scaling: individual and group loss scaling (Luo et al., CVPR 2024)",
    search_space=_search_space,
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [FIS_SPEC]
