"""Distributed workers end cleanly: the process group is destroyed, failures surface, nothing outlives a test."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from monai_multifair.core.distributed import distributed_process_group, shutdown_process_group

WORKER = Path(__file__).with_name("shutdown_worker.py")


@pytest.mark.distributed
def test_clean_end_destroys_the_group_on_every_rank(tmp_path, torchrun):
    torchrun(WORKER, ["--mode", "ok", "--out", tmp_path], cwd=tmp_path, timeout=120)
    # both replicas trained identically and both left the context with the group destroyed
    assert (tmp_path / "done0").read_text() == (tmp_path / "done1").read_text()
    assert (tmp_path / "exited0").exists() and (tmp_path / "exited1").exists()


@pytest.mark.distributed
def test_a_failing_rank_ends_the_run_and_its_error_is_shown(tmp_path, torchrun):
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failure:
        torchrun(WORKER, ["--mode", "raise", "--out", tmp_path], cwd=tmp_path, timeout=120)
    # the peer waiting in a collective did not sit out the 60 s collective timeout
    assert time.monotonic() - started < 55
    assert "deliberate failure on rank 1" in str(failure.value)
    assert not (tmp_path / "done0").exists() and not (tmp_path / "exited1").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed process may linger a moment as a zombie until it is reaped
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.distributed
def test_launcher_timeout_kills_every_worker(tmp_path, torchrun):
    with pytest.raises(pytest.fail.Exception, match="timed out after 20"):
        torchrun(WORKER, ["--mode", "hang", "--out", tmp_path], cwd=tmp_path, timeout=20)
    pids = [int((tmp_path / f"pid{rank}").read_text()) for rank in (0, 1)]
    deadline = time.monotonic() + 10
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, pids)), f"workers {pids} outlived the launcher's timeout"


def test_single_process_is_a_plain_block(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with distributed_process_group("gloo") as distributed:
        assert distributed is False
    assert not dist.is_initialized()
    shutdown_process_group()  # nothing to do, no error
