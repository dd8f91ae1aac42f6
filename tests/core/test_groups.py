"""``GroupEncoder``: attribute columns to intersectional group ids and back."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import yaml

from monai_multifair.core import GroupEncoder
from monai_multifair.errors import MultiFairError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "race": rng.choice(["Asian", "Black", "White"], 200),
            "male": rng.integers(0, 2, 200),
            "age": rng.normal(60, 10, 200),
        }
    )


def test_intersections_are_sorted_combinations(frame):
    enc = GroupEncoder(["race", "male"]).fit(frame)
    combos = sorted(set(zip(frame["race"], frame["male"].tolist())))
    assert enc.num_groups == len(combos) == 6
    assert enc.labels == tuple(f"race={r} & male={m}" for r, m in combos)
    ids = enc.transform(frame)
    assert ids.dtype == np.int64 and ids.shape == (200,)
    expected = [combos.index((r, m)) for r, m in zip(frame["race"], frame["male"].tolist())]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(enc.fit_transform(frame), ids)


def test_numeric_values_sort_numerically_and_accept_numpy_scalars():
    enc = GroupEncoder("grade").fit({"grade": [10, 2, 1, 2]})
    assert enc.labels == ("grade=1", "grade=2", "grade=10")
    np.testing.assert_array_equal(enc.transform({"grade": np.array([10, 1], dtype=np.int32)}), [2, 0])


def test_inverse_transform_roundtrip(frame):
    enc = GroupEncoder(["race", "male"]).fit(frame)
    back = enc.inverse_transform(enc.transform(frame))
    pd.testing.assert_frame_equal(back, frame[["race", "male"]].reset_index(drop=True), check_dtype=False)
    with pytest.raises(MultiFairError, match=r"group ids in \[0, 6\), got 6 \(1 out of range\)"):
        enc.inverse_transform([0, 6])
    with pytest.raises(MultiFairError, match=r"got -1 \(2 out of range\)"):
        enc.inverse_transform(np.array([-1, 3, -2]))


def test_unseen_combination_is_an_error(frame):
    enc = GroupEncoder(["race", "male"]).fit(frame[frame["race"] != "White"])
    with pytest.raises(
        MultiFairError, match=r"unseen sensitive-attribute combination \(race='White', male=\d\) in \d+ row"
    ):
        enc.transform(frame)


def test_missing_values_and_columns_are_errors(frame):
    with pytest.raises(MultiFairError, match=r"`race` has 2 missing value"):
        GroupEncoder(["race"]).fit({"race": ["A", None, np.nan, "B"]})
    with pytest.raises(
        MultiFairError, match=r"column\(s\) \['sex'\] not found; available: \['race', 'male', 'age'\]"
    ):
        GroupEncoder(["race", "sex"]).fit(frame)
    with pytest.raises(MultiFairError, match="not fitted"):
        GroupEncoder(["race"]).transform(frame)
    with pytest.raises(MultiFairError, match=r"without repeats, got \['race', 'race'\]"):
        GroupEncoder(["race", "race"])
    with pytest.raises(MultiFairError, match=r"at least one column, got \[\]"):
        GroupEncoder([])


def test_categories_fix_every_combination(frame):
    categories = {"race": ["White", "Asian", "Black", "Other"], "male": [1, 0]}
    enc = GroupEncoder(["race", "male"], categories=categories)  # no fit needed
    combos = list(itertools.product(["Asian", "Black", "Other", "White"], [0, 1]))
    assert enc.num_groups == 8
    assert enc.labels == tuple(f"race={r} & male={m}" for r, m in combos)
    ids = enc.transform(frame)
    np.testing.assert_array_equal(
        ids, [combos.index((r, m)) for r, m in zip(frame["race"], frame["male"].tolist())]
    )
    assert "race=Other & male=0" in enc.labels  # a group with no sample yet
    with pytest.raises(MultiFairError, match=r"lacks attribute\(s\) \['male'\]"):
        GroupEncoder(["race", "male"], categories={"race": ["A"]})
    with pytest.raises(MultiFairError, match="unseen.*race='Martian'"):
        enc.transform({"race": ["Martian"], "male": [0]})


@pytest.mark.parametrize("categories", [None, {"race": ["Asian", "Black", "White"], "male": [0, 1]}])
def test_to_dict_from_dict_roundtrip(frame, categories):
    enc = GroupEncoder(["race", "male"], categories=categories)
    if categories is None:
        enc.fit(frame)
    plain = yaml.safe_load(yaml.safe_dump(enc.to_dict()))  # plain values only
    restored = GroupEncoder.from_dict(plain)
    assert restored.attributes == enc.attributes and restored.labels == enc.labels
    np.testing.assert_array_equal(restored.transform(frame), enc.transform(frame))
    assert repr(restored) == "GroupEncoder(attributes=['race', 'male'], num_groups=6)"
