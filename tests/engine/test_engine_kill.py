"""No run is lost to a kill: SIGKILL or Ctrl-C at random moments, often inside a checkpoint write, then
``--resume`` until the run finishes, ends exactly where an uninterrupted run ends. Two runs cannot share
one run folder."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from monai_multifair.engine import train
from monai_multifair.engine.run_folder import LOCK_FILE, RunFolderLock
from monai_multifair.errors import MultiFairError

WRAPPER = Path(__file__).with_name("killable_train.py")
TINY = Path(__file__).resolve().parents[1] / "tiny.yaml"
SETTINGS = ["--set", "evaluation.n_boot=20", "--set", "trainer.epochs=4", "--set", "fusion.dropout=0.2"]


def _command(run: Path, *extra: str) -> list[str]:
    return [sys.executable, str(WRAPPER), "train", "--config", str(TINY), "--output", str(run), "--no-progress",
            *SETTINGS, *extra]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MULTIFAIR_TEST_SLOW_WRITE": "0.3"}


def _finish(run: Path) -> subprocess.CompletedProcess:
    """Resume until done (or start over when the kill came before the first checkpoint)."""
    has_checkpoint = any((run / "checkpoints").glob("checkpoint_epoch=*.pt.json")) if run.exists() else False
    extra = ("--resume",) if has_checkpoint else ("--overwrite",)
    return subprocess.run(_command(run, *extra), env=_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    reference = tmp_path / "reference"
    done = subprocess.run(_command(reference), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rng = random.Random(20261130)
    run = tmp_path / "killed"
    kills = [signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT, signal.SIGKILL]
    for number, sig in enumerate(kills):
        has_checkpoint = run.exists() and any((run / "checkpoints").glob("checkpoint_epoch=*.pt.json"))
        extra = ("--resume",) if has_checkpoint else (("--overwrite",) if number else ())
        process = subprocess.Popen(
            _command(run, *extra), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(3.0, 14.0))  # imports take a few seconds; then epochs and their writes
        process.send_signal(sig)
        out, err = process.communicate(timeout=120)
        if sig == signal.SIGINT and process.returncode == 130:  # Ctrl-C once the command runs: one line
            assert "interrupted" in err and "Traceback" not in err, err
        else:  # finished, killed, or Ctrl-C while Python was still importing (it then dies by the signal)
            assert process.returncode in (0, -signal.SIGKILL, -signal.SIGINT), (process.returncode, err)
    final = _finish(run)
    assert final.returncode == 0, final.stderr
    # the same result as the uninterrupted run
    got, want = (
        json.loads((run / "metrics.json").read_text()),
        json.loads((reference / "metrics.json").read_text()),
    )
    for key in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds", "group_auc", "best_epoch"):
        assert got[key] == want[key], key
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "predictions.csv"), pd.read_csv(reference / "predictions.csv")
    )
    best, ref_best = (
        torch.load(p / "checkpoints" / "best.pt", weights_only=True)["model"] for p in (run, reference)
    )
    assert all(torch.equal(best[k], ref_best[k]) for k in ref_best)
    # nothing half-written is left, and the lock was released
    assert not list(run.rglob(".*.tmp")) and not (run / LOCK_FILE).exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.pt", "best.pt.json", "checkpoint_epoch=4.pt", "checkpoint_epoch=4.pt.json",
    ]  # fmt: skip


class _StopAfterEpoch:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED(once=self.epoch), self)

    def __call__(self, engine) -> None:
        raise KeyboardInterrupt


def test_damaged_last_checkpoint_falls_back_to_the_previous_one(tiny_config, tmp_path):
    config = tiny_config("evaluation.n_boot=0", "output.report_formats=[]")
    straight = train(config, tmp_path / "straight", progress=False)
    run, first = tmp_path / "run", tmp_path / "first"
    # an interruption at the end of epoch N comes before that epoch's checkpoint: N - 1 is the last
    for folder, epoch in ((run, 3), (first, 2)):
        with pytest.raises(KeyboardInterrupt):
            train(config, folder, progress=False, handlers=[_StopAfterEpoch(epoch)])
    # a kill that left epoch 2 truncated after epoch 1 was written (the same run's epoch-1 checkpoint)
    ckpt = run / "checkpoints"
    for name in ("checkpoint_epoch=1.pt", "checkpoint_epoch=1.pt.json"):
        shutil.copy(first / "checkpoints" / name, ckpt / name)
    two = ckpt / "checkpoint_epoch=2.pt"
    two.write_bytes(two.read_bytes()[: two.stat().st_size // 2])
    lines: list[str] = []
    resumed = train(config, run, resume=True, progress=False, log=lines.append)
    assert any("resume: skipped checkpoint_epoch=2.pt:" in line and "truncated" in line for line in lines), (
        lines
    )
    assert "resume: continuing from checkpoint_epoch=1.pt" in lines
    assert resumed.predictions.equals(straight.predictions)
    # with no intact checkpoint at all, --resume says so and what to do
    for path in ckpt.glob("checkpoint_epoch=*.pt"):
        path.write_bytes(b"damaged")
    with pytest.raises(
        MultiFairError, match=r"nothing intact to resume .*truncated or replaced.*--overwrite"
    ):
        train(config, run, resume=True, progress=False)


def test_two_runs_cannot_share_a_folder_and_a_dead_owner_is_taken_over(tiny_config, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from monai_multifair.engine.run_folder import RunFolderLock;"
         " RunFolderLock(Path(sys.argv[1]), 'other run').acquire(); print('locked', flush=True); time.sleep(600)",
         str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = tiny_config("evaluation.n_boot=0", "output.report_formats=[]", "trainer.epochs=1")
        with pytest.raises(MultiFairError, match=rf"in use by pid {holder.pid} on host .*other run"):
            train(config, run, progress=False)
        with pytest.raises(MultiFairError, match="in use by"), RunFolderLock(run):
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    lines: list[str] = []
    train(config, run, progress=False, log=lines.append)  # the lock died with its owner
    assert any(f"previous owner (pid {holder.pid}" in line for line in lines), lines
    assert not (run / LOCK_FILE).exists()
