"""``multifair train`` / ``evaluate``: runs, resume, printed metrics, and exit codes on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monai_multifair.cli import main

TINY = str(Path(__file__).parents[1] / "tiny.yaml")
FAST = ["--set", "evaluation.n_boot=0", "--set", "method.name=erm"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    code = main(
        ["train", "--config", TINY, "--output", str(run), "--no-progress", "--set", "trainer.epochs=2", *FAST]
    )
    assert code == 0
    return run


def test_train_prints_the_test_metrics_and_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", TINY, "--output", str(run), "--no-progress", *FAST]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"-> {run}: 3 epochs, method erm" in out
    assert re.search(r"^epoch 3/3  loss \d", out, re.M)
    assert f"model of epoch {metrics['best_epoch']}" in out
    assert re.search(rf"^  ES-AUC\s+{metrics['es_auc']:.4f}$", out, re.M)
    assert re.search(rf"^  AUC race=Black\s+{metrics['group_auc']['race=Black']:.4f}$", out, re.M)
    listed = out.split(f"files in {run}:\n", 1)[1].split("\nwall time", 1)[0].split()
    # every file of the run folder but the checkpoints' size/SHA-256 records and the lock
    written = [
        p
        for p in run.rglob("*")
        if p.is_file() and not p.name.endswith(".pt.json") and p.name != ".multifair.lock"
    ]
    assert sorted(listed) == sorted(map(str, written)), (listed, written)
    assert str(run / "checkpoints" / "checkpoint_epoch=3.pt") in listed


def test_resume_with_more_epochs_reads_the_run_config(trained, capsys):
    assert (
        main(["train", "--output", str(trained), "--resume", "--no-progress", "--set", "trainer.epochs=3"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"resuming {trained / 'config.yaml'} -> {trained}: 3 epochs")
    assert "epoch 3/3" in out and "epoch 2/3" not in out
    assert sorted(p.name for p in (trained / "checkpoints").glob("*.pt")) == [
        "best.pt",
        "checkpoint_epoch=3.pt",
    ]


def test_evaluate_finds_the_run_config(trained, capsys):
    best = trained / "checkpoints" / "best.pt"
    assert main(["evaluate", "--checkpoint", str(best)]) == 0
    out = capsys.readouterr().out
    evaluated = json.loads((trained / "evaluation" / "metrics.json").read_text())
    assert evaluated["auc"] == json.loads((trained / "metrics.json").read_text())["auc"]
    assert re.search(rf"^  AUC\s+{evaluated['auc']:.4f}$", out, re.M)
    assert (
        main(
            [
                "evaluate",
                "--config",
                TINY,
                *FAST,
                "--checkpoint",
                str(best),
                "--split",
                "val",
                "--output",
                str(trained / "val"),
            ]
        )
        == 0
    )
    assert json.loads((trained / "val" / "metrics.json").read_text())["split"] == "val"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--config", TINY, "--set", "trainer.epoch=3"],
            r"unknown config key `trainer.epoch` \(did you mean 'epochs'\?\)",
        ),
        (
            ["train", "--config", TINY, "--set", "method.options.fairnes_weight=1"],
            r"unknown MultiFairConfig key 'fairnes_weight'.*\(did you mean 'fairness_weight'\?\)",
        ),
        (
            ["train", "--config", TINY, "--set", "trainer.lr=-1"],
            r"`trainer.lr`: expected a number > 0, got -1",
        ),
        (["train", "--config", "missing.yaml"], r"config file 'missing.yaml' does not exist"),
        (["train", "--config", "demo-quik"], r"unknown preset 'demo-quik' \(did you mean 'demo-quick'\?\)"),
        (
            ["train", "--config", TINY, "--set", "trainer.lr"],
            r"expected an override of the form key.path=value",
        ),
        (["train"], r"--config is required"),
        (
            ["train", "--config", TINY, "--resume", "--overwrite"],
            r"--resume and --overwrite exclude each other",
        ),
        (["evaluate", "--checkpoint", "missing.pt"], r"--checkpoint 'missing.pt' does not exist"),
        (["demo", "--quick", "--seed", "-1"], r"`trainer.seed`: expected an integer >= 0, got -1"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_run_folder_states_exit_2(trained, tmp_path, capsys):
    assert main(["train", "--config", TINY, "--output", str(trained), *FAST]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--config", TINY, "--output", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "--output", str(tmp_path / "none"), "--resume"]) == 2
    assert "has no config.yaml" in capsys.readouterr().err
    outside = tmp_path / "weights.pt"
    outside.write_bytes((trained / "checkpoints" / "best.pt").read_bytes())
    assert main(["evaluate", "--checkpoint", str(outside)]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_usage_errors_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", "x.pt", "--split", "tset"])
    assert exit_info.value.code == 2 and "invalid choice: 'tset'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("demo", "train", "evaluate", "report", "plugins"))
