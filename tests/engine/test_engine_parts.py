"""Engine parts: gradient clipping, CPU autocast, selection score, device, encoder widths, comparison."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from monai_multifair.data import build_datasets
from monai_multifair.engine import RunResult, compare_runs, comparison_markdown, comparison_table
from monai_multifair.engine.builders import AutocastInferer, amp_settings, encoder_specs, resolve_device
from monai_multifair.engine.checkpoint_state import RNGState, ScalerState
from monai_multifair.engine.gradient_clipping import GradientClipper
from monai_multifair.engine.selection import SelectionScore
from monai_multifair.errors import MultiFairError


def _engine_with_grads(seed: int, iteration: int, epoch_length: int):
    torch.manual_seed(seed)
    params = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(5))]
    for p in params:
        p.grad = torch.randn_like(p) * 10
    optimizer = torch.optim.SGD(params, lr=0.1)
    state = SimpleNamespace(iteration=iteration, epoch_length=epoch_length)
    return SimpleNamespace(state=state, optimizer=optimizer, amp=False), params


def test_gradient_clipper_scales_to_the_global_norm():
    engine, params = _engine_with_grads(0, iteration=1, epoch_length=5)
    before = [p.grad.clone() for p in params]
    norm = torch.sqrt(sum((g**2).sum() for g in before))
    assert norm > 0.5
    GradientClipper(0.5)(engine)
    after = torch.sqrt(sum((p.grad**2).sum() for p in params))
    assert after == pytest.approx(0.5, rel=1e-5)
    for p, g in zip(params, before):
        torch.testing.assert_close(p.grad, g * (0.5 / (norm + 1e-6)))


def test_gradient_clipper_waits_for_the_accumulated_step():
    engine, params = _engine_with_grads(1, iteration=1, epoch_length=5)  # micro-batch 1 of 2
    before = [p.grad.clone() for p in params]
    GradientClipper(0.5, accumulation_steps=2)(engine)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))
    engine.state.iteration = 5  # the epoch's last iteration flushes a partial group
    GradientClipper(0.5, accumulation_steps=2)(engine)
    assert torch.sqrt(sum((p.grad**2).sum() for p in params)) == pytest.approx(0.5, rel=1e-5)


def test_autocast_inferer_runs_bfloat16_and_returns_float32(tiny_config):
    torch.manual_seed(0)
    net = nn.Linear(8, 2)
    x = torch.randn(5, 8)
    out = AutocastInferer()(x, net)
    assert out.dtype == torch.float32
    expected = (x.bfloat16() @ net.weight.bfloat16().T + net.bias.bfloat16()).float()
    torch.testing.assert_close(out, expected, atol=1e-2, rtol=1e-2)
    assert not torch.equal(out, net(x))
    amp, inferer = amp_settings(tiny_config("trainer.amp=true"), torch.device("cpu"))
    assert amp is False and isinstance(inferer, AutocastInferer)
    amp, inferer = amp_settings(tiny_config(), torch.device("cpu"))
    assert amp is False and not isinstance(inferer, AutocastInferer)


def test_scaler_and_random_state_round_trip():
    saved = SimpleNamespace(scaler=torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7))
    fresh = SimpleNamespace(scaler=torch.amp.GradScaler("cpu"))  # as SupervisedTrainer.run makes it
    ScalerState(fresh).load_state_dict(ScalerState(saved).state_dict())
    assert fresh.scaler.get_scale() == 1024.0 and fresh.scaler.get_growth_interval() == 7
    assert ScalerState(SimpleNamespace(scaler=None)).state_dict() == {}
    torch.manual_seed(3)
    state = RNGState().state_dict()
    expected = torch.rand(4)
    torch.manual_seed(9)
    RNGState().load_state_dict(state)
    assert torch.equal(torch.rand(4), expected)


def test_selection_score_ranks_undefined_below_everything():
    engine = SimpleNamespace(state=SimpleNamespace(metrics={"es_auc": float("nan")}))
    SelectionScore("es_auc")(engine)
    assert engine.state.metrics["selection_score"] == -math.inf
    engine.state.metrics["es_auc"] = 0.25
    SelectionScore("es_auc")(engine)
    assert engine.state.metrics["selection_score"] == 0.25


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(
            MultiFairError, match=r"`trainer.device`: 'cuda:1' asked for, but CUDA is not available"
        ):
            resolve_device("cuda:1")


def test_encoder_input_widths_come_from_the_data(tiny_config):
    config = tiny_config(
        "data.modalities=[fundus, notes, vitals]",
        "encoders={fundus: {name: small-cnn-2d}, notes: {name: bow-text}, vitals: {name: tabular-mlp}}",
    )
    specs = encoder_specs(config, build_datasets(config)["train"])
    assert specs["fundus"] == {"name": "small-cnn-2d", "in_channels": 1}
    assert specs["vitals"] == {"name": "tabular-mlp", "in_features": 6}
    assert specs["notes"] == {"name": "bow-text"}
    config = tiny_config()  # given options are kept
    assert encoder_specs(config, build_datasets(config)["train"])["fundus"]["channels"] == [4, 8]


def _result(tmp_path, name, auc, es_auc, group_auc, enabled):
    metrics = {
        "auc": auc,
        "es_auc": es_auc,
        "worst_group_auc": min(group_auc.values()),
        "dpd": 0.1,
        "deodds": 0.2,
    }
    metrics.update(
        group_auc=group_auc,
        n=50,
        notes=[],
        method={
            "name": "multifair" if enabled else "erm",
            "description": "MultiFair (default preset)" if enabled else "plain training (ERM)",
        },
    )
    return RunResult(run_dir=tmp_path / name, config=None, metrics=metrics, predictions=None, best_epoch=2)


def test_compare_runs_tabulates_values_and_differences(tmp_path):
    a = _result(tmp_path, "a", 0.9, 0.8, {"g0": 0.95, "g1": 0.85}, False)
    b = _result(tmp_path, "b", 0.88, 0.84, {"g0": 0.9, "g1": float("nan")}, True)
    comparison = compare_runs({"baseline": a, "MultiFair": b})
    rows = {row["metric"]: row for row in comparison["rows"]}
    assert list(rows) == ["auc", "es_auc", "worst_group_auc", "dpd", "deodds", "group_auc/g0", "group_auc/g1"]
    assert rows["es_auc"]["values"] == {"baseline": 0.8, "MultiFair": 0.84}
    assert rows["es_auc"]["change"]["MultiFair"] == pytest.approx(0.04)
    assert (
        rows["group_auc/g1"]["values"]["MultiFair"] is None
        and rows["group_auc/g1"]["change"]["MultiFair"] is None
    )
    table = comparison_table(comparison)
    assert "ES-AUC" in table and "+0.040" in table and "undefined" in table and "AUC g1" in table
    markdown = comparison_markdown(comparison, title="T")
    assert (
        markdown.startswith("# T")
        and "| DPD | lower |" in markdown
        and "| MultiFair (default preset) |" in markdown
        and "| plain training (ERM) |" in markdown
    )
    with pytest.raises(MultiFairError, match="at least two runs"):
        compare_runs({"a": a})
    with pytest.raises(MultiFairError, match="unknown `reference` run 'c'"):
        compare_runs({"a": a, "b": b}, reference="c")


def test_compare_runs_flags_degenerate_runs_and_states_thresholds(tmp_path):
    a = _result(tmp_path, "a", 0.9, 0.8, {"g0": 0.95, "g1": 0.85}, False)
    b = _result(tmp_path, "b", 0.88, 0.84, {"g0": 0.9, "g1": 0.8}, True)
    a.metrics.update(threshold=0.5, threshold_source="fixed by evaluation.threshold", degenerate={})
    reason = "no positive predictions: highest score 0.310 < threshold 0.5 (50 samples)"
    b.metrics.update(dpd=0.0, threshold=0.5, threshold_source="fixed by evaluation.threshold")
    b.metrics.update(degenerate={"overall": reason}, degenerate_metrics=["dpd", "deodds"])
    comparison = compare_runs({"baseline": a, "MultiFair": b})
    rows = {row["metric"]: row for row in comparison["rows"]}
    assert rows["dpd"]["degenerate"] == {"baseline": False, "MultiFair": True}
    assert "degenerate" not in rows["auc"]
    table = comparison_table(comparison)
    assert "0.000 (degenerate)" in table and "0.100 (degenerate)" not in table
    markdown = comparison_markdown(comparison, title="T")
    assert "| 0.5 (fixed by evaluation.threshold) |" in markdown
    assert f"- MultiFair: degenerate predictions (overall: {reason})" in markdown
