"""``multifair report`` end to end through ``monai_multifair.cli.main``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from monai_multifair.cli import main


@pytest.fixture
def predictions(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    table = pd.DataFrame(
        {
            "glaucoma": y,
            "prob": p,
            "race": rng.choice(["Asian", "Black", "White"], n),
            "gender": rng.choice(["F", "M"], n),
        }
    )
    path = tmp_path / "preds.csv"
    table.to_csv(path, index=False)
    return path, table


def test_report_writes_html_markdown_json(predictions, tmp_path, capsys):
    path, table = predictions
    out = tmp_path / "audit" / "nested"
    stats = tmp_path / "stats.json"
    stats.write_text(
        json.dumps([{"step": i, "modality_scale/oct": 1 + i / 10, "gate": i / 4} for i in range(5)])
    )
    code = main(
        [
            "report",
            str(path),
            "--label-column",
            "glaucoma",
            "--score-column",
            "prob",
            "--group-columns",
            "race,gender",
            "--output",
            str(out),
            "--n-boot",
            "30",
            "--threshold",
            "0.4",
            "--training-stats",
            str(stats),
            "--title",
            "CLI audit",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out.split()
    assert printed == [str(out / name) for name in ("report.html", "report.md", "report.json")]
    # groups of ~33 rows: the small-group note is one line on stderr (and in the report), not a warning
    notes = [line for line in captured.err.splitlines() if "fewer than min_support=30 samples" in line]
    assert len(notes) == 1 and notes[0].startswith("multifair report: note: ")
    assert "Warning" not in captured.err
    data = json.loads((out / "report.json").read_text())
    assert (
        data["title"] == "CLI audit"
        and data["settings"]["threshold"] == 0.4
        and data["settings"]["n_boot"] == 30
    )
    assert data["summary"]["auc"]["estimate"] == pytest.approx(
        roc_auc_score(table["glaucoma"], table["prob"])
    )
    assert len(data["metrics"]["by_group"]) == 6
    assert data["training"]["modality_scale"]["oct"] == [1.0, 1.1, 1.2, 1.3, 1.4]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "race=Black &amp; gender=M" in html
    assert "# CLI audit" in (out / "report.md").read_text()
    assert any("fewer than min_support=30 samples" in note for note in data["notes"])


def test_no_bootstrap_option(predictions, tmp_path):
    path, _ = predictions
    out = tmp_path / "out"
    args = ["report", str(path), "--label-column", "glaucoma", "--score-column", "prob"]
    assert main([*args, "--group-columns", "race", "--output", str(out), "--n-boot", "0"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["settings"]["n_boot"] is None and "ci" not in data["summary"]["es_auc"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-columns", "rac"], "column 'rac' (from --group-columns) not found"),
        (["--group-columns", "race,"], "comma-separated column names for --group-columns"),
        (["--group-columns", "race", "--n-boot", "-3"], "expected --n-boot >= 0"),
        (["--group-columns", "race", "--threshold", "2"], "expected --threshold in [0, 1], got 2.0"),
    ],
)
def test_bad_input_exits_with_usage_error(predictions, tmp_path, capsys, extra, message):
    path, _ = predictions
    args = [
        "report",
        str(path),
        "--label-column",
        "glaucoma",
        "--score-column",
        "prob",
        "--output",
        str(tmp_path / "o"),
    ]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("multifair report: error:") and message in err
    assert not (tmp_path / "o" / "report.html").exists()


def test_missing_file_and_output_file(predictions, tmp_path, capsys):
    path, _ = predictions
    base = ["--label-column", "glaucoma", "--score-column", "prob", "--group-columns", "race"]
    assert main(["report", str(tmp_path / "missing.csv"), *base, "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["report", str(path), *base, "--output", str(blocker)]) == 2
    assert "expected --output to be a directory" in capsys.readouterr().err
