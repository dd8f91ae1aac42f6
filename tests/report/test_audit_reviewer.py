"""What a reviewer asks of the audit: degenerate predictions named, the threshold stated, group n next to
every rate, calibration by group (== a hand ECE), and Holm-adjusted disparity tests (== the metrics')."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from monai_multifair.metrics import disparity_tests
from monai_multifair.report import AuditReport


def _cohort(n=300, seed=0, top=1.0):
    rng = np.random.default_rng(seed)
    p = top * rng.random(n)
    y = (rng.random(n) < p / top).astype(int)
    frame = pd.DataFrame(
        {"race": rng.choice(["Asian", "Black", "White"], n), "sex": rng.choice(["F", "M"], n)}
    )
    return y, p, frame


def _report(y, p, frame, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-group notes; tested elsewhere
        return AuditReport.from_predictions(y, p, sensitive_features=frame, **{"random_state": 0, **kwargs})


def test_no_positive_predictions_is_flagged_everywhere_never_a_clean_zero():
    """The reproduction: highest score 0.31 gave DPD 0.000 [0.000, 0.000] and "No undefined group metrics"."""
    y, p, frame = _cohort(top=0.31)
    report = _report(y, p, frame[["sex"]], n_boot=50, n_permutations=20)
    data = report.to_dict()
    assert data["summary"]["dpd"]["estimate"] == 0.0
    assert data["summary"]["dpd"]["degenerate"] and data["summary"]["deodds"]["degenerate"]
    assert "degenerate" not in data["summary"]["auc"]
    assert all(data["gaps"][m].get("degenerate") for m in ("selection_rate", "tpr", "fpr"))
    assert "degenerate" not in data["gaps"]["auc"]
    assert set(data["degenerate"]) == {"overall", "sex=F", "sex=M"}
    assert data["degenerate"]["overall"].startswith(f"no positive predictions: highest score {p.max():.3f}")
    markdown, html = report.to_markdown(), report.to_html()
    for text in (markdown, html):
        assert "No undefined group metrics" not in text
        assert "degenerate predictions at threshold 0.5" in text
        assert "0.000 [0.000, 0.000] (degenerate)" in text
    assert "| DPD (demographic parity difference) | 0.000 [0.000, 0.000] (degenerate) |" in markdown
    assert "| sex | selection-rate gap (DPD) (degenerate) | 2 | 0.000 | 1.0000 |" in markdown


def test_a_healthy_model_has_no_degenerate_flags():
    y, p, frame = _cohort()
    data = _report(y, p, frame, n_boot=None, n_permutations=None).to_dict()
    assert data["degenerate"] == {}
    assert not any("degenerate" in v for v in (*data["summary"].values(), *data["gaps"].values()))
    assert data["disparity_tests"] is None and data["settings"]["n_permutations"] is None


def test_threshold_and_its_source_are_stated():
    y, p, frame = _cohort()
    report = _report(
        y, p, frame, threshold=0.4321, threshold_source="fitted on val by Youden's J", n_boot=None
    )
    assert report.to_dict()["settings"]["threshold_source"] == "fitted on val by Youden's J"
    for text in (report.to_markdown(), report.to_html()):
        assert "operating threshold 0.4321 (fitted on val by Youden&#x27;s J" in text or (
            "operating threshold 0.4321 (fitted on val by Youden's J" in text
        )
        assert "Operating point (threshold 0.4321)" in text
    default = _report(y, p, frame, n_boot=None).to_markdown()
    assert "operating threshold 0.5 (fixed;" in default


def test_group_n_next_to_every_rate():
    y, p, frame = _cohort()
    report = _report(y, p, frame[["sex"]], n_boot=None, n_permutations=None)
    markdown = report.to_markdown()
    section = markdown.split("## Operating point")[1].split("##")[0]
    for sex in ("F", "M"):
        mask = (frame["sex"] == sex).to_numpy()
        n, pos = int(mask.sum()), int(y[mask].sum())
        rate = (p[mask] >= 0.5).mean()
        tpr, fpr = (p[mask & (y == 1)] >= 0.5).mean(), (p[mask & (y == 0)] >= 0.5).mean()
        row = f"| sex={sex} | {n} | {rate:.3f} (n={n}) | {tpr:.3f} (n={pos}) | {fpr:.3f} (n={n - pos}) |"
        assert row in section
    assert f"| overall | {len(y)} |" in section


def test_calibration_by_group_equals_a_hand_ece_with_intervals():
    y, p, frame = _cohort(n=400, seed=1)
    report = _report(y, p, frame[["race"]], n_boot=100, n_permutations=None, calibration_bins=5)
    data = report.to_dict()
    edges = np.linspace(0, 1, 6)
    for race in ("Asian", "Black", "White"):
        m = (frame["race"] == race).to_numpy()
        bins = np.clip(np.searchsorted(edges[1:-1], p[m], side="left"), 0, 4)
        hand = sum(abs((y[m] - p[m])[bins == b].sum()) for b in range(5)) / m.sum()
        entry = data["metrics"]["by_group"][f"race={race}"]["calibration_error"]
        assert entry["estimate"] == pytest.approx(hand)
        # the interval is the bootstrap's (ECE sums absolute values, so resampled ECEs sit above the
        # estimate in small groups: the interval need not contain it, and the caption says so)
        ci = report.metric_frame.by_group_ci
        assert entry["ci"] == pytest.approx(
            [ci[0].loc[race, "calibration_error"], ci[1].loc[race, "calibration_error"]]
        )
        assert entry["ci"][0] < entry["ci"][1]
        curve = data["calibration"]["by_group"][f"race={race}"]
        assert sum(curve["weight"]) == m.sum() and curve["ece"] == pytest.approx(hand)
    markdown = report.to_markdown()
    assert "## Calibration by group" in markdown and "biased upward" in markdown
    assert markdown.count("data:image") == 0 and report.to_html().count("reliability diagram per group") == 1


def test_disparity_tests_in_the_report_equal_the_metric_function():
    y, p, frame = _cohort(n=240, seed=2)
    p = np.clip(p + 0.2 * (frame["sex"] == "M"), 0, 1)
    report = _report(y, p, frame, n_boot=None, n_permutations=99, random_state=3)
    table = disparity_tests(y, p, sensitive_features=frame, n_permutations=99, random_state=3)
    got = pd.DataFrame(report.to_dict()["disparity_tests"])
    pd.testing.assert_frame_equal(got, table, check_dtype=False)
    markdown = report.to_markdown()
    assert "## Disparity tests (permutation, Holm-adjusted)" in markdown
    row = table.set_index(["attribute", "metric"]).loc[("sex", "selection_rate")]
    assert (
        f"| sex | selection-rate gap (DPD) | 2 | {row['gap']:.3f} | {row['p_value']:.4f} | {row['p_holm']:.4f} |"
        in markdown
    )
