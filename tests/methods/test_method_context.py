"""MethodContext: group labels (one name for the concept), their default and the deprecated keyword."""

from __future__ import annotations

import pytest
import torch

from monai_multifair.errors import MultiFairError
from monai_multifair.methods import MethodContext
from monai_multifair.methods.base import cell_names


def context(**kwargs) -> MethodContext:
    return MethodContext(
        network=torch.nn.Linear(1, 2),
        device=torch.device("cpu"),
        num_classes=2,
        num_groups=2,
        train_labels=torch.tensor([0, 1]),
        train_groups=torch.tensor([0, 1]),
        **kwargs,
    )


def test_group_labels_default_and_cell_names():
    assert context().group_labels == ("0", "1")
    labelled = context(group_labels=("race=A/B", "race=C"))
    assert cell_names(labelled, "group") == ("race=A|B", "race=C")  # `/` only leaves the metric names
    assert cell_names(labelled, "group_label") == ("race=A|B|y=0", "race=A|B|y=1", "race=C|y=0", "race=C|y=1")
    with pytest.raises(MultiFairError, match="`group_labels` to have num_groups=2 entries, got 3"):
        context(group_labels=("a", "b", "c"))


def test_group_names_is_deprecated():
    with pytest.warns(
        DeprecationWarning, match="MethodContext: `group_names` is deprecated, write `group_labels`"
    ):
        assert context(group_names=("a", "b")).group_labels == ("a", "b")
