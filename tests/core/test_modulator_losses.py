"""The auxiliary losses: direction loss (step 9) and fairness loss (step 10), values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _warm_up(net, mod, make_batch, train_step, steps: int = 2) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for t in range(steps):
        train_step(net, mod, opt, make_batch(200 + t))


# ---------------------------------------------------------------------- direction loss


def _direction_by_hand(balance: torch.Tensor, fused_weight: torch.Tensor, guide_weights: list[torch.Tensor]):
    """``L_gm = (1/M)(sum_m |B_m| - sum_m B_m cos(W_F, W_{G_m}))`` in float64."""
    w = fused_weight.reshape(-1)
    total = balance.abs().sum()
    for b, wg in zip(balance, guide_weights):
        wg = wg.reshape(-1)
        total = total - b * (w @ wg) / (w.norm() * wg.norm())
    return total / len(guide_weights)


def test_direction_loss_value_and_gradient(make_net, make_batch, make_modulator, train_step):
    net = make_net(3)
    mod = make_modulator(net, preset="paper", direction_weight=0.15, fairness_weight=0.0)
    _warm_up(net, mod, make_batch, train_step)
    batch = make_batch(9)
    net.zero_grad(set_to_none=True)
    aux = mod(net(batch.inputs), batch.labels, batch.groups)
    guide_grads = [p.grad.clone() for p in mod.guides.parameters()]
    aux.backward()
    stats = mod.stats()
    balance = stats["balance"].double()
    assert (balance - 1).abs().max() > 1e-3  # B_m != 1 after the warm-up

    fused = net.head.weight.detach().double().requires_grad_(True)
    guides = [mod.guides[n].output.weight.detach().double() for n in mod.modality_names]
    expected = _direction_by_hand(balance, fused, guides)
    expected.backward()
    assert stats["direction_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert aux.item() == pytest.approx(0.15 * expected.item(), rel=1e-5)
    # Gradient into the fused head weight only: not the encoders, the trunk, the bias or the guides.
    torch.testing.assert_close(net.head.weight.grad.double(), 0.15 * fused.grad, rtol=1e-4, atol=1e-7)
    assert net.head.weight.grad.abs().sum() > 0
    for name, param in net.named_parameters():
        if name != "head.weight":
            assert param.grad is None or not param.grad.any(), name
    for before, param in zip(guide_grads, mod.guides.parameters()):
        assert torch.equal(before, param.grad)


def test_direction_loss_off_without_fused_head(make_net, make_batch):
    from monai_multifair import DualLevelGradientModulator

    net = make_net(0)
    mod = DualLevelGradientModulator(
        dict(net.encoders), 2, 3, config={"direction_weight": 0.0, "fairness_weight": 0.0}
    )
    batch = make_batch(0)
    aux = mod(net(batch.inputs), batch.labels, batch.groups)
    assert aux.item() == 0.0 and mod.guides["image"].output.weight.shape == (2, 128)


# ---------------------------------------------------------------------- fairness loss


def _surrogate_by_hand(logits: np.ndarray, y: np.ndarray, a: np.ndarray, k: int, temperature: float):
    z = logits[:, 1] - logits[:, 0]
    out = np.full(k, np.nan)
    for g in range(k):
        pos, neg = z[(a == g) & (y == 1)], z[(a == g) & (y == 0)]
        if pos.size and neg.size:
            out[g] = np.mean(1 / (1 + np.exp(-(pos[:, None] - neg[None, :]) / temperature)))
    return out


def _fairness_by_hand(logits, y, a, k, temperature, form, level=None):
    """``F_G`` over valid groups; ``level`` fixes the shortfall's reference (its stop-gradient)."""
    surrogate = _surrogate_by_hand(logits, y, a, k, temperature)
    valid = surrogate[~np.isnan(surrogate)]
    if form == "shortfall":
        return np.mean(np.maximum((valid.mean() if level is None else level) - valid, 0.0))
    return np.mean(np.abs(valid - valid.mean()))


def _fairness_mod(make_net, make_modulator, form, tau, seed=4):
    net = make_net(seed)
    mod = make_modulator(
        net,
        num_groups=3,
        preset="paper",
        direction_weight=0.0,
        fairness_weight=0.5,
        fairness_threshold=tau,
        fairness_loss=form,
        surrogate_temperature=0.3,
        gate_smoothing=False,
    )
    return net, mod


