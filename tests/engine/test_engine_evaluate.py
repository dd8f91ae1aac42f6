"""``evaluate``: a checkpoint reproduces the training run's test metrics; bad checkpoints are clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

from monai_multifair.data import build_datasets
from monai_multifair.engine import evaluate, train
from monai_multifair.errors import MultiFairError


@pytest.fixture(scope="module")
def run(tiny_config, tmp_path_factory):
    return train(tiny_config("evaluation.n_boot=0"), tmp_path_factory.mktemp("run"), progress=False)


def test_best_checkpoint_reproduces_the_runs_test_metrics(run):
    result = evaluate(run.config, run.files["best_checkpoint"])
    assert result.run_dir == run.run_dir / "evaluation"
    assert result.predictions.equals(run.predictions)
    assert result.headline() == run.headline() and result.metrics["group_auc"] == run.metrics["group_auc"]
    assert result.best_epoch == run.best_epoch and result.metrics["validation"] == run.metrics["validation"]
    written = json.loads((result.run_dir / "metrics.json").read_text())
    assert written["checkpoint"] == str(run.files["best_checkpoint"]) and written["split"] == "test"
    assert (result.run_dir / "report.html").is_file() and (result.run_dir / "config.yaml").is_file()
    assert not any("integrity" in note for note in result.metrics["notes"])  # it matched its record


def test_other_split_and_bare_state_dict(run, tmp_path):
    bare = tmp_path / "weights.pt"
    torch.save(torch.load(run.files["last_checkpoint"], weights_only=True)["model"], bare)
    result = evaluate(run.config, bare, tmp_path / "out", split="val")
    assert (
        f"checkpoint {str(bare)!r} has no record weights.pt.json (size and SHA-256); it was loaded without an integrity check"
        in result.metrics["notes"]
    )
    assert result.best_epoch is None and result.metrics["split"] == "val"
    val = build_datasets(run.config)["val"]
    assert result.predictions["id"].tolist() == val.ids
    frame = result.predictions
    assert result.metrics["auc"] == pytest.approx(roc_auc_score(frame["label"], frame["score"]))


def test_bad_checkpoints(run, tiny_config, tmp_path):
    with pytest.raises(MultiFairError, match="does not exist"):
        evaluate(run.config, tmp_path / "missing.pt", tmp_path / "o")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MultiFairError, match=r"cannot read checkpoint .*junk.pt"):
        evaluate(run.config, tmp_path / "junk.pt", tmp_path / "o")
    torch.save({"optimizer": {}}, tmp_path / "nomodel.pt")
    with pytest.raises(MultiFairError, match="has no `model` entry"):
        evaluate(run.config, tmp_path / "nomodel.pt", tmp_path / "o")
    with pytest.raises(MultiFairError, match="does not fit the network this config builds"):
        evaluate(tiny_config("fusion.fusion_dim=32"), run.files["best_checkpoint"], tmp_path / "o")
    with pytest.raises(
        MultiFairError, match=r"`split` to be one of train, val, test, got 'tset' \(did you mean 'test'\?\)"
    ):
        evaluate(run.config, run.files["best_checkpoint"], tmp_path / "o", split="tset")


def test_threshold_rule_is_fitted_on_validation_and_applied_to_test(run, tiny_config, tmp_path):
    import numpy as np

    from monai_multifair.metrics import fairness_summary, fit_threshold

    val = evaluate(run.config, run.files["best_checkpoint"], tmp_path / "val", split="val").predictions
    for rule in ("youden", "prevalence"):
        config = tiny_config(
            "evaluation.n_boot=0", f"evaluation.threshold={rule}", "evaluation.n_permutations=20"
        )
        result = evaluate(config, run.files["best_checkpoint"], tmp_path / rule)
        expected = fit_threshold(val["label"], val["score"], rule)
        assert result.metrics["threshold"] == pytest.approx(expected)
        assert result.metrics["threshold_rule"] == rule
        assert result.metrics["threshold_source"].startswith("fitted on the validation split")
        test = result.predictions
        groups = test["group"].to_numpy()
        summary = fairness_summary(
            test["label"],
            test["score"],
            groups,
            list(build_datasets(config)["test"].group_labels),
            threshold=expected,
        )
        assert result.metrics["dpd"] == pytest.approx(summary["dpd"], nan_ok=True)
        assert result.metrics["degenerate"] == summary["degenerate"]
        report = json.loads((result.run_dir / "report.json").read_text())
        assert report["settings"]["threshold"] == pytest.approx(expected)
        assert report["settings"]["threshold_source"] == result.metrics["threshold_source"]
        assert len(report["disparity_tests"]) > 0 and report["settings"]["n_permutations"] == 20
        assert (
            f"operating threshold {expected:.4g} (fitted on the validation split"
            in (result.run_dir / "report.md").read_text()
        )
    fixed = json.loads((run.run_dir / "metrics.json").read_text())
    assert fixed["threshold_rule"] == "fixed" and fixed["threshold"] == run.config.evaluation.threshold
    assert isinstance(fixed["degenerate"], dict) and "degenerate_metrics" in fixed
    assert np.isfinite(fixed["threshold"])


def test_a_checkpoint_changed_after_it_was_written_is_refused(run, tmp_path):
    """Bytes flipped inside a tensor of best.pt still load (torch reads the tensor data unchecked) and
    would give other AUCs: the size/SHA-256 record written with it refuses the file."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    best = folder / "best.pt"
    data = bytearray(run.files["best_checkpoint"].read_bytes())
    (folder / "best.pt.json").write_bytes((run.files["best_checkpoint"].parent / "best.pt.json").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0x01 for b in data[middle : middle + 4])
    best.write_bytes(bytes(data))
    torch.load(best, weights_only=True)  # still a readable checkpoint: only the record can tell
    with pytest.raises(
        MultiFairError,
        match=rf"^checkpoint '{best}' fails its integrity check against best\.pt\.json: the file does not "
        r"match its SHA-256 record \(damaged or replaced\); refused$",
    ):
        evaluate(run.config, best, tmp_path / "o")
    best.write_bytes(bytes(data[:-10]))
    with pytest.raises(
        MultiFairError, match=rf"the file has {len(data) - 10} bytes, its record says {len(data)}"
    ):
        evaluate(run.config, best, tmp_path / "o")
    (folder / "best.pt.json").write_text("[1, 2]\n")
    with pytest.raises(
        MultiFairError, match=r"its record best\.pt\.json is unreadable \(expected a JSON object"
    ):
        evaluate(run.config, best, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_nan_weights_are_named_not_the_scores(run, tmp_path):
    state = torch.load(run.files["best_checkpoint"], weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(
        MultiFairError,
        match=rf"checkpoint '.*nan\.pt' holds 1 NaN/inf value\(s\) in '{name}'; expected finite",
    ):
        evaluate(run.config, tmp_path / "nan.pt", tmp_path / "o")
