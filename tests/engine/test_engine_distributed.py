"""``train`` and ``multifair train`` under two-process torchrun (gloo, CPU): one run folder, identical
replicas, validation and test metrics equal to one process with the same global batch, and resume after an
interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

WORKER = Path(__file__).with_name("train_ddp_worker.py")
CONFIG = Path(__file__).with_name("ddp.yaml")


def _close(a, b, what):
    torch.testing.assert_close(
        torch.as_tensor(a), torch.as_tensor(b), rtol=1e-5, atol=1e-6, equal_nan=True, msg=what
    )


@pytest.mark.distributed
@pytest.mark.slow
def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path, torchrun, run_worker):
    torchrun(
        WORKER, ["--config", CONFIG, "--folder", tmp_path / "ddp", "--out", tmp_path / "ddp"], cwd=tmp_path
    )
    run_worker(
        WORKER,
        [
            "--config",
            CONFIG,
            "--folder",
            tmp_path / "one",
            "--out",
            tmp_path / "one",
            "--set",
            "trainer.batch_size=32",
        ],
        cwd=tmp_path,
    )
    rank0, rank1 = torch.load(tmp_path / "ddp.rank0.pt"), torch.load(tmp_path / "ddp.rank1.pt")
    one = torch.load(tmp_path / "one.rank0.pt")
    for name, value in rank0["network"].items():  # replicas identical, and equal to one process
        torch.testing.assert_close(
            value, rank1["network"][name], rtol=0, atol=0, msg=f"replicas differ: {name}"
        )
        other = one["network"][name]
        if name.endswith("self_attn.in_proj_bias"):
            # its key third has a zero gradient in exact arithmetic (softmax ignores a shift): AdamW turns
            # the rounding noise of either run into full-size steps, so only the other two thirds compare
            third = value.numel() // 3
            value = torch.cat([value[:third], value[2 * third :]])
            other = torch.cat([other[:third], other[2 * third :]])
        _close(value, other, f"network {name} vs one process")
    for key in rank0["validation"]:  # selection is made on the same numbers on every rank
        assert rank0["validation"][key] == rank1["validation"][key]
        _close(rank0["validation"][key], one["validation"][key], f"validation {key}")
    for key, value in rank0["metrics"].items():
        _close(value, one["metrics"][key], f"test {key}")
    _close(rank0["predictions"], one["predictions"], "test scores")
    _close(rank0["stats"]["loss"], one["stats"]["loss"], "mean training loss (averaged over ranks)")
    _close(rank0["stats"]["weight/race=Black"], one["stats"]["weight/race=Black"], "GroupDRO weights")
    # one run folder, written once: a checkpoint per kind and every result file
    run = tmp_path / "ddp"
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["best.pt", "checkpoint_epoch=3.pt"]
    assert json.loads((run / "metrics.json").read_text())["auc"] == pytest.approx(rank0["metrics"]["auc"])
    assert len((run / "predictions.csv").read_text().splitlines()) == 81  # 80 test samples, no duplicates


@pytest.mark.distributed
@pytest.mark.slow
def test_interrupted_run_resumes_under_torchrun(tmp_path, torchrun):
    base = ["--config", CONFIG, "--folder", tmp_path / "run"]
    torchrun(WORKER, [*base, "--out", tmp_path / "stopped", "--stop-at", "12"], cwd=tmp_path)  # epoch 2 of 3
    assert (tmp_path / "stopped.rank0.interrupted").exists() and (
        tmp_path / "stopped.rank1.interrupted"
    ).exists()
    assert (tmp_path / "run" / "checkpoints" / "checkpoint_epoch=1.pt").is_file()
    torchrun(WORKER, [*base, "--out", tmp_path / "resumed", "--resume"], cwd=tmp_path)
    torchrun(
        WORKER,
        ["--config", CONFIG, "--folder", tmp_path / "straight", "--out", tmp_path / "straight"],
        cwd=tmp_path,
    )
    resumed, straight = torch.load(tmp_path / "resumed.rank1.pt"), torch.load(tmp_path / "straight.rank1.pt")
    for name, value in straight["network"].items():
        torch.testing.assert_close(resumed["network"][name], value, rtol=0, atol=0, msg=name)
    assert resumed["validation"] == straight["validation"]
    assert resumed["predictions"] == straight["predictions"]


@pytest.mark.distributed
@pytest.mark.slow
def test_multifair_train_command_under_torchrun(tmp_path, torchrun, run_worker):
    result = torchrun(
        "-m",
        ["monai_multifair", "train", "--config", CONFIG, "--output", tmp_path / "run", "--no-progress"],
        cwd=tmp_path,
    )
    # rank 0 alone speaks for the run and writes its folder
    assert result.stdout.count("training ") == 1 and "on 2 processes" in result.stdout
    assert result.stdout.count("test metrics") == 1
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "report.json").is_file()
    # evaluation under torchrun: each rank predicts its share, rank 0 writes; equal to one process
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    torchrun(
        "-m",
        ["monai_multifair", "evaluate", "--checkpoint", best, "--output", tmp_path / "eval2"],
        cwd=tmp_path,
    )
    single = run_worker(
        "-m",
        ["monai_multifair", "evaluate", "--checkpoint", best, "--output", tmp_path / "eval1"],
        cwd=tmp_path,
    )
    assert "test metrics" in single.stdout
    two, one = (pd.read_csv(tmp_path / name / "predictions.csv") for name in ("eval2", "eval1"))
    pd.testing.assert_frame_equal(two, one, check_exact=False, rtol=1e-6)
    # a user error is one line on each rank and ends every rank (exit code 2), nothing hangs
    with pytest.raises(pytest.fail.Exception, match="already holds a run"):
        torchrun(
            "-m", ["monai_multifair", "train", "--config", CONFIG, "--output", tmp_path / "run"], cwd=tmp_path
        )


@pytest.mark.distributed
@pytest.mark.slow
def test_multifair_compare_under_torchrun(tmp_path, torchrun):
    """Rank 0 schedules (Optuna, the store, the leaderboard), every rank trains each run."""
    out = tmp_path / "cmp"
    args = ["monai_multifair", "compare", "--quick", "--methods", "erm,groupdro", "--datasets", "cohort"]
    result = torchrun("-m", [*args, "--output", out, "--no-progress"], cwd=tmp_path, timeout=600)
    assert result.stdout.count("mean ES-AUC rank:") == 1  # rank 0 alone reports
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and len({row["key"] for row in rows}) == 6  # 2 trials + 2 seeds, erm 2 seeds
    assert (out / "leaderboard.html").is_file()
    assert not [p for p in (out / "runs").rglob("*") if p.is_file()]  # each run folder removed once stored
    results = json.loads((out / "results.json").read_text())
    assert set(results["ranks"]["es_auc"]) == {"erm", "groupdro"}


def _failed(run, *args, **kwargs) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of a command that must fail (the fixtures fail the test on exit != 0)."""
    with pytest.raises(pytest.fail.Exception) as info:
        run(*args, **kwargs)
    text = str(info.value)
    head, _, rest = text.partition("\n--- stdout\n")
    stdout, _, stderr = rest.partition("\n--- stderr\n")
    return int(head.split()[2].rstrip(":")), stdout, stderr


