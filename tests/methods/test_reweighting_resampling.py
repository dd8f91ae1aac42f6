"""Reweighting weights and resampling proportions against the training counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_multifair.engine import EpochSampler, TensorBatchLoader, epoch_draw
from monai_multifair.methods import Resampling, ResamplingOptions, Reweighting, ReweightingOptions


def test_reweighting_weights_are_inverse_frequencies_averaging_one(make_context):
    groups = [0] * 6 + [1] * 3 + [2] * 1
    labels = [0, 1, 0, 1, 0, 1, 0, 0, 1, 1]
    method = Reweighting(ReweightingOptions(by="group"))
    method.setup(make_context(labels, groups))
    np.testing.assert_allclose(
        method.weighting.weights.numpy(), [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)], rtol=1e-6
    )
    per_sample = method.weighting.weights[torch.tensor(groups)]
    assert float(per_sample.mean()) == pytest.approx(1.0)
    # the loss: mean_i w_{g_i} l_i
    losses = torch.tensor([1.0, 2.0, 3.0])
    value = method.weighting(losses, torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]))
    assert float(value) == pytest.approx((10 / 18 * 1 + 10 / 9 * 2 + 10 / 3 * 3) / 3, rel=1e-6)


def test_reweighting_by_group_and_label(make_context):
    groups = [0, 0, 0, 1, 1]
    labels = [0, 0, 1, 1, 1]
    method = Reweighting(ReweightingOptions(by="group_label"))
    method.setup(make_context(labels, groups, num_groups=2))
    # cells (g0,y0): 2, (g0,y1): 1, (g1,y0): 0 (empty, weight 0), (g1,y1): 2; K = 3 non-empty cells
    np.testing.assert_allclose(method.weighting.weights.numpy(), [5 / 6, 5 / 3, 0.0, 5 / 6], rtol=1e-6)


def test_resampling_balances_the_cells(make_context):
    groups = np.array([0] * 700 + [1] * 250 + [2] * 50)
    labels = np.zeros(1000, dtype=int)
    method = Resampling(ResamplingOptions(by="group"))
    method.setup(make_context(labels, groups))
    weights = method.sampling_weights()
    for k, n in enumerate((700, 250, 50)):
        assert float(weights[groups == k].sum()) == pytest.approx(1.0)  # each group: total weight 1
        assert float(weights[groups == k][0]) == pytest.approx(1 / n)
    draws = np.concatenate([epoch_draw(weights, seed=0, epoch=e).numpy() for e in range(1, 6)])
    shares = np.bincount(groups[draws], minlength=3) / draws.size
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.02)  # 5,000 draws: sd of a share is 0.007


def test_weighted_order_is_a_function_of_seed_and_epoch_and_shards_cover_it():
    weights = torch.rand(37, generator=torch.Generator().manual_seed(1))
    one = EpochSampler(37, seed=4, weights=weights)
    one.set_epoch(3)
    full = list(one)
    assert full == list(epoch_draw(weights, 4, 3)) and len(full) == 37
    shards = []
    for rank in range(3):
        sampler = EpochSampler(37, seed=4, weights=weights, num_replicas=3, rank=rank)
        sampler.set_epoch(3)
        shards.append(list(sampler))
        assert len(sampler) == 13
    # ranks interleave the one global order (padded by wrapping around), as DistributedSampler does
    padded = full + full[: 39 - 37]
    assert [x for i in range(13) for x in (shards[0][i], shards[1][i], shards[2][i])] == padded
    loader = TensorBatchLoader(
        {"x": torch.arange(37)}, batch_size=5, weights=weights, seed=4, num_replicas=3, rank=1
    )
    loader.set_epoch(3)
    assert [int(v) for batch in loader for v in batch["x"]] == shards[1]


def test_bad_weights_are_refused():
    from monai_multifair.errors import MultiFairError

    with pytest.raises(MultiFairError, match=r"one draw weight per sample \(3\), got 2"):
        EpochSampler(3, weights=torch.ones(2))
    with pytest.raises(MultiFairError, match="finite, non-negative and not all zero"):
        EpochSampler(2, weights=torch.tensor([0.0, -1.0]))
    with pytest.raises(MultiFairError, match=r"`rank` < num_replicas=2, got 2"):
        EpochSampler(4, num_replicas=2, rank=2)
