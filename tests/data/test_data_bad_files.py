"""Bad data files: every message names the file, the key and the value, at load time."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monai_multifair.config import load_config
from monai_multifair.data import FairVisionDataset, FairVLMedDataset, ManifestDataset, build_datasets
from monai_multifair.data._arrays import load_array_file, read_npz
from monai_multifair.errors import MultiFairError


def _rewrite(path: str, written: dict, **changes) -> None:
    arrays = {k: v for k, v in written[path].items() if k != "csv_note"}
    np.savez(path, **{**arrays, **changes})


def _files(written: dict, folder: str) -> list[str]:
    return sorted(p for p in written if f"/{folder}/" in p)


def test_a_label_outside_the_documented_classes_names_the_file(fairvision_root):
    root, written = fairvision_root
    path = _files(written, "Training")[3]
    _rewrite(path, written, glaucoma=np.int64(2))
    message = (
        f"file '{path}': key 'glaucoma' has value 2; expected a class index in [0, 2) "
        "(the documented values of 'glaucoma' are 0 and 1)"
    )
    with pytest.raises(MultiFairError) as info:
        FairVisionDataset(root, "train")
    assert str(info.value) == message


def test_declared_classes_can_be_given_for_other_label_keys(fairvision_root):
    root, written = fairvision_root
    for path in _files(written, "Training"):
        _rewrite(path, written, amd=np.int64(int(written[path]["race"])))  # 0, 1, 2
    assert FairVisionDataset(root, "train", label_key="amd").num_classes == 3
    assert FairVisionDataset(root, "train", label_key="amd", num_classes=4).num_classes == 4
    with pytest.raises(MultiFairError, match=r"key 'amd' has value 2; expected a class index in \[0, 2\)$"):
        FairVisionDataset(root, "train", label_key="amd", num_classes=2)


def test_validation_labels_must_be_training_classes(tmp_path):
    rows = [{"split": s, "label": lab, "race": r, "age": 50} for s, lab, r in (
        ("train", 0, "A"), ("train", 1, "B"), ("train", 0, "B"), ("train", 1, "A"),
        ("val", 0, "A"), ("val", 2, "B"), ("test", 1, "A"), ("test", 0, "B"),
    )]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    cfg = load_config(
        {
            "data": {
                "source": "manifest",
                "manifest": {"path": str(tmp_path / "m.csv"), "tabular": {"vitals": ["age"]}},
            },
            "encoders": {"vitals": {"name": "tabular-mlp", "options": {"in_features": 1}}},
        }
    )
    with pytest.raises(MultiFairError) as info:
        build_datasets(cfg)
    assert str(info.value) == (
        f"manifest[val]: {tmp_path / 'm.csv'} row 5 has label 2, a class the training split does not have "
        "(its classes: 0 to 1); 1 of 2 sample(s) are affected"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(np.str_("1"), "text value '1'"), (np.float64(1.5), "value 1.5"), (np.int64(7), "value 7")],
)
def test_attribute_values_are_checked_per_file(fairvision_root, value, shown):
    # a training file with race=1.5 (or '1', or 7) is named itself, not blamed on a validation file
    root, written = fairvision_root
    path = _files(written, "Training")[2]
    _rewrite(path, written, race=value)
    with pytest.raises(MultiFairError) as info:
        FairVisionDataset(root, "train")
    assert str(info.value) == (
        f"file '{path}': key 'race' has {shown}; expected an integer code: 0 (Asian), 1 (Black), "
        "2 (White), or -1 (unknown)"
    )


def test_nan_tabular_value_names_file_key_and_value(fairvlmed_root):
    root, written = fairvlmed_root
    path = _files(written, "Validation")[1]
    _rewrite(path, written, md=np.array([1.0, np.inf]))
    with pytest.raises(MultiFairError) as info:
        FairVLMedDataset(root, "val", modalities=["tabular"], tabular_keys=["age", "md"])
    assert str(info.value) == (
        f"file '{path}': key 'md' holds inf at index [1] (1 NaN/inf value(s)); expected finite tabular values"
    )


def test_nan_image_is_named_when_the_image_is_loaded(fairvision_root):
    root, written = fairvision_root
    path = _files(written, "Test")[0]
    fundus = written[path]["slo_fundus"].astype(np.float32) / 255
    fundus[3, 4] = np.nan
    _rewrite(path, written, slo_fundus=fundus)
    ds = FairVisionDataset(root, "test", modalities=["fundus"])
    with pytest.raises(MultiFairError) as info:
        ds[ds.ids.index(path)]
    assert str(info.value) == (
        f"file '{path}': key 'slo_fundus' holds nan at index [3, 4] (1 NaN/inf value(s)); expected finite image values"
    )


def test_image_values_beyond_float32_are_named(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.full((4, 4), 1e300))
    from monai_multifair.data._arrays import array_to_image

    with pytest.raises(
        MultiFairError,
        match=r"key '.npy' holds inf at index \[0, 0\] \(16 NaN/inf value\(s\)\); expected finite values within float32's range",
    ):
        array_to_image(load_array_file(path), key=".npy", source=str(path))


def _corrupt_member(path: Path, key: str) -> None:
    """Flip bytes in the middle of a compressed member's data (its CRC or deflate stream breaks)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def test_corrupt_member_names_file_and_key(tmp_path):
    path = tmp_path / "data_00001.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(path, slo_fundus=rng.integers(0, 256, (64, 64), dtype=np.uint8), glaucoma=np.int64(1))
    _corrupt_member(path, "slo_fundus")
    with pytest.raises(MultiFairError) as info:
        read_npz(path, load=["slo_fundus"])
    message = str(info.value)
    assert message.startswith(f"file '{path}': key 'slo_fundus' is corrupt or truncated (")
    assert "BadZipFile" in message or "error" in message  # a CRC mismatch or a zlib error
    assert "\n" not in message


