"""Engine loaders: per-(seed, epoch) shuffling, in-memory batches equal to collated samples, DataLoader path."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from monai_multifair.data import ManifestDataset, MultimodalCollate, make_cohort
from monai_multifair.engine import EpochSampler, TensorBatchLoader, epoch_permutation, make_loader
from monai_multifair.engine.loaders import set_loader_epoch
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import create_encoder


@pytest.fixture(scope="module")
def cohort_split():
    dataset = make_cohort(n_patients=120, image_size=16, seed=5).dataset("train", attributes=["race"])
    encoder = create_encoder("bow-text", vocab_size=256, embedding_dim=4, max_length=24)
    return dataset, MultimodalCollate({"notes": encoder})


def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    a = epoch_permutation(50, seed=3, epoch=2)
    assert sorted(a.tolist()) == list(range(50))
    assert torch.equal(a, epoch_permutation(50, seed=3, epoch=2))
    assert not torch.equal(a, epoch_permutation(50, seed=3, epoch=3))
    assert not torch.equal(a, epoch_permutation(50, seed=4, epoch=2))


def test_in_memory_batches_equal_the_collated_samples(cohort_split):
    dataset, collate = cohort_split
    loader = make_loader(dataset, collate, batch_size=16, shuffle=True, seed=7)
    assert isinstance(loader, TensorBatchLoader) and len(loader) == -(-len(dataset) // 16)
    set_loader_epoch(loader, 4)
    order = epoch_permutation(len(dataset), 7, 4).tolist()
    batches = list(loader)
    assert [len(b["id"]) for b in batches] == [16] * (len(dataset) // 16) + [len(dataset) % 16]
    seen = [i for b in batches for i in b["id"]]
    assert seen == [dataset.ids[i] for i in order]  # each sample once, in the epoch's order
    expected = collate([dataset[i] for i in order[16:32]])
    for key in ("fundus", "notes", "label", "group", "race"):
        assert torch.equal(batches[1][key], expected[key]), key
    set_loader_epoch(loader, 5)
    assert [i for b in loader for i in b["id"]] != seen


def test_unshuffled_loader_keeps_the_dataset_order(cohort_split):
    dataset, collate = cohort_split
    loader = make_loader(dataset, collate, batch_size=50, shuffle=False, seed=0)
    set_loader_epoch(loader, 9)
    assert [i for b in loader for i in b["id"]] == dataset.ids


def test_file_dataset_with_workers_uses_a_dataloader_with_the_same_order(tmp_path):
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(20)], "x": range(20), "y": range(20, 40), "sex": ["F", "M"] * 10}
    )
    frame["label"] = [i % 2 for i in range(20)]
    frame.to_csv(tmp_path / "m.csv", index=False)
    dataset = ManifestDataset(
        tmp_path / "m.csv", tabular={"t": ["x", "y"]}, attributes=["sex"], split=None, id_column="id"
    )
    collate = MultimodalCollate()
    loader = make_loader(dataset, collate, batch_size=6, shuffle=True, seed=2, num_workers=1)
    assert isinstance(loader, DataLoader) and isinstance(loader.sampler, EpochSampler)
    set_loader_epoch(loader, 3)
    ids = [i for b in loader for i in b["id"]]
    assert ids == [f"r{i}" for i in epoch_permutation(20, 2, 3).tolist()]
    in_memory = make_loader(dataset, collate, batch_size=6, shuffle=True, seed=2, num_workers=0)
    assert isinstance(in_memory, TensorBatchLoader)
    set_loader_epoch(in_memory, 3)
    batches = list(in_memory)
    assert [i for b in batches for i in b["id"]] == ids
    assert batches[0]["t"].tolist() == [[float(int(i[1:])), float(int(i[1:]) + 20)] for i in ids[:6]]


def test_bad_arguments():
    with pytest.raises(MultiFairError, match=r"`batch_size` to be an integer >= 1, got 0"):
        TensorBatchLoader({"x": torch.zeros(3)}, batch_size=0)
    with pytest.raises(MultiFairError, match="same number of samples"):
        TensorBatchLoader({"x": torch.zeros(3), "y": [1, 2]}, batch_size=2)
