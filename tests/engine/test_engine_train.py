"""``train``: run folder, metrics against sklearn/fairlearn, best-model predictions, determinism, options."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import roc_auc_score

from monai_multifair.data import build_datasets
from monai_multifair.engine import RUN_FILES, train
from monai_multifair.engine.builders import build_collate, build_network
from monai_multifair.engine.loaders import materialize
from monai_multifair.errors import MultiFairError

THRESHOLD = 0.4


@pytest.fixture(scope="module")
def baseline(tiny_config, tmp_path_factory):
    config = tiny_config("method.name=erm", f"evaluation.threshold={THRESHOLD}")
    return train(config, tmp_path_factory.mktemp("baseline"), progress=False)


@pytest.fixture(scope="module")
def multifair(tiny_config, tmp_path_factory):
    return train(tiny_config(), tmp_path_factory.mktemp("multifair"), progress=False, stats_interval=3)


def test_run_folder_holds_every_file(baseline):
    run = baseline.run_dir
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["best.pt", "checkpoint_epoch=3.pt"]
    written = json.loads((run / "metrics.json").read_text())
    assert written["best_epoch"] == baseline.best_epoch and written["n"] == len(baseline.predictions) == 80
    for name in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds"):
        assert written[name] == pytest.approx(baseline.metrics[name])
    assert "base:" not in (run / "config.yaml").read_text()
    assert f"dir: {run}" in (run / "config.yaml").read_text()
    assert baseline.report is not None and "ES-AUC" in (run / "report.md").read_text()


def test_test_metrics_match_sklearn_and_fairlearn(baseline):
    frame = pd.read_csv(baseline.run_dir / "predictions.csv")
    assert list(frame.columns) == ["id", "label", "score", "group", "group_label", "race"]
    y, p, g = frame["label"].to_numpy(), frame["score"].to_numpy(), frame["group_label"]
    auc = roc_auc_score(y, p)
    group_auc = {name: roc_auc_score(y[g == name], p[g == name]) for name in sorted(set(g))}
    assert baseline.metrics["auc"] == pytest.approx(auc)
    assert baseline.metrics["group_auc"] == pytest.approx(group_auc)
    assert baseline.metrics["es_auc"] == pytest.approx(
        auc / (1 + sum(abs(auc - v) for v in group_auc.values()))
    )
    assert baseline.metrics["worst_group_auc"] == pytest.approx(min(group_auc.values()))
    pred = (p >= THRESHOLD).astype(int)
    assert 0 < pred.mean() < 1  # a threshold where the rates are informative
    assert baseline.metrics["dpd"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=g)
    )
    assert baseline.metrics["deodds"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=g)
    )


def test_predictions_are_the_best_models_outputs(baseline):
    config = baseline.config
    datasets = build_datasets(config)
    network = build_network(config, datasets["train"])
    state = torch.load(baseline.files["best_checkpoint"], weights_only=True)
    network.load_state_dict(state["model"])
    assert state["selection"]["epoch"] == baseline.best_epoch
    history = pd.read_csv(baseline.run_dir / "validation.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert baseline.best_epoch == int(history.loc[history["es_auc"].idxmax(), "epoch"])  # first maximum
    batch = materialize(datasets["test"], build_collate(network, datasets["train"]))
    network.eval()
    with torch.no_grad():
        probs = torch.softmax(network({"fundus": batch["fundus"], "notes": batch["notes"]}), dim=1)[:, 1]
    np.testing.assert_allclose(
        baseline.predictions["score"].to_numpy(), probs.double().numpy(), rtol=1e-5, atol=1e-6
    )
    assert baseline.predictions["id"].tolist() == datasets["test"].ids


def test_same_seed_same_run_other_seed_other_run(baseline, tiny_config, tmp_path):
    config = baseline.config
    again = train(config, tmp_path / "again", progress=False)
    assert again.predictions["score"].tolist() == baseline.predictions["score"].tolist()
    assert again.training_stats.equals(baseline.training_stats)
    other = train(tiny_config("method.name=erm", "trainer.seed=1"), tmp_path / "other", progress=False)
    assert other.predictions["score"].tolist() != baseline.predictions["score"].tolist()


def test_multifair_statistics_every_interval_and_at_epoch_ends(multifair):
    stats = multifair.training_stats
    per_epoch = 8  # 240 training samples in batches of 32
    expected = [i for i in range(1, 3 * per_epoch + 1) if i % 3 == 0 or i % per_epoch == 0]
    assert stats["step"].tolist() == expected
    assert stats["epoch"].tolist() == [(s - 1) // per_epoch + 1 for s in expected]
    for column in ("modality_scale/fundus", "modality_scale/notes", "group_factor/notes/race=Black", "gate"):
        assert column in stats.columns and stats[column].notna().all(), column
    assert np.isfinite(stats["loss"]).all()
    report = json.loads((multifair.run_dir / "report.json").read_text())
    assert report["training"]["steps"] == [float(s) for s in expected]
    assert set(report["training"]["modality_scale"]) == {"fundus", "notes"}
    last = torch.load(multifair.files["last_checkpoint"], weights_only=True)
    assert {"model", "optimizer", "trainer", "method", "rng", "monitor", "validation"} <= set(last)
    assert "guides.fundus.output.weight" in last["method"]
    assert multifair.metrics["method"]["name"] == "multifair"
    assert multifair.metrics["method"]["options"]["preset"] == "default"
    assert multifair.metrics["method"]["description"] == "MultiFair (default preset)"


def test_baseline_has_no_method_statistics(baseline):
    assert list(baseline.training_stats.columns) == ["step", "epoch", "loss"]
    assert json.loads((baseline.run_dir / "report.json").read_text())["training"] is None


def test_accumulation_steps_the_optimizer_once_per_group(tiny_config, tmp_path):
    config = tiny_config("method.name=erm", "trainer.epochs=2", "trainer.accumulation_steps=3")
    result = train(config, tmp_path, progress=False)
    state = torch.load(result.files["last_checkpoint"], weights_only=True)["optimizer"]["state"]
    # 8 iterations per epoch: steps after iterations 3, 6 and 8 (the epoch's end flushes)
    assert {float(s["step"]) for s in state.values()} == {6.0}


def test_sgd_settings_reach_the_optimizer(tiny_config, tmp_path):
    config = tiny_config(
        "method.name=erm",
        "trainer.epochs=1",
        "trainer.optimizer=sgd",
        "trainer.lr=0.05",
        "trainer.momentum=0.8",
        "trainer.weight_decay=0.001",
        "trainer.grad_clip=0.5",
    )
    result = train(config, tmp_path, progress=False)
    saved = torch.load(result.files["last_checkpoint"], weights_only=True)["optimizer"]
    group = saved["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.8, 0.001)
    assert all("momentum_buffer" in s for s in saved["state"].values())


def test_cpu_amp_runs_in_bfloat16(tiny_config, tmp_path):
    result = train(tiny_config("trainer.amp=true", "trainer.epochs=1"), tmp_path, progress=False)
    assert np.isfinite(result.predictions["score"]).all()
    assert result.predictions["score"].between(0, 1).all()


def test_progress_bar_and_epoch_lines(tiny_config, tmp_path, capsys):
    lines: list[str] = []
    train(
        tiny_config("trainer.epochs=2", "output.report_formats=[]"), tmp_path, progress=True, log=lines.append
    )
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("val auc" in line and "loss" in line for line in lines)
    assert "train" in capsys.readouterr().err  # the tqdm bar


def test_report_formats_and_predictions_can_be_switched_off(tiny_config, tmp_path):
    config = tiny_config("trainer.epochs=1", "output.report_formats=[json]", "output.save_predictions=false")
    result = train(config, tmp_path, progress=False)
    assert (tmp_path / "report.json").is_file()
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "predictions.csv").exists()
    assert set(result.files) >= {"report_json", "metrics"} and "predictions" not in result.files


def test_bad_inputs(baseline, tiny_config, tmp_path):
    config = baseline.config
    with pytest.raises(MultiFairError, match="already holds a run .*--resume.*--overwrite"):
        train(config, baseline.run_dir, progress=False)
    with pytest.raises(MultiFairError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True, progress=False)
    same = ("method.name=erm", f"evaluation.threshold={THRESHOLD}")
    with pytest.raises(
        MultiFairError, match=r"differs .* in `trainer.lr` \(0.02 -> 0.5\); only trainer.epochs"
    ):
        train(tiny_config(*same, "trainer.lr=0.5"), baseline.run_dir, resume=True)
    with pytest.raises(MultiFairError, match=r"`trainer.epochs`: the run already trained 3 epochs"):
        train(tiny_config(*same, "trainer.epochs=2"), baseline.run_dir, resume=True)
    with pytest.raises(MultiFairError, match="exclude each other"):
        train(config, tmp_path / "x", resume=True, overwrite=True)
    with pytest.raises(MultiFairError, match=r"`stats_interval` to be an integer >= 1, got 0"):
        train(config, tmp_path / "x", stats_interval=0)
    with pytest.raises(MultiFairError, match=r"splits \['train', 'val', 'test'\], missing \['test'\]"):
        datasets = build_datasets(config)
        train(config, tmp_path / "y", datasets={"train": datasets["train"], "val": datasets["val"]})
    (tmp_path / "file").write_text("x")
    with pytest.raises(MultiFairError, match="is an existing file"):
        train(config, tmp_path / "file")
    assert not math.isnan(baseline.metrics["auc"])


def test_final_split_val_needs_no_test_split(tiny_config, tmp_path):
    config = tiny_config("method.name=erm", "trainer.epochs=1")
    splits = build_datasets(config)
    result = train(
        config,
        tmp_path / "run",
        progress=False,
        datasets={"train": splits["train"], "val": splits["val"]},
        final_split="val",
    )
    assert result.metrics["split"] == "val" and result.metrics["n"] == len(splits["val"])
    assert set(result.predictions["id"]) == set(splits["val"].ids)
    with pytest.raises(MultiFairError, match="final_split"):
        train(config, tmp_path / "other", progress=False, final_split="test2")
    with pytest.raises(MultiFairError, match="missing \\['test'\\]"):
        train(
            config,
            tmp_path / "third",
            progress=False,
            datasets={"train": splits["train"], "val": splits["val"]},
        )
