"""Unknown-value policy and attribute coding."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest

from monai_multifair.data import AttributeCoding, apply_unknown_policy
from monai_multifair.errors import MultiFairError

FRAME = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e"],
        "race": [0, 1, -1, 2, 1],
        "language": [0, -1, -1, 1, np.nan],
    }
)


def test_error_policy_names_row_attribute_and_count():
    with pytest.raises(
        MultiFairError, match=r"b has an unknown value .*'language'.*3 of 5 rows.*`data.unknown` to 'drop'"
    ):
        apply_unknown_policy(FRAME, ["race", "language"], "error")
    kept, report = apply_unknown_policy(FRAME[FRAME.id.isin(["a", "d"])], ["race", "language"], "error")
    assert kept["id"].tolist() == ["a", "d"] and report.num_dropped == 0


def test_drop_policy_counts_and_logs(caplog):
    with caplog.at_level(logging.WARNING, logger="monai_multifair.data.attributes"):
        kept, report = apply_unknown_policy(FRAME, ["race", "language"], "drop", name="demo")
    assert kept["id"].tolist() == ["a", "d"]
    assert report.dropped_ids == ["b", "c", "e"] and report.num_dropped == 3
    assert report.unknown == {"race": 1, "language": 3}
    assert "dropped 3 of 5 rows" in str(report) and "demo" in caplog.text
    # only the selected attributes are looked at
    kept, report = apply_unknown_policy(FRAME, ["race"], "drop")
    assert kept["id"].tolist() == ["a", "b", "d", "e"] and report.unknown == {"race": 1}


def test_keep_policy_makes_a_group():
    kept, report = apply_unknown_policy(FRAME, ["language"], "keep")
    assert len(kept) == 5 and report.num_dropped == 0
    coding = AttributeCoding(["language"], {"language": {0: "English", 1: "Spanish", 2: "other"}}).fit(kept)
    codes, groups = coding.encode(kept)
    assert codes["language"].tolist() == [0, -1, -1, 1, -1]
    assert coding.group_labels == ("language=English", "language=Spanish", "language=unknown")
    assert groups.tolist() == [0, 2, 2, 1, 2]


def test_bad_policy_has_close_match():
    with pytest.raises(MultiFairError, match=r"one of 'error', 'drop', 'keep'.*did you mean 'drop'"):
        apply_unknown_policy(FRAME, ["race"], "dorp")


def test_intersection_groups_match_hand_enumeration():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"race": rng.integers(0, 3, 50), "sex": rng.choice(["F", "M"], 50)})
    coding = AttributeCoding(["race", "sex"], {"race": {0: "Asian", 1: "Black", 2: "White"}}).fit(frame)
    codes, groups = coding.encode(frame)
    present = sorted({(r, s) for r, s in zip(frame.race, frame.sex)})
    assert coding.num_groups == len(present)
    names = {0: "Asian", 1: "Black", 2: "White"}
    expected_labels = [
        f"race={names[r]} & sex={s}" for r, s in sorted(present, key=lambda c: (names[c[0]], c[1]))
    ]
    assert list(coding.group_labels) == expected_labels
    for i in range(50):
        assert coding.group_labels[groups[i]] == f"race={names[frame.race[i]]} & sex={frame.sex[i]}"
    assert codes["race"].tolist() == frame.race.tolist()
    assert codes["sex"].tolist() == [0 if s == "F" else 1 for s in frame.sex]  # sorted string categories


def test_unseen_values_and_undocumented_codes():
    coding = AttributeCoding(["sex"]).fit(pd.DataFrame({"sex": ["F", "M"]}))
    with pytest.raises(MultiFairError, match=r"p7: attribute 'sex' has value 'X', not seen"):
        coding.encode(pd.DataFrame({"sex": ["X"]}), ids=["p7"])
    coding = AttributeCoding(["race"], {"race": {0: "Asian", 1: "Black"}})
    with pytest.raises(MultiFairError, match=r"attribute 'race' has code 5, which is not documented"):
        coding.fit(pd.DataFrame({"race": [0, 5]}))
    coding = AttributeCoding(["race"]).fit(pd.DataFrame({"race": [0, 1]}))
    with pytest.raises(MultiFairError, match="unseen sensitive-attribute combination"):
        coding.encode(pd.DataFrame({"race": [2]}))
    with pytest.raises(MultiFairError, match="not fitted"):
        AttributeCoding(["race"]).encode(pd.DataFrame({"race": [0]}))


def test_coding_roundtrip_through_plain_values():
    import json

    frame = pd.DataFrame({"race": [0, 2, 1, 2], "sex": ["M", "F", "F", "M"]})
    coding = AttributeCoding(["race", "sex"], {"race": {0: "Asian", 1: "Black", 2: "White"}}).fit(frame)
    restored = AttributeCoding.from_dict(json.loads(json.dumps(coding.to_dict())))
    for a, b in itertools.product([coding], [restored]):
        ca, ga = a.encode(frame)
        cb, gb = b.encode(frame)
        assert np.array_equal(ga, gb) and all(np.array_equal(ca[k], cb[k]) for k in ca)
        assert a.group_labels == b.group_labels
