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
