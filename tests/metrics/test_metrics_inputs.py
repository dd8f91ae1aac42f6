"""Input validation of the fairness metrics: clear errors naming argument, rule and value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import equity_scaled_auc, fairness_metric_frame, fairness_summary, group_auc
from monai_multifair.metrics._inputs import prepare_groups, prepare_predictions


def test_missing_group_values_name_the_column_and_row_count():
    y = np.array([0, 1, 0, 1, 1])
    p = np.array([0.1, 0.8, 0.3, 0.6, 0.9])
    frame = pd.DataFrame({"race": ["A", None, "B", np.nan, "A"], "sex": ["F", "M", "F", "M", "F"]})
    with pytest.raises(MultiFairError, match=r"column 'race' has 2 missing value\(s\).*rows 1, 3"):
        fairness_metric_frame(y, p, sensitive_features=frame)
    with pytest.raises(MultiFairError, match="'race' has 2 missing"):
        group_auc(y, p, sensitive_features=frame)


def test_missing_value_in_unnamed_array_names_fairlearn_column():
    with pytest.raises(MultiFairError, match="'sensitive_feature_0' has 1 missing"):
        equity_scaled_auc(
            [0, 1, 1], [0.2, 0.7, 0.9], sensitive_features=np.array(["a", None, "b"], dtype=object)
        )


@pytest.mark.parametrize(
    ("y_true", "y_score", "message"),
    [
        ([0, 1, 1], [0.2, 0.7], "same number of samples, got 3 and 2"),
        ([0, 1, 2], [0.2, 0.7, 0.4], "at most two classes in `y_true` when `y_score` is 1-D, got 3"),
        ([0, 1, 1], [0.2, np.nan, 0.4], r"finite `y_score`, got 1 row\(s\)"),
        ([0, 1, 1], [0.2, 1.7, 0.4], r"probabilities in \[0, 1\].*apply a sigmoid or softmax"),
        ([0, None, 1], [0.2, 0.5, 0.4], "without missing values, got 1 NaN/None"),
        ([0, 3, 1], [[0.2, 0.8], [0.5, 0.5], [0.4, 0.6]], r"class ids in \[0, 2\)"),
        ([], [], "at least one sample"),
    ],
)
def test_bad_labels_and_scores(y_true, y_score, message):
    with pytest.raises(MultiFairError, match=message):
        prepare_predictions(y_true, y_score)


def test_pos_label_must_be_a_label_or_a_column():
    with pytest.raises(MultiFairError, match="`pos_label` to be one of the `y_true` values"):
        prepare_predictions(["n", "y"], [0.1, 0.9], pos_label=1)
    with pytest.raises(MultiFairError, match=r"column index in \[0, 3\)"):
        prepare_predictions([0, 1, 2], np.eye(3), pos_label=3)
    pred = prepare_predictions(["n", "y", "y"], [0.1, 0.9, 0.4], pos_label="y")
    assert pred.positive.tolist() == [0, 1, 1]


def test_two_column_scores_are_binary_on_the_positive_column():
    pred = prepare_predictions([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], pos_label=1)
    assert not pred.multiclass
    assert pred.p.tolist() == [0.1, 0.8, 0.4]
    pred = prepare_predictions([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], pos_label=0)
    assert pred.positive.tolist() == [1, 0, 0]
    assert pred.p.tolist() == [0.9, 0.2, 0.6]


def test_tensors_are_accepted():
    pred = prepare_predictions(torch.tensor([0, 1]), torch.tensor([0.25, 0.75]))
    assert pred.p.tolist() == [0.25, 0.75]
    groups = prepare_groups(torch.tensor([1, 0]), 2)
    assert groups.ids.tolist() == [1, 0]


def test_sensitive_feature_shape_and_types():
    with pytest.raises(MultiFairError, match="to have 3 rows"):
        prepare_groups(["a", "b"], 3)
    with pytest.raises(MultiFairError, match="mixes value types"):
        prepare_groups(np.array(["a", 1, "b"], dtype=object), 3)
    with pytest.raises(MultiFairError, match="string column names"):
        prepare_groups(pd.DataFrame({0: ["a", "b"]}), 2)


def test_intersections_follow_fairlearns_product_index():
    frame = pd.DataFrame({"race": ["B", "A", "B"], "sex": ["M", "F", "F"]})
    groups = prepare_groups(frame, 3)
    assert list(groups.index) == [("A", "F"), ("A", "M"), ("B", "F"), ("B", "M")]
    assert groups.ids.tolist() == [3, 0, 2]
    assert groups.labels[1] == "race=A & sex=M"


def test_summary_group_ids_are_checked():
    with pytest.raises(MultiFairError, match=r"group ids in \[0, 2\) \(len\(group_labels\) = 2\), got 2"):
        fairness_summary([0, 1, 1], [0.2, 0.7, 0.9], [0, 1, 2], ["a", "b"])
    with pytest.raises(MultiFairError, match="group ids >= 0"):
        fairness_summary([0, 1, 1], [0.2, 0.7, 0.9], [0, -1, 1])
    with pytest.raises(MultiFairError, match="integer group ids"):
        fairness_summary([0, 1, 1], [0.2, 0.7, 0.9], [0.0, 1.5, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.5}, r"`threshold` in \[0, 1\], got 1.5"),
        ({"min_group_size": 0}, "`min_group_size` >= 1, got 0"),
        ({"sample_weight": [1.0, -1.0, 1.0]}, "non-negative `sample_weight`"),
        ({"n_boot": 0}, "`n_boot` >= 1, got 0"),
        ({"n_boot": 10, "ci_quantiles": (0.0, 0.5)}, r"`ci_quantiles` entry in \(0, 1\), got 0.0"),
        ({"n_boot": 10, "random_state": "seed"}, "`random_state` to be None, an int"),
        ({"patient_ids": [1, 2, 3]}, "set `n_boot`"),
        ({"calibration_bins": 0}, "`calibration_bins` >= 1"),
    ],
)
def test_frame_settings_are_validated(kwargs, message):
    with pytest.raises(MultiFairError, match=message):
        fairness_metric_frame([0, 1, 1], [0.2, 0.7, 0.9], sensitive_features=["a", "b", "b"], **kwargs)


@pytest.mark.parametrize(
    "function", [group_auc, equity_scaled_auc, fairness_metric_frame], ids=lambda f: f.__name__
)
def test_positional_sensitive_features_say_how_to_call(function):
    # fairlearn's metrics take `sensitive_features` as a keyword argument; so do these, and say so
    with pytest.raises(
        TypeError, match=rf"{function.__name__}\(y_true, y_score, sensitive_features=groups\)"
    ):
        function([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], ["a", "a", "b", "b"])


def test_bool_group_ids_are_refused_naming_the_argument():
    with pytest.raises(MultiFairError, match=r"integer group ids in `groups`, got dtype bool"):
        fairness_summary([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], np.array([True, True, False, False]))
    with pytest.raises(MultiFairError, match="got dtype bool"):
        fairness_summary([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], torch.tensor([True, True, False, False]))


def test_repeated_sensitive_columns_are_refused():
    frame = pd.DataFrame([["a", "a"], ["b", "b"]], columns=["race", "race"])
    with pytest.raises(
        MultiFairError, match=r"distinct column names in `sensitive_features`, got \['race'\]"
    ):
        group_auc([0, 1], [0.2, 0.7], sensitive_features=frame)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("banana", r"`device` to be a torch device such as 'cpu'.*got 'banana'"),
        ("meta", r"`device` of type 'cpu', 'cuda' or 'mps', got 'meta'"),
        pytest.param(
            "cuda",
            r"`device` 'cuda': CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"),
        ),
    ],
)
def test_bad_devices_are_one_clear_error(device, message):
    with pytest.raises(MultiFairError, match=message):
        fairness_metric_frame(
            [0, 1, 0, 1], [0.1, 0.9, 0.4, 0.4], sensitive_features=list("aabb"), n_boot=2, device=device
        )
