"""The ``reference`` preset (docs/concepts/method.md, "What the research code does differently") against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from monai_multifair import DualLevelGradientModulator, MultiFairConfig
from monai_multifair.core import ReferenceModulator, build_modulator
from monai_multifair.errors import MultiFairError


def _reference(net, num_groups=2, **overrides):
    torch.manual_seed(0)
    config = MultiFairConfig(preset="reference", guide_dropout=0.0, **overrides)
    return build_modulator(dict(net.encoders), 2, num_groups, fused_head=net.head, config=config)


def _auc(y, s):
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else float("nan")


def _logistic_surrogate(y, p):
    pos, neg = p[y == 1], p[y == 0]
    if not (pos.size and neg.size):
        return float("nan")
    return 1.0 - np.mean(np.log(1.0 + np.exp(-(pos[:, None] - neg[None, :]))))


def test_build_modulator_dispatches_on_preset(make_net):
    net = make_net(0)
    encoders = dict(net.encoders)
    assert type(build_modulator(encoders, 2, 2, net.head, config="reference")) is ReferenceModulator
    assert (
        type(build_modulator(encoders, 2, 2, net.head, config={"preset": "reference"})) is ReferenceModulator
    )
    assert type(build_modulator(encoders, 2, 2, net.head, config="paper")) is DualLevelGradientModulator
    assert type(build_modulator(encoders, 2, 2, net.head)) is DualLevelGradientModulator
    with pytest.raises(MultiFairError, match="'reference' preset.*ReferenceModulator"):
        DualLevelGradientModulator(encoders, 2, 2, net.head, config="reference")


def test_reference_step_by_hand(make_net, make_batch, record_guide_outputs, record_scales):
    net = make_net(2)
    mod = _reference(net, fairness_threshold=0.02)
    cfg = mod.config
    guide_outputs, applied = record_guide_outputs(mod), record_scales(mod)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)

    previous = np.full(2, 0.5)  # the research code's auc_prev = [0.5, 0.5]
    ema = np.full((2, 2), 0.5)
    gates = []
    for t in range(4):
        batch = make_batch(t, size=30, num_groups=2)
        if t == 1:  # unbalanced groups: the collapsed factor is a weighted mean
            batch.groups[:20] = 0
        logits = net(batch.inputs)
        params = list(net.encoders.parameters())
        plain = torch.autograd.grad(F.cross_entropy(logits, batch.labels), params, retain_graph=True)
        aux = mod(logits, batch.labels, batch.groups)
        assert isinstance(aux, torch.Tensor) and aux.item() == 0.0 and not aux.requires_grad
        opt.zero_grad(set_to_none=True)
        (F.cross_entropy(logits, batch.labels) + aux).backward()

        # Hand computation of the research code's step.
        y, a = batch.labels.numpy(), batch.groups.numpy()
        probs = [torch.softmax(o, dim=1)[:, 1].double().numpy() for o in guide_outputs[-1]]
        current = np.array([_auc(y, p) for p in probs])
        current = np.where(np.isnan(current), previous, current)
        delta = current - previous
        balance = 1.0 - np.abs(delta) / (np.abs(delta).sum() + cfg.eps)
        previous = current
        for m, p in enumerate(probs):
            for g in (0, 1):
                value = _logistic_surrogate(y[a == g], p[a == g])
                ema[m, g] = 0.9 * ema[m, g] + 0.1 * (0.5 if np.isnan(value) else value)
        factor = 1 + cfg.group_strength * (ema.mean(1, keepdims=True) - ema) / cfg.fairness_threshold
        share = np.array([(a == 0).mean(), (a == 1).mean()])
        collapsed = factor @ share
        fused = torch.softmax(logits.detach(), dim=1)[:, 1].double().numpy()
        fused_group = np.array(
            [(0.5 if np.isnan(v := _auc(y[a == g], fused[a == g])) else v) for g in (0, 1)]
        )
        gate = bool(
            np.isfinite(fused_group).all() and abs(fused_group[0] - fused_group[1]) > cfg.fairness_threshold
        )
        gates.append(gate)
        scale = cfg.modality_scale * balance * (collapsed if gate else 1.0)

        stats = mod.stats()
        np.testing.assert_allclose(stats["modality_scale"].numpy(), cfg.modality_scale * balance, atol=1e-6)
        np.testing.assert_allclose(stats["guide_auc"].numpy(), current, atol=1e-6)
        np.testing.assert_allclose(stats["guide_group_auc"].numpy(), ema, atol=1e-6)
        np.testing.assert_allclose(stats["group_factor"].numpy(), factor, atol=1e-5)
        np.testing.assert_allclose(stats["fused_group_auc"].numpy(), fused_group, atol=1e-6)
        assert float(stats["gate"]) == float(gate)
        # Every sample of a modality gets the same scale, rho * B_m (* F_m when the gate is open) ...
        assert applied[-1].shape == (2, 30)
        np.testing.assert_allclose(applied[-1].numpy(), np.repeat(scale[:, None], 30, axis=1), atol=1e-5)
        # ... and the encoder gradients are the plain ones times that scale.
        names = [n for n, _ in net.encoders.named_parameters()]
        for name, p, g in zip(names, params, plain):
            m = 0 if name.startswith("image") else 1
            torch.testing.assert_close(p.grad, g * float(scale[m]), rtol=1e-5, atol=1e-7)
        opt.step()
    assert np.abs(balance - 1).max() > 1e-3  # B_m moved away from 1
    assert True in gates and np.abs(collapsed - 1).max() > 1e-3


def test_reference_warns_once_about_other_groups(make_net, make_batch):
    net = make_net(0)
    mod = _reference(net, num_groups=3)
    batch = make_batch(0, num_groups=3)
    assert (batch.groups == 2).any()
    with pytest.warns(UserWarning, match="group ids 0 and 1 only"):
        mod(net(batch.inputs), batch.labels, batch.groups)
    stats = mod.stats()
    assert torch.equal(stats["group_factor"][:, 2], torch.ones(2))
    assert torch.isnan(stats["guide_group_auc"][:, 2]).all() and torch.isnan(stats["fused_group_auc"][2])
    mod(net(batch.inputs), batch.labels, batch.groups)  # a second warning would be an error here


def test_reference_reset_state(make_net, make_batch):
    net = make_net(0)
    mod = _reference(net)
    batch = make_batch(0, num_groups=2)
    for _ in range(2):
        mod(net(batch.inputs), batch.labels, batch.groups)
    assert not torch.equal(mod.previous_auc, torch.full((2,), 0.5)) and not torch.equal(
        mod.group_surrogate_ema, torch.full((2, 2), 0.5)
    )
    mod.reset_state()
    assert torch.equal(mod.previous_auc, torch.full((2,), 0.5))
    assert torch.equal(mod.group_surrogate_ema, torch.full((2, 2), 0.5))


def test_reference_rejects_multiclass(make_net):
    net = make_net(0, num_classes=3)
    with pytest.raises(MultiFairError, match="num_classes=2 only, got 3"):
        ReferenceModulator(dict(net.encoders), 3, 2, net.head)


def test_reference_rejects_presence_mask(make_net, make_batch):
    # The research code has no modality-presence mask: accepting one and ignoring it would send
    # gradients from missing modalities into their encoders.
    net = make_net(0)
    mod = _reference(net)
    batch = make_batch(0, num_groups=2)
    present = torch.ones(24, 2, dtype=torch.bool)
    present[:5, 0] = False
    with pytest.raises(MultiFairError, match="cannot handle missing modalities; got a `present` mask"):
        mod(net(batch.inputs), batch.labels, batch.groups, present=present)
    # a mask with every modality present (what the data pipeline gives for complete samples) is accepted
    full = torch.ones(24, 2, dtype=torch.bool)
    aux = mod(net(batch.inputs), batch.labels, batch.groups, present=full)
    assert float(aux) == 0.0


def test_reference_clamp_settings_are_refused(make_net):
    """The research code does not clamp the group factor: a clamp asked of the reference preset is an
    error, not a setting silently ignored."""
    net = make_net(0)
    with pytest.raises(MultiFairError, match=r"`group_factor_max` does not apply to the reference preset"):
        _reference(net, group_factor_max=3.0)
    with pytest.raises(MultiFairError, match=r"`group_factor_min` does not apply to the reference preset"):
        _reference(net, group_factor_min=0.0)


def test_reference_one_class_group_counts_as_half(make_net, make_batch, record_guide_outputs):
    """As the research code: a group with one class enters the surrogate EMA as 0.5 and its fused AUC
    reads 0.5, so the gate can open on the other group's distance from 0.5; a group with fewer than two
    samples keeps the gate closed. The first step's B_m is measured from 0.5."""
    net = make_net(1)
    mod = _reference(net, fairness_threshold=0.01)
    guide_outputs = record_guide_outputs(mod)
    batch = make_batch(0, size=30, num_groups=2)
    batch.groups[:] = 0
    batch.groups[:10] = 1
    batch.labels[:10] = 0  # group 1: one class
    batch.labels[10:20] = 1
    batch.labels[20:] = 0
    logits = net(batch.inputs)
    mod(logits, batch.labels, batch.groups)
    stats = mod.stats()
    y = batch.labels.numpy()
    probs = [torch.softmax(o, dim=1)[:, 1].double().numpy() for o in guide_outputs[-1]]
    current = np.array([_auc(y, p) for p in probs])
    np.testing.assert_allclose(stats["guide_auc"].numpy(), current, atol=1e-6)
    delta = np.abs(current - 0.5)
    np.testing.assert_allclose(stats["balance"].numpy(), 1 - delta / (delta.sum() + 1e-8), atol=1e-6)
    np.testing.assert_allclose(
        stats["guide_group_auc"].numpy()[:, 1], [0.5, 0.5], atol=1e-7
    )  # 0.9 * 0.5 + 0.1 * 0.5
    fused = torch.softmax(logits.detach(), dim=1)[:, 1].double().numpy()
    fused_0 = _auc(y[10:], fused[10:])
    np.testing.assert_allclose(stats["fused_group_auc"].numpy(), [fused_0, 0.5], atol=1e-6)
    assert float(stats["gate"]) == float(abs(fused_0 - 0.5) > 0.01) == 1.0
    # one sample of group 1: the research code has no AUC for it and leaves the gate closed
    batch.groups[:] = 0
    batch.groups[0] = 1
    mod(net(batch.inputs), batch.labels, batch.groups)
    assert float(mod.stats()["gate"]) == 0.0
