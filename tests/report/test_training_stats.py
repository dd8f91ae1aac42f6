"""Parsing of per-step modulator statistics for the audit report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monai_multifair.errors import MultiFairError
from monai_multifair.report import parse_training_stats


def test_the_three_input_forms_agree():
    columns = {
        "modality_scale/img": [1.0, 1.1, 1.2],
        "group_factor/img/0": [1.0, 0.9, 0.8],
        "gate": [0, 0.5, 1],
    }
    records = [{k: v[i] for k, v in columns.items()} for i in range(3)]
    frame = pd.DataFrame(columns)
    for stats in (columns, records, frame):
        parsed = parse_training_stats(stats)
        assert parsed.steps == [0.0, 1.0, 2.0]
        assert parsed.modality_scale == {"img": [1.0, 1.1, 1.2]}
        assert parsed.group_factor == {"img": {"0": [1.0, 0.9, 0.8]}}
        assert parsed.gate == [0.0, 0.5, 1.0]


def test_step_column_and_final_guide_auc():
    stats = pd.DataFrame(
        {
            "step": [10, 20, 30],
            "guide_group_auc/text/A": [0.6, 0.7, np.nan],
            "guide_group_auc/text/B": [0.5, 0.55, 0.58],
            "guide_group_auc/image/A": [0.65, 0.7, 0.75],
        }
    )
    parsed = parse_training_stats(stats)
    assert parsed.steps == [10.0, 20.0, 30.0]
    table = parsed.final_guide_auc()
    assert table.loc["text", "A"] == 0.7  # last defined value
    assert table.loc["text", "B"] == 0.58 and table.loc["image", "A"] == 0.75
    assert np.isnan(table.loc["image", "B"])


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"loss": [1.0, 0.5]}, r"expected training statistics named.*got columns \['loss'\]"),
        ({"modality_scal/img": [1.0]}, "did you mean 'modality_scale'"),
        ({"group_factor/img": [1.0]}, "names like 'group_factor/<modality>/<group>', got 'group_factor/img'"),
        ({"gate": ["high", "low"]}, "numeric values in training statistic 'gate'"),
        ("stats.csv", "expected `training_stats` to be a DataFrame"),
        (pd.DataFrame({"gate": []}), "at least one row"),
    ],
)
def test_bad_statistics(stats, message):
    with pytest.raises(MultiFairError, match=message):
        parse_training_stats(stats)


def test_guide_auc_is_smoothed_over_the_last_epoch_and_flagged_near_chance():
    # the last step of epoch 2 is one small batch with AUC 1.0 / 0.0: it must not be what is shown
    stats = pd.DataFrame(
        {
            "step": [1, 2, 3, 4, 5, 6],
            "epoch": [1, 1, 1, 2, 2, 2],
            "guide_group_auc/text/A": [0.5, 0.6, 0.7, 0.45, 0.5, 1.0],
            "guide_group_auc/text/B": [0.5, 0.6, 0.7, 0.2, 0.25, 0.0],
            "guide_group_auc/image/A": [0.5, 0.6, 0.7, 0.8, 0.85, np.nan],
        }
    )
    smoothed = parse_training_stats(stats).epoch_guide_auc()
    assert smoothed["rows"] == 3 and "last epoch (2)" in smoothed["window"]
    assert smoothed["mean"]["text"]["A"] == pytest.approx((0.45 + 0.5 + 1.0) / 3)  # 0.65: learned
    assert smoothed["mean"]["text"]["B"] == pytest.approx(0.15)
    assert smoothed["mean"]["image"]["A"] == pytest.approx(0.825)  # NaN rows left out
    assert smoothed["status"] == {"text": {"A": None, "B": "below chance"}, "image": {"A": None}}
    from monai_multifair.report.training import GUIDE_CHANCE_BAND, guide_status

    assert GUIDE_CHANCE_BAND == 0.1
    assert [guide_status(v) for v in (0.39, 0.4, 0.5, 0.6, 0.61, float("nan"))] == [
        "below chance",
        "near chance",
        "near chance",
        "near chance",
        None,
        None,
    ]
    # without an epoch column: the last quarter of the rows
    no_epoch = parse_training_stats(stats.drop(columns="epoch")).epoch_guide_auc()
    assert no_epoch["rows"] == 1 and no_epoch["mean"]["text"]["A"] == 1.0


def test_report_shows_smoothed_guide_auc_with_flags_and_a_note():
    from monai_multifair.report import AuditReport

    rng = np.random.default_rng(0)
    p = rng.random(200)
    y = (rng.random(200) < p).astype(int)
    stats = {
        "step": np.arange(8),
        "epoch": [1, 1, 1, 1, 2, 2, 2, 2],
        "guide_group_auc/notes/F": [0.4, 0.45, 0.42, 0.47, 0.44, 0.46, 0.43, 1.0],
        "guide_group_auc/notes/M": [0.6, 0.7, 0.8, 0.8, 0.85, 0.9, 0.8, 0.0],
    }
    report = AuditReport.from_predictions(
        y, p, sensitive_features={"sex": rng.choice(["F", "M"], 200)}, n_boot=None, training_stats=stats
    )
    markdown = report.to_markdown()
    assert "last training step" not in markdown
    assert "## Guide AUC by modality and group (smoothed over the last epoch)" in markdown
    assert "| notes | 0.583 (near chance) | 0.637 |" in markdown  # (0.44+0.46+0.43+1.0)/4, (.85+.9+.8+0)/4
    assert "guide AUCs near or below chance" in markdown and "notes/F 0.583 (near chance)" in markdown


def test_smoothed_guide_auc_series_are_epoch_means():
    stats = {
        "step": [1, 2, 3, 4],
        "epoch": [1, 1, 2, 2],
        "guide_group_auc/text/A": [0.0, 1.0, 0.4, np.nan],
    }
    assert parse_training_stats(stats).smoothed_guide_auc() == {"text": {"A": [0.5, 0.5, 0.4, 0.4]}}
    no_epoch = {k: v for k, v in stats.items() if k != "epoch"}  # trailing mean over a quarter (1 row)
    assert parse_training_stats(no_epoch).smoothed_guide_auc()["text"]["A"][:3] == [0.0, 1.0, 0.4]
