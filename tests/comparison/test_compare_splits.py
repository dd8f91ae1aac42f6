"""A user's manifest through ``compare``: fixed split, re-drawn hold-out, k-fold; what varies is stated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_compare import Recorder  # wraps engine.train, records each run's splits

from monai_multifair.cli import main
from monai_multifair.comparison import CompareConfig, compare
from monai_multifair.comparison import tasks as task_module
from monai_multifair.comparison.statistics import corrected_resampled_t_interval, t_interval
from monai_multifair.config import load_config
from monai_multifair.data import build_datasets
from monai_multifair.errors import MultiFairError


def write_manifest(folder: Path, run_config, n: int = 240, seed: int = 0) -> Path:
    """A tabular manifest (two blocks on very different scales, race groups) and its run config
    (``run_config``: the ``tabular_run_config`` fixture)."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["Asian", "Black", "White"], size=n, p=[0.3, 0.3, 0.4])
    labs = rng.normal(size=(n, 3)) * [1.0, 50.0, 0.01] + [0.0, 300.0, 1.0]
    history = rng.normal(size=(n, 2)) * [10.0, 1.0]
    logit = labs[:, 0] + (labs[:, 1] - 300.0) / 50.0 + history[:, 1] + 0.5 * (race == "Black")
    label = (logit + rng.normal(size=n) > 0).astype(int)
    frame = pd.DataFrame({"id": [f"p{i:03d}" for i in range(n)], "race": race, "label": label})
    for j in range(3):
        frame[f"lab{j}"] = labs[:, j]
    for j in range(2):
        frame[f"hist{j}"] = history[:, j]
    frame["split"] = np.where(np.arange(n) % 5 == 0, "test", np.where(np.arange(n) % 5 == 1, "val", "train"))
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "cohort.csv", index=False)
    data = {
        "source": "manifest",
        "attributes": ["race"],
        "manifest": {
            "path": str(folder / "cohort.csv"),
            "tabular": {"labs": ["lab0", "lab1", "lab2"], "history": ["hist0", "hist1"]},
            "id_column": "id",
        },
    }
    config = run_config(data, {"labs": 3, "history": 2})
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_manifest_tabular_columns_are_standardised_with_the_training_split(
    tmp_path: Path, tabular_run_config
) -> None:
    path = write_manifest(tmp_path, tabular_run_config)
    frame = pd.read_csv(tmp_path / "cohort.csv")
    sets = build_datasets(load_config(path))
    train_rows = frame[frame["split"] == "train"]
    mean, std = train_rows[["lab0", "lab1", "lab2"]].mean(), train_rows[["lab0", "lab1", "lab2"]].std(ddof=0)
    for split in ("train", "val", "test"):
        rows = frame[frame["split"] == split]
        expected = ((rows[["lab0", "lab1", "lab2"]] - mean) / std).to_numpy(np.float32)
        got = np.stack([sets[split][i]["labs"].numpy() for i in range(len(sets[split]))])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert sets["train"].tabular_scaling["labs"][0] == pytest.approx(mean.to_numpy())
    raw = build_datasets(load_config(path, ["data.manifest.standardize=false"]))
    assert raw["test"][0]["labs"].numpy()[1] == pytest.approx(frame[frame["split"] == "test"]["lab1"].iloc[0])
    # the run folder's config records the setting
    assert load_config(path).data.to_section()["manifest"]["standardize"] is True


