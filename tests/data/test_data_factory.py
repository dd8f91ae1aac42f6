"""build_datasets from a config's data section, for each source."""

from __future__ import annotations

import pandas as pd
import pytest

from monai_multifair.config import load_config
from monai_multifair.data import build_datasets, make_cohort
from monai_multifair.errors import MultiFairError


def test_synthetic_source_matches_the_cohort():
    cfg = load_config(
        "demo", ["data.synthetic.n_patients=200", "data.attributes=[race, gender]"], check_encoders=False
    )
    sets = build_datasets(cfg)
    cohort = make_cohort(n_patients=200)
    for split, ds in sets.items():
        assert ds.ids == cohort.frame["id"].to_numpy()[cohort.split_indices(split)].tolist()
        assert ds.modalities == ("fundus", "notes") and ds.coding is sets["train"].coding


def test_fairvlmed_source_from_a_written_cohort(tmp_path):
    root = make_cohort(n_patients=120, seed=4).write_fairvlmed(tmp_path / "vlmed")
    cfg = load_config(
        "fairvlmed",
        [
            f"data.fairvlmed.root={root}",
            "data.fairvlmed.image_size=[16, 16]",
            "data.attributes=[race, language]",
        ],
        check_encoders=False,
    )
    sets = build_datasets(cfg)
    assert sets["train"][0]["fundus"].shape == (1, 16, 16)
    assert sum(len(s) + s.unknown_report.num_dropped for s in sets.values()) == 120
    assert sets["val"].group_labels == sets["train"].group_labels


def test_manifest_source_and_transforms(tmp_path):
    cohort = make_cohort(n_patients=60, seed=1)
    frame = cohort.frame[["id", "split", "note", "race", "label"]].assign(age=cohort.vitals[:, 0])
    frame.to_csv(tmp_path / "m.csv", index=False)
    cfg = load_config(
        {
            "data": {
                "source": "manifest",
                "attributes": ["race"],
                "manifest": {
                    "path": str(tmp_path / "m.csv"),
                    "texts": {"notes": "note"},
                    "tabular": {"vitals": ["age"]},
                },
                "modalities": ["notes"],
            },
            "encoders": {"notes": {"name": "bow-text"}},
        }
    )
    sets = build_datasets(cfg, transforms={"train": lambda s: {**s, "seen": True}})
    assert (
        sets["train"].modalities == ("notes",) and sets["train"][0]["seen"] and "seen" not in sets["test"][0]
    )
    assert [len(sets[s]) for s in ("train", "val", "test")] == [
        (frame.split == s).sum() for s in ("train", "val", "test")
    ]
    with pytest.raises(MultiFairError, match=r"unknown split\(s\) \['training'\]"):
        build_datasets(cfg, transforms={"training": None})


def test_group_missing_from_train_is_an_error(tmp_path):
    frame = pd.DataFrame(
        {
            "split": ["train"] * 4 + ["val", "test"],
            "note": list("abcdef"),
            "sex": ["F"] * 4 + ["M", "F"],
            "label": [0, 1] * 3,
        }
    )
    frame.to_csv(tmp_path / "m.csv", index=False)
    cfg = load_config(
        {
            "data": {
                "source": "manifest",
                "attributes": ["sex"],
                "manifest": {"path": str(tmp_path / "m.csv"), "texts": {"notes": "note"}},
            },
            "encoders": {"notes": {"name": "bow-text"}},
        }
    )
    with pytest.raises(
        MultiFairError,
        match=r"manifest\[val\]: .* row 4: attribute 'sex' has value 'M', not seen .*training split",
    ):
        build_datasets(cfg)
