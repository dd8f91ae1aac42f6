"""MONAI transforms from YAML: built with MONAI's Compose, augmentation in training only, seeded, cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandFlipd, Resized, ScaleIntensityd
from torch.utils.data import DataLoader

from monai_multifair.config import load_config
from monai_multifair.data import (
    PRESENCE_KEY,
    TRANSFORM_NAMES,
    MultimodalCollate,
    build_datasets,
    build_sample_transform,
    transform_table,
)
from monai_multifair.engine import TensorBatchLoader, make_loader
from monai_multifair.engine.loaders import augmentation_seed, set_loader_epoch
from monai_multifair.errors import MultiFairError

TRANSFORMS = "pipeline.transforms={fundus: [{name: ScaleIntensityd, minv: -1.0, maxv: 1.0}, {name: Resized, spatial_size: [12, 12]}]}"
AUGMENT = (
    "pipeline.augment={fundus: [{name: RandFlipd, prob: 0.5, spatial_axis: 1}, "
    "{name: RandGaussianNoised, prob: 1.0, std: 0.05}]}"
)


def _config(*overrides: str):
    return load_config(
        "demo",
        [
            "data.synthetic.n_patients=60",
            "data.synthetic.image_size=16",
            "data.modalities=[fundus]",
            "encoders={fundus: {name: small-cnn-2d}}",
            *overrides,
        ],
    )


def test_the_table_names_monai_dictionary_transforms():
    import monai.transforms

    table = transform_table()
    assert set(table) == set(TRANSFORM_NAMES)
    assert all(table[name] is getattr(monai.transforms, name) for name in TRANSFORM_NAMES)
    assert all(issubclass(cls, monai.transforms.MapTransform) for cls in table.values())


def test_transforms_from_yaml_equal_monai_built_by_hand():
    datasets = build_datasets(_config(TRANSFORMS))
    raw = build_datasets(_config())
    by_hand = Compose(
        [ScaleIntensityd(keys="fundus", minv=-1.0, maxv=1.0), Resized(keys="fundus", spatial_size=(12, 12))]
    )
    for split in ("train", "val", "test"):
        transform = datasets[split].transform
        assert isinstance(transform, Compose)
        assert [type(t).__name__ for t in transform.transforms] == [
            "ScaleIntensityd",
            "Resized",
            "EnsureTyped",
        ]
        sample = datasets[split][3]
        expected = by_hand(raw[split][3])["fundus"].as_tensor()
        assert type(sample["fundus"]) is torch.Tensor  # no MetaTensor reaches the batches
        torch.testing.assert_close(sample["fundus"], expected)
        assert sample["fundus"].shape == (1, 12, 12)
        assert sample[PRESENCE_KEY].tolist() == [True]


def test_augmentation_only_in_training():
    datasets = build_datasets(_config(TRANSFORMS, AUGMENT))
    names = {split: [type(t).__name__ for t in datasets[split].transform.transforms] for split in datasets}
    assert names["train"] == ["ScaleIntensityd", "Resized", "RandFlipd", "RandGaussianNoised", "EnsureTyped"]
    assert names["val"] == names["test"] == ["ScaleIntensityd", "Resized", "EnsureTyped"]
    assert datasets["train"].has_random_transform and not datasets["val"].has_random_transform
    train, val = datasets["train"], datasets["val"]
    assert not torch.equal(train[0]["fundus"], train[0]["fundus"])  # fresh noise each read
    assert torch.equal(val[0]["fundus"], val[0]["fundus"])
    collate = MultimodalCollate()
    # deterministic splits are still read once into memory; augmented ones go through a DataLoader
    assert isinstance(make_loader(val, collate, batch_size=8, shuffle=False, seed=0), TensorBatchLoader)
    assert isinstance(make_loader(train, collate, batch_size=8, shuffle=True, seed=0), DataLoader)


def _epoch(datasets, *, seed: int, epoch: int, num_workers: int) -> torch.Tensor:
    loader = make_loader(
        datasets["train"], MultimodalCollate(), batch_size=8, shuffle=True, seed=seed, num_workers=num_workers
    )
    set_loader_epoch(loader, epoch)
    return torch.cat([batch["fundus"] for batch in loader])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_fixed_seed_gives_the_same_augmentation(num_workers):
    first = build_datasets(_config(AUGMENT))
    second = build_datasets(_config(AUGMENT))  # new datasets, new transform objects
    a = _epoch(first, seed=3, epoch=2, num_workers=num_workers)
    assert torch.equal(a, _epoch(second, seed=3, epoch=2, num_workers=num_workers))
    assert torch.equal(a, _epoch(first, seed=3, epoch=2, num_workers=num_workers))  # after other reads too
    assert not torch.equal(a, _epoch(first, seed=3, epoch=3, num_workers=num_workers))
    assert not torch.equal(a, _epoch(first, seed=4, epoch=2, num_workers=num_workers))


def test_augmentation_seed_is_a_function_of_seed_and_epoch():
    assert augmentation_seed(3, 2) == augmentation_seed(3, 2) != augmentation_seed(3, 1)
    assert 0 <= augmentation_seed(10**9, 10**6) < 2**32


def test_oct_stacks_get_one_flip_for_every_slice(fairvision_root):
    root, _ = fairvision_root
    flip = {"oct": [{"name": "RandFlipd", "prob": 1.0, "spatial_axis": 1}]}
    settings = [
        f"data.fairvision.root={root}",
        "data.fairvision.oct_slices=3",
        "data.fairvision.image_size=null",
    ]
    plain = build_datasets(load_config("fairvision", settings))
    flipped = build_datasets(
        load_config("fairvision", [*settings, f"pipeline.augment={flip}".replace("'", "")])
    )
    compose = flipped["train"].transform
    assert [type(t).__name__ for t in compose.transforms] == [
        "FoldSlicesd",
        "RandFlipd",
        "EnsureTyped",
        "UnfoldSlicesd",
    ]
    original, sample = plain["train"][1], flipped["train"][1]
    assert sample["oct"].shape == original["oct"].shape == (3, 1, 12, 12)
    assert torch.equal(sample["oct"], original["oct"].flip(-1))
    assert torch.equal(sample["fundus"], original["fundus"])  # the other modality untouched
    assert set(sample) == set(original)


def test_pipeline_errors_name_the_key(fairvision_root):
    with pytest.raises(MultiFairError, match=r"`pipeline\.transforms\.notes`: 'notes' is not a modality"):
        build_datasets(_config("pipeline.transforms={notes: [{name: ScaleIntensityd}]}"))
    with pytest.raises(
        MultiFairError, match=r"`pipeline\.augment\.notes`: transforms apply to image and volume.*text"
    ):
        build_sample_transform({"notes": "text"}, augment={"notes": [{"name": "RandFlipd"}]})
    with pytest.raises(
        MultiFairError, match=r"transforms of split 'train' fail on its first sample .*cubicle"
    ):
        build_datasets(
            _config("pipeline.transforms={fundus: [{name: Resized, spatial_size: [8, 8], mode: cubicle}]}")
        )
    with pytest.raises(
        MultiFairError, match=r"turn image 'fundus' .* into shape \(1, 8, 8, 8\); expected 3 dim"
    ):
        build_datasets(_config("pipeline.transforms={fundus: [{name: Resized, spatial_size: [8, 8, 8]}]}"))
    with pytest.raises(
        MultiFairError,
        match=r"`pipeline\.augment\.fundus\[0\]\.prb`: not an argument of MONAI's RandFlipd.*'prob'",
    ):
        _config("pipeline.augment={fundus: [{name: RandFlipd, prb: 0.5}]}")
    with pytest.raises(MultiFairError, match=r"RandFlipd is a random transform.*`pipeline\.augment`"):
        _config("pipeline.transforms={fundus: [{name: RandFlipd}]}")
    with pytest.raises(
        MultiFairError, match=r"`pipeline\.cache_dir`: required when pipeline\.cache is 'disk'"
    ):
        _config("pipeline.cache=disk")
    with pytest.raises(MultiFairError, match=r"`transforms` and the config's `pipeline"):
        build_datasets(_config(AUGMENT), transforms={"train": RandFlipd(keys="fundus")})


def test_memory_cache_holds_the_deterministic_part(monkeypatch):
    plain = build_datasets(_config(TRANSFORMS))
    cached = build_datasets(_config(TRANSFORMS, "pipeline.cache=memory"))
    assert cached["train"].cache_mode == "memory"
    reads = []
    original = type(cached["train"]).load_modalities
    monkeypatch.setattr(
        type(cached["train"]), "load_modalities", lambda self, i: reads.append(i) or original(self, i)
    )
    for i in (0, 5, 0):
        torch.testing.assert_close(cached["train"][i]["fundus"], plain["train"][i]["fundus"])
    assert [i for i in reads if i in (0, 5)] == [0, 5, 0]  # only the uncached reads (plain) load
    augmented = build_datasets(_config(TRANSFORMS, AUGMENT, "pipeline.cache=memory"))["train"]
    assert not torch.equal(augmented[0]["fundus"], augmented[0]["fundus"])  # random steps still run


def test_disk_cache_is_reused_and_keyed_by_the_settings(tmp_path, fairvision_root):
    root, _ = fairvision_root
    base = [
        f"data.fairvision.root={root}",
        "data.fairvision.oct_slices=2",
        "pipeline.cache=disk",
        f"pipeline.cache_dir={tmp_path / 'c'}",
        "data.fairvision.image_size=null",
    ]
    first = build_datasets(load_config("fairvision", base))
    expected = [first["val"][i]["oct"] for i in range(len(first["val"]))]
    folders = sorted(p for p in (tmp_path / "c").iterdir())
    assert len(folders) == 3 and all(len(list(f.glob("*.pt"))) <= 6 for f in folders)
    val_folder = next(f for f in folders if len(list(f.glob("*.pt"))) == 6)
    again = build_datasets(load_config("fairvision", base))
    for i, tensor in enumerate(expected):
        assert torch.equal(again["val"][i]["oct"], tensor)
    assert sorted((tmp_path / "c").iterdir()) == folders and len(list(val_folder.glob("*.pt"))) == 6
    other = build_datasets(load_config("fairvision", [*base, "data.fairvision.oct_slices=3"]))
    assert other["val"][0]["oct"].shape[0] == 3  # another setting, another folder, never a stale file
    assert len(list((tmp_path / "c").iterdir())) == 6


def test_pin_memory_is_ignored_without_cuda():
    datasets = build_datasets(_config())
    loader = make_loader(
        datasets["val"], MultimodalCollate(), batch_size=4, shuffle=False, seed=0, pin_memory=True
    )
    assert loader.pin_memory is torch.cuda.is_available()
    assert np.isfinite(next(iter(loader))["fundus"].numpy()).all()
