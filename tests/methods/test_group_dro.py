"""GroupDRO weights against a hand computation of Sagawa et al.'s update over scripted group losses."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from monai_multifair.methods import GroupDRO, GroupDROOptions, GroupDROWeighting


def _reference(steps, num_cells, eta, adjustment, train_counts):
    """Their ``loss.py`` in numpy: q <- q exp(eta (L + C / sqrt(n))) / Z, loss = q . L (absent cells L = 0)."""
    q = np.full(num_cells, 1.0 / num_cells)
    adj = adjustment / np.sqrt(train_counts) if adjustment > 0 else np.zeros(num_cells)
    out = []
    for losses, cells in steps:
        group_loss = np.zeros(num_cells)
        for k in range(num_cells):
            mask = cells == k
            group_loss[k] = losses[mask].mean() if mask.any() else 0.0
        q = q * np.exp(eta * (group_loss + adj))
        q = q / q.sum()
        out.append((q.copy(), float(group_loss @ q)))
    return out


@pytest.mark.parametrize("adjustment", [0.0, 2.0])
def test_weights_and_loss_follow_the_exponentiated_gradient_update(adjustment):
    rng = np.random.default_rng(0)
    counts = np.array([50.0, 30.0, 20.0])
    steps = []
    for step in range(6):
        cells = rng.integers(0, 3, size=10)
        if step == 2:
            cells[cells == 2] = 0  # a cell absent from the batch
        steps.append((rng.gamma(2.0, 0.4, size=10), cells))
    weighting = GroupDROWeighting(
        3, torch.tensor(counts), eta=0.3, adjustment=adjustment, by="group", num_classes=2
    )
    expected = _reference(steps, 3, 0.3, adjustment, counts)
    for (losses, cells), (q, loss) in zip(steps, expected):
        value = weighting(
            torch.tensor(losses, dtype=torch.float32), torch.zeros(10, dtype=torch.long), torch.tensor(cells)
        )
        np.testing.assert_allclose(weighting.q.numpy(), q, rtol=1e-5)
        assert float(value) == pytest.approx(loss, rel=1e-5)


def test_gradient_weights_each_sample_by_its_cells_weight_over_its_count():
    weighting = GroupDROWeighting(
        2, torch.tensor([1.0, 1.0]), eta=0.5, adjustment=0.0, by="group", num_classes=2
    )
    losses = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    weighting(losses, torch.zeros(3, dtype=torch.long), torch.tensor([0, 0, 1])).backward()
    q = weighting.q
    torch.testing.assert_close(losses.grad, torch.stack([q[0] / 2, q[0] / 2, q[1]]))


def test_group_label_cells(make_context):
    context = make_context([0, 1, 0, 1, 1], [0, 0, 1, 1, 2])
    method = GroupDRO(GroupDROOptions(eta=1.0, by="group_label"))
    method.setup(context)
    assert method.weighting.q.numel() == 6  # 3 groups x 2 classes
    labels, groups = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 2])
    method.weighting(torch.tensor([1.0, 0.0, 2.0]), labels, groups)
    q = method.weighting.q
    # cells 0 (g0,y0), 1 (g0,y1) and 5 (g2,y1) were seen with losses 1, 0, 2; the others had 0;
    # cell 4 (g2,y0) has no training sample: weight 0
    expected = np.exp(np.array([1.0, 0.0, 0.0, 0.0, 0.0, 2.0])) * np.array([1, 1, 1, 1, 0, 1])
    np.testing.assert_allclose(q.numpy(), expected / expected.sum(), rtol=1e-6)
    assert method.handler.cell_names[:2] == ("g0|y=0", "g0|y=1")


def test_state_round_trips(make_context):
    method = GroupDRO(GroupDROOptions(eta=0.5))
    method.setup(make_context([0, 1] * 5, [0, 1, 2, 0, 1] * 2))
    method.weighting(torch.tensor([3.0, 1.0]), torch.tensor([0, 1]), torch.tensor([0, 2]))
    state = method.state_dict()
    fresh = GroupDRO(GroupDROOptions(eta=0.5))
    fresh.setup(make_context([0, 1] * 5, [0, 1, 2, 0, 1] * 2))
    assert not torch.equal(fresh.weighting.q, method.weighting.q)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.weighting.q, method.weighting.q, rtol=0, atol=0)


def _batches_without_positives_in_group_one(steps, size=32, seed=0):
    """Batches of (losses, labels, groups) over 2 groups in which group 1 never has label 1."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        groups = rng.integers(0, 2, size=size)
        labels = np.where(groups == 1, 0, rng.integers(0, 2, size=size))
        losses = rng.gamma(2.0, 0.25, size=size)
        out.append((losses, labels, groups))
    return out


def test_an_empty_cell_keeps_weight_zero_with_the_generalisation_adjustment():
    """The reproduction of the bug: counts (400, 300, 250, 0), C = 1. The empty cell (g1, y=1) used to
    climb to weight 0.99 by step 300; it must stay at 0, and the others follow the update over the three
    non-empty cells (their code restricted to the cells that exist)."""
    counts = torch.tensor([400.0, 300.0, 250.0, 0.0], dtype=torch.float64)
    weighting = GroupDROWeighting(4, counts, 0.1, 1.0, "group_label", 2)
    assert weighting.q.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    batches = _batches_without_positives_in_group_one(300)
    steps = [(losses, groups * 2 + labels) for losses, labels, groups in batches]
    assert all((cells < 3).all() for _, cells in steps)
    expected = _reference(steps, 3, 0.1, 1.0, counts.numpy()[:3])
    for (losses, labels, groups), (q, loss) in zip(batches, expected):
        value = weighting(
            torch.tensor(losses, dtype=torch.float32), torch.tensor(labels), torch.tensor(groups)
        )
        assert float(weighting.q[3]) == 0.0
        np.testing.assert_allclose(weighting.q[:3].numpy(), q, rtol=1e-4)
        assert float(value) == pytest.approx(loss, rel=1e-4)
    assert float(value) > 0.1  # the loss of the real cells still trains (it fell to 0.006 before the fix)


def test_an_empty_cell_is_named_in_the_log(make_context, caplog):
    context = make_context([0, 1, 0, 0], [0, 0, 1, 1], num_groups=2)
    with caplog.at_level("WARNING", logger="monai_multifair.methods.group_dro"):
        GroupDRO(GroupDROOptions(by="group_label", generalization_adjustment=1.0)).setup(context)
    assert "g1|y=1" in caplog.text and "weight is 0" in caplog.text


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([0.0, 0.0], "at least one cell"),
        ([1.0, -1.0], ">= 0"),
        ([1.0, 2.0, 3.0], "shape (2,)"),
    ],
)
def test_bad_train_counts_are_refused(counts, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        GroupDROWeighting(2, torch.tensor(counts), 0.1, 1.0, "group", 2)
