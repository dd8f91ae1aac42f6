"""Manifest dataset: image files, notes, tabular columns, string attributes, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from monai_multifair.data import ManifestDataset
from monai_multifair.errors import MultiFairError


@pytest.fixture
def manifest(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(8):
        grey = rng.integers(0, 256, (6, 6), dtype=np.uint8)
        if i % 3 == 0:
            Image.fromarray(grey).save(tmp_path / "img" / f"{i}.png")
            name = f"img/{i}.png"
        elif i % 3 == 1:
            np.save(tmp_path / "img" / f"{i}.npy", grey)
            name = f"img/{i}.npy"
        else:
            np.savez(tmp_path / "img" / f"{i}.npz", slo_fundus=grey, other=np.zeros(2))
            name = f"img/{i}.npz"
        np.save(tmp_path / "img" / f"oct{i}.npy", rng.random((3, 6, 6)).astype(np.float32))
        rows.append(
            {
                "pid": f"p{i}",
                "split": "train" if i < 6 else "test",
                "fundus": name,
                "oct": f"img/oct{i}.npy",
                "note": f"note {i}",
                "age": 50 + i,
                "iop": 12.5 + i,
                "sex": "F" if i % 2 else "M",
                "race": ["Black", "White", ""][i % 3],
                "label": i % 2,
                "grey": grey,
            }
        )
    frame = pd.DataFrame(rows)
    frame.drop(columns="grey").to_csv(tmp_path / "cohort.csv", index=False)
    return tmp_path / "cohort.csv", frame


def _kwargs(**extra):
    return {
        "images": {"fundus": "fundus"},
        "texts": {"notes": "note"},
        "tabular": {"vitals": ["age", "iop"]},
        "npz_keys": {"fundus": "slo_fundus"},
        "id_column": "pid",
        **extra,
    }


def test_samples_from_every_file_format(manifest):
    path, frame = manifest
    ds = ManifestDataset(path, attributes=["sex"], split="train", **_kwargs(volumes={"oct": "oct"}))
    assert len(ds) == 6 and ds.modalities == ("fundus", "oct", "notes", "vitals")
    for i in range(6):
        sample = ds[i]
        row = frame.iloc[i]
        assert sample["id"] == row.pid
        assert torch.allclose(sample["fundus"], torch.from_numpy(row.grey / 255.0).float()[None])
        assert sample["oct"].shape == (3, 1, 6, 6)
        assert sample["notes"] == row.note
        assert torch.equal(sample["vitals"], torch.tensor([row.age, row.iop], dtype=torch.float32))
        assert sample["sex"] == (0 if row.sex == "F" else 1) and sample["label"] == row.label
    assert ds.group_labels == ("sex=F", "sex=M")


def test_empty_attribute_cells_follow_the_policy(manifest):
    path, _ = manifest
    with pytest.raises(MultiFairError, match=r"p2 has an unknown value \(nan\) for attribute 'race'"):
        ManifestDataset(path, attributes=["race"], **_kwargs())
    ds = ManifestDataset(path, attributes=["race"], unknown="drop", **_kwargs())
    assert ds.ids == ["p0", "p1", "p3", "p4", "p6", "p7"] and ds.unknown_report.num_dropped == 2
    kept = ManifestDataset(path, attributes=["race", "sex"], unknown="keep", **_kwargs())
    assert "race=unknown & sex=M" in kept.group_labels and kept[2]["race"] == -1


def test_split_filter_and_shared_coding(manifest):
    path, _ = manifest
    train = ManifestDataset(path, attributes=["sex"], split="train", **_kwargs())
    test = ManifestDataset(path, attributes=["sex"], split="test", coding=train.coding, **_kwargs())
    assert test.ids == ["p6", "p7"] and [test[i]["group"] for i in range(2)] == [1, 0]
    with pytest.raises(
        MultiFairError, match=r"no rows with split='tset'.*\['test', 'train'\].*did you mean 'test'"
    ):
        ManifestDataset(path, attributes=["sex"], split="tset", **_kwargs())


def test_column_and_file_errors(manifest, tmp_path):
    path, frame = manifest
    with pytest.raises(MultiFairError, match=r"lacks text column 'notes'.*did you mean 'note'"):
        ManifestDataset(path, attributes=["sex"], **_kwargs(texts={"notes": "notes"}))
    with pytest.raises(MultiFairError, match="lacks attribute/label column 'gender'"):
        ManifestDataset(path, attributes=["gender"], **_kwargs())
    broken = frame.drop(columns="grey").copy()
    broken.loc[3, "fundus"] = "img/missing.png"
    broken.loc[5, "iop"] = np.nan
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(
        MultiFairError, match=r"p3: column 'fundus' names .*missing\.png', which does not exist"
    ):
        ManifestDataset(tmp_path / "broken.csv", attributes=["sex"], **_kwargs())
    with pytest.raises(MultiFairError, match=r"p5: tabular column 'iop' has nan; expected a finite number"):
        ManifestDataset(tmp_path / "broken.csv", attributes=["sex"], **_kwargs(images={}, npz_keys={}))
    with pytest.raises(MultiFairError, match="given twice"):
        ManifestDataset(path, attributes=["sex"], **_kwargs(texts={"fundus": "note"}))
    with pytest.raises(MultiFairError, match="at least one modality"):
        ManifestDataset(path, attributes=["sex"])


def test_dataframe_manifest_with_string_labels_is_refused(manifest):
    _, frame = manifest
    frame = frame.drop(columns="grey").assign(label=["yes", "no"] * 4)
    with pytest.raises(MultiFairError, match=r"p0 has label 'yes'; expected a class index"):
        ManifestDataset(frame, attributes=["sex"], texts={"notes": "note"}, id_column="pid")