@pytest.mark.distributed
@pytest.mark.slow
def test_user_errors_with_several_processes_are_one_line_once_and_exit_2(tmp_path, torchrun, run_worker):
    """``--nproc-per-node`` checks the config before starting workers, and a user error the workers meet
    is printed once by rank 0; no launcher traceback. Plain torchrun: one line, every rank exits with 2."""
    train = ["monai_multifair", "train", "--config", CONFIG, "--no-progress"]
    # a bad key: refused before any worker starts
    code, out, err = _failed(
        run_worker, "-m", [*train, "--nproc-per-node", "2", "--output", tmp_path / "a", "--set", "trainer.learning_rate=1"],
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "multifair train: error: unknown config key `trainer.learning_rate` (did you mean 'lr'?); known keys in "
        "`trainer`: epochs, batch_size, optimizer, lr, weight_decay, momentum, grad_clip, amp, accumulation_steps, "
        "seed, device, num_workers, val_interval, sync_batchnorm, modality_dropout"
    ]
    assert not (tmp_path / "a").exists()
    # a run folder in the way: found by the workers (rank 0 decides, every rank raises), printed once
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "checkpoint_epoch=1.pt").write_bytes(b"0")
    code, out, err = _failed(
        run_worker, "-m", [*train, "--nproc-per-node", "2", "--output", tmp_path / "run"], cwd=tmp_path
    )
    assert code == 2 and out.count("on 2 processes") == 1
    assert err.splitlines() == [
        f"multifair train: error: run folder '{tmp_path / 'run'}' already holds a run (checkpoint_epoch=1.pt); "
        "continue it with --resume, start it over with --overwrite, or choose another --output"
    ]
    # plain torchrun: the one line once, every rank exits with 2 (torchrun still prints its own report)
    missing = ["monai_multifair", "train", "--config", tmp_path / "no.yaml", "--output", tmp_path / "b"]
    code, out, err = _failed(torchrun, "-m", missing, cwd=tmp_path)
    assert code == 1  # torchrun's own exit code when a worker fails
    assert err.count(f"multifair train: error: config file '{tmp_path / 'no.yaml'}' does not exist") == 1
    assert err.count("exitcode  : 2") == 2 and "SIGTERM" not in err
