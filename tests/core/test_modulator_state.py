"""State: a run resumed from ``state_dict()`` continues exactly; ``reset_state`` forgets the EMAs."""

from __future__ import annotations

import io

import pytest
import torch

BUFFERS = (
    "previous_auc",
    "has_previous_auc",
    "balance_ema",
    "group_auc_ema",
    "group_seen",
    "fused_auc_ema",
    "fused_seen",
    "steps",
)


def _assert_same(a, b, path="state"):
    """Recursive exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.parametrize(
    "config",
    [
        {"guide_optimizer": "adamw", "coefficient_ema_decay": 0.5},
        {"guide_optimizer": "sgd", "group_factor_rule": "routing", "fairness_loss": "shortfall"},
    ],
    ids=["adamw", "sgd-routing"],
)
def test_resume_from_state_dict_continues_exactly(config, make_net, make_batch, make_modulator, train_step):
    config = {"guide_dropout": 0.1, "fairness_threshold": 0.02, **config}

    def step(net, mod, opt, t):
        torch.manual_seed(1000 + t)  # the guide heads' dropout draws
        return train_step(net, mod, opt, make_batch(300 + t))

    net_a = make_net(0)
    mod_a = make_modulator(net_a, **config)
    opt_a = torch.optim.AdamW(net_a.parameters(), lr=1e-2)
    for t in range(6):
        stats_a = step(net_a, mod_a, opt_a, t)

    net_b = make_net(0)
    mod_b = make_modulator(net_b, **config)
    opt_b = torch.optim.AdamW(net_b.parameters(), lr=1e-2)
    for t in range(3):
        step(net_b, mod_b, opt_b, t)
    buffer = io.BytesIO()
    torch.save({"net": net_b.state_dict(), "opt": opt_b.state_dict(), "mod": mod_b.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)  # default weights_only loading must accept the modulator's state

    net_c = make_net(99)  # fresh objects with other initial values
    mod_c = make_modulator(net_c, seed=99, **config)
    opt_c = torch.optim.AdamW(net_c.parameters(), lr=1e-2)
    assert not torch.equal(mod_c.guides["image"].hidden.weight, mod_b.guides["image"].hidden.weight)
    net_c.load_state_dict(saved["net"])
    opt_c.load_state_dict(saved["opt"])
    mod_c.load_state_dict(saved["mod"])
    for t in range(3, 6):
        stats_c = step(net_c, mod_c, opt_c, t)

    for (name, a), c in zip(net_a.named_parameters(), net_c.parameters()):
        assert torch.equal(a, c), name
    for (name, a), c in zip(mod_a.named_parameters(), mod_c.parameters()):
        assert torch.equal(a, c), name
    for name in BUFFERS:
        assert torch.equal(getattr(mod_a, name), getattr(mod_c, name)), name
    _assert_same(mod_a.guide_optimizer.state_dict(), mod_c.guide_optimizer.state_dict(), "guide_optimizer")
    _assert_same(stats_a, stats_c, "stats")
    assert int(mod_c.steps) == 6


def test_state_dict_holds_guides_buffers_and_optimizer_only(make_net, make_modulator):
    net = make_net(0)
    mod = make_modulator(net)
    keys = set(mod.state_dict())
    assert set(BUFFERS) <= keys and "_extra_state" in keys
    assert {k.split(".")[0] for k in keys} == {*BUFFERS, "guides", "_extra_state"}
    assert "guide_optimizer" in mod.state_dict()["_extra_state"]


def test_reset_state(make_net, make_batch, make_modulator, train_step):
    net = make_net(5)
    mod = make_modulator(net, fairness_threshold=0.02)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    for t in range(3):
        train_step(net, mod, opt, make_batch(t))
    assert bool(mod.group_seen.any()) and bool(mod.has_previous_auc.all()) and int(mod.steps) == 3
    guides = {k: v.clone() for k, v in mod.guides.state_dict().items()}
    guide_steps = mod.guide_optimizer.state_dict()["state"][0]["step"].clone()

    mod.reset_state()
    fresh = make_modulator(make_net(5))
    for name in BUFFERS:
        assert torch.equal(getattr(mod, name), getattr(fresh, name)), name
    _assert_same(guides, dict(mod.guides.state_dict()), "guides")  # the guide heads are kept
    assert torch.equal(mod.guide_optimizer.state_dict()["state"][0]["step"], guide_steps)

    # The next step behaves like a first step: B_m = 1, EMAs start from the batch values.
    batch = make_batch(50)
    mod(net(batch.inputs), batch.labels, batch.groups)
    stats = mod.stats()
    assert torch.equal(stats["balance"], torch.ones(2))
    valid = ~torch.isnan(stats["guide_group_auc"])
    assert torch.equal(mod.group_seen, valid)
    torch.testing.assert_close(mod.group_auc_ema[valid], stats["guide_group_auc"][valid])
    assert int(mod.steps) == 1
