"""Device AUC statistics against ``sklearn.metrics.roc_auc_score`` and autograd checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from monai_multifair.core import binary_auc, grouped_auc, surrogate_group_auc


def _sk_auc(y: np.ndarray, s: np.ndarray) -> float:
    """sklearn's AUC, NaN where a class is missing (the device functions' convention)."""
    if y.size == 0 or np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def _sk_grouped(y: np.ndarray, s: np.ndarray, g: np.ndarray, k: int) -> np.ndarray:
    return np.array([_sk_auc(y[g == j], s[g == j]) for j in range(k)])


def _data(seed: int, n: int, k: int, integer_scores: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 6, n).astype(np.float64) if integer_scores else rng.normal(size=n) + 0.7 * y
    g = rng.integers(0, k, n)
    return y, s, g


@pytest.mark.parametrize("integer_scores", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("n", [7, 60, 3000])
def test_grouped_auc_matches_sklearn(n, integer_scores):
    k = 4
    y, s, g = _data(n + integer_scores, n, k, integer_scores)
    auc, valid = grouped_auc(torch.tensor(s), torch.tensor(y), torch.tensor(g), k)
    expected = _sk_grouped(y, s, g, k)
    assert auc.shape == valid.shape == (k,)
    np.testing.assert_array_equal(valid.numpy(), ~np.isnan(expected))
    np.testing.assert_allclose(auc.numpy(), expected, rtol=0, atol=1e-10, equal_nan=True)
    overall, ok = binary_auc(torch.tensor(s), torch.tensor(y))
    assert overall.shape == ok.shape == ()
    np.testing.assert_allclose(overall.item(), _sk_auc(y, s), atol=1e-10, equal_nan=True)
    assert bool(ok) == bool(np.isfinite(_sk_auc(y, s)))


def test_integer_dtype_scores_and_bool_targets():
    y, s, g = _data(1, 500, 3, integer_scores=True)
    auc, _ = grouped_auc(torch.tensor(s).long(), torch.tensor(y).bool(), torch.tensor(g), 3)
    np.testing.assert_allclose(auc.numpy(), _sk_grouped(y, s, g, 3), atol=1e-6)


def test_one_class_and_empty_groups_are_nan_and_invalid():
    scores = torch.tensor([0.1, 0.9, 0.3, 0.2, 0.8, 0.4])
    targets = torch.tensor([0, 1, 1, 1, 0, 1])
    groups = torch.tensor([0, 0, 1, 1, 3, 3])  # group 1 only positives, group 2 empty
    auc, valid = grouped_auc(scores, targets, groups, 4)
    assert valid.tolist() == [True, False, False, True]
    assert auc[0].item() == 1.0 and auc[3].item() == 0.0
    assert torch.isnan(auc[1]) and torch.isnan(auc[2])
    one_class, ok = binary_auc(scores, torch.ones(6))
    assert torch.isnan(one_class) and not bool(ok)
    empty, ok = binary_auc(torch.zeros(0), torch.zeros(0))
    assert torch.isnan(empty) and not bool(ok)


def test_several_columns_with_their_own_targets():
    rng = np.random.default_rng(3)
    n, cols, k = 200, 3, 3
    s = rng.normal(size=(n, cols))
    y = rng.integers(0, 2, (n, cols))
    s[:, 2] = np.round(s[:, 2])  # one heavily tied column
    g = rng.integers(0, k, n)
    auc, valid = grouped_auc(torch.tensor(s), torch.tensor(y), torch.tensor(g), k)
    assert auc.shape == valid.shape == (cols, k)
    expected = np.stack([_sk_grouped(y[:, c], s[:, c], g, k) for c in range(cols)])
    np.testing.assert_allclose(auc.numpy(), expected, atol=1e-10)
    # 1-D targets broadcast to every column; binary_auc gives one value per column.
    overall, ok = binary_auc(torch.tensor(s), torch.tensor(y[:, 0]))
    assert overall.shape == (cols,) and bool(ok.all())
    np.testing.assert_allclose(overall.numpy(), [roc_auc_score(y[:, 0], s[:, c]) for c in range(cols)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_as_bootstrap_counts(seed):
    k = 3
    y, s, g = _data(seed, 150, k, integer_scores=seed == 2)
    rng = np.random.default_rng(100 + seed)
    replicates = [rng.integers(0, len(y), len(y)) for _ in range(4)]
    counts = np.stack([np.bincount(idx, minlength=len(y)) for idx in replicates], axis=1)  # [N, 4]
    scores = torch.tensor(s).unsqueeze(1).expand(-1, 4)
    auc, _ = grouped_auc(scores, torch.tensor(y), torch.tensor(g), k, weights=torch.tensor(counts))
    expected = np.stack([_sk_grouped(y[idx], s[idx], g[idx], k) for idx in replicates])
    np.testing.assert_allclose(auc.numpy(), expected, atol=1e-10)


def test_zero_weight_excludes_samples():
    k = 2
    y, s, g = _data(7, 300, k)
    keep = np.random.default_rng(8).random(300) < 0.6
    auc, _ = grouped_auc(torch.tensor(s), torch.tensor(y), torch.tensor(g), k, weights=torch.tensor(keep))
    np.testing.assert_allclose(auc.numpy(), _sk_grouped(y[keep], s[keep], g[keep], k), atol=1e-10)
    # A group whose only negatives have weight 0 is invalid.
    w = torch.tensor([1.0, 0.0, 1.0, 1.0])
    auc, valid = binary_auc(torch.tensor([0.3, 0.1, 0.5, 0.7]), torch.tensor([1, 0, 1, 1]), w)
    assert torch.isnan(auc) and not bool(valid)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_inputs(dtype):
    k = 3
    y, s, g = _data(11, 1000, k)
    scores = torch.tensor(s).to(dtype)  # float16/bfloat16 rounding creates many ties
    rounded = scores.double().numpy()
    auc, valid = grouped_auc(scores, torch.tensor(y), torch.tensor(g), k)
    assert auc.dtype == torch.promote_types(dtype, torch.float32)
    np.testing.assert_allclose(auc.double().numpy(), _sk_grouped(y, rounded, g, k), atol=1e-6)
    assert bool(valid.all())


def test_bad_shapes_raise_naming_the_argument():
    with pytest.raises(ValueError, match=r"`scores`.*\(2, 2, 2\)"):
        grouped_auc(torch.zeros(2, 2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"`targets`.*\(3,\)"):
        grouped_auc(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"`groups`.*\(3,\)"):
        grouped_auc(torch.zeros(4), torch.zeros(4), torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="`num_groups` >= 1, got 0"):
        grouped_auc(torch.zeros(4), torch.zeros(4), None, 0)
    with pytest.raises(ValueError, match="`temperature` > 0, got 0"):
        surrogate_group_auc(torch.zeros(4), torch.zeros(4), torch.zeros(4), 1, temperature=0.0)
    with pytest.raises(ValueError, match=r"`margins`.*\(4, 1\)"):
        surrogate_group_auc(torch.zeros(4, 1), torch.zeros(4), torch.zeros(4), 1)


# ---------------------------------------------------------------------- surrogate AUC


def _distinct_margins(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    margins = torch.randperm(n, generator=gen).double() * 0.05  # distinct, spaced 0.05 apart
    targets = torch.randint(0, 2, (n,), generator=gen)
    groups = torch.randint(0, 3, (n,), generator=gen)
    return margins, targets, groups


def test_surrogate_tends_to_exact_auc_as_temperature_vanishes():
    margins, targets, groups = _distinct_margins(0, 90)
    exact = _sk_grouped(targets.numpy(), margins.numpy(), groups.numpy(), 3)
    errors = []
    for temperature in (1.0, 0.1, 0.01, 1e-4):
        auc, valid = surrogate_group_auc(margins, targets, groups, 3, temperature=temperature)
        assert bool(valid.all())
        errors.append(np.abs(auc.detach().double().numpy() - exact).max())
    assert errors[0] > 5e-3  # a warm sigmoid is far from the step function
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6


def test_surrogate_matches_pairwise_definition_with_weights():
    margins, targets, groups = _distinct_margins(1, 40)
    weights = torch.rand(40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    auc, _ = surrogate_group_auc(margins, targets, groups, 3, temperature=0.7, weights=weights)
    z, y, g, w = margins.numpy(), targets.numpy(), groups.numpy(), weights.numpy()
    for k in range(3):
        pos = (g == k) & (y == 1)
        neg = (g == k) & (y == 0)
        pair = 1 / (1 + np.exp(-(z[pos][:, None] - z[neg][None, :]) / 0.7))
        expected = (w[pos][:, None] * w[neg][None, :] * pair).sum() / (w[pos].sum() * w[neg].sum())
        assert auc[k].item() == pytest.approx(expected, rel=1e-5)


def test_surrogate_gradcheck_float64():
    margins, targets, groups = _distinct_margins(3, 12)
    margins = (margins / 3).requires_grad_(True)

    def valid_auc(z):
        return surrogate_group_auc(z, targets, groups, 3, temperature=0.5)[0]

    assert torch.autograd.gradcheck(valid_auc, (margins,), eps=1e-6, atol=1e-8)
    assert valid_auc(margins).dtype == torch.float64


def test_surrogate_chunking_is_invariant():
    margins, targets, groups = _distinct_margins(4, 150)
    margins = margins.float().requires_grad_(True)
    small, valid_small = surrogate_group_auc(margins, targets, groups, 3, 0.3, chunk_size=7)
    large, valid_large = surrogate_group_auc(margins, targets, groups, 3, 0.3, chunk_size=4096)
    torch.testing.assert_close(small, large, rtol=1e-6, atol=1e-7)
    assert torch.equal(valid_small, valid_large)
    (grad_small,) = torch.autograd.grad(small.sum(), margins)
    (grad_large,) = torch.autograd.grad(large.sum(), margins)
    torch.testing.assert_close(grad_small, grad_large, rtol=1e-5, atol=1e-7)
    assert grad_small.abs().sum() > 0


def test_surrogate_invalid_groups_are_nan_without_nan_gradients():
    margins = torch.tensor([0.5, -0.2, 0.1, 0.3, 0.9], requires_grad=True)
    targets = torch.tensor([1, 0, 1, 1, 0])
    groups = torch.tensor([0, 0, 1, 1, 3])  # group 1 one-class, group 2 empty, group 3 one-class
    auc, valid = surrogate_group_auc(margins, targets, groups, 4)
    assert valid.tolist() == [True, False, False, False]
    assert torch.isnan(auc[1:]).all() and torch.isfinite(auc[0])
    (grad,) = torch.autograd.grad(torch.where(valid, auc, 0.0).sum(), margins)
    assert torch.isfinite(grad).all()
    assert grad[2:].abs().sum() == 0 and grad[:2].abs().sum() > 0


@pytest.mark.parametrize("pairwise", [True, False], ids=["pairwise", "sorted"])
@pytest.mark.parametrize("integer_scores", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_auc_by_group_and_overall_matches_sklearn(pairwise, integer_scores, weighted, monkeypatch):
    """Both algorithms (all pairs for small batches, one sort above) give sklearn's AUC per group and
    overall, per score row, with resample-count weights (0 drops a sample), one-class and empty groups."""
    import monai_multifair.core.functional as functional

    monkeypatch.setattr(functional, "PAIRWISE_AUC_MAX_ELEMENTS", 1 << 30 if pairwise else 0)
    rng = np.random.default_rng(int(pairwise) * 4 + int(integer_scores) * 2 + int(weighted))
    n, rows, k = 50, 3, 5
    y = rng.integers(0, 2, n)
    g = rng.integers(0, k - 1, n)  # group k - 1 stays empty
    y[g == 0] = 1  # group 0 has positives only
    s = rng.integers(0, 5, (rows, n)).astype(np.float64) if integer_scores else rng.normal(size=(rows, n))
    w = rng.integers(0, 3, (rows, n)) if weighted else np.ones((rows, n), dtype=np.int64)
    auc, valid = functional.auc_by_group_and_overall(
        torch.tensor(s),
        torch.tensor(y),
        torch.tensor(g),
        k,
        torch.tensor(w, dtype=torch.float64) if weighted else None,
    )
    assert auc.shape == valid.shape == (rows, k + 1)
    for r in range(rows):
        # a weight is a resample count: repeat each sample that many times for sklearn
        idx = np.repeat(np.arange(n), w[r])
        expected = [*_sk_grouped(y[idx], s[r, idx], g[idx], k), _sk_auc(y[idx], s[r, idx])]
        np.testing.assert_allclose(auc[r].numpy(), expected, rtol=0, atol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(valid[r].numpy(), np.isfinite(expected))


def test_auc_by_group_and_overall_rejects_bad_shapes():
    from monai_multifair.core import auc_by_group_and_overall

    with pytest.raises(ValueError, match=r"expected `scores` of shape \[S, N\], got \(4,\)"):
        auc_by_group_and_overall(torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"expected `groups` of shape \[4\], got \(3,\)"):
        auc_by_group_and_overall(torch.zeros(1, 4), torch.zeros(4), torch.zeros(3, dtype=torch.long), 2)
