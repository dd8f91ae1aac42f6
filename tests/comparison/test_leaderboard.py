"""The leaderboard's statistics on hand-made run stores: intervals in range, marks only with enough seeds,
descriptions from what ran, the cost column, and the first paragraph's advice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from monai_multifair.comparison import MIN_SEEDS, SUITE, CompareConfig, RunStore
from monai_multifair.comparison.leaderboard import summarize, to_html, to_markdown
from monai_multifair.comparison.runner import ArmPlan

METRICS = ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")


def _config(datasets, seeds, **changes) -> CompareConfig:
    return CompareConfig.from_dict(
        {
            "methods": ["erm", "groupdro"],
            "datasets": [d if d in SUITE else {"name": d, "config": "demo-quick"} for d in datasets],
            "seeds": seeds,
            "trials": 1,
            **changes,
        }
    )


def _store(
    tmp_path: Path, values: dict, *, data: dict | None = None, cpu: bool = True, scale: dict | None = None
) -> RunStore:
    """``values[(data set, arm)]`` = per-seed ES-AUC (every headline metric gets the same numbers, group
    AUCs too); ``data``: the rows' ``data`` field."""
    store = RunStore(tmp_path / "runs.jsonl")
    for (dataset, arm), series in values.items():
        for seed, value in enumerate(series, start=1):
            timing = {"wall_s": 1.0, "epoch_s": [0.5 * (scale or {}).get(arm, 1.0)] * 2, "threads": 1}
            if cpu:
                timing["epoch_cpu_s"] = [0.25 * (scale or {}).get(arm, 1.0)] * 2
            store.append(
                {
                    "key": f"final|{dataset}|{arm}|seed{seed}",
                    "phase": "final",
                    "dataset": dataset,
                    "method": arm,
                    "seed": seed,
                    "metrics": {**dict.fromkeys(METRICS, value), "group_auc": {"a": value, "b": value}},
                    "validation": dict.fromkeys(METRICS, value),
                    "timing": timing,
                    **({"data": data} if data is not None else {}),
                }
            )
    return store


def _plans(config: CompareConfig) -> list[ArmPlan]:
    plans = []
    for dataset in config.datasets:
        for method in config.methods:
            plan = ArmPlan(dataset, method, {}, tuned=False)
            plan.selected = {"options": {}, "rule": "fixed", "number": None}
            plans.append(plan)
    return plans


def test_two_seed_intervals_stay_in_range_and_are_marked(tmp_path: Path) -> None:
    config = _config(["d1"], seeds=2)
    values = {("d1", "erm"): [0.9, 0.2], ("d1", "groupdro"): [0.95, 0.1]}
    results = summarize(_store(tmp_path, values), config, _plans(config))
    arm = results["datasets"]["d1"]["arms"]["erm"]
    # by hand: the t interval of [0.9, 0.2] is 0.55 +- 12.706 * 0.35 = [-3.90, 5.00]: cut to [0, 1]
    half = stats.t.ppf(0.975, 1) * np.std([0.9, 0.2], ddof=1) / math.sqrt(2)
    assert 0.55 - half < 0 and 0.55 + half > 1
    assert (arm["auc"]["low"], arm["auc"]["high"], arm["auc"]["clipped"]) == (0.0, 1.0, True)
    for entry in [*(arm[m] for m in METRICS), *arm["group_auc"].values()]:
        assert 0.0 <= entry["low"] <= entry["high"] <= 1.0
    diff = results["datasets"]["d1"]["arms"]["groupdro"]["difference"]["auc"]
    assert -1.0 <= diff["low"] <= diff["high"] <= 1.0
    markdown = to_markdown(results)
    assert "0.550 [0.000, 1.000]†" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith(("| erm", "| groupdro"))]
    assert rows and not any("▲" in line or "▼" in line for line in rows)
    assert results["recommendation"]["arm"] is None and results["recommendation"]["text"].startswith(
        "No clear winner"
    )
    assert markdown.splitlines()[2].startswith("**What to try first.** No clear winner")