def _aux_backward(make_net, make_batch, make_modulator, form, tau):
    """Backward of the auxiliary loss alone; returns ``(net, batch, logits with .grad, aux, stats)``."""
    net, mod = _fairness_mod(make_net, make_modulator, form, tau=tau)
    batch = make_batch(11, size=30)
    net.zero_grad(set_to_none=True)
    logits = net(batch.inputs)
    logits.retain_grad()
    aux = mod(logits, batch.labels, batch.groups)
    aux.backward()
    return net, batch, logits, aux, mod.stats()


@pytest.mark.parametrize("form", ["dispersion", "shortfall"])
def test_fairness_loss_value_and_gradient_when_gate_open(form, make_net, make_batch, make_modulator):
    net, batch, logits, aux, stats = _aux_backward(make_net, make_batch, make_modulator, form, tau=0.01)
    assert float(stats["gate"]) == 1.0

    y, a = batch.labels.numpy(), batch.groups.numpy()
    value = logits.detach().double().numpy()
    expected = _fairness_by_hand(value, y, a, 3, 0.3, form)
    assert expected > 1e-3
    assert stats["fairness_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert aux.item() == pytest.approx(0.5 * expected, rel=1e-5)

    # Gradient into the logits equals central differences of the hand formula. The shortfall's
    # reference level mean_g Ã_g is a stop-gradient (held at its current value), so that the loss
    # only lifts lagging groups; the dispersion differentiates through its mean.
    level = None
    if form == "shortfall":
        level = np.nanmean(_surrogate_by_hand(value, y, a, 3, 0.3))
    numeric = np.zeros_like(value)
    h = 1e-6
    for idx in np.ndindex(*value.shape):
        up, down = value.copy(), value.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (
            0.5
            * (
                _fairness_by_hand(up, y, a, 3, 0.3, form, level)
                - _fairness_by_hand(down, y, a, 3, 0.3, form, level)
            )
            / (2 * h)
        )
    np.testing.assert_allclose(logits.grad.double().numpy(), numeric, rtol=1e-3, atol=1e-6)
    # ... and on into every encoder.
    for name, encoder in net.encoders.items():
        assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0, name


def test_fairness_loss_contributes_nothing_when_gate_closed(make_net, make_batch, make_modulator):
    net, batch, logits, aux, stats = _aux_backward(
        make_net, make_batch, make_modulator, "dispersion", tau=10.0
    )
    assert float(stats["gate"]) == 0.0
    assert stats["fairness_loss"].item() > 1e-3  # the loss exists, the gate removes it
    assert aux.item() == 0.0
    assert logits.grad is None or not logits.grad.any()
    for encoder in net.encoders.values():
        assert encoder.weight.grad is None or not encoder.weight.grad.any()


def _best_group_directional_derivative(form, make_net, make_batch, make_modulator) -> float:
    """d(aux)/d(eps) along a logit change that raises only the best group's surrogate AUC."""
    net, mod = _fairness_mod(make_net, make_modulator, form, tau=0.01)
    batch = make_batch(12, size=36)
    with torch.no_grad():
        base = net(batch.inputs)  # capture the features
    logits = base.clone().requires_grad_(True)
    aux = mod(logits, batch.labels, batch.groups)
    assert float(mod.stats()["gate"]) == 1.0
    (grad,) = torch.autograd.grad(aux, logits)
    y, a = batch.labels.numpy(), batch.groups.numpy()
    surrogate = _surrogate_by_hand(base.double().numpy(), y, a, 3, 0.3)
    best = int(np.nanargmax(surrogate))
    assert np.nanmax(surrogate) - np.nanmin(surrogate) > 0.02  # there is a best and a lagging group
    direction = torch.zeros_like(logits)
    in_best = batch.groups == best
    direction[in_best, 1] = torch.where(batch.labels[in_best] == 1, 1.0, -1.0)
    return float((grad * direction).sum())


def test_dispersion_levels_down_the_best_group(make_net, make_batch, make_modulator):
    # The symmetric loss rises when the best group improves (docs/concepts/method.md, the shortfall loss).
    assert _best_group_directional_derivative("dispersion", make_net, make_batch, make_modulator) > 1e-4


def test_shortfall_never_penalises_the_best_group_improving(make_net, make_batch, make_modulator):
    # The one-sided loss must not push the best group down: its slope along that change is <= 0.
    assert _best_group_directional_derivative("shortfall", make_net, make_batch, make_modulator) <= 1e-7


# ---------------------------------------------------------------------- closed-form gradients


def _fairness_autograd(logits, labels, groups, k, temperature, form, positive_class):
    """The fairness loss as plain autograd code on the public ``surrogate_group_auc`` (the oracle)."""
    from monai_multifair.core import surrogate_group_auc

    c = logits.shape[1]
    if c == 2:
        margins = [logits[:, positive_class] - logits[:, 1 - positive_class]]
        targets = [labels == positive_class]
    else:
        eye = torch.eye(c, dtype=torch.bool)
        margins = [
            logits[:, j] - torch.logsumexp(logits.masked_fill(eye[j], -float("inf")), 1) for j in range(c)
        ]
        targets = [labels == j for j in range(c)]
    per_class = [surrogate_group_auc(z, t, groups, k, temperature) for z, t in zip(margins, targets)]
    values = torch.stack([torch.where(v, a, torch.zeros_like(a)) for a, v in per_class])
    valid = torch.stack([v for _, v in per_class])
    count = valid.sum(0)
    level, known = values.sum(0) / count.clamp_min(1), count > 0
    mean = (level * known).sum() / known.sum().clamp_min(1)
    spread = (mean.detach() - level).clamp_min(0) if form == "shortfall" else (level - mean).abs()
    return (spread * known).sum() / known.sum().clamp_min(1)


@pytest.mark.parametrize("form", ["dispersion", "shortfall"])
@pytest.mark.parametrize(("num_classes", "positive_class"), [(2, 1), (2, 0), (3, 1)])
@pytest.mark.parametrize("layout", ["mixed", "one-valid-group"])
def test_fairness_closed_form_gradient_equals_autograd(form, num_classes, positive_class, layout):
    """``_fairness_loss_and_grad`` against autograd, in float64: value and d/dlogits, with a one-class
    group and an empty group (``mixed``), and with a single group that has both classes (where the
    shortfall's relu sits exactly at 0 and autograd still passes the gradient)."""
    from types import SimpleNamespace

    from monai_multifair import MultiFairConfig
    from monai_multifair.core.modulator import _fairness_loss_and_grad

    gen = torch.Generator().manual_seed(num_classes * 10 + positive_class + (layout == "mixed"))
    n, k, temperature = 40, 4, 0.3
    logits = torch.randn(n, num_classes, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    groups = torch.randint(0, 3, (n,), generator=gen)  # group 3 stays empty
    if layout == "mixed":
        labels[groups == 2] = positive_class  # group 2 has one class only
    else:
        groups[:] = torch.where(labels == positive_class, 1, 2) if num_classes == 2 else groups
        groups[: n // 2] = 0  # group 0 has both classes; 1 and 2 (binary) one class each
    config = MultiFairConfig(
        fairness_loss=form, surrogate_temperature=temperature, positive_class=positive_class
    )
    mod = SimpleNamespace(config=config, num_classes=num_classes, num_groups=k)

    value, grad = _fairness_loss_and_grad(mod, logits, labels, groups)
    leaf = logits.clone().requires_grad_(True)
    expected = _fairness_autograd(leaf, labels, groups, k, temperature, form, positive_class)
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert value.item() == pytest.approx(expected.item(), abs=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
    if layout == "mixed" or form == "shortfall":  # (one group's dispersion is 0 whatever the logits)
        assert expected_grad.abs().sum() > 0


def test_direction_closed_form_gradient_equals_autograd(make_net, make_modulator):
    from monai_multifair.core.modulator import _direction_loss_and_grad

    net = make_net(5)
    mod = make_modulator(net).double()
    with torch.no_grad():
        for head in mod.guides.values():
            head.output.weight.normal_()
    balance = torch.tensor([0.7, -0.2], dtype=torch.float64)
    fused = net.head.weight.detach().double()
    value, grad = _direction_loss_and_grad(mod, balance, fused)
    leaf = fused.clone().requires_grad_(True)
    expected = _direction_by_hand(
        balance, leaf, [mod.guides[n].output.weight.detach() for n in mod.modality_names]
    )
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert value.item() == pytest.approx(expected.item(), abs=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
