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
    distance, present = group_loss_distances(torch.tensor(losses), torch.tensor(groups), 4, 16, pool="batch")
    assert present.tolist() == [True, True, True, False]
    for g in range(3):
        assert float(distance[g]) == pytest.approx(_quantile_cost(losses[groups == g], losses, 16), rel=1e-9)
    assert float(distance[3]) == 0.0
    # identical distributions are at distance 0; a shifted one at (shift^2) / 2
    same, _ = group_loss_distances(
        torch.tensor([1.0, 2.0, 1.0, 2.0]), torch.tensor([0, 0, 1, 1]), 2, 8, pool="batch"
    )
    torch.testing.assert_close(same, torch.zeros(2))


def test_weights_and_loss_follow_the_hand_computation():
    rng = np.random.default_rng(0)
    c, t, decay, q = 0.4, 0.7, 0.8, 8
    weighting = FairIdentityScalingWeighting(3, c, t, decay, q, pool="batch")
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
    weighting = FairIdentityScalingWeighting(2, 0.0, 1.0, 0.9, 4, pool="batch")
    losses = torch.tensor([0.1, 2.0, 0.5, 0.5])
    value = weighting(losses, torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    w = 4 * torch.softmax(losses, 0)
    assert float(value) == pytest.approx(float((w * losses).mean()))


def _expanded_cost(sample, pool, pool_weights):
    """W2^2 / 2 by brute force: both sorted samples repeated onto one common grid of equal masses (each
    value as many times as its mass holds grid cells), then the mean squared difference of the grids."""
    from fractions import Fraction
    from math import lcm

    masses = [Fraction(1, sample.size)] + [Fraction(w).limit_denominator(10**6) for w in pool_weights]
    cells = lcm(*(m.denominator for m in masses))
    a = np.repeat(np.sort(sample), cells // sample.size)
    order = np.argsort(pool, kind="stable")
    b = np.repeat(
        pool[order], [int(Fraction(w).limit_denominator(10**6) * cells) for w in pool_weights[order]]
    )
    assert a.size == b.size == cells
    return 0.5 * np.mean((a - b) ** 2)


@pytest.mark.parametrize("pool", ["batch", "balanced"])
def test_exact_distance_is_the_transport_cost_of_the_empirical_distributions(pool):
    rng = np.random.default_rng(7)
    for size in (5, 12, 30):
        losses = rng.gamma(2.0, 0.5, size=size)
        groups = rng.integers(0, 3, size=size)
        groups[0], groups[1] = 0, 1  # groups 0 and 1 present; group 3 never
        counts = np.bincount(groups, minlength=4)
        if pool == "batch":
            weights = np.full(size, 1.0 / size)
        else:
            weights = 1.0 / ((counts > 0).sum() * counts[groups])
        distance, present = group_loss_distances(torch.tensor(losses), torch.tensor(groups), 4, pool=pool)
        assert present.tolist() == [bool(c) for c in counts]
        for g in np.flatnonzero(counts):
            expected = _expanded_cost(losses[groups == g], losses, weights)
            assert float(distance[g]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert float(distance[3]) == 0.0


def test_balanced_pool_is_the_batch_pool_when_groups_are_equal_in_size():
    rng = np.random.default_rng(1)
    losses = torch.tensor(rng.gamma(2.0, 0.5, size=24))
    groups = torch.arange(24) % 3
    balanced, _ = group_loss_distances(losses, groups, 3, pool="balanced")
    batch, _ = group_loss_distances(losses, groups, 3, pool="batch")
    torch.testing.assert_close(balanced, batch, rtol=1e-12, atol=1e-14)


def test_the_quantile_approximation_is_exact_for_a_shift_and_off_otherwise():
    """A constant shift is exact at any number of levels; on skewed losses with fewer levels than
    samples the approximation misses the exact cost (the reason it is no longer the default)."""
    x = torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 4.5])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    exact, _ = group_loss_distances(x, groups, 2, pool="batch")
    approx, _ = group_loss_distances(x, groups, 2, 8, pool="batch")
    torch.testing.assert_close(exact, approx, rtol=1e-6, atol=1e-9)
    rng = np.random.default_rng(0)
    skewed = torch.tensor(rng.lognormal(0.0, 1.0, size=64))
    groups = torch.tensor(rng.integers(0, 2, size=64))
    exact, _ = group_loss_distances(skewed, groups, 2, pool="batch")
    approx, _ = group_loss_distances(skewed, groups, 2, 4, pool="batch")
    assert float((exact - approx).abs().max()) > 1e-3


@pytest.mark.parametrize(("pool", "majority_up"), [("batch", False), ("balanced", True)])
def test_the_pool_decides_which_group_is_up_weighted(pool, majority_up):
    """Groups 85 / 15, the minority's losses 3x larger. Against the batch (dominated by the majority)
    the minority is far from the pool and weighs more; against the balanced pool the majority is the
    further one (its losses sit below the mixture's more than the minority's sit above it)."""
    rng = np.random.default_rng(0)
    groups = np.r_[np.zeros(85, dtype=np.int64), np.ones(15, dtype=np.int64)]
    losses = rng.gamma(2.0, 0.25, size=100) * np.where(groups == 1, 3.0, 1.0)
    weighting = FairIdentityScalingWeighting(2, 1.0, 1.0, 0.0, pool=pool)
    weighting(
        torch.tensor(losses, dtype=torch.float32), torch.zeros(100, dtype=torch.long), torch.tensor(groups)
    )
    weight = weighting.last_group_weight
    assert (float(weight[0]) > float(weight[1])) is majority_up


def test_group_weight_of_a_group_absent_from_the_batch_is_undefined():
    weighting = FairIdentityScalingWeighting(3, 0.5, 1.0, 0.9, pool="batch")
    losses = torch.tensor([0.2, 1.0, 0.4, 3.0])
    weighting(losses, torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 2, 2]))
    weight = weighting.statistics()["group_weight"]
    assert torch.isnan(weight[1]) and torch.isfinite(weight[[0, 2]]).all()
    # the mean of B softmax(D_a / T) over each present group's samples
    group = 4 * torch.softmax(weighting.distance[torch.tensor([0, 0, 2, 2])], 0)
    torch.testing.assert_close(weight[[0, 2]], torch.stack([group[:2].mean(), group[2:].mean()]))
