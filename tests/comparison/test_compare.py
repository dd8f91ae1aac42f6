"""``compare`` end to end at tiny sizes: the outputs, the test split kept from tuning, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_multifair.cli import main
from monai_multifair.comparison import CompareConfig, RunStore, compare
from monai_multifair.comparison import tasks as task_module
from monai_multifair.data import build_datasets
from monai_multifair.errors import MultiFairError

# one tiny synthetic data set (the cohort at --quick sizes, fewer patients); erm (nothing to tune) and
# groupdro (tuned): 2 + (2 trials + 2 seeds) = 6 training runs of about a second
TINY = {
    "name": "tiny",
    "config": "demo-quick",
    "overrides": [
        "data.synthetic.n_patients=240",
        "data.synthetic.image_size=16",
        "encoders.fundus.options.channels=[4, 8]",
        "encoders.notes.options={vocab_size: 256, embedding_dim: 8, max_length: 32}",
        "fusion={fusion_dim: 16, num_heads: 2, num_layers: 1, dropout: 0.1}",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "trainer.device=cpu",
        "evaluation.n_boot=0",
        "output.report_formats=[]",
        "output.save_predictions=false",
    ],
}


def _config(**changes) -> CompareConfig:
    return CompareConfig.from_dict(
        {"methods": ["erm", "groupdro"], "datasets": [TINY], "seeds": 2, "trials": 2, **changes}
    )


class Recorder:
    """Wraps ``engine.train`` as the compare tasks call it; records each call's splits and their ids."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
        self.calls: list[dict] = []
        self.fail_at = fail_at
        self.real = task_module.train
        monkeypatch.setattr(task_module, "train", self)

    def __call__(self, config, run_dir, **kwargs):
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the middle of this run
        splits = kwargs["datasets"]
        self.calls.append(
            {
                "final_split": kwargs["final_split"],
                "splits": sorted(splits),
                "ids": {name: set(split.ids) for name, split in splits.items()},
                "config": config,
            }
        )
        return self.real(config, run_dir, **kwargs)


def test_tuning_never_receives_the_test_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    lines: list[str] = []
    compare(_config(), tmp_path, progress=False, log=lines.append)
    # the first runs probe every arm once (erm's first final run, groupdro's first trial), for the ETA
    assert [c["config"].method.name for c in recorder.calls[:2]] == ["erm", "groupdro"]
    assert [c["final_split"] for c in recorder.calls[:2]] == ["test", "val"]
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 6 and all(", ETA " in line for line in progress)
    assert progress[-1].split("ETA ")[1].startswith("0:00:00]")
    tuning = [c for c in recorder.calls if c["final_split"] == "val"]
    finals = [c for c in recorder.calls if c["final_split"] == "test"]
    assert len(tuning) == 2 and len(finals) == 4
    for call in tuning:
        assert call["splits"] == ["train", "val"]
        test_ids = set(build_datasets(call["config"])["test"].ids)  # the test split of the same data
        assert test_ids and not test_ids & (call["ids"]["train"] | call["ids"]["val"])
    for call in finals:
        assert call["splits"] == ["test", "train", "val"]


