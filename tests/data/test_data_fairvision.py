"""FairVision loader on generated files, including broken ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_multifair.data import FairVisionDataset
from monai_multifair.errors import MultiFairError


def test_samples_equal_what_was_written(fairvision_root):
    root, written = fairvision_root
    ds = FairVisionDataset(root, "train", attributes=["race", "male"])
    assert len(ds) == 6 and ds.modalities == ("fundus", "oct")
    for i in range(len(ds)):
        sample = ds[i]
        arrays = written[sample["id"]]
        assert torch.equal(sample["fundus"], torch.from_numpy(arrays["slo_fundus"] / 255.0).float()[None])
        assert sample["oct"].shape == (5, 1, 12, 12)
        assert torch.allclose(sample["oct"][:, 0], torch.from_numpy(arrays["oct_bscans"] / 255.0).float())
        assert sample["label"] == int(arrays["glaucoma"])
        assert sample["race"] == int(arrays["race"]) and sample["male"] == int(arrays["male"])
        names = {0: "Asian", 1: "Black", 2: "White"}
        expected = f"race={names[sample['race']]} & male={'male' if sample['male'] else 'female'}"
        assert ds.group_labels[sample["group"]] == expected
    assert ds.sensitive_features.shape == (6, 2)


def test_modalities_resize_and_slices(fairvision_root):
    root, written = fairvision_root
    ds = FairVisionDataset(root, "val", modalities=["oct"], image_size=(6, 6), oct_slices=3)
    sample = ds[0]
    assert set(sample) == {"oct", "label", "race", "group", "id", "present"}
    assert sample["present"].tolist() == [True]
    raw = torch.from_numpy(written[sample["id"]]["oct_bscans"] / 255.0).float()[[0, 2, 4]][:, None]
    expected = F.interpolate(raw, size=(6, 6), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(sample["oct"], expected)
    with pytest.raises(MultiFairError, match=r"unknown modality 'octt'.*did you mean 'oct'"):
        FairVisionDataset(root, "val", modalities=["octt"])
    with pytest.raises(MultiFairError, match=r"unknown sensitive attribute 'gender'.*FairVision.*male"):
        FairVisionDataset(root, "val", attributes=["gender"])


def test_shared_coding_across_splits(fairvision_root):
    root, _ = fairvision_root
    train = FairVisionDataset(root, "train", modalities=["fundus"])
    test = FairVisionDataset(root, "Test", modalities=["fundus"], coding=train.coding)
    assert test.group_labels == train.group_labels
    assert all(
        test.group_labels[test[i]["group"]].endswith(("Asian", "Black", "White")) for i in range(len(test))
    )


def test_missing_split_folder_lists_what_exists(tmp_path, fairvision_root):
    root, _ = fairvision_root
    with pytest.raises(MultiFairError, match=r"no folder for split 'valid'.*Training"):
        FairVisionDataset(root, "valid")
    with pytest.raises(MultiFairError, match="is not a directory"):
        FairVisionDataset(tmp_path / "nowhere", "train")


def test_missing_key_names_file(fairvision_root):
    root, written = fairvision_root
    path = sorted(p for p in written if "Validation" in p)[2]
    arrays = dict(written[path])
    del arrays["glaucoma"]
    np.savez(path, **arrays)
    with pytest.raises(MultiFairError, match=rf"{path}.*lacks key\(s\) \['glaucoma'\]"):
        FairVisionDataset(root, "val")


def test_a_subject_without_oct_is_a_sample_lacking_that_modality(fairvision_root):
    root, written = fairvision_root
    path = sorted(p for p in written if "Validation" in p)[2]
    arrays = dict(written[path])
    del arrays["oct_bscans"]
    np.savez(path, **arrays)
    ds = FairVisionDataset(root, "val", oct_slices=3)
    masks = {ds[i]["id"]: ds[i]["present"].tolist() for i in range(len(ds))}
    assert masks[path] == [True, False] and all(m == [True, True] for k, m in masks.items() if k != path)
    sample = ds[ds.ids.index(path)]
    assert torch.equal(sample["oct"], torch.zeros(3, 1, 12, 12))  # the shape the other subjects have
    assert torch.equal(sample["fundus"], torch.from_numpy(arrays["slo_fundus"] / 255.0).float()[None])
    assert len(FairVisionDataset(root, "val", modalities=["fundus"])) == 6


def test_a_key_no_file_holds_and_a_subject_with_nothing_are_errors(fairvision_root):
    root, written = fairvision_root
    for path in (p for p in written if "Test" in p):
        arrays = dict(written[path])
        del arrays["oct_bscans"]
        np.savez(path, **arrays)
    with pytest.raises(MultiFairError, match=r"FairVision\[test\]: no file holds key 'oct_bscans'"):
        FairVisionDataset(root, "test")
    with pytest.raises(MultiFairError, match=r"1 sample\(s\) have none of the modalities \['oct'\]"):
        path = sorted(p for p in written if "Validation" in p)[0]
        np.savez(path, **{k: v for k, v in written[path].items() if k != "oct_bscans"})
        FairVisionDataset(root, "val", modalities=["oct"])


def test_wrong_shape_and_inconsistent_shape(fairvision_root):
    root, written = fairvision_root
    path = sorted(p for p in written if "Test" in p)[1]
    np.savez(path, **{**written[path], "slo_fundus": np.zeros((2, 12, 12, 5), dtype=np.uint8)})
    with pytest.raises(MultiFairError, match=rf"{path}.*'slo_fundus'.*got shape \(2, 12, 12, 5\)"):
        FairVisionDataset(root, "test", modalities=["fundus"])
    np.savez(path, **{**written[path], "slo_fundus": np.zeros((9, 9), dtype=np.uint8)})
    with pytest.raises(MultiFairError, match=r"shape \(1, 9, 9\).*gives \(1, 12, 12\).*image_size"):
        FairVisionDataset(root, "test", modalities=["fundus"])
    assert FairVisionDataset(root, "test", modalities=["fundus"], image_size=(8, 8))[1]["fundus"].shape == (
        1,
        8,
        8,
    )


def test_attribute_not_scalar_and_pickled_attribute(fairvision_root):
    root, written = fairvision_root
    path = sorted(p for p in written if "Training" in p)[0]
    np.savez(path, **{**written[path], "race": np.array([0, 1])})
    with pytest.raises(MultiFairError, match=rf"{path}.*'race' to hold one value"):
        FairVisionDataset(root, "train")
    np.savez(path, **{**written[path], "race": np.array([0], dtype=object)})
    with pytest.raises(MultiFairError, match=rf"{path}.*'race' holds a pickled object array"):
        FairVisionDataset(root, "train")


def test_unknown_values_policy(fairvision_root):
    root, written = fairvision_root
    paths = sorted(p for p in written if "Training" in p)
    for path in paths[:2]:
        np.savez(path, **{**written[path], "language": np.int64(-1)})
    with pytest.raises(MultiFairError, match=r"unknown value \(-1\) for attribute 'language'.*2 of 6"):
        FairVisionDataset(root, "train", attributes=["language"])
    dropped = FairVisionDataset(root, "train", attributes=["language"], unknown="drop")
    assert len(dropped) == 4 and dropped.unknown_report.dropped_ids == paths[:2]
    kept = FairVisionDataset(root, "train", attributes=["language"], unknown="keep")
    assert len(kept) == 6 and "language=unknown" in kept.group_labels
    assert [kept[i]["language"] for i in range(2)] == [-1, -1]
    assert len(FairVisionDataset(root, "train", attributes=["race"])) == 6  # language not selected
