"""Device statistics for MultiFair: exact and surrogate ROC-AUC per score column and per group.

Pure functions on tensors (the torchmetrics ``functional`` style). None of them reads a value back to
the host: no ``.item()``, boolean indexing, ``nonzero`` or ``unique``, so they can run inside a training
step on a GPU without synchronising it. Undefined values (a group without both classes) come back as
NaN together with a ``valid`` mask; callers decide what to do with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "auc_by_group_and_overall",
    "binary_auc",
    "grouped_auc",
    "logistic_group_statistic",
    "surrogate_group_auc",
]


def _as_columns(x: Tensor, n: int, s: int, name: str) -> Tensor:
    """Broadcast a ``[N]`` or ``[N, S]`` tensor to ``[N, S]``."""
    cols = x.unsqueeze(1) if x.dim() == 1 else x
    if cols.dim() != 2 or cols.shape[0] != n or cols.shape[1] not in (1, s):
        raise ValueError(f"expected `{name}` of shape [{n}] or [{n}, {s}], got {tuple(x.shape)}")
    return cols.expand(n, s)


def grouped_auc(
    scores: Tensor,
    targets: Tensor,
    groups: Tensor | None = None,
    num_groups: int = 1,
    weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact ROC-AUC per score column and per group, with sample weights, on the device.

    The AUC of group ``g`` and column ``s`` is the weighted Mann-Whitney statistic

    ``AUC = sum_{i pos, j neg} w_i w_j ([x_i > x_j] + 0.5 [x_i = x_j]) / (sum_pos w_i * sum_neg w_j)``

    over the samples of group ``g`` (ties count one half, as in ``sklearn.metrics.roc_auc_score``).
    Integer weights are resample counts (a bootstrap replicate is one weight column); a weight of 0
    removes a sample (a presence mask). The computation sorts ``(group, score)`` keys once per column:
    ``O(S N log N)`` time and ``O(S N)`` memory.

    Args:
        scores: ``[N]`` or ``[N, S]`` real scores (higher means more likely positive).
        targets: ``[N]`` or ``[N, S]`` binary targets (bool or 0/1), broadcast to ``scores``.
        groups: ``[N]`` integer group ids in ``[0, num_groups)``; ``None`` puts every sample in group 0.
        num_groups: ``K``, the number of groups.
        weights: ``[N]`` or ``[N, S]`` non-negative sample weights, broadcast to ``scores``.

    Returns:
        ``(auc, valid)``: ``auc`` of shape ``[S, K]`` (``[K]`` when ``scores`` is 1-D) with NaN where a
        group has no positive or no negative weight, and the boolean ``valid`` mask of the same shape.

    Example:
        >>> auc, valid = grouped_auc(torch.tensor([0.1, 0.9, 0.4, 0.4]), torch.tensor([0, 1, 0, 1]),
        ...                          torch.tensor([0, 0, 1, 1]), num_groups=2)
        >>> auc.tolist(), valid.tolist()
        ([1.0, 0.5], [True, True])
    """
    squeeze = scores.dim() == 1
    if scores.dim() not in (1, 2):
        raise ValueError(f"expected `scores` of shape [N] or [N, S], got {tuple(scores.shape)}")
    if num_groups < 1:
        raise ValueError(f"expected `num_groups` >= 1, got {num_groups}")
    n = scores.shape[0]
    s_cols = 1 if squeeze else scores.shape[1]
    device = scores.device
    work_dtype = (
        torch.promote_types(scores.dtype, torch.float32) if scores.is_floating_point() else torch.float32
    )
    x = _as_columns(scores, n, s_cols, "scores").to(work_dtype).t().contiguous()  # [S, N]
    positive = _as_columns(targets, n, s_cols, "targets").t().to(torch.bool)
    if weights is None:
        w = torch.ones((s_cols, n), dtype=work_dtype, device=device)
    else:
        w = _as_columns(weights, n, s_cols, "weights").t().to(work_dtype)
    if groups is None:
        g = torch.zeros(n, dtype=torch.long, device=device)
    else:
        if groups.shape != (n,):
            raise ValueError(f"expected `groups` of shape [{n}], got {tuple(groups.shape)}")
        g = groups.to(torch.long)

    pos_w = torch.where(positive, w, torch.zeros_like(w))
    neg_w = w - pos_w
    # Rank of each score inside its column; equal scores share a rank, so ties survive the key.
    sorted_x, _ = torch.sort(x, dim=1)
    rank = torch.searchsorted(sorted_x, x)  # [S, N], int64
    key = g.unsqueeze(0) * n + rank  # (group, score) order, exact in int64
    sorted_key, order = torch.sort(key, dim=1)
    zero = torch.zeros((s_cols, 1), dtype=work_dtype, device=device)
    neg_cum = torch.cat([zero, torch.cumsum(torch.gather(neg_w, 1, order), dim=1)], dim=1)  # [S, N+1]
    below = torch.gather(neg_cum, 1, torch.searchsorted(sorted_key, key))
    upto = torch.gather(neg_cum, 1, torch.searchsorted(sorted_key, key, right=True))
    group_start = torch.searchsorted(sorted_key, (g * n).unsqueeze(0).expand(s_cols, n).contiguous())
    before_group = torch.gather(neg_cum, 1, group_start)
    wins = pos_w * ((below - before_group) + 0.5 * (upto - below))  # [S, N]

    one_hot = (g.unsqueeze(1) == torch.arange(num_groups, device=device)).to(work_dtype)  # [N, K], no sync
    u_stat = wins @ one_hot
    pos_total = pos_w @ one_hot
    neg_total = neg_w @ one_hot
    valid = (pos_total > 0) & (neg_total > 0)
    denom = torch.where(valid, pos_total * neg_total, torch.ones_like(pos_total))
    auc = torch.where(valid, u_stat / denom, torch.full_like(u_stat, float("nan")))
    if squeeze:
        return auc[0], valid[0]
    return auc, valid


