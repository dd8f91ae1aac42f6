"""Modality-presence masks: emitted by every loader, stacked by the collate, accepted by the network."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from monai_multifair.data import (
    PRESENCE_KEY,
    FairVLMedDataset,
    ManifestDataset,
    MultimodalCollate,
    make_cohort,
)
from monai_multifair.engine import TensorBatchLoader, make_loader
from monai_multifair.errors import MultiFairError
from monai_multifair.networks import MultimodalFusionClassifier


@pytest.fixture
def manifest(tmp_path):
    """Six rows; row 1 lacks its image, row 2 its note, row 3 its vitals (both cells), row 4 has a
    whitespace note."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        np.save(tmp_path / f"{i}.npy", rng.random((5, 7)).astype(np.float32))
        rows.append(
            {
                "pid": f"p{i}",
                "fundus": "" if i == 1 else f"{i}.npy",
                "note": {2: "", 4: "   "}.get(i, f"IOP {10 + i}"),
                "age": None if i == 3 else 50.0 + i,
                "iop": None if i == 3 else 12.0 + i,
                "sex": "F" if i % 2 else "M",
                "label": i % 2,
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def _manifest(path, **extra):
    return ManifestDataset(
        path,
        images={"fundus": "fundus"},
        texts={"notes": "note"},
        tabular={"vitals": ["age", "iop"]},
        attributes=["sex"],
        id_column="pid",
        **extra,
    )


def test_manifest_blank_cells_are_missing_modalities(manifest):
    ds = _manifest(manifest)
    masks = [ds[i][PRESENCE_KEY].tolist() for i in range(len(ds))]
    assert masks == [
        [True, True, True],
        [False, True, True],
        [True, False, True],
        [True, True, False],
        [True, False, True],
        [True, True, True],
    ]
    assert ds[1]["fundus"].shape == ds[0]["fundus"].shape == (1, 5, 7) and not ds[1]["fundus"].any()
    assert ds[2]["notes"] == "" and ds[4]["notes"] == ""  # a blank cell reads as the empty note
    assert torch.equal(ds[3]["vitals"], torch.zeros(2)) and ds[0]["vitals"].tolist() == [50.0, 12.0]
    assert ds[0][PRESENCE_KEY].dtype == torch.bool


def test_manifest_partial_tabular_and_empty_rows_are_errors(manifest, tmp_path):
    frame = pd.read_csv(manifest)
    frame.loc[0, "age"] = None
    frame.to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(MultiFairError, match=r"p0: tabular column 'age' has nan; expected a finite number"):
        _manifest(tmp_path / "partial.csv")
    frame = pd.read_csv(manifest)
    frame.loc[3, "fundus"] = None
    frame.loc[3, "note"] = None
    frame.to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(MultiFairError, match=r"1 sample\(s\) have none of the modalities .* e\.g\. p3"):
        _manifest(tmp_path / "empty.csv")
    frame["fundus"] = None
    frame.to_csv(tmp_path / "nofiles.csv", index=False)
    with pytest.raises(MultiFairError, match=r"column 'fundus' \(modality 'fundus'\) names no file"):
        ManifestDataset(tmp_path / "nofiles.csv", images={"fundus": "fundus"}, attributes=["sex"])


def test_fairvlmed_empty_note_is_missing(fairvlmed_root):
    root, written = fairvlmed_root
    table = pd.read_csv(root / "data_summary.csv")
    table.loc[table.filename == "data_00002.npz", "note"] = ""
    table.to_csv(root / "data_summary.csv", index=False)
    ds = FairVLMedDataset(root, "train")
    by_name = {
        sample_id.rsplit("/", 1)[-1]: ds[i][PRESENCE_KEY].tolist() for i, sample_id in enumerate(ds.ids)
    }
    assert by_name["data_00002.npz"] == [True, False]
    assert all(mask == [True, True] for name, mask in by_name.items() if name != "data_00002.npz")


def test_in_memory_cohort_is_all_present():
    ds = make_cohort(n_patients=60, image_size=16, seed=1).dataset("train", attributes=["race"])
    assert all(ds[i][PRESENCE_KEY].all() for i in range(len(ds)))
    assert ds[0][PRESENCE_KEY].shape == (len(ds.modalities),)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_loaders_stack_the_mask_and_the_network_ignores_missing_inputs(manifest, num_workers):
    ds = _manifest(manifest)
    collate = MultimodalCollate({"notes": lambda texts: torch.tensor([[len(t) % 7 + 1] for t in texts])})
    loader = make_loader(ds, collate, batch_size=6, shuffle=False, seed=0, num_workers=num_workers)
    assert isinstance(loader, DataLoader if num_workers else TensorBatchLoader)
    batch = next(iter(loader))
    expected = torch.stack([ds[i][PRESENCE_KEY] for i in range(len(ds))])
    assert batch[PRESENCE_KEY].dtype == torch.bool and torch.equal(batch[PRESENCE_KEY], expected)

    torch.manual_seed(0)
    net = MultimodalFusionClassifier(
        {
            "fundus": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(35, 4)),
            "notes": torch.nn.Sequential(torch.nn.Embedding(8, 4), torch.nn.Flatten()),
            "vitals": torch.nn.Linear(2, 4),
        },
        num_classes=2,
        fusion_dim=8,
        num_heads=2,
        num_layers=1,
        feature_dims={"fundus": 4, "notes": 4, "vitals": 4},
    ).eval()
    assert net.modality_names == ds.modalities  # the mask's columns follow this order
    inputs = {m: batch[m] for m in ds.modalities}
    logits = net(inputs, present=batch[PRESENCE_KEY])
    # what stands in for a missing modality does not matter
    changed = dict(inputs, fundus=inputs["fundus"].clone(), vitals=inputs["vitals"].clone())
    changed["fundus"][1] = 9.0
    changed["vitals"][3] = -4.0
    assert torch.allclose(net(changed, present=batch[PRESENCE_KEY]), logits)
    assert not torch.allclose(net(changed), net(inputs))  # without the mask it would


def test_a_sample_without_any_modality_is_refused_when_it_is_read():
    """A dataset whose loader yields no modality for a sample (no file, only a blank note) that its
    load-time check did not see is refused when the sample is read, naming it: the training engine
    relies on this instead of a per-step check on the device."""
    from monai_multifair.data import MultimodalDataset

    class Notes(MultimodalDataset):
        def load_modalities(self, index):
            return {"notes": "  " if index == 1 else "IOP 12"}

    frame = pd.DataFrame({"id": ["a", "b", "c"], "label": [0, 1, 0], "sex": [0, 1, 0]})
    ds = Notes(frame, modalities={"notes": "text"}, attributes=["sex"], name="notes-only")
    assert ds[0][PRESENCE_KEY].tolist() == [True]
    with pytest.raises(MultiFairError, match=r"notes-only: b has none of the modalities \['notes'\]"):
        ds[1]
