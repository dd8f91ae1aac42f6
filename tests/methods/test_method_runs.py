"""Every method end to end through the command line and the engine: training, checkpoints and resume,
post-processing reported as its own row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair.cli import main
from monai_multifair.engine import evaluate, train
from monai_multifair.engine.results import decision_metrics
from monai_multifair.methods import ThresholdOptimization, ThresholdOptimizerOptions
from monai_multifair.plugins import list_methods

TINY = str(Path(__file__).resolve().parents[1] / "tiny.yaml")
FAST = ["--set", "evaluation.n_boot=0", "--set", "trainer.epochs=2", "--set", "output.report_formats=[json]"]


@pytest.mark.parametrize("method", [spec.name for spec in list_methods("training")])
def test_train_every_method_from_the_command_line(method, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                TINY,
                "--output",
                str(run),
                "--set",
                f"method.name={method}",
                *FAST,
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"method {method}" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"]["name"] == method
    assert 0.0 <= metrics["auc"] <= 1.0
    last = torch.load(next((run / "checkpoints").glob("checkpoint_epoch=*.pt")), weights_only=True)
    assert "method" in last
    stats = pd.read_csv(run / "training_stats.csv")
    expected = {
        "multifair": "modality_scale/fundus",
        "groupdro": "weight/race=Black",
        "reweighting": "weight/race=White",
        "fis": "distance/race=Asian",
    }
    if method in expected:
        assert stats[expected[method]].notna().all()


SETTINGS = ("evaluation.n_boot=0", "evaluation.selection_metric=auc", "output.report_formats=[]")


@pytest.mark.parametrize("method", ["groupdro", "fis", "resampling"])
def test_method_state_resumes_exactly(method, tiny_config, tmp_path):
    from ignite.engine import Events

    class Stop:
        def attach(self, engine):
            engine.add_event_handler(Events.ITERATION_COMPLETED(once=12), self)

        def __call__(self, engine):
            raise KeyboardInterrupt

    config = tiny_config(*SETTINGS, f"method.name={method}")
    straight = train(config, tmp_path / "straight", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False, handlers=[Stop()])
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False)
    a = torch.load(resumed.files["last_checkpoint"], weights_only=True)
    b = torch.load(straight.files["last_checkpoint"], weights_only=True)
    for key in ("model", "method"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    assert resumed.predictions.equals(straight.predictions)
    assert resumed.training_stats.equals(straight.training_stats)


def test_postprocessing_is_fitted_on_validation_and_reported_as_its_own_row(tiny_config, tmp_path):
    config = tiny_config(*SETTINGS, "method.name=erm", "postprocessing.name=threshold-optimizer")
    result = train(config, tmp_path / "run", progress=False)
    section = result.metrics["postprocessing"]
    assert section["name"] == "threshold-optimizer" and section["fitted_on"] == "val"
    frame = pd.read_csv(tmp_path / "run" / "predictions.csv")
    names = sorted(frame["group_label"].unique())
    # the decisions are fairlearn's on the same predictions: fit on the best model's validation scores
    val = evaluate(config, result.files["best_checkpoint"], tmp_path / "val", split="val").predictions
    processor = ThresholdOptimization(ThresholdOptimizerOptions()).fit(
        val["score"].to_numpy(), val["label"].to_numpy(), val["group_label"].to_numpy(dtype=object)
    )
    expected = processor.predict(frame["score"].to_numpy(), frame["group_label"].to_numpy(dtype=object))
    np.testing.assert_array_equal(frame["decision_postprocessed"].to_numpy(), expected)
    # its metrics are those of the decisions, by hand; the scores' metrics are untouched
    groups = frame["group"].to_numpy()
    manual = decision_metrics(frame["label"].to_numpy(), expected, groups, names)
    assert section["test"]["accuracy"] == pytest.approx(float((expected == frame["label"]).mean()))
    for g, name in enumerate(names):
        y, d = frame["label"].to_numpy()[groups == g], expected[groups == g]
        assert section["test"]["by_group"][name]["tpr"] == pytest.approx(d[y == 1].mean())
        assert section["test"]["by_group"][name]["fpr"] == pytest.approx(d[y == 0].mean())
    rates = [section["test"]["by_group"][n]["selection_rate"] for n in names]
    assert section["test"]["dpd"] == pytest.approx(max(rates) - min(rates)) == pytest.approx(manual["dpd"])
    plain = train(tiny_config(*SETTINGS, "method.name=erm"), tmp_path / "plain", progress=False)
    assert result.metrics["auc"] == plain.metrics["auc"] and "postprocessing" not in plain.metrics


@pytest.mark.parametrize("method", ["groupdro", "fis"])
def test_weighting_methods_under_amp_and_accumulation(method, tiny_config, tmp_path):
    config = tiny_config(
        *SETTINGS,
        f"method.name={method}",
        "trainer.epochs=1",
        "trainer.amp=true",
        "trainer.accumulation_steps=2",
    )
    result = train(config, tmp_path, progress=False, stats_interval=1)
    stats = result.training_stats
    # bfloat16 autocast on the CPU: the statistics are float32 and finite, updated every micro-batch
    column = "weight/race=Asian" if method == "groupdro" else "distance/race=Asian"
    assert np.isfinite(stats[column]).all() and stats[column].nunique() > 1
    assert np.isfinite(result.predictions["score"]).all()
    state = torch.load(result.files["last_checkpoint"], weights_only=True)["optimizer"]["state"]
    assert {float(s["step"]) for s in state.values()} == {4.0}  # 8 micro-batches, 2 per step
