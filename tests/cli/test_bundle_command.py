"""``multifair bundle`` runs the example MONAI bundle and selects the checkpoint on ES-AUC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_multifair.cli import main

BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "bundle" / "configs"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # monai.bundle.run's own notice about config parsing
def test_bundle_command_runs_the_example_bundle(tmp_path):
    assert main(["bundle", str(BUNDLE / "train.yaml"), "--output", str(tmp_path)]) == 0
    assert (tmp_path / "models" / "model.pt").is_file()
    epochs = sorted((tmp_path / "fairness").glob("fairness_epoch*.json"))
    assert epochs, "the evaluator handler wrote no per-epoch fairness file"
    metrics = json.loads(epochs[-1].read_text())
    assert metrics  # the fairlearn MetricFrame of the epoch, as JSON


def test_bundle_command_missing_file_exits_2(tmp_path, capsys):
    assert main(["bundle", str(tmp_path / "nope.yaml")]) == 2
    assert "bundle config file not found" in capsys.readouterr().err