def test_holdout_redraws_the_split_with_each_seed_and_tuning_never_sees_its_test_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tabular_run_config
) -> None:
    path = write_manifest(tmp_path, tabular_run_config)
    entry = {"name": "mine", "config": str(path), "protocol": "holdout"}
    config = CompareConfig.from_dict(
        {"methods": ["erm", "groupdro"], "datasets": [entry], "seeds": 2, "trials": 1}
    )
    recorder = Recorder(monkeypatch)
    compare(config, tmp_path / "out", progress=False, log=lambda line: None)
    finals = [c for c in recorder.calls if c["final_split"] == "test"]
    tests = {c["config"].trainer.seed: frozenset(c["ids"]["test"]) for c in finals}
    assert len(tests) == 2 and tests[1] != tests[2]  # a new test split per seed
    for call in recorder.calls:  # every run: train, val and test are disjoint and cover the manifest
        full = build_datasets(call["config"])
        parts = [set(full[s].ids) for s in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert sum(map(len, parts)) == 240
    (tuning,) = [c for c in recorder.calls if c["final_split"] == "val"]
    assert tuning["splits"] == ["train", "val"]
    unseen = set(build_datasets(tuning["config"])["test"].ids)
    assert unseen and not unseen & (tuning["ids"]["train"] | tuning["ids"]["val"])
    # the fixed split of the same manifest keeps its test rows whatever the seed
    fixed = [load_config(path, [f"trainer.seed={seed}"]) for seed in (1, 2)]
    assert build_datasets(fixed[0])["test"].ids == build_datasets(fixed[1])["test"].ids


def test_the_leaderboard_says_what_varies_and_redrawn_splits_get_the_corrected_interval(
    tmp_path: Path, tabular_run_config
) -> None:
    path = write_manifest(tmp_path, tabular_run_config)
    results = {}
    for protocol in ("seeds", "holdout"):
        entry = {"name": "mine", "config": str(path), "protocol": protocol}
        config = CompareConfig.from_dict({"methods": ["erm"], "datasets": [entry], "seeds": 5, "trials": 1})
        results[protocol] = compare(config, tmp_path / protocol, progress=False, log=lambda line: None)
    fixed, redrawn = (results[p]["datasets"]["mine"] for p in ("seeds", "holdout"))
    assert fixed["varies"].startswith("the training seed only; the data split is fixed")
    assert redrawn["varies"].startswith("the data split varies: each run a new stratified hold-out")
    markdown = (tmp_path / "holdout" / "leaderboard.md").read_text(encoding="utf-8")
    assert "corrected resampled t intervals" in markdown and "the data split varies" in markdown
    assert "the training seed only" in (tmp_path / "seeds" / "leaderboard.md").read_text(encoding="utf-8")
    # the intervals are the oracle's: Student-t over seeds, corrected resampled t over re-drawn splits
    ratio = 0.2 / (0.8 * 0.8)  # test 0.2; train = 0.8 of the rest of 0.8
    for protocol, interval in (("seeds", t_interval), ("holdout", None)):
        rows = [json.loads(line) for line in (tmp_path / protocol / "runs.jsonl").read_text().splitlines()]
        values = [r["metrics"]["auc"] for r in sorted(rows, key=lambda r: r["seed"]) if r["phase"] == "final"]
        arm = results[protocol]["datasets"]["mine"]["arms"]["erm"]["auc"]
        expected = t_interval(values) if interval else corrected_resampled_t_interval(values, ratio)
        assert (arm["low"], arm["high"]) == pytest.approx((expected["low"], expected["high"]))
    widths = {p: results[p]["datasets"]["mine"]["arms"]["erm"]["auc"] for p in results}
    assert (
        widths["holdout"]["high"] - widths["holdout"]["low"]
        > widths["seeds"]["high"] - widths["seeds"]["low"]
    )


def test_cv_on_a_manifest_and_a_run_config_given_as_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture, tabular_run_config
) -> None:
    path = write_manifest(tmp_path, tabular_run_config)
    entry = {"name": "mine", "config": str(path), "protocol": "cv", "folds": 3}
    config = CompareConfig.from_dict({"methods": ["erm"], "datasets": [entry], "seeds": 3})
    document = task_module.dataset_document(config.datasets[0], False)
    runs = [
        task_module.run_document(
            document, "erm", {}, task_module.seed_settings(config.datasets[0], "final", k), config.datasets[0]
        )
        for k in range(3)
    ]
    tests = [set(build_datasets(r)["test"].ids) for r in runs]
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])  # the 3 folds
    assert sum(map(len, tests)) == 240
    # `--datasets PATH.yaml` takes a run config directly (named after its file)
    assert (
        main(
            [
                "compare",
                "--datasets",
                str(path),
                "--methods",
                "erm",
                "--seeds",
                "2",
                "--output",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert "Data set `manifest`" in (tmp_path / "cli" / "leaderboard.md").read_text(encoding="utf-8")


def test_protocols_that_re_split_need_a_source_that_can(tmp_path: Path) -> None:
    entry = {"name": "cohort", "config": "demo-quick", "protocol": "holdout"}
    config = CompareConfig.from_dict({"methods": ["erm"], "datasets": [entry], "seeds": 2})
    document = task_module.dataset_document(config.datasets[0], False)
    with pytest.raises(
        MultiFairError, match=r"protocol 'holdout' re-splits the rows, but data.source 'synthetic' cannot"
    ):
        task_module.run_document(
            document, "erm", {}, task_module.seed_settings(config.datasets[0], "final", 0), config.datasets[0]
        )
    with pytest.raises(MultiFairError, match=r"unknown suite data set 'my'.*give its YAML path"):
        CompareConfig.from_dict({"methods": ["erm"], "datasets": ["my"]})
    with pytest.raises(MultiFairError, match=r"expected one of 'seeds', 'cv', 'holdout', got 'holdot'"):
        CompareConfig.from_dict({"methods": ["erm"], "datasets": [{**entry, "protocol": "holdot"}]})
