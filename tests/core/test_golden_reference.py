"""The ``reference`` preset against the numbers the research code (Zubair063/MultiFair) gives on a
scripted sequence of batches (``tests/fixtures/golden/multifair_reference.json`` says where they come
from). The guide heads' outputs are scripted too: the test checks what the preset computes from them
(``B_m``, the surrogate EMAs, the group factors, the gate and each encoder's gradient multiplier)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_multifair import MultiFairConfig
from monai_multifair.core import build_modulator

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures/golden/multifair_reference.json").read_text())


@pytest.mark.parametrize("run", GOLDEN["runs"], ids=["paper-values", "unclamped-factors"])
def test_reference_preset_follows_the_research_code(run, make_net, make_batch, record_scales, monkeypatch):
    p = run["parameters"]
    net = make_net(0)
    config = MultiFairConfig(
        preset="reference",
        modality_scale=p["rou"],
        group_strength=p["fairness_modulation"],
        fairness_threshold=p["fairness_threshold"],
        ema_decay=p["ema_decay"],
        guide_dropout=0.0,
    )
    mod = build_modulator(dict(net.encoders), 2, 2, fused_head=net.head, config=config)
    applied = record_scales(mod)
    inputs = make_batch(0, size=24, num_groups=2).inputs
    left_clamp = False
    for step in run["steps"]:
        scripted = torch.tensor(step["guide_logits"], dtype=torch.float32)  # [M, B, 2]
        monkeypatch.setattr(mod, "_guide_step", lambda feats, labels, present, s=scripted: s)
        net(inputs)  # the encoders' features the modulator scales
        mod(
            torch.tensor(step["fused_logits"], dtype=torch.float32),
            torch.tensor(step["labels"]),
            torch.tensor(step["groups"]),
        )
        stats = mod.stats()
        np.testing.assert_allclose(stats["guide_auc"].numpy(), step["guide_auc"], atol=1e-6)
        np.testing.assert_allclose(stats["balance"].numpy(), step["balance"], atol=1e-6)
        np.testing.assert_allclose(stats["guide_group_auc"].numpy(), step["group_ema"], atol=1e-6)
        np.testing.assert_allclose(stats["group_factor"].numpy(), step["group_factor"], rtol=1e-5, atol=1e-5)
        assert bool(stats["gate"]) is step["gate"]
        np.testing.assert_allclose(
            applied[-1].numpy(), np.repeat(np.array(step["gradient_multiplier"])[:, None], 24, 1), rtol=1e-5
        )
        left_clamp |= bool(
            np.any((np.array(step["group_factor"]) < 0.5) | (np.array(step["group_factor"]) > 2))
        )
    assert left_clamp is (run["parameters"]["fairness_threshold"] == 0.01)
