"""Shared pieces of the method tests."""

from __future__ import annotations

import pytest
import torch

from monai_multifair.methods import MethodContext


@pytest.fixture
def make_context():
    """``make_context(labels, groups, num_groups=3, num_classes=2) -> MethodContext`` on the CPU."""

    def make(labels, groups, num_groups: int = 3, num_classes: int = 2) -> MethodContext:
        return MethodContext(
            network=torch.nn.Linear(1, 1),
            device=torch.device("cpu"),
            num_classes=num_classes,
            num_groups=num_groups,
            group_labels=tuple(f"g{k}" for k in range(num_groups)),
            train_labels=torch.as_tensor(labels, dtype=torch.long),
            train_groups=torch.as_tensor(groups, dtype=torch.long),
            stats_interval=1,
        )

    return make