#: :func:`auc_by_group_and_overall` compares all pairs (``S * N * N`` elements, fewer operations) up to
#: this size and sorts above it.
PAIRWISE_AUC_MAX_ELEMENTS = 1 << 20


def auc_by_group_and_overall(
    scores: Tensor, positive: Tensor, groups: Tensor, num_groups: int, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Exact ROC-AUC of each score row per group and over all samples, from one sort.

    The statistics of one modulator step in few operations (``docs/concepts/method.md``, steps 3, 5
    and 7): the same weighted Mann-Whitney statistic as :func:`grouped_auc`, laid out rows-first. Each
    row is sorted once; cumulative sums of the negative weight per group (one column per group and one
    for all samples) give, for every sample, the negative weight below and tied with its score in its
    own group and overall. Time ``O(S N log N + S N K)``, memory ``O(S N K)``: meant for a training
    batch and a handful of groups, not for evaluation sets (use :func:`grouped_auc` there). Up to
    ``S N^2 <= PAIRWISE_AUC_MAX_ELEMENTS`` it compares every pair instead (``O(S N^2 K)``, fewer and
    larger operations, same values).

    Args:
        scores: ``[S, N]`` real scores, one row per score column.
        positive: ``[N]`` or ``[S, N]`` binary targets (bool or 0/1).
        groups: ``[N]`` integer group ids in ``[0, num_groups)``.
        num_groups: ``K``.
        weights: optional ``[S, N]`` non-negative sample weights (0 removes a sample from its row).

    Returns:
        ``(auc, valid)`` of shape ``[S, K + 1]``: column ``g < K`` is group ``g``, column ``K`` all
        samples; NaN (and ``valid`` False) where a column lacks positive or negative weight.

    Example:
        >>> auc, valid = auc_by_group_and_overall(torch.tensor([[0.1, 0.9, 0.4, 0.4]]),
        ...                                       torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1]), 2)
        >>> auc.tolist()
        [[1.0, 0.5, 0.875]]
    """
    if scores.dim() != 2:
        raise ValueError(f"expected `scores` of shape [S, N], got {tuple(scores.shape)}")
    s_rows, n = scores.shape
    if groups.shape != (n,):
        raise ValueError(f"expected `groups` of shape [{n}], got {tuple(groups.shape)}")
    dtype = torch.promote_types(scores.dtype, torch.float32) if scores.is_floating_point() else torch.float32
    x = scores.to(dtype)
    width = num_groups + 1
    columns = torch.arange(width, device=scores.device)
    # member[i, g]: sample i counts in column g (its own group, and the last column: every sample)
    member = ((groups.to(torch.long).unsqueeze(1) == columns) | (columns == num_groups)).to(dtype)
    weighted = member if weights is None else weights.to(dtype).unsqueeze(2) * member  # [(S,) N, K+1]
    pos_member = (positive.to(dtype).unsqueeze(-1) * weighted).expand(s_rows, n, width)
    neg_member = weighted.expand(s_rows, n, width) - pos_member
    if s_rows * n * n <= PAIRWISE_AUC_MAX_ELEMENTS:
        # Small batch: compare every pair at once. step[i, j] = [x_i > x_j] + 0.5 [x_i = x_j].
        step = (x.unsqueeze(2) - x.unsqueeze(1)).sign_().add_(1.0).mul_(0.5)  # [S, N, N]
        wins = torch.bmm(step, neg_member)  # [S, N, K+1]: negatives below i (ties half), per column
    else:
        x = x.contiguous()
        sorted_x, order = torch.sort(x, dim=1)
        # First and one-past-last sorted position of each value: strictly below, and below or tied.
        bounds = torch.cat(
            [torch.searchsorted(sorted_x, x), torch.searchsorted(sorted_x, x, right=True)], dim=1
        )  # [S, 2N]
        cum = torch.gather(neg_member, 1, order.unsqueeze(2).expand(-1, -1, width))
        cum = F.pad(torch.cumsum(cum, dim=1), (0, 0, 1, 0))  # [S, N+1, K+1]: negatives before position p
        below_and_upto = torch.gather(cum, 1, bounds.unsqueeze(2).expand(-1, -1, width))  # [S, 2N, K+1]
        # negatives strictly below + half the tied ones = (below + upto) / 2
        wins = 0.5 * (below_and_upto[:, :n] + below_and_upto[:, n:])
    u_stat = (pos_member * wins).sum(1)  # only i's own columns count: pairs within a group, or overall
    pos_total = pos_member.sum(1)
    neg_total = neg_member.sum(1)
    # 0 / 0 = NaN exactly where a column lacks positive or negative weight (u_stat is 0 there too)
    return u_stat / (pos_total * neg_total), (pos_total > 0) & (neg_total > 0)


def binary_auc(scores: Tensor, targets: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exact ROC-AUC of each score column over the whole batch (one group).

    Args:
        scores: ``[N]`` or ``[N, S]`` scores.
        targets: ``[N]`` or ``[N, S]`` binary targets.
        weights: optional ``[N]`` or ``[N, S]`` sample weights (0 excludes a sample).

    Returns:
        ``(auc, valid)`` of shape ``[]`` (1-D scores) or ``[S]``; NaN where one class is absent.
    """
    auc, valid = grouped_auc(scores, targets, None, 1, weights)
    return auc[..., 0], valid[..., 0]


