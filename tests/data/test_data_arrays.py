"""Safe array reading: npz headers and members, pickles refused, image layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from monai_multifair.data._arrays import (
    array_to_image,
    array_to_stack,
    load_array_file,
    read_npz,
    resize_images,
    scalar_value,
    select_slices,
)
from monai_multifair.errors import MultiFairError


def test_read_npz_headers_and_values(tmp_path):
    path = tmp_path / "a.npz"
    big = np.zeros((7, 5, 3), dtype=np.float32)
    np.savez(path, big=big, label=np.int64(1), text=np.str_("hello"))
    infos, arrays = read_npz(path, load=["label", "text"], require=["big"])
    assert infos["big"].shape == (7, 5, 3) and infos["big"].dtype == np.float32
    assert set(arrays) == {"label", "text"}
    assert scalar_value(arrays["label"], key="label", source="a") == 1
    assert scalar_value(arrays["text"], key="text", source="a") == "hello"


def test_read_npz_missing_key_names_file_and_keys_present(tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, slo_fundus=np.zeros((4, 4)))
    with pytest.raises(MultiFairError, match=r"b\.npz.*lacks key\(s\) \['glaucoma'\].*slo_fundus"):
        read_npz(path, load=["glaucoma"])


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, note=np.array([{"evil": 1}], dtype=object), label=np.int64(0))
    with pytest.raises(MultiFairError, match=r"c\.npz.*'note'.*pickled object array.*allow_pickle=False"):
        read_npz(path, load=["note"])
    # headers of an object member can still be listed when it is not loaded
    infos, _ = read_npz(path, load=["label"])
    assert infos["note"].dtype.hasobject
    npy = tmp_path / "d.npy"
    np.save(npy, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(MultiFairError, match="pickled object array"):
        load_array_file(npy)


def test_not_a_zip_and_missing_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(MultiFairError, match="not a valid .npz"):
        read_npz(bad)
    with pytest.raises(MultiFairError, match="does not exist"):
        read_npz(tmp_path / "missing.npz")


def test_scalar_value_rejects_arrays():
    with pytest.raises(MultiFairError, match=r"one value, got shape \(3,\)"):
        scalar_value(np.arange(3), key="race", source="f.npz")
    assert scalar_value(np.array([2]), key="race", source="f.npz") == 2


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((6, 8), (1, 6, 8)), ((3, 6, 8), (3, 6, 8)), ((6, 8, 3), (3, 6, 8)), ((1, 6, 8), (1, 6, 8))],
)
def test_image_layouts(shape, expected):
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    image = array_to_image(array, key="k", source="s")
    assert tuple(image.shape) == expected
    if shape == (6, 8, 3):  # channel-last is transposed, not reshaped
        assert torch.equal(image[2], torch.from_numpy(array[:, :, 2]))


def test_image_wrong_shape_and_dtype():
    with pytest.raises(MultiFairError, match=r"'slo_fundus'.*got shape \(5, 6, 7\)"):
        array_to_image(np.zeros((5, 6, 7)), key="slo_fundus", source="f.npz")
    with pytest.raises(MultiFairError, match=r"got shape \(4,\)"):
        array_to_image(np.zeros(4), key="slo_fundus", source="f.npz")
    with pytest.raises(MultiFairError, match="dtype <U"):
        array_to_image(np.array([["a", "b"], ["c", "d"]]), key="slo_fundus", source="f.npz")
    with pytest.raises(MultiFairError, match=r"stack of 2D slices.*got shape \(4, 4\)"):
        array_to_stack(np.zeros((4, 4)), key="oct_bscans", source="f.npz")


def test_uint8_scaled_and_float_copied():
    image = array_to_image(np.full((2, 2), 255, dtype=np.uint8), key="k", source="s")
    assert torch.allclose(image, torch.ones(1, 2, 2))
    stored = np.zeros((1, 2, 2), dtype=np.float32)
    image = array_to_image(stored, key="k", source="s")
    image += 1
    assert stored.sum() == 0  # the sample does not alias the stored array


def test_resize_matches_interpolate_and_slices():
    x = torch.rand(2, 3, 9, 9)
    expected = F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(resize_images(x, (4, 5)), expected)
    assert torch.allclose(resize_images(x[0], (4, 5)), expected[0])
    assert resize_images(x, None) is x
    assert select_slices(200, 5, key="k", source="s").tolist() == [0, 50, 100, 149, 199]
    assert select_slices(3, None, key="k", source="s") is None
    with pytest.raises(MultiFairError, match=r"`oct_slices` <= the 3 slices"):
        select_slices(3, 4, key="k", source="s")


def test_load_array_file_formats(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(load_array_file(tmp_path / "g.png"), grey)
    np.save(tmp_path / "a.npy", grey)
    assert np.array_equal(load_array_file(tmp_path / "a.npy"), grey)
    np.savez(tmp_path / "one.npz", x=grey)
    assert np.array_equal(load_array_file(tmp_path / "one.npz"), grey)
    np.savez(tmp_path / "two.npz", x=grey, y=grey)
    with pytest.raises(MultiFairError, match="holds 2 arrays"):
        load_array_file(tmp_path / "two.npz")
    assert np.array_equal(load_array_file(tmp_path / "two.npz", "y"), grey)
    (tmp_path / "x.jpg").write_text("")
    with pytest.raises(MultiFairError, match="unsupported suffix '.jpg'"):
        load_array_file(tmp_path / "x.jpg")