@pytest.mark.parametrize("seeds", [MIN_SEEDS - 1, MIN_SEEDS])
def test_significance_marks_need_the_minimum_number_of_seeds(tmp_path: Path, seeds: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.70, 0.75, seeds)
    gain = 0.05 + rng.uniform(-0.005, 0.005, seeds)  # a clear, consistent gain
    config = _config(["d1", "d2"], seeds=seeds)
    values = {}
    for d in ("d1", "d2"):
        values[(d, "erm")] = list(base)
        values[(d, "groupdro")] = list(base + gain)
    results = summarize(_store(tmp_path, values), config, _plans(config))
    diff = results["datasets"]["d1"]["arms"]["groupdro"]["difference"]["es_auc"]
    assert diff["low"] > 0  # the interval excludes 0 either way ...
    table = to_markdown(results).split("## Data set `d1`")[1]
    row = next(line for line in table.splitlines() if line.startswith("| groupdro"))
    advice = results["recommendation"]
    if seeds < MIN_SEEDS:  # ... but below the minimum it is not marked, and nothing is recommended
        assert "▲" not in row and f"No ▲/▼: fewer than {MIN_SEEDS} runs" in table
        assert advice["arm"] is None and f"{seeds} paired seed(s)" in advice["text"]
    else:
        assert row.count(" ▲") == 3  # ES-AUC, worst-group AUC and AUC
        assert advice["arm"] == "groupdro" and advice["strength"] == "strong"
        assert advice["text"].startswith("Try `groupdro` first") and "on 2 of 2 data set(s)" in advice["text"]


def test_no_clear_winner_when_the_best_arm_also_loses_somewhere(tmp_path: Path) -> None:
    seeds = MIN_SEEDS
    base = np.linspace(0.70, 0.74, seeds)
    config = _config(["d1", "d2", "d3"], seeds=seeds)
    values = {
        ("d1", "erm"): list(base),
        ("d1", "groupdro"): list(base + 0.05),  # significantly better
        ("d2", "erm"): list(base),
        ("d2", "groupdro"): list(base + 0.04),  # significantly better
        ("d3", "erm"): list(base),
        ("d3", "groupdro"): list(base - np.linspace(0.02, 0.03, seeds)),  # significantly worse
    }
    results = summarize(_store(tmp_path, values), config, _plans(config))
    advice = results["recommendation"]
    assert advice["arm"] is None and advice["wins"]["groupdro"] == ["d1", "d2"]
    assert advice["losses"]["groupdro"] == ["d3"]
    assert advice["text"].startswith("No clear winner") and "significantly worse on d3" in advice["text"]
    assert "Try `erm` first" in advice["text"]


def test_descriptions_say_what_ran_not_the_full_size_suite(tmp_path: Path) -> None:
    config = _config(["cohort"], seeds=2, quick=True)
    data = {
        "source": "synthetic",
        "samples": {"test": 60, "train": 180, "val": 60},
        "epochs": 2,
        "batch_size": 32,
    }
    values = {("cohort", "erm"): [0.6, 0.7], ("cohort", "groupdro"): [0.65, 0.7]}
    results = summarize(_store(tmp_path, values, data=data), config, _plans(config))
    entry = results["datasets"]["cohort"]
    assert entry["ran"] == {
        "runs": 4,
        "source": ["synthetic"],
        "samples": {"train": [180, 180], "val": [60, 60], "test": [60, 60]},
        "epochs": [2],
        "batch_size": [32],
    }
    assert entry["description"].startswith(
        "What ran: 4 final run(s) on data source synthetic with 180 train, 60 val, 60 test samples per run, "
        "2 epoch(s), batch size 32. Data: at full size (not what ran here): "
    )


def test_cost_is_cpu_time_or_says_wall_time_on_a_shared_machine(tmp_path: Path) -> None:
    config = _config(["d1"], seeds=2)
    values = {("d1", "erm"): [0.6, 0.7], ("d1", "groupdro"): [0.65, 0.7]}
    results = summarize(_store(tmp_path, values, scale={"groupdro": 3.0}), config, _plans(config))
    arm = results["datasets"]["d1"]["arms"]["groupdro"]
    assert arm["epoch_cpu_s"] == pytest.approx(0.75) and arm["epoch_cpu_cost"] == pytest.approx(3.0)
    markdown = to_markdown(results)
    assert "CPU s/epoch (x base)" in markdown and "0.750 (3.00x)" in markdown
    old = summarize(_store(tmp_path / "old", values, cpu=False), config, _plans(config))
    assert "wall s/epoch on a shared machine (x base)" in to_markdown(old)
    assert "wall s/epoch on a shared machine" in to_html(old)