def surrogate_group_auc(
    margins: Tensor,
    targets: Tensor,
    groups: Tensor,
    num_groups: int,
    temperature: float = 1.0,
    weights: Tensor | None = None,
    chunk_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """Differentiable per-group surrogate AUC (``docs/concepts/method.md``, one training step, step 10).

    ``Ã_g = sum_{i in pos_g, j in neg_g} w_i w_j sigmoid((z_i - z_j) / T) / (sum w_i * sum w_j)``

    where ``z`` is the positive-class logit margin and ``T`` the temperature. As ``T -> 0`` it tends
    to the exact AUC. Pairs are evaluated in row chunks of ``chunk_size`` to bound memory
    (``O(chunk_size * N)``).

    Args:
        margins: ``[N]`` margins ``z`` (keep the graph for a gradient).
        targets: ``[N]`` binary targets.
        groups: ``[N]`` group ids in ``[0, num_groups)``.
        num_groups: ``K``.
        temperature: ``T > 0``.
        weights: optional ``[N]`` sample weights (0 excludes a sample).
        chunk_size: rows of the pair matrix evaluated at once.

    Returns:
        ``(auc, valid)``, both ``[K]``; ``auc`` is NaN where a group lacks a class.
    """
    if margins.dim() != 1:
        raise ValueError(f"expected `margins` of shape [N], got {tuple(margins.shape)}")
    if temperature <= 0:
        raise ValueError(f"expected `temperature` > 0, got {temperature}")
    z = margins.to(torch.promote_types(margins.dtype, torch.float32)) / temperature
    return _pairwise_group_mean(z, targets, groups, num_groups, weights, chunk_size, torch.sigmoid)


def logistic_group_statistic(
    probs: Tensor,
    targets: Tensor,
    groups: Tensor,
    num_groups: int,
    weights: Tensor | None = None,
    chunk_size: int = 1024,
) -> tuple[Tensor, Tensor]:
    """The research code's per-group statistic: ``1 - mean_{i pos, j neg} log(1 + exp(-(p_i - p_j)))``.

    Computed on probabilities ``p`` within each group; its range is about -0.31..0.69 and it is not an
    AUC. Used by the ``reference`` preset (on the host) and, on the device, by
    ``group_statistic="logistic"`` for the ablation against the exact AUC.

    Returns:
        ``(value, valid)``, both ``[K]``; NaN where a group lacks a class.
    """
    p = probs.to(torch.promote_types(probs.dtype, torch.float32))
    return _pairwise_group_mean(
        p, targets, groups, num_groups, weights, chunk_size, lambda d: 1.0 - F.softplus(-d)
    )


def _pairwise_group_mean(z, targets, groups, num_groups, weights, chunk_size, kernel):
    """``sum_{i pos, j neg, same group} w_i w_j kernel(z_i - z_j) / (sum w_i sum w_j)`` per group."""
    n = z.shape[0]
    positive = targets.to(z.dtype)
    pos_w = positive if weights is None else positive * weights.to(z.dtype)
    neg_w = (1.0 - positive) if weights is None else weights.to(z.dtype) - pos_w
    g = groups.to(torch.long)
    one_hot = (g.unsqueeze(1) == torch.arange(num_groups, device=g.device)).to(z.dtype)  # [N, K]
    neg_by_group = neg_w.unsqueeze(1) * one_hot  # [N, K]: negative weight of j, in its group column
    # Row i of ``pair @ neg_by_group`` sums kernel(z_i - z_j) over the negatives j of each group; the
    # column of i's own group, weighted by i's positive weight, is i's share of the numerator.
    pos_by_group = pos_w.unsqueeze(1) * one_hot  # [N, K]
    if n <= chunk_size:
        numerator = (kernel(z.unsqueeze(1) - z.unsqueeze(0)) @ neg_by_group * pos_by_group).sum(0)
    else:
        numerator = sum(
            (kernel(z[i : i + chunk_size].unsqueeze(1) - z.unsqueeze(0)) @ neg_by_group)
            .mul(pos_by_group[i : i + chunk_size])
            .sum(0)
            for i in range(0, n, chunk_size)
        )
    pos_total = pos_by_group.sum(0)
    neg_total = neg_by_group.sum(0)
    valid = (pos_total > 0) & (neg_total > 0)
    denom = torch.where(valid, pos_total * neg_total, 1.0)  # no 0/0 in the unused branch's gradient
    auc = torch.where(valid, numerator / denom, float("nan"))
    return auc, valid
