"""Coefficients of ``DualLevelGradientModulator`` against a hand computation on a scripted sequence.

The guide step is replaced by prescribed guide logits and the fused logits are prescribed too, so every
AUC of the sequence is known from sklearn; steps 3-8 of the training step (docs/concepts/method.md) are then recomputed in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

MODALITIES = {"image": 5, "text": 3, "tabular": 2}
K = 3
SIZE = 24


@dataclass
class ScriptedStep:
    labels: np.ndarray
    groups: np.ndarray
    guide_logits: list[torch.Tensor]  # one [B, 2] float32 tensor per modality
    fused_logits: torch.Tensor  # [B, 2] float32


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if y.size and np.unique(y).size == 2 else float("nan")


def _positive_prob(logits: torch.Tensor) -> np.ndarray:
    """The module's score: float32 softmax, positive class 1."""
    return torch.softmax(logits.float(), dim=1)[:, 1].double().numpy()


def _logits(rng, labels, groups, strength) -> torch.Tensor:
    out = rng.normal(size=(len(labels), 2))
    out[:, 1] += strength[groups] * labels
    return torch.tensor(out, dtype=torch.float32)


def _script(seed: int) -> list[ScriptedStep]:
    """Six steps: equal groups, a one-class group, an empty group, a one-class batch, two ordinary ones."""
    rng = np.random.default_rng(seed)
    m = len(MODALITIES)
    steps = []

    def guides(y, a):
        return [_logits(rng, y, a, rng.uniform(0.0, 2.5, K)) for _ in range(m)]

    # 0: three identical 8-sample blocks, one per group: every fused group AUC is equal.
    y = np.tile([0, 1, 1, 0, 1, 0, 0, 1], 3)
    a = np.repeat(np.arange(K), 8)
    block = rng.normal(size=(8, 2)) + np.outer(y[:8], [0, 1.0])
    steps.append(ScriptedStep(y, a, guides(y, a), torch.tensor(np.tile(block, (3, 1)), dtype=torch.float32)))
    # 1: group 2 has negatives only.
    a = np.repeat(np.arange(K), 8)
    y = np.concatenate([rng.permutation([0, 1] * 4), rng.permutation([0, 1] * 4), np.zeros(8, int)])
    steps.append(ScriptedStep(y, a, guides(y, a), _logits(rng, y, a, np.array([3.0, 1.0, 0.0]))))
    # 2: group 0 is empty.
    a = rng.permutation(np.repeat([1, 2], 12))
    y = rng.permutation(np.arange(SIZE) % 2)
    steps.append(ScriptedStep(y, a, guides(y, a), _logits(rng, y, a, np.array([0.0, 2.5, 0.0]))))
    # 3: one class in the whole batch: every AUC is undefined and carried over.
    a = rng.integers(0, K, SIZE)
    y = np.zeros(SIZE, int)
    steps.append(ScriptedStep(y, a, guides(y, a), _logits(rng, y, a, np.zeros(K))))
    # 4, 5: ordinary batches.
    for strength in ([0.3, 0.3, 0.3], [2.0, 0.2, 1.0]):
        a = rng.permutation(np.arange(SIZE) % K)
        y = rng.permutation(np.arange(SIZE) % 2)
        steps.append(ScriptedStep(y, a, guides(y, a), _logits(rng, y, a, np.array(strength))))
    return steps


def _hand(script: list[ScriptedStep], cfg) -> list[dict[str, np.ndarray]]:
    """Steps 3-8 of the training step, in float64 numpy."""
    m = len(MODALITIES)
    prev, has_prev = np.zeros(m), np.zeros(m, bool)
    balance_ema = np.ones(m)
    ema, seen = np.zeros((m, K)), np.zeros((m, K), bool)
    fused_ema, fused_seen = np.zeros(K), np.zeros(K, bool)
    beta, tau, kappa = cfg["ema_decay"], cfg["fairness_threshold"], cfg["group_strength"]
    expected = []
    for step in script:
        y, a = step.labels, step.groups
        scores = [_positive_prob(lg) for lg in step.guide_logits]
        auc = np.array([_auc(y, s) for s in scores])
        valid = ~np.isnan(auc)
        # Step 4.
        current = np.where(valid, auc, prev)
        delta = np.where(has_prev & valid, current - prev, 0.0)
        if cfg["coefficient_rule"] == "signed":
            total = delta.sum()
            balance = (total - delta) / total if abs(total) > 1e-8 else np.ones(m)
        else:
            balance = 1.0 - np.abs(delta) / (np.abs(delta).sum() + 1e-8)
        prev, has_prev = current, has_prev | valid
        d = cfg["coefficient_ema_decay"]
        balance_ema = d * balance_ema + (1 - d) * balance
        # Step 5.
        group_auc = np.array([[_auc(y[a == g], s[a == g]) for g in range(K)] for s in scores])
        for i in range(m):
            for g in range(K):
                if not np.isnan(group_auc[i, g]):
                    ema[i, g] = (
                        group_auc[i, g] if not seen[i, g] else beta * ema[i, g] + (1 - beta) * group_auc[i, g]
                    )
                    seen[i, g] = True
        # Step 7 input.
        fused_p = _positive_prob(step.fused_logits)
        fused_auc = np.array([_auc(y[a == g], fused_p[a == g]) for g in range(K)])
        if cfg["gate_smoothing"]:
            for g in range(K):
                if not np.isnan(fused_auc[g]):
                    fused_ema[g] = (
                        fused_auc[g] if not fused_seen[g] else beta * fused_ema[g] + (1 - beta) * fused_auc[g]
                    )
                    fused_seen[g] = True
            level, known = fused_ema.copy(), fused_seen.copy()
        else:
            known = ~np.isnan(fused_auc)
            level = np.where(known, fused_auc, 0.0)
        # Step 6.
        if cfg["group_factor_rule"] == "routing":
            fused_mean = level[known].mean() if known.any() else 0.0
            shortfall = np.where(known, np.maximum(fused_mean - level, 0.0), 0.0)
            across = np.array([ema[seen[:, g], g].mean() if seen[:, g].any() else 0.0 for g in range(K)])
            raw = 1 + kappa * (shortfall / tau)[None, :] * np.tanh((ema - across[None, :]) / tau)
            factor_known = seen & known[None, :]
        else:
            mean_m = np.array([ema[i, seen[i]].mean() if seen[i].any() else 0.0 for i in range(m)])
            raw = 1 + kappa * (mean_m[:, None] - ema) / tau
            factor_known = seen
        factor = np.where(factor_known, np.clip(raw, cfg["group_factor_min"], cfg["group_factor_max"]), 1.0)
        gate = float(known.sum() >= 2 and level[known].max() - level[known].min() > tau)
        scale = cfg["modality_scale"] * balance_ema
        expected.append(
            {
                "balance": balance,
                "modality_scale": scale,
                "group_factor": factor,
                "gate": np.array(gate),
                "guide_auc": auc,
                "guide_group_auc": group_auc,
                "fused_group_auc": fused_auc,
                "sample_scale": scale[:, None] * (gate * factor[:, a] + 1 - gate),
            }
        )
    return expected


