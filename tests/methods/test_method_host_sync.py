"""The loss-weighting methods stay on the device: a weighted step performs no host synchronisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_multifair.core.sync import HostSyncCounter
from monai_multifair.methods import FairIdentityScalingWeighting, GroupDROWeighting, InverseFrequencyWeighting


@pytest.mark.parametrize(
    "weighting",
    [
        lambda: GroupDROWeighting(6, torch.tensor([5.0, 3, 2, 4, 1, 1]), 0.1, 1.0, "group_label", 2),
        lambda: FairIdentityScalingWeighting(3, 0.5, 1.0, 0.9, pool="batch"),
        lambda: FairIdentityScalingWeighting(3, 0.5, 1.0, 0.9, pool="balanced"),
        lambda: FairIdentityScalingWeighting(3, 0.5, 1.0, 0.9, 8),
        lambda: InverseFrequencyWeighting(torch.tensor([1.0, 2.0, 3.0]), "group", 2),
    ],
    ids=["groupdro", "fis", "fis-balanced", "fis-quantiles", "reweighting"],
)
def test_weighted_step_has_no_host_sync(weighting):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    module = weighting()
    x, labels, groups = torch.randn(16, 4), torch.randint(0, 2, (16,)), torch.randint(0, 3, (16,))
    for _ in range(2):  # the second step sees the state the first one left (EMAs, weights)
        with HostSyncCounter(raise_on_sync=True) as counter:
            losses = F.cross_entropy(net(x), labels, reduction="none")
            loss = module(losses, labels, groups)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        assert counter.count == 0, counter.ops
    assert torch.isfinite(loss.detach())