def test_compare_writes_the_leaderboard(tmp_path: Path) -> None:
    results = compare(_config(), tmp_path, progress=False, log=lambda line: None)
    for name in (
        "leaderboard.html",
        "leaderboard.md",
        "results.json",
        "runs.jsonl",
        "optuna.journal",
        "compare.yaml",
    ):
        assert (tmp_path / name).is_file(), name
    assert results["complete"]
    arms = results["datasets"]["tiny"]["arms"]
    assert arms["erm"]["runs"] == arms["groupdro"]["runs"] == 2
    diff = arms["groupdro"]["difference"]["es_auc"]
    erm, dro = (
        [
            r["metrics"]["es_auc"]
            for r in sorted(
                RunStore(tmp_path / "runs.jsonl").rows(phase="final", method=m), key=lambda r: r["seed"]
            )
        ]
        for m in ("erm", "groupdro")
    )
    assert diff["mean"] == pytest.approx(sum(d - e for d, e in zip(dro, erm)) / 2)
    assert results["selected"]["tiny"]["groupdro"]["trial"] in (0, 1)
    html = (tmp_path / "leaderboard.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "<script" not in html  # self-contained, static
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["settings"]["seeds"] == 2
    # the description says what ran, as runs.jsonl records it (not the suite's full-size setting)
    finals = RunStore(tmp_path / "runs.jsonl").rows(phase="final")
    sizes = {s: sorted({r["data"]["samples"][s] for r in finals}) for s in ("train", "val", "test")}
    assert {r["data"]["epochs"] for r in finals} == {1}
    assert all(r["metrics"]["n"] == r["data"]["samples"]["test"] for r in finals)
    ran = results["datasets"]["tiny"]["ran"]
    assert ran["samples"] == {s: [v[0], v[-1]] for s, v in sizes.items()} and ran["epochs"] == [1]
    span = {s: f"{v[0]:,}" if v[0] == v[-1] else f"{v[0]:,}-{v[-1]:,}" for s, v in sizes.items()}
    assert (
        f"What ran: 4 final run(s) on data source synthetic with {span['train']} train, {span['val']} val, "
        f"{span['test']} test samples per run, 1 epoch(s)"
    ) in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    # cost: CPU seconds per epoch of every run
    assert all(len(r["timing"]["epoch_cpu_s"]) == 1 and r["timing"]["cpu_s"] > 0 for r in finals)


def test_an_interrupted_compare_continues_without_repeating_or_losing_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch, fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        compare(_config(), tmp_path, progress=False, log=lambda line: None)
    done = {row["key"] for row in RunStore(tmp_path / "runs.jsonl")}
    assert len(done) == 3
    first = len(recorder.calls)
    recorder.fail_at = None
    compare(_config(), tmp_path, progress=False, log=lambda line: None)
    rows = RunStore(tmp_path / "runs.jsonl")
    lines = (tmp_path / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) == 6  # every run once: none repeated, none lost
    assert done <= set(keys)
    assert len(recorder.calls) - first == 3  # only the runs that had not finished
    assert len(rows.rows(phase="final")) == 4 and len(rows.rows(phase="tune")) == 2


def test_more_seeds_later_add_runs_and_keep_the_tuning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compare(_config(), tmp_path, progress=False, log=lambda line: None)
    recorder = Recorder(monkeypatch)
    results = compare(_config(seeds=3), tmp_path, progress=False, log=lambda line: None)
    assert [c["final_split"] for c in recorder.calls] == ["test", "test"]  # seed 3 of each arm, no new trial
    assert results["datasets"]["tiny"]["arms"]["groupdro"]["runs"] == 3


def test_command_line_quick_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "compare",
            "--quick",
            "--datasets",
            "cohort",
            "--methods",
            "erm,reweighting",
            "--output",
            str(tmp_path),
            "--no-progress",
            "--pareto",
            "--selection-metric",
            "distance_to_optimal",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "mean ES-AUC rank" in out and (tmp_path / "leaderboard.html").is_file()
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["settings"]["quick"] and results["complete"]
    assert results["settings"]["selection"]["metric"] == "distance_to_optimal"
    assert results["selected"]["cohort"]["reweighting"]["rule"].startswith(
        ("smallest validation distance_to_optimal", "validation distance_to_optimal undefined")
    )
    # a quick run names no method and marks nothing
    assert results["recommendation"]["arm"] is None
    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    assert "No clear winner: a quick run" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith(("| erm", "| reweighting"))]
    assert rows and not any("▲" in line or "▼" in line for line in rows)
    # the tuning trials of the tuned arm (reweighting), on the AUC / ES-AUC plane, linked from both pages
    trials = results["tuning"]["cohort"]["reweighting"]
    assert len(trials) in (1, 2) and sum(t["selected"] for t in trials) == 1  # two points, 2 trials
    assert (tmp_path / "pareto-cohort.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![cohort: tuning trials](pareto-cohort.png)" in markdown
    assert 'src="pareto-cohort.png"' in (tmp_path / "leaderboard.html").read_text(encoding="utf-8")


def test_command_line_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--methods", "erm,grupdro", "--output", str(tmp_path)]) == 2
    assert "groupdro" in capsys.readouterr().err  # the close match
    assert main(["compare", "--datasets", "cohort", "--methods", "groupdro", "--output", str(tmp_path)]) == 2
    assert "baseline" in capsys.readouterr().err
    assert main(["compare", "--list"]) == 0
    assert "support2" in capsys.readouterr().out


def test_default_methods_are_every_training_method_of_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from monai_multifair.cli import build_parser
    from monai_multifair.cli.compare_command import build_config
    from monai_multifair.comparison import compare_config
    from monai_multifair.plugins import list_methods

    training = [spec.name for spec in list_methods("training")]
    assert {"erm", "multifair", "reweighting", "resampling", "groupdro", "fis"} <= set(training)
    for config in (
        build_config(build_parser().parse_args(["compare", "--datasets", "cohort"])),
        CompareConfig.from_dict({"datasets": ["cohort"]}),  # a compare.yaml without `methods`
    ):
        assert [m.label for m in config.methods] == training and config.baseline == "erm"
        assert all(m.tune for m in config.methods)
    assert "threshold-optimizer" not in training  # post-processing composes with an arm, it is not one
    with pytest.raises(MultiFairError, match=r"compare config key `methods`: expected a list, got None"):
        CompareConfig.from_dict({"methods": None, "datasets": ["cohort"]})

    # the registry (plugins, torch) is read only once everything else is valid
    def registry_read() -> list[str]:
        raise AssertionError("the registry was read before the other checks")

    monkeypatch.setattr(compare_config, "registered_training_methods", registry_read)
    with pytest.raises(MultiFairError, match=r"compare config key `seeds`: expected an integer >= 2, got 1"):
        CompareConfig.from_dict({"datasets": ["cohort"], "seeds": 1})
    with pytest.raises(MultiFairError, match=r"repeated name\(s\) \['cohort'\]; give each its own `name`"):
        CompareConfig.from_dict({"datasets": ["cohort", "cohort"]})
    with pytest.raises(AssertionError, match="the registry was read"):
        CompareConfig.from_dict({"datasets": ["cohort"]})


def test_report_only_writes_the_leaderboard_of_an_interrupted_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch, fail_at=6)
    with pytest.raises(KeyboardInterrupt):
        compare(_config(), tmp_path, progress=False, log=lambda line: None)
    calls = len(recorder.calls)
    results = compare(_config(), tmp_path, progress=False, log=lambda line: None, run=False)
    assert len(recorder.calls) == calls  # nothing trained
    assert not results["complete"]
    assert results["datasets"]["tiny"]["arms"]["groupdro"]["runs"] == 1
    assert "Incomplete" in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