BASE = {
    "preset": "paper",
    "modality_scale": 1.3,
    "direction_weight": 0.0,
    "fairness_weight": 0.0,
    "fairness_threshold": 0.1,
    "group_strength": 0.3,
    "ema_decay": 0.5,
    "group_factor_min": 0.7,
    "group_factor_max": 1.3,
}
CASES = {
    "absolute": {},
    "signed-raw-gate": {"coefficient_rule": "signed", "gate_smoothing": False, "coefficient_ema_decay": 0.5},
    "routing": {"group_factor_rule": "routing", "coefficient_ema_decay": 0.9},
    "routing-raw-gate": {"group_factor_rule": "routing", "gate_smoothing": False},
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", list(CASES))
def test_coefficients_match_hand_computation(
    case, seed, monkeypatch, make_net, make_modulator, record_scales
):
    overrides = {**BASE, **CASES[case]}
    net = make_net(seed, MODALITIES)
    mod = make_modulator(net, num_groups=K, **overrides)
    cfg = mod.config.to_dict()
    script = _script(seed)
    expected = _hand(script, cfg)

    queue = iter(script)
    current: list[ScriptedStep] = []

    def scripted_guide_step(feats, labels, present):
        step = next(queue)
        current[:] = [step]
        assert torch.equal(labels, torch.tensor(step.labels))
        return [lg.clone() for lg in step.guide_logits]

    monkeypatch.setattr(mod, "_guide_step", scripted_guide_step)
    applied = record_scales(mod)
    gen = torch.Generator().manual_seed(seed)
    for t, step in enumerate(script):
        net({name: torch.randn(SIZE, dim, generator=gen) for name, dim in MODALITIES.items()})  # capture h_m
        aux = mod(step.fused_logits, torch.tensor(step.labels), torch.tensor(step.groups))
        assert current[0] is step
        assert aux.item() == 0.0
        stats = mod.stats()
        for key, value in expected[t].items():
            got = applied[-1] if key == "sample_scale" else stats[key]
            np.testing.assert_allclose(
                got.double().numpy(), value, rtol=0, atol=1e-5, equal_nan=True, err_msg=f"step {t}: {key}"
            )
    # The script exercises every branch: coefficients away from 1, both gate states, clamped and free factors.
    balances = np.stack([e["balance"] for e in expected])
    assert np.abs(balances - 1).max() > 0.1
    gates = {float(e["gate"]) for e in expected}
    assert gates == {0.0, 1.0}
    factors = np.concatenate([e["group_factor"].ravel() for e in expected])
    assert np.isclose(factors, 1.3).any() or np.isclose(factors, 0.7).any()
    assert ((factors > 0.71) & (factors < 1.29) & ~np.isclose(factors, 1.0)).any()
    assert int(mod.steps) == len(script)


def test_first_call_has_unit_coefficients(make_net, make_modulator, make_batch):
    net = make_net(0)
    mod = make_modulator(net, preset="paper")
    batch = make_batch(0)
    mod(net(batch.inputs), batch.labels, batch.groups)
    stats = mod.stats()
    assert torch.equal(stats["balance"], torch.ones(2))
    torch.testing.assert_close(stats["modality_scale"], torch.full((2,), 1.2))
    # One observation per group: every group sits at its own mean only if the guides are equally good.
    ema = mod.group_auc_ema
    expected = 1 + 0.3 * (ema.mean(1, keepdim=True) - ema) / 0.04
    torch.testing.assert_close(stats["group_factor"], expected.clamp(0.5, 2.0))
