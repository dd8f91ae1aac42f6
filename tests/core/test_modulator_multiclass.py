"""Multi-class (C = 3): one-vs-rest macro AUCs against sklearn, and a working fairness loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

C = 3


def _ovr_by_hand(y: np.ndarray, probs: np.ndarray) -> float:
    """Macro mean of the binary one-vs-rest AUCs over the classes that have positives and negatives."""
    values = [roc_auc_score(y == c, probs[:, c]) for c in range(C) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(values)) if values else float("nan")


def test_multiclass_aucs_match_sklearn(make_net, make_batch, make_modulator, record_guide_outputs):
    net = make_net(0, num_classes=C)
    mod = make_modulator(
        net, num_groups=3, fairness_threshold=0.02, direction_weight=0.15, fairness_weight=0.5
    )
    guide_outputs = record_guide_outputs(mod)
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    for t in range(3):
        batch = make_batch(t, size=36, num_classes=C)
        if t == 2:  # group 0 without class 2: its macro AUC averages over classes 0 and 1 only
            batch.groups[(batch.groups == 0) & (batch.labels == 2)] = 1
        logits = net(batch.inputs)
        aux = mod(logits, batch.labels, batch.groups)
        stats = mod.stats()
        y, a = batch.labels.numpy(), batch.groups.numpy()
        fused = torch.softmax(logits.detach(), dim=1).double().numpy()
        for m in range(2):
            probs = torch.softmax(guide_outputs[-1][m], dim=1).double().numpy()
            expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
            assert stats["guide_auc"][m].item() == pytest.approx(expected, abs=1e-6)
            for g in range(3):
                got = stats["guide_group_auc"][m, g].item()
                assert got == pytest.approx(_ovr_by_hand(y[a == g], probs[a == g]), abs=1e-6)
        for g in range(3):
            got = stats["fused_group_auc"][g].item()
            assert got == pytest.approx(_ovr_by_hand(y[a == g], fused[a == g]), abs=1e-6)
        if t == 2:
            assert set(y[a == 0]) == {0, 1}
        assert stats["group_factor"].shape == (2, 3) and torch.isfinite(aux)
        opt.zero_grad(set_to_none=True)
        (F.cross_entropy(logits, batch.labels) + aux).backward()
        for name, param in net.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        opt.step()
    assert stats["fairness_loss"].item() > 0 and stats["direction_loss"].item() > 0


def test_multiclass_fairness_loss_by_hand(make_net, make_batch, make_modulator):
    """Margins ``z_c = logit_c - logsumexp(other logits)``, per-class surrogate AUC per group, macro."""
    net = make_net(1, num_classes=C)
    mod = make_modulator(
        net,
        num_groups=2,
        fairness_threshold=0.01,
        direction_weight=0.0,
        fairness_weight=1.0,
        surrogate_temperature=0.5,
        fairness_loss="dispersion",  # the form the hand computation below encodes
    )
    batch = make_batch(4, size=30, num_groups=2, num_classes=C)
    logits = net(batch.inputs)
    mod(logits, batch.labels, batch.groups)
    x = logits.detach().double().numpy()
    y, a = batch.labels.numpy(), batch.groups.numpy()
    per_group = []
    for g in range(2):
        values = []
        for c in range(C):
            others = np.delete(x, c, axis=1)
            z = x[:, c] - np.log(np.exp(others).sum(1))
            pos, neg = z[(a == g) & (y == c)], z[(a == g) & (y != c)]
            if pos.size and neg.size:
                values.append(np.mean(1 / (1 + np.exp(-(pos[:, None] - neg[None, :]) / 0.5))))
        per_group.append(np.mean(values))
    per_group = np.array(per_group)
    expected = np.mean(np.abs(per_group - per_group.mean()))
    assert expected > 1e-4
    assert mod.stats()["fairness_loss"].item() == pytest.approx(expected, abs=1e-6)
