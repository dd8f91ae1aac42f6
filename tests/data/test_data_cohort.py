"""The embedded cohort: determinism, planted effects (measured), the FairVLMed round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair.data import (
    CohortSpec,
    FairVLMedDataset,
    make_cohort,
    measure_planted_effects,
    radial_profile,
)
from monai_multifair.errors import MultiFairError


@pytest.fixture(scope="module")
def default_cohort():
    return make_cohort()


def test_default_sizes_and_splits(default_cohort):
    c = default_cohort
    assert len(c.frame) == 3000 and c.images.shape == (3000, 1, 32, 32) and c.images.dtype == np.uint8
    assert c.vitals.shape == (3000, 6)
    counts = c.frame["split"].value_counts().to_dict()
    assert counts == {"train": 1800, "val": 600, "test": 600}
    fractions = c.frame["race"].value_counts(normalize=True).sort_index().to_numpy()
    assert np.allclose(fractions, [0.5, 0.3, 0.2], atol=0.03)
    assert abs(c.frame["label"].mean() - 0.4) < 0.03
    assert (c.frame[["ethnicity", "language", "maritalstatus"]] == -1).to_numpy().mean() == pytest.approx(
        0.03, abs=0.01
    )


def test_deterministic_for_a_seed():
    a, b = make_cohort(n_patients=200, seed=5), make_cohort(n_patients=200, seed=5)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.vitals, b.vitals)
    c = make_cohort(n_patients=200, seed=6)
    assert not np.array_equal(a.images, c.images) and (a.frame["note"] != c.frame["note"]).any()


def test_options_change_the_output():
    colour = make_cohort(n_patients=40, image_size=20, channels=3)
    assert colour.images.shape == (40, 3, 20, 20)
    assert colour.images[:, 0].mean() > colour.images[:, 2].mean()  # fundus tint: red above blue


def test_spec_validation():
    with pytest.raises(MultiFairError, match=r"expected `n_patients` to be an integer >= 30, got 5"):
        CohortSpec(n_patients=5)
    with pytest.raises(
        MultiFairError, match="`group_fractions` to be three non-negative numbers summing to 1"
    ):
        CohortSpec(group_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(MultiFairError, match="`image_weak_group` to be a race code"):
        CohortSpec(image_weak_group=3)
    with pytest.raises(
        MultiFairError, match=r"unknown cohort setting 'n_patient'.*did you mean 'n_patients'"
    ):
        make_cohort(n_patient=100)


def test_radial_profile_against_hand_rings():
    size = 8
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    dist = np.sqrt(axis[None] ** 2 + axis[:, None] ** 2)
    image = np.where(dist < 0.5, 1.0, 0.0)[None, None]
    profile = radial_profile(image, bins=4)[0]
    for b in range(4):
        ring = (dist >= b / 4) & (dist < (b + 1) / 4)
        assert profile[b] == pytest.approx(image[0, 0][ring].mean())


def test_planted_effects_are_measurable(default_cohort):
    effects = measure_planted_effects(default_cohort, epochs=3)
    auc = effects.group_auc
    assert list(auc.columns) == ["overall", "race=Asian", "race=Black", "race=White"]
    # 2. the image is weaker for race code 1 (Black) than for the other groups
    assert (
        auc.loc["fundus", "race=Black"]
        < min(auc.loc["fundus", "race=Asian"], auc.loc["fundus", "race=White"]) - 0.12
    )
    # 3. the notes are less informative for race code 2 (White)
    assert (
        auc.loc["notes", "race=White"]
        < min(auc.loc["notes", "race=Asian"], auc.loc["notes", "race=Black"]) - 0.25
    )
    # headroom: for the text-weak group the image alone beats the notes
    assert auc.loc["fundus", "race=White"] > auc.loc["notes", "race=White"] + 0.15
    # 1. the text learns faster: after one epoch the notes are near their best, the pixels are not
    curve = effects.learning_curve
    assert curve.loc["notes", "epoch 1"] > curve.loc["fundus", "epoch 1"] + 0.15
    assert curve.loc["notes", "epoch 1"] > auc.loc["notes", "overall"] - 0.03
    assert "| fundus |" in effects.to_markdown()


def test_effects_vanish_when_switched_off():
    auc = measure_planted_effects(
        make_cohort(image_weak_group=None, text_weak_group=None), epochs=1
    ).group_auc
    groups = ["race=Asian", "race=Black", "race=White"]
    assert auc.loc["fundus", groups].max() - auc.loc["fundus", groups].min() < 0.08
    assert auc.loc["notes", groups].max() - auc.loc["notes", groups].min() < 0.08


def test_dataset_samples(default_cohort):
    ds = default_cohort.dataset("val", modalities=None, attributes=["race", "age_band"])
    sample = ds[0]
    row = default_cohort.frame.iloc[default_cohort.split_indices("val")[0]]
    assert sample["notes"] == row.note and sample["label"] == row.label and sample["age_band"] == row.age_band
    assert (
        sample["fundus"].shape == (1, 32, 32) and sample["fundus"].min() >= 0 and sample["fundus"].max() <= 1
    )
    assert sample["vitals"][0] == row.age
    with pytest.raises(MultiFairError, match=r"unknown sensitive attribute 'sex'.*gender"):
        default_cohort.dataset("val", attributes=["sex"])
    with pytest.raises(MultiFairError, match=r"unknown value \(-1\) for attribute 'language'"):
        default_cohort.dataset("val", attributes=["language"])
    sets = default_cohort.datasets(attributes=["race", "gender"])
    assert sets["test"].group_labels == sets["train"].group_labels and len(sets["train"].group_labels) == 6


def test_fairvlmed_roundtrip(tmp_path):
    cohort = make_cohort(n_patients=90, seed=2)
    root = cohort.write_fairvlmed(tmp_path / "FairVLMed")
    assert sorted(p.name for p in root.iterdir()) == ["Test", "Training", "Validation", "data_summary.csv"]
    for split in ("train", "val", "test"):
        expected = cohort.dataset(split, modalities=None, attributes=["race", "language"], unknown="drop")
        loaded = FairVLMedDataset(
            root,
            split,
            modalities=["fundus", "notes", "tabular"],
            tabular_keys=["vitals"],
            attributes=["race", "language"],
            unknown="drop",
        )
        assert (
            len(loaded) == len(expected) and loaded.unknown_report.unknown == expected.unknown_report.unknown
        )
        assert loaded.group_labels == expected.group_labels
        for i in range(len(loaded)):
            a, b = loaded[i], expected[i]
            assert torch.equal(a["fundus"], b["fundus"])
            assert a["notes"] == b["notes"]
            assert torch.equal(a["tabular"], b["vitals"])
            assert (a["label"], a["race"], a["language"], a["group"]) == (
                b["label"],
                b["race"],
                b["language"],
                b["group"],
            )


def test_group_prevalence():
    base = make_cohort(n_patients=3000, seed=4)
    same = make_cohort(n_patients=3000, seed=4, group_prevalence=(0.4, 0.4, 0.4))
    assert np.array_equal(base.frame["label"], same.frame["label"])  # equal rates: the default cohort
    assert np.array_equal(base.images, same.images)
    skewed = make_cohort(n_patients=3000, seed=4, group_prevalence=(0.6, 0.3, 0.1))
    rates = skewed.frame.groupby("race")["label"].mean().to_numpy()
    assert np.allclose(rates, [0.6, 0.3, 0.1], atol=0.04)
    assert np.array_equal(base.frame["race"], skewed.frame["race"])
    with pytest.raises(MultiFairError, match="group_prevalence"):
        CohortSpec(group_prevalence=(0.5, 1.2, 0.1))
