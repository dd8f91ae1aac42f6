"""Hypothesis properties of the modulator: equal groups, zero strength, relabelled groups."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=8, deadline=None, database=None)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    num_groups=st.integers(2, 4),
    num_modalities=st.integers(2, 3),
    block=st.integers(4, 9),
    steps=st.integers(1, 3),
    rule=st.sampled_from(["modality", "routing"]),
)
def test_equal_group_performance_gives_factor_one(
    seed, num_groups, num_modalities, block, steps, rule, make_net, make_modulator
):
    dims = {f"m{i}": 2 + i for i in range(num_modalities)}
    net = make_net(seed, dims)
    mod = make_modulator(
        net,
        num_groups=num_groups,
        preset="paper",
        group_factor_rule=rule,
        fairness_threshold=0.01,
        group_strength=2.0,
    )
    rng = np.random.default_rng(seed)
    size = block * num_groups
    for _ in range(steps):
        # Each group holds the same samples (labels, guide logits, fused logits), in shuffled order.
        y_block = rng.permutation(np.arange(block) % 2)
        guides_block = [rng.normal(size=(block, 2)) for _ in range(num_modalities)]
        fused_block = rng.normal(size=(block, 2))
        order = rng.permutation(size)
        labels = torch.tensor(np.tile(y_block, num_groups)[order])
        groups = torch.tensor(np.repeat(np.arange(num_groups), block)[order])
        guide_logits = [
            torch.tensor(np.tile(b, (num_groups, 1))[order], dtype=torch.float32) for b in guides_block
        ]
        fused = torch.tensor(np.tile(fused_block, (num_groups, 1))[order], dtype=torch.float32)
        mod._guide_step = lambda feats, lab, present, out=guide_logits: out
        net({name: torch.randn(size, dim) for name, dim in dims.items()})
        mod(fused, labels, groups)
        stats = mod.stats()
        group_auc = stats["guide_group_auc"]
        assert torch.allclose(group_auc, group_auc[:, :1].expand_as(group_auc), atol=1e-6)
        # the factor is 1 + kappa (mean - E_g) / tau: float32 rounding of the equal AUCs (~1e-7) is
        # amplified by kappa / tau = 200 here
        torch.testing.assert_close(
            stats["group_factor"], torch.ones(num_modalities, num_groups), atol=1e-7 * 2.0 / 0.01 * 4, rtol=0
        )
        assert float(stats["gate"]) == 0.0


def _run(kit, seed, num_groups, steps, groups_map=None, **config):
    net = kit.make_net(seed)
    mod = kit.make_modulator(net, num_groups=num_groups, preset="paper", **config)
    scales = kit.record_scales(mod)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    history = []
    for t in range(steps):
        batch = kit.make_batch(seed * 7 + t, size=30, num_groups=num_groups)
        if groups_map is not None:
            batch.groups = groups_map[batch.groups]
        logits = net(batch.inputs)
        aux = mod(logits, batch.labels, batch.groups)
        opt.zero_grad(set_to_none=True)
        (torch.nn.functional.cross_entropy(logits, batch.labels) + aux).backward()
        opt.step()
        history.append(mod.stats())
    return net, mod, history, scales


@SETTINGS
@given(
    seed=st.integers(0, 10_000), num_groups=st.integers(2, 4), rule=st.sampled_from(["modality", "routing"])
)
def test_zero_group_strength_changes_nothing(seed, num_groups, rule, kit):
    common = {"group_factor_rule": rule, "fairness_weight": 0.0, "direction_weight": 0.15}
    # kappa = 0 with a gate that opens ...
    net_a, mod_a, hist_a, _ = _run(
        kit, seed, num_groups, 3, group_strength=0.0, fairness_threshold=0.005, **common
    )
    # ... trains exactly as kappa = 0.3 with the group level switched off (a gate that never opens).
    net_b, mod_b, hist_b, _ = _run(
        kit, seed, num_groups, 3, group_strength=0.3, fairness_threshold=1e6, **common
    )
    assume(any(float(s["gate"]) == 1.0 for s in hist_a))
    for stats in hist_a:
        assert torch.equal(stats["group_factor"], torch.ones_like(stats["group_factor"]))
    assert all(float(s["gate"]) == 0.0 for s in hist_b)
    for (name, a), b in zip(net_a.named_parameters(), net_b.parameters()):
        assert torch.equal(a, b), name
    for a, b in zip(mod_a.guides.parameters(), mod_b.guides.parameters()):
        assert torch.equal(a, b)


@SETTINGS
@given(
    data=st.data(),
    seed=st.integers(0, 10_000),
    num_groups=st.integers(2, 4),
    rule=st.sampled_from(["modality", "routing"]),
    loss=st.sampled_from(["dispersion", "shortfall"]),
)
def test_relabelling_groups_permutes_results(data, seed, num_groups, rule, loss, kit):
    perm = torch.tensor(data.draw(st.permutations(range(num_groups))))
    config = {
        "group_factor_rule": rule,
        "fairness_loss": loss,
        "fairness_threshold": 0.02,
        "ema_decay": 0.5,
        "group_strength": 0.5,
    }
    net_a, mod_a, hist_a, scales_a = _run(kit, seed, num_groups, 3, **config)
    net_b, mod_b, hist_b, scales_b = _run(kit, seed, num_groups, 3, groups_map=perm, **config)
    for a, b in zip(hist_a, hist_b):
        # Group g of run A is group perm[g] of run B.
        for key in ("guide_group_auc", "group_factor"):
            torch.testing.assert_close(b[key][:, perm], a[key], atol=1e-5, rtol=0, equal_nan=True)
        torch.testing.assert_close(
            b["fused_group_auc"][perm], a["fused_group_auc"], atol=1e-5, rtol=0, equal_nan=True
        )
        for key in ("gate", "modality_scale", "guide_auc", "fairness_loss", "direction_loss"):
            torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-5)
    for a, b in zip(scales_a, scales_b):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
