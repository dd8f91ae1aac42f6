"""Fair Identity Scaling against a numpy hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_multifair.methods import FairIdentityScalingWeighting, group_loss_distances


def _quantile_cost(sample, pooled, q):
    levels = (np.arange(q) + 0.5) / q
    a = np.sort(sample)[np.minimum((levels * sample.size).astype(int), sample.size - 1)]
    b = np.sort(pooled)[np.minimum((levels * pooled.size).astype(int), pooled.size - 1)]
    return 0.5 * np.mean((a - b) ** 2)


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_distances_are_the_one_dimensional_transport_cost():
    rng = np.random.default_rng(3)
    losses = rng.gamma(2.0, 0.5, size=40)
    groups = rng.integers(0, 4, size=40)
    groups[groups == 3] = 2  # group 3 absent
    distance, present = group_loss_distances(torch.tensor(losses), torch.tensor(groups), 4, 16)
    assert present.tolist() == [True, True, True, False]
    for g in range(3):
        assert float(distance[g]) == pytest.approx(_quantile_cost(losses[groups == g], losses, 16), rel=1e-9)
    assert float(distance[3]) == 0.0
    # identical distributions are at distance 0; a shifted one at (shift^2) / 2
    same, _ = group_loss_distances(torch.tensor([1.0, 2.0, 1.0, 2.0]), torch.tensor([0, 0, 1, 1]), 2, 8)
    torch.testing.assert_close(same, torch.zeros(2))


def test_weights_and_loss_follow_the_hand_computation():
    rng = np.random.default_rng(0)
    c, t, decay, q = 0.4, 0.7, 0.8, 8
    weighting = FairIdentityScalingWeighting(3, c, t, decay, q)
    ema = np.zeros(3)
    seen = np.zeros(3, dtype=bool)
    for step in range(4):
        losses = rng.gamma(2.0, 0.5, size=12)
        groups = rng.integers(0, 3 if step != 1 else 2, size=12)  # group 2 absent at step 1
        d = np.array(
            [_quantile_cost(losses[groups == g], losses, q) if (groups == g).any() else 0.0 for g in range(3)]
        )
        present = np.array([(groups == g).any() for g in range(3)])
        new = np.where(present & ~seen, d, decay * ema + (1 - decay) * d)
        ema = np.where(present, new, ema)
        seen |= present
        w = (1 - c) * 12 * _softmax(losses / t) + c * 12 * _softmax(ema[groups] / t)
        expected = float(np.mean(w * losses))
        tensor = torch.tensor(losses, dtype=torch.float32, requires_grad=True)
        value = weighting(tensor, torch.zeros(12, dtype=torch.long), torch.tensor(groups))
        assert float(value.detach()) == pytest.approx(expected, rel=1e-5)
        np.testing.assert_allclose(weighting.distance.numpy(), ema, rtol=1e-5, atol=1e-7)
        value.backward()  # weights are detached: the gradient of l_i is w_i / B
        np.testing.assert_allclose(tensor.grad.numpy(), w / 12, rtol=1e-5)


def test_coefficient_zero_is_individual_scaling_only():
    weighting = FairIdentityScalingWeighting(2, 0.0, 1.0, 0.9, 4)
    losses = torch.tensor([0.1, 2.0, 0.5, 0.5])
    value = weighting(losses, torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    w = 4 * torch.softmax(losses, 0)
    assert float(value) == pytest.approx(float((w * losses).mean()))
