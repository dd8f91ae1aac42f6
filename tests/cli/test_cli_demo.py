"""``multifair demo --quick`` end to end (the CI's end-to-end check): table, reports, comparison files."""

from __future__ import annotations

import json
import math
import re

import pytest

from monai_multifair.cli import main
from monai_multifair.config import load_config

HEADLINE = ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--output", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    quick = load_config("demo-quick")
    assert f"cohort of {quick.data.options.n_patients} patients" in out
    assert f"{quick.trainer.epochs} epochs, seed {quick.trainer.seed}" in out

    runs = {}
    for name, folder in (("baseline", "baseline"), ("MultiFair", "multifair")):
        run = tmp_path / folder
        for file in (
            "config.yaml",
            "metrics.json",
            "predictions.csv",
            "training_stats.csv",
            "validation.csv",
            "report.html",
            "report.md",
            "report.json",
            "checkpoints/best.pt",
        ):
            assert (run / file).is_file(), (folder, file)
        runs[name] = json.loads((run / "metrics.json").read_text())
        assert runs[name]["n"] == round(quick.data.options.n_patients * 0.2)
        for metric in HEADLINE:
            assert 0 <= runs[name][metric] <= 1, (name, metric)
        assert runs[name]["auc"] > 0.8  # both arms learn the planted signal
        assert set(runs[name]["group_auc"]) == {"race=Asian", "race=Black", "race=White"}
        assert all(0 <= v <= 1 for v in runs[name]["group_auc"].values())
        assert 1 <= runs[name]["best_epoch"] <= quick.trainer.epochs
    assert runs["baseline"]["method"]["name"] == "erm"
    assert runs["MultiFair"]["method"]["name"] == "multifair"
    assert runs["MultiFair"]["method"]["options"]["preset"] == "default"
    assert (
        (tmp_path / "multifair" / "training_stats.csv")
        .read_text()
        .startswith("step,epoch,loss,modality_scale/")
    )
    html = (tmp_path / "multifair" / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64" in html

    comparison = json.loads((tmp_path / "comparison.json").read_text())
    rows = {row["metric"]: row for row in comparison["rows"]}
    for metric in (*HEADLINE, "group_auc/race=Black"):
        key = metric.split("/", 1)
        for name in ("baseline", "MultiFair"):
            expected = runs[name][metric] if len(key) == 1 else runs[name]["group_auc"][key[1]]
            assert rows[metric]["values"][name] == pytest.approx(expected)
        change = rows[metric]["values"]["MultiFair"] - rows[metric]["values"]["baseline"]
        assert rows[metric]["change"]["MultiFair"] == pytest.approx(change)
        low, high = rows[metric]["ci"]["baseline"]
        assert low <= high

    # the printed side-by-side table holds the same numbers
    table = out[out.index("metric ") :]
    for metric, label in (("es_auc", "ES-AUC"), ("worst_group_auc", "worst-group AUC"), ("deodds", "DEOdds")):
        line = next(x for x in table.splitlines() if x.startswith(label + " "))
        base, mf = runs["baseline"][metric], runs["MultiFair"][metric]
        assert f"{base:.3f} [" in line and f"{mf:.3f} [" in line and f"{mf - base:+.3f}" in line
    assert re.search(r"^AUC race=White ", table, re.M)
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| ES-AUC | higher |" in markdown and "| DPD | lower |" in markdown
    assert not any(math.isnan(v) for v in runs["baseline"]["group_auc"].values())