def test_short_member_data_names_file_and_key(tmp_path):
    # the header promises 100 values, the member holds 10: "short npz data"
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (100,)})
    buffer.write(np.zeros(10).tobytes())
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("glaucoma.npy", buffer.getvalue())
    with pytest.raises(
        MultiFairError, match=rf"^file '{path}': key 'glaucoma' is corrupt or truncated \(ValueError: "
    ):
        read_npz(path, load=["glaucoma"])


def test_truncated_archive_and_folder_named_npz(fairvision_root):
    root, written = fairvision_root
    path = Path(_files(written, "Training")[0])
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        MultiFairError, match=rf"^file '{path}' is not a valid .npz archive \(not a zip file\)$"
    ):
        FairVisionDataset(root, "train")
    path.unlink()
    path.mkdir()
    with pytest.raises(MultiFairError, match=rf"^file '{path}' is a folder, not an .npz archive$"):
        FairVisionDataset(root, "train")


def test_broken_npy_and_png_files_are_named(tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((8, 8)))
    npy.write_bytes(npy.read_bytes()[:100])
    with pytest.raises(MultiFairError, match=rf"^file '{npy}' is not a valid .npy file"):
        load_array_file(npy)
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(MultiFairError, match=rf"^file '{png}' is not a valid .png image"):
        load_array_file(png)
    folder = tmp_path / "scan.npy"
    folder.mkdir()
    with pytest.raises(MultiFairError, match=rf"^file '{folder}' is a folder, not a .npy file$"):
        load_array_file(folder)


def test_manifest_attribute_fraction_and_header_only_file(tmp_path):
    frame = pd.DataFrame({"label": [0, 1, 0], "race": [1.0, 1.5, 2.0], "age": [50, 60, 70]})
    with pytest.raises(MultiFairError) as info:
        ManifestDataset(frame, tabular={"vitals": ["age"]}, attributes=["race"])
    assert str(info.value) == (
        "manifest: <DataFrame> row 1: attribute 'race' has value 1.5; expected an integer code or a text category"
    )
    csv = tmp_path / "manifest.csv"
    csv.write_text("label,race,age\n")
    with pytest.raises(MultiFairError) as info:
        ManifestDataset(csv, tabular={"vitals": ["age"]}, attributes=["race"])
    assert str(info.value) == f"manifest {str(csv)!r} has a header (label, race, age) but no rows"


def test_true_false_attributes_stay_categories():
    frame = pd.DataFrame({"label": [0, 1, 0, 1], "smoker": [True, False, True, False], "age": [1, 2, 3, 4]})
    ds = ManifestDataset(frame, tabular={"vitals": ["age"]}, attributes=["smoker"])
    assert ds.group_labels == ("smoker=False", "smoker=True")


def test_images_of_another_size_are_resized_with_one_warning_naming_the_first(fairvision_root, caplog):
    root, written = fairvision_root  # 12x12 images, 5-slice 12x12 volumes
    files = _files(written, "Training")
    _rewrite(files[2], written, slo_fundus=np.zeros((10, 32), np.uint8))
    _rewrite(files[4], written, slo_fundus=np.zeros((12, 7), np.uint8))
    _rewrite(files[1], written, oct_bscans=np.zeros((9, 12, 12), np.uint8))  # other slice count: not a size
    with caplog.at_level("WARNING", logger="monai_multifair.data.npz_dataset"):
        train = FairVisionDataset(root, "train", image_size=(16, 16), oct_slices=3)
        FairVisionDataset(root, "val", image_size=(16, 16), oct_slices=3)
    assert [r.getMessage() for r in caplog.records] == [
        f"FairVision[train]: 2 of 6 file(s) store key 'slo_fundus' (fundus) at another size (H, W) than the "
        f"4 others' (12, 12), the first '{files[2]}' at (10, 32); every image is resized to `image_size` "
        "[16, 16], which distorts these (check those files)"
    ]
    assert tuple(train[2]["fundus"].shape) == (1, 16, 16)  # resized as configured
    with pytest.raises(
        MultiFairError, match=r"gives a fundus of shape \(1, 10, 32\), but .* set `image_size`"
    ):
        FairVisionDataset(root, "train", modalities=["fundus"])  # without image_size: an error, as before
