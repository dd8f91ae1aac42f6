"""FairVLMed loader: notes table, npz notes, tabular keys, broken files, unknown values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair.data import FairVLMedDataset, read_notes_table
from monai_multifair.errors import MultiFairError


def test_samples_equal_what_was_written(fairvlmed_root):
    root, written = fairvlmed_root
    ds = FairVLMedDataset(root, "train", attributes=["race", "gender"])
    assert len(ds) == 6 and ds.modality_kinds == {"fundus": "image", "notes": "text"}
    for i in range(len(ds)):
        sample = ds[i]
        arrays = written[sample["id"]]
        assert torch.equal(sample["fundus"], torch.from_numpy(arrays["slo_fundus"] / 255.0).float()[None])
        assert sample["notes"] == arrays["csv_note"]
        assert sample["label"] == int(arrays["glaucoma"]) and sample["gender"] == int(arrays["gender"])
    assert ds.labels.tolist() == [int(written[p]["glaucoma"]) for p in ds.ids]


def test_note_source_npz_and_tabular_keys(fairvlmed_root):
    root, written = fairvlmed_root
    ds = FairVLMedDataset(
        root, "val", modalities=["notes", "tabular"], note_source="npz", tabular_keys=["age", "md"]
    )
    sample = ds[3]
    assert sample["notes"] == str(written[sample["id"]]["note"])
    expected = torch.tensor([written[sample["id"]]["age"], written[sample["id"]]["md"]], dtype=torch.float32)
    assert torch.equal(sample["tabular"], expected)
    with pytest.raises(MultiFairError, match="needs `tabular_keys`"):
        FairVLMedDataset(root, "val", modalities=["tabular"])
    with pytest.raises(MultiFairError, match=r"'csv' or 'npz'.*did you mean 'npz'"):
        FairVLMedDataset(root, "val", note_source="npzz")


def test_tabular_key_must_be_numeric(fairvlmed_root):
    root, _ = fairvlmed_root
    with pytest.raises(MultiFairError, match=r"tabular key 'note' to be a number"):
        FairVLMedDataset(root, "val", modalities=["tabular"], tabular_keys=["note"])


def test_notes_table_errors(fairvlmed_root):
    root, written = fairvlmed_root
    table = pd.read_csv(root / "data_summary.csv")
    assert (
        read_notes_table(root / "data_summary.csv")["data_00001.npz"]
        == written[next(iter(written))]["csv_note"]
    )
    table.rename(columns={"note": "notes"}).to_csv(root / "renamed.csv", index=False)
    with pytest.raises(MultiFairError, match=r"lacks column 'note'.*did you mean 'notes'"):
        FairVLMedDataset(root, "train", notes_file="renamed.csv")
    assert len(FairVLMedDataset(root, "train", notes_file="renamed.csv", note_column="notes")) == 6
    table[table.filename != "data_00002.npz"].to_csv(root / "data_summary.csv", index=False)
    with pytest.raises(
        MultiFairError,
        match=r"data_00002\.npz' has no note in the notes table .*data_summary\.csv'.*1 of 6 files",
    ):
        FairVLMedDataset(root, "train")
    pd.concat([table, table.iloc[:1]]).to_csv(root / "data_summary.csv", index=False)
    with pytest.raises(MultiFairError, match="lists file 'data_00001.npz' more than once"):
        FairVLMedDataset(root, "train")
    with pytest.raises(MultiFairError, match=r"notes table .*missing\.csv' does not exist"):
        FairVLMedDataset(root, "train", notes_file="missing.csv")


def test_pickled_note_refused_and_missing_label(fairvlmed_root):
    root, written = fairvlmed_root
    path = sorted(p for p in written if "Test" in p)[0]
    np.savez(path, **{**written[path], "note": np.array(["x"], dtype=object)})
    with pytest.raises(MultiFairError, match=rf"{path}.*'note' holds a pickled object array"):
        FairVLMedDataset(root, "test", note_source="npz")
    assert len(FairVLMedDataset(root, "test")) == 6  # the csv notes do not touch the npz note
    arrays = {k: v for k, v in written[path].items() if k not in ("glaucoma", "csv_note")}
    np.savez(path, **arrays)
    with pytest.raises(MultiFairError, match=rf"{path}.*lacks key\(s\) \['glaucoma'\]"):
        FairVLMedDataset(root, "test")


def test_unknown_label_is_an_error(fairvlmed_root):
    root, written = fairvlmed_root
    path = sorted(p for p in written if "Test" in p)[4]
    np.savez(path, **{k: v for k, v in written[path].items() if k != "csv_note"} | {"glaucoma": np.int64(-1)})
    message = rf"file '{path}': key 'glaucoma' has value -1; expected a class index in \[0, 2\) \(the documented values of 'glaucoma' are 0 and 1\)"
    with pytest.raises(MultiFairError, match=message):
        FairVLMedDataset(root, "test")


def test_unknown_policy_drop_is_counted(fairvlmed_root):
    root, written = fairvlmed_root
    paths = sorted(p for p in written if "Training" in p)
    np.savez(
        paths[1],
        **{k: v for k, v in written[paths[1]].items() if k != "csv_note"} | {"ethnicity": np.int64(-1)},
    )
    ds = FairVLMedDataset(root, "train", attributes=["race", "ethnicity"], unknown="drop")
    assert len(ds) == 5 and ds.unknown_report.unknown == {"race": 0, "ethnicity": 1}
    assert ds.unknown_report.dropped_ids == [paths[1]] and paths[1] not in ds.ids
    assert [ds[i]["notes"] for i in range(5)] == [written[p]["csv_note"] for p in paths if p != paths[1]]
