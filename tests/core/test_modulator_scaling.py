"""Per-sample gradient scaling (step 8): encoder gradients equal the unmodulated ones times the factors.

With linear encoders ``h_m = W_m x + b`` the closed form is ``dL/dW_m = sum_i s_{m,i} g_{m,i} x_i^T`` and
``dL/db_m = sum_i s_{m,i} g_{m,i}``, where ``g_{m,i} = dL/dh_{m,i}`` comes from an unmodulated pass and
``s_{m,i} = modality_scale[m] * (gate * group_factor[m, a_i] + 1 - gate)`` from ``mod.stats()``.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

CONFIG = {
    "preset": "paper",
    "direction_weight": 0.0,
    "fairness_weight": 0.0,
    "group_strength": 0.3,
    "ema_decay": 0.5,
}


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _unmodulated_feature_grads(net, batch, amp: bool) -> list[torch.Tensor]:
    """``g_{m,i}``: gradient of the task loss w.r.t. each modality feature, no modulator involved."""
    with _autocast(amp):
        feats = [enc(batch.inputs[name]) for name, enc in net.encoders.items()]
        leaves = [f.detach().requires_grad_(True) for f in feats]
        loss = F.cross_entropy(net.fuse(leaves).float(), batch.labels)
    return list(torch.autograd.grad(loss, leaves))


def _warm_up(net, mod, make_batch, train_step, steps: int = 3) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for t in range(steps):
        train_step(net, mod, opt, make_batch(100 + t))


def _expected_encoder_grads(net, batch, grads, sample_scale):
    out = {}
    for m, name in enumerate(net.encoders):
        g = grads[m].double() * sample_scale[m].double().unsqueeze(1)  # [B, width]
        x = batch.inputs[name].double()
        out[name] = (g.t() @ x, g.sum(0))
    return out


def _reported_sample_scale(stats, groups, present=None):
    gate = stats["gate"]
    scale = stats["modality_scale"].unsqueeze(1) * (gate * stats["group_factor"][:, groups] + 1 - gate)
    return scale if present is None else scale * present.t().float()


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "autocast-bf16"])
@pytest.mark.parametrize("tau", [0.02, 5.0], ids=["gate-open", "gate-closed"])
def test_encoder_gradient_is_scaled_per_sample(tau, amp, make_net, make_batch, make_modulator, train_step):
    net = make_net(1)
    mod = make_modulator(net, fairness_threshold=tau, **CONFIG)
    _warm_up(net, mod, make_batch, train_step)
    batch = make_batch(7, size=32)
    grads = _unmodulated_feature_grads(net, batch, amp)

    net.zero_grad(set_to_none=True)
    with _autocast(amp):
        logits = net(batch.inputs)
        aux = mod(logits, batch.labels, batch.groups)
        loss = F.cross_entropy(logits.float(), batch.labels) + aux
    loss.backward()
    stats = mod.stats()
    scale = _reported_sample_scale(stats, batch.groups)
    assert float(stats["gate"]) == (1.0 if tau < 1 else 0.0)
    assert (scale - 1).abs().max() > 0.1  # the factors really differ from 1
    if tau < 1:
        assert (scale.max(1).values - scale.min(1).values).min() > 0.05  # and vary between samples

    tol = {"rtol": 2e-2, "atol": 2e-3} if amp else {"rtol": 1e-5, "atol": 1e-6}
    expected = _expected_encoder_grads(net, batch, grads, scale)
    for name, enc in net.encoders.items():
        weight, bias = expected[name]
        torch.testing.assert_close(enc.weight.grad.double(), weight, **tol)
        torch.testing.assert_close(enc.bias.grad.double(), bias, **tol)
    # Layers past the modality boundary are not modulated.
    head_grad = net.head.weight.grad.clone()
    plain = copy.deepcopy(net)
    plain.zero_grad(set_to_none=True)
    with _autocast(amp):
        F.cross_entropy(
            plain.fuse([e(batch.inputs[n]) for n, e in plain.encoders.items()]).float(), batch.labels
        ).backward()
    torch.testing.assert_close(head_grad, plain.head.weight.grad, rtol=1e-5, atol=1e-6)


def test_presence_mask(make_net, make_batch, make_modulator, train_step, record_guide_outputs):
    net = make_net(2)
    mod = make_modulator(net, fairness_threshold=0.02, **CONFIG)
    _warm_up(net, mod, make_batch, train_step)
    batch = make_batch(8, size=40)
    gen = torch.Generator().manual_seed(5)
    present = torch.rand(40, 2, generator=gen) > 0.35
    grads = _unmodulated_feature_grads(net, batch, amp=False)
    guides_before = copy.deepcopy(mod.guides)

    guide_outputs = record_guide_outputs(mod)
    net.zero_grad(set_to_none=True)
    logits = net(batch.inputs)
    (
        F.cross_entropy(logits, batch.labels) + mod(logits, batch.labels, batch.groups, present=present)
    ).backward()
    stats = mod.stats()

    # Encoder gradients: samples without the modality contribute nothing.
    scale = _reported_sample_scale(stats, batch.groups, present)
    assert (scale[~present.t()] == 0).all() and (scale[present.t()] > 0).all()
    expected = _expected_encoder_grads(net, batch, grads, scale)
    for name, enc in net.encoders.items():
        torch.testing.assert_close(enc.weight.grad.double(), expected[name][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(enc.bias.grad.double(), expected[name][1], rtol=1e-5, atol=1e-6)

    # Guide statistics count the present samples only.
    y, a = batch.labels.numpy(), batch.groups.numpy()
    for m, name in enumerate(mod.modality_names):
        keep = present[:, m].numpy()
        p = torch.softmax(guide_outputs[0][m], dim=1)[:, 1].double().numpy()
        assert stats["guide_auc"][m].item() == pytest.approx(roc_auc_score(y[keep], p[keep]), abs=1e-6)
        for g in range(3):
            sel = keep & (a == g)
            expected_group = roc_auc_score(y[sel], p[sel]) if len(set(y[sel])) == 2 else float("nan")
            np.testing.assert_allclose(stats["guide_group_auc"][m, g].item(), expected_group, atol=1e-6)

        # ... and train on them only: the guide gradient equals the CE gradient of the present samples.
        reference = guides_before[name]
        reference.zero_grad()
        feats = batch.inputs[name] @ net.encoders[name].weight.detach().t() + net.encoders[name].bias.detach()
        F.cross_entropy(reference(feats[keep]), batch.labels[keep]).backward()
        for got, want in zip(mod.guides[name].parameters(), reference.parameters()):
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-7)
