"""The guides' closed-form step (``guide_logits_and_gradients``) against autograd on ``GuideHead``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_multifair.core import GuideHead, guide_logits_and_gradients


def _autograd_reference(heads, features, labels, present, masks):
    """The guide loss written plainly (each guide's mean CE, over present samples), through autograd."""
    loss, outputs = 0.0, []
    for m, (head, x) in enumerate(zip(heads, features)):
        hidden = torch.relu(head.hidden(x))
        if masks is not None:
            hidden = hidden * masks[m]
        out = head.output(hidden)
        ce = F.cross_entropy(out, labels, reduction="none")
        if present is None:
            loss = loss + ce.mean()
        else:
            w = present[:, m].to(ce.dtype)
            loss = loss + (ce * w).sum() / w.sum().clamp_min(1.0)
        outputs.append(out.detach())
    params = [p for head in heads for p in head.parameters()]
    grads = torch.autograd.grad(loss, params)
    return torch.stack(outputs), grads


@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("with_presence", [False, True])
@pytest.mark.parametrize("with_dropout", [False, True])
def test_closed_form_gradients_equal_autograd(num_classes, with_presence, with_dropout):
    torch.manual_seed(num_classes * 4 + with_presence * 2 + with_dropout)
    n, hidden = 33, 7
    heads = [GuideHead(d, hidden, num_classes).double() for d in (5, 3, 9)]
    features = [torch.randn(n, d, dtype=torch.float64) for d in (5, 3, 9)]
    labels = torch.randint(0, num_classes, (n,))
    present = torch.rand(n, 3) > 0.3 if with_presence else None
    if with_presence:
        present[:, 1] = False  # a modality missing from the whole batch: its guide gets no gradient
    masks = (torch.rand(3, n, hidden) > 0.25).double() / 0.75 if with_dropout else None

    logits, grads = guide_logits_and_gradients(heads, features, labels, present, masks)
    expected_logits, expected_grads = _autograd_reference(heads, features, labels, present, masks)

    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-12)
    names = [name for name, _ in heads[0].named_parameters()]
    got = [grads[m][name] for m in range(3) for name in names]
    assert len(got) == len(expected_grads)
    for g, e in zip(got, expected_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)
    if with_presence:
        assert all(not grads[1][name].any() for name in names)
    assert not logits.requires_grad and not any(g.requires_grad for d in grads for g in d.values())
