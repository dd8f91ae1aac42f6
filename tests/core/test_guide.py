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


def _guide_optimizers(num: int = 2):
    """``num`` identical (heads, fused AdamW) pairs, gradients set as the modulator sets them."""
    pairs = []
    for _ in range(num):
        torch.manual_seed(0)
        heads = torch.nn.ModuleList([GuideHead(5, 4, 2), GuideHead(3, 4, 2)])
        pairs.append((heads, torch.optim.AdamW(heads.parameters(), lr=1e-2, weight_decay=3e-3, fused=True)))
    return pairs


def _set_grads(heads, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in heads.parameters():
        p.grad = torch.randn(p.shape, generator=gen)


def test_step_guide_optimizer_equals_optimizer_step():
    """The short path (torch's functional AdamW, no Optimizer.step wrapper) makes exactly the update,
    state and state_dict of ``optimizer.step()``, step after step, with an lr change on the way."""
    from monai_multifair.core import guide

    (heads_a, opt_a), (heads_b, opt_b) = _guide_optimizers()
    calls = []
    original = guide._ADAM

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    guide._ADAM = counting
    try:
        for t in range(5):
            if t == 3:
                for opt in (opt_a, opt_b):
                    opt.param_groups[0]["lr"] = 3e-3
            _set_grads(heads_a, t)
            _set_grads(heads_b, t)
            opt_a.step()
            guide.step_guide_optimizer(opt_b)
            for pa, pb in zip(heads_a.parameters(), heads_b.parameters()):
                assert torch.equal(pa, pb)
        sa, sb = opt_a.state_dict(), opt_b.state_dict()
        assert sa["param_groups"] == sb["param_groups"]
        for key in sa["state"]:
            for name, value in sa["state"][key].items():
                assert torch.equal(value, sb["state"][key][name]), (key, name)
    finally:
        guide._ADAM = original
    if original is not None:  # torch with the functional AdamW: the first step initialises the state
        assert len(calls) == 4


def test_step_guide_optimizer_keeps_hooks_and_schedulers():
    """A step hook, or an LR scheduler (which patches ``step``), sends the update through ``step()``."""
    from monai_multifair.core.guide import step_guide_optimizer

    (heads, opt), _ = _guide_optimizers()
    seen = []
    handle = opt.register_step_post_hook(lambda optimizer, args, kwargs: seen.append(1))
    for t in range(2):
        _set_grads(heads, t)
        step_guide_optimizer(opt)
    handle.remove()
    assert seen == [1, 1]
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _set_grads(heads, 3)
    step_guide_optimizer(opt)
    scheduler.step()  # warns if it thinks the optimizer did not step (warnings are errors here)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
