"""``modulate="update"``: the modality magnitude scales each encoder's parameter update, whatever the optimizer.

Oracles:

- one step with a constant coefficient ``rho`` (no balance, no group factor): the update of every encoder
  parameter is exactly ``rho`` times the update of the same step without the modulator, under AdamW and
  SGD, while the fused part moves as without it. In ``gradient`` mode AdamW's first step ignores ``rho``
  (the reason the mode exists).
- one step of the full ``default`` preset: AdamW's first step is invariant to a per-encoder gradient scale
  (up to ``eps``), so in ``update`` mode encoder ``m`` moves ``c_m`` times as far as in ``gradient`` mode,
  with ``c_m`` the ``update_scale`` the modulator reports (the batch mean of the per-sample scales).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from monai_multifair import MultiFairConfig
from monai_multifair.errors import MultiFairError

CONSTANT = {
    "preset": "paper",
    "coefficient_rule": "none",
    "group_strength": 0.0,
    "fairness_weight": 0.0,
    "direction_weight": 0.0,
}


def _optimizer(kind, params):
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-2)
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)


def _deltas(net, before):
    return {name: p.detach() - before[name] for name, p in net.named_parameters()}


def _step(kit, net, mod, optimizer, batch):
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    kit.train_step(net, mod, optimizer, batch)
    return _deltas(net, before)


def _plain_step(kit, net, optimizer, batch):
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(net(batch.inputs), batch.labels).backward()
    optimizer.step()
    return _deltas(net, before)


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
@pytest.mark.parametrize("rho", [0.3, 1.7])
def test_constant_coefficient_scales_the_encoder_update_exactly(kit, kind, rho):
    net = kit.make_net(3)
    plain = copy.deepcopy(net)
    mod = kit.make_modulator(net, modality_scale=rho, modulate="update", **CONSTANT)
    optimizer = _optimizer(kind, net.parameters())
    mod.attach_optimizer(optimizer)
    plain_optimizer = _optimizer(kind, plain.parameters())
    for t in range(3):  # several steps: optimizer state (moments, momentum) stays that of plain training
        batch = kit.make_batch(40 + t, size=32)
        modulated = _step(kit, net, mod, optimizer, batch)
        reference = _plain_step(kit, plain, plain_optimizer, batch)
        for name, delta in modulated.items():
            factor = rho if name.startswith("encoders.") else 1.0
            torch.testing.assert_close(delta, factor * reference[name], rtol=1e-5, atol=1e-7)
            assert delta.abs().max() > 0
        # the parameters themselves: equal for the fused part; for the encoders, rho^t times as far
        # from the start, so re-sync the encoders to keep the comparison one step at a time
        with torch.no_grad():
            for (name, p), q in zip(net.named_parameters(), plain.parameters()):
                if name.startswith("encoders."):
                    q.copy_(p)
    torch.testing.assert_close(mod.stats()["update_scale"], torch.full((2,), rho))


def test_gradient_mode_first_adamw_step_ignores_the_coefficient(kit):
    """Why the update mode exists: AdamW normalises a constant gradient scale away."""
    net = kit.make_net(3)
    plain = copy.deepcopy(net)
    mod = kit.make_modulator(net, modality_scale=0.3, **CONSTANT)
    assert mod.config.modulate == "gradient"
    optimizer = _optimizer("adamw", net.parameters())
    plain_optimizer = _optimizer("adamw", plain.parameters())
    batch = kit.make_batch(40, size=32)
    modulated = _step(kit, net, mod, optimizer, batch)
    reference = _plain_step(kit, plain, plain_optimizer, batch)
    for name in ("encoders.image.weight", "encoders.text.weight"):
        ratio = modulated[name].norm() / reference[name].norm()
        assert abs(float(ratio) - 1.0) < 1e-3  # not 0.3


def test_update_mode_moves_each_encoder_by_its_reported_magnitude(kit):
    """Full default preset (balance, routing group factor, losses): per-modality c_m differ."""
    config = {"preset": "default", "fairness_threshold": 0.01, "ema_decay": 0.0}
    runs = {}
    for mode in ("gradient", "update"):
        net = kit.make_net(5)
        mod = kit.make_modulator(net, modulate=mode, **config)
        # warm-up with SGD so that the balance and the group factor are away from 1
        warm = torch.optim.SGD(net.parameters(), lr=0.2)
        if mode == "update":
            mod.attach_optimizer(warm)
        for t in range(4):
            kit.train_step(net, mod, warm, kit.make_batch(200 + t, size=48))
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, eps=1e-12)
        if mode == "update":
            mod.attach_optimizer(optimizer)
        deltas = _step(kit, net, mod, optimizer, kit.make_batch(300, size=48))
        runs[mode] = (deltas, mod.stats())
    (grad_deltas, _), (upd_deltas, upd_stats) = runs["gradient"], runs["update"]
    magnitude = upd_stats["update_scale"]
    assert magnitude.shape == (2,)
    assert (magnitude - 1.0).abs().min() > 0.05  # the coefficients really act
    assert (magnitude[0] - magnitude[1]).abs() > 1e-3  # and differ between the modalities
    for m, name in enumerate(("image", "text")):
        for part in ("weight", "bias"):
            key = f"encoders.{name}.{part}"
            torch.testing.assert_close(upd_deltas[key], magnitude[m] * grad_deltas[key], rtol=2e-4, atol=1e-9)
    for key in ("trunk.weight", "head.bias"):
        torch.testing.assert_close(upd_deltas[key], grad_deltas[key], rtol=2e-4, atol=1e-9)


def test_accumulated_micro_batches_average_their_magnitudes(kit):
    net = kit.make_net(3)
    mod = kit.make_modulator(net, modality_scale=0.5, modulate="update", **CONSTANT)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    mod.attach_optimizer(optimizer)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer.zero_grad()
    for t in range(2):  # two micro-batches, one step
        batch = kit.make_batch(60 + t, size=16)
        logits = net(batch.inputs)
        (F.cross_entropy(logits, batch.labels) + mod(logits, batch.labels, batch.groups)).backward()
    raw = {n: -0.1 * p.grad for n, p in net.named_parameters()}
    optimizer.step()
    for name, p in net.named_parameters():
        factor = 0.5 if name.startswith("encoders.") else 1.0
        torch.testing.assert_close(p.detach() - before[name], factor * raw[name], rtol=1e-5, atol=1e-7)
    assert mod._pending_update_calls == 0 and float(mod.pending_update_scale.abs().sum()) == 0.0


def test_a_step_without_a_modulator_call_is_left_alone(kit):
    net = kit.make_net(3)
    mod = kit.make_modulator(net, modality_scale=0.5, modulate="update", **CONSTANT)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    mod.attach_optimizer(optimizer)
    batch = kit.make_batch(61, size=16)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    _plain_step(kit, net, optimizer, batch)
    expected = {n: before[n] - 0.1 * p.grad for n, p in net.named_parameters()}
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name])


def test_update_mode_without_an_optimizer_is_an_error(kit):
    net = kit.make_net(3)
    mod = kit.make_modulator(net, modulate="update", **CONSTANT)
    batch = kit.make_batch(1)
    with pytest.raises(MultiFairError, match=r"modulate`='update'.*attach_optimizer"):
        mod(net(batch.inputs), batch.labels, batch.groups)


def test_shared_encoder_parameters_are_refused(kit):
    net = kit.make_net(3, input_dims={"image": 4, "text": 4})
    net.encoders["text"].weight = net.encoders["image"].weight
    mod = kit.make_modulator(net, modulate="update", **CONSTANT)
    with pytest.raises(MultiFairError, match="belongs to the encoders of both 'image' and 'text'"):
        mod.attach_optimizer(torch.optim.SGD(net.parameters(), lr=0.1))


def test_attach_is_idempotent_and_detach_restores_plain_steps(kit):
    net = kit.make_net(3)
    mod = kit.make_modulator(net, modality_scale=0.5, modulate="update", **CONSTANT)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    mod.attach_optimizer(optimizer)
    mod.attach_optimizer(optimizer)
    assert len(optimizer._optimizer_step_pre_hooks) == 1 and len(optimizer._optimizer_step_post_hooks) == 1
    mod.detach_optimizer()
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks


def test_modulate_is_validated():
    with pytest.raises(
        MultiFairError, match=r"expected `modulate` to be one of 'gradient', 'update', got 'updates'"
    ):
        MultiFairConfig(modulate="updates")
