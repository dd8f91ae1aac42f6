"""Guide heads ``G_m``: one small classifier per modality, trained on detached features."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GuideHead", "guide_logits_and_gradients", "step_guide_optimizer"]


class GuideHead(nn.Module):
    """``Linear(in, hidden) -> ReLU -> Dropout -> Linear(hidden, C)`` (the research code's ClassifierGuided).

    With ``hidden`` equal to the fused head's input width, ``output.weight`` has the shape of the fused
    head's output weight ``W_F``, which the direction loss compares it with.

    Args:
        in_features: width of the modality feature ``h_m`` (flattened).
        hidden: hidden width.
        num_classes: ``C``.
        dropout: dropout probability.

    Example:
        >>> head = GuideHead(64, 32, 2)
        >>> head(torch.zeros(4, 64)).shape
        torch.Size([4, 2])
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """Map ``[B, in_features]`` features to ``[B, C]`` logits."""
        return self.output(self.dropout(self.activation(self.hidden(features))))


def guide_logits_and_gradients(
    heads: Sequence[GuideHead],
    features: Sequence[Tensor],
    labels: Tensor,
    present: Tensor | None = None,
    dropout_masks: Tensor | None = None,
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Logits of ``M`` guide heads and the gradient of their summed cross-entropy, in closed form.

    The guide loss of one modulator step is ``L = sum_m mean_i CE(G_m(x_{m,i}), y_i)`` (with a presence
    mask, each guide's mean runs over the samples where its modality is present). For a guide
    ``z = x W1^T + b1``, ``a = relu(z) * mask``, ``o = a W2^T + b2`` the gradients are
    ``dL/do_i = w_i (softmax(o_i) - onehot(y_i))`` (``w_i`` the sample's weight in the mean), then
    ``dW2 = dL/do^T a``, ``db2 = sum_i dL/do_i``, ``dL/dz = (dL/do W2) * mask * [z > 0]``,
    ``dW1 = dL/dz^T x`` and ``db1 = sum_i dL/dz_i``: what autograd computes, in batched matrix
    products over the guides and without building a graph (the test suite checks it against autograd).

    Args:
        heads: ``M`` guide heads with equal ``hidden`` and ``C``.
        features: ``M`` detached feature tensors ``[N, in_features_m]``.
        labels: ``[N]`` class ids.
        present: optional ``[N, M]`` presence mask.
        dropout_masks: optional ``[M, N, hidden]`` dropout multipliers (``1/(1-p)`` kept, 0 dropped).

    Returns:
        ``(logits [M, N, C], grads)``: ``grads[m]`` maps each parameter name of head ``m``
        (``hidden.weight``, ``hidden.bias``, ``output.weight``, ``output.bias``) to its gradient.

    Example:
        >>> heads = [GuideHead(5, 4, 2), GuideHead(3, 4, 2)]
        >>> logits, grads = guide_logits_and_gradients(heads, [torch.randn(8, 5), torch.randn(8, 3)],
        ...                                            torch.randint(0, 2, (8,)))
        >>> logits.shape, sorted(grads[1])
        (torch.Size([2, 8, 2]), ['hidden.bias', 'hidden.weight', 'output.bias', 'output.weight'])
    """
    with torch.no_grad():
        hidden_pre = torch.stack(
            [F.linear(x, head.hidden.weight, head.hidden.bias) for head, x in zip(heads, features)]
        )  # [M, N, H]
        active = hidden_pre > 0
        hidden = hidden_pre.relu()
        if dropout_masks is not None:
            hidden = hidden * dropout_masks
        out_weight = torch.stack([head.output.weight for head in heads])  # [M, C, H]
        out_bias = torch.stack([head.output.bias for head in heads])  # [M, C]
        logits = torch.baddbmm(out_bias.unsqueeze(1), hidden, out_weight.transpose(1, 2))  # [M, N, C]
        num_classes = logits.shape[2]
        onehot = labels.unsqueeze(1) == torch.arange(num_classes, device=labels.device)  # [N, C]
        grad_logits = torch.softmax(logits, dim=2) - onehot.to(logits.dtype)
        if present is None:
            grad_logits = grad_logits / labels.shape[0]
        else:
            weight = present.t().to(logits.dtype)  # [M, N]
            weight = weight / weight.sum(1, keepdim=True).clamp_min(1.0)
            grad_logits = grad_logits * weight.unsqueeze(2)
        grad_out_weight = torch.bmm(grad_logits.transpose(1, 2), hidden)  # [M, C, H]
        grad_out_bias = grad_logits.sum(1)  # [M, C]
        grad_hidden = torch.bmm(grad_logits, out_weight) * active  # [M, N, H]
        if dropout_masks is not None:
            grad_hidden = grad_hidden * dropout_masks
        grad_hidden_bias = grad_hidden.sum(1)  # [M, H]
        grads = [
            {
                "hidden.weight": grad_hidden[m].t() @ x,
                "hidden.bias": grad_hidden_bias[m],
                "output.weight": grad_out_weight[m],
                "output.bias": grad_out_bias[m],
            }
            for m, x in enumerate(features)
        ]
    return logits, grads


def _functional_adam() -> Callable[..., None] | None:
    """torch.optim's functional Adam when it takes AdamW's ``decoupled_weight_decay`` (torch >= 2.6)."""
    adam = getattr(importlib.import_module("torch.optim.adam"), "adam", None)
    if adam is None:
        return None
    try:
        parameters = inspect.signature(adam).parameters
    except (TypeError, ValueError):
        return None
    return adam if "decoupled_weight_decay" in parameters else None


_ADAM = _functional_adam()
_OPTIMIZER_MODULE = importlib.import_module("torch.optim.optimizer")  # holds the global step hooks


def step_guide_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` for the guide heads, without ``Optimizer.step``'s per-call wrapper where safe.

    For a one-group fused AdamW (the modulator's default) whose state is initialised, no step hook is
    registered and ``step`` is not patched (an LR scheduler patches it), this calls the functional
    AdamW that ``AdamW.step`` itself calls, with the same tensors and hyperparameters: the same
    update, state and ``state_dict`` (the test suite compares them exactly), without the profiler
    record, hook lookups and grad-mode guard around it, which on a CPU cost more than the update of a
    few small heads. Anything else runs ``optimizer.step()``.
    """
    group = optimizer.param_groups[0] if len(optimizer.param_groups) == 1 else None
    params = group["params"] if group is not None else ()
    if (
        _ADAM is None
        or type(optimizer) is not torch.optim.AdamW
        or group is None
        or not group.get("fused")
        or group.get("amsgrad")
        or group.get("differentiable")
        or "decoupled_weight_decay" not in group
        or "step" in vars(optimizer)
        or getattr(optimizer, "_optimizer_step_pre_hooks", None)
        or getattr(optimizer, "_optimizer_step_post_hooks", None)
        or getattr(_OPTIMIZER_MODULE, "_global_optimizer_pre_hooks", None)
        or getattr(_OPTIMIZER_MODULE, "_global_optimizer_post_hooks", None)
        or len(optimizer.state) != len(params)
        or any(p.grad is None for p in params)
    ):
        optimizer.step()
        return
    states = [optimizer.state[p] for p in params]
    with torch.no_grad():
        _ADAM(
            list(params),
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            foreach=group["foreach"],
            capturable=group["capturable"],
            differentiable=False,
            fused=True,
            grad_scale=getattr(optimizer, "grad_scale", None),
            found_inf=getattr(optimizer, "found_inf", None),
            has_complex=False,
            decoupled_weight_decay=group["decoupled_weight_decay"],
            amsgrad=False,
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )
