"""The example bundle (examples/bundle) parsed with monai.bundle.ConfigParser runs, selects on ES-AUC,
and its evaluation config reports what sklearn computes from the selected checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from sklearn.metrics import roc_auc_score

from monai_multifair.core import MultiFairConfig
from monai_multifair.handlers import FairnessEvaluationHandler, MultiFairHandler
from monai_multifair.networks import MultimodalFusionClassifier

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "bundle"


@pytest.fixture
def bundle_path(monkeypatch):
    """Put the bundle root on sys.path (as `monai.bundle run` does) and forget its `scripts` afterwards."""
    monkeypatch.syspath_prepend(str(BUNDLE))
    yield BUNDLE
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]


def small(parser: ConfigParser, tmp_path: Path) -> None:
    parser["output_dir"] = str(tmp_path)
    parser["max_epochs"] = 2
    parser["train#dataset#data#n"] = 96
    parser["validate#dataset#data#n"] = 64
    parser["multifair_config"] = {"preset": "default", "fairness_threshold": 0.05}


@pytest.mark.slow
def test_train_bundle_runs_and_selects_on_es_auc(bundle_path, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(bundle_path / "configs" / "train.yaml"))
    parser.read_meta(str(bundle_path / "configs" / "metadata.json"))
    small(parser, tmp_path)
    parser.parse()
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")
    evaluator = parser.get_parsed_content("validate#evaluator")
    handler = parser.get_parsed_content("multifair_handler")
    assert isinstance(handler, MultiFairHandler)
    assert handler.config == MultiFairConfig(preset="default", fairness_threshold=0.05)
    assert isinstance(parser.get_parsed_content("validate#fairness"), FairnessEvaluationHandler)
    assert isinstance(parser.get_parsed_content("network_def"), MultimodalFusionClassifier)
    parser.get_parsed_content("run")

    assert trainer.state.epoch == 2
    assert {"multifair/modality_scale/fundus", "multifair/group_factor/vitals/C", "multifair/gate"} <= set(
        trainer.state.metrics
    )
    # per-epoch fairness files; the best checkpoint is the epoch with the highest ES-AUC
    per_epoch = [
        json.loads((tmp_path / "fairness" / f"fairness_epoch{e:04d}.json").read_text())["summary"]["es_auc"]
        for e in (1, 2)
    ]
    assert evaluator.state.key_metric_name == "val_es_auc"
    assert evaluator.state.best_metric == pytest.approx(max(per_epoch))
    assert evaluator.state.best_metric_epoch == 1 + per_epoch.index(max(per_epoch))
    assert (tmp_path / "models" / "model.pt").is_file()
    resume = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert {"model", "optimizer", "multifair"} <= resume.keys()
    torch.testing.assert_close(resume["multifair"]["steps"], handler.modulator.steps)

    # the evaluation config, merged over train.yaml, scores the selected checkpoint on a test split
    parser = ConfigParser()
    parser.read_config([str(bundle_path / "configs" / n) for n in ("train.yaml", "evaluate.yaml")])
    parser["output_dir"] = str(tmp_path)
    parser["validate#dataset#data#n"] = 80
    parser.parse()
    parser.get_parsed_content("run")
    metrics = parser.get_parsed_content("validate#evaluator").state.metrics
    assert (tmp_path / "fairness" / "test_epoch0001.csv").is_file()

    net = parser.get_parsed_content("network").eval()
    records = parser.get_parsed_content("validate#dataset#data")
    with torch.no_grad():
        logits = net({m: torch.stack([r[m] for r in records]) for m in ("fundus", "vitals")})
    p = torch.softmax(logits, 1)[:, 1].numpy()
    y = [int(r["label"]) for r in records]
    assert metrics["test_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
    best = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, best[name], msg=name)  # the loaded model is the selected one
