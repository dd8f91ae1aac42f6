"""Shared test fixtures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Property tests draw their examples deterministically (a fixed sequence, no example database): a test
# that passes only sometimes is a defect, so a property test must not explore a new random region of its
# input space on every run. Profiles of individual tests (max_examples, deadline) inherit this.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.load_profile("deterministic")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants (Linux ``/proc``), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def kill_process_tree(root: int) -> None:
    """SIGKILL ``root`` and every process below it, also those in sessions of their own.

    torchrun starts each worker in a new session, so killing the launcher's process group leaves the
    workers running (and holding the output pipes). Every process is stopped first, so that none forks
    or is re-parented while the tree is collected.
    """
    if not os.path.isdir("/proc"):  # not Linux: the launcher's own group is the best we can do
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root, signal.SIGKILL)
        return
    stopped: set[int] = set()
    while True:
        fresh = [pid for pid in _process_tree(root) if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_isolated(cmd: list[str], *, cwd, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on timeout kill it and all its descendants, so no worker outlives
    the test. Fails the calling test with the command's output when it times out or exits non-zero."""
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc.pid)
            stdout, stderr = proc.communicate()
            pytest.fail(f"timed out after {timeout} s: {cmd}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        except BaseException:  # KeyboardInterrupt, pytest-timeout: leave nothing behind
            kill_process_tree(proc.pid)
            raise
    if proc.returncode != 0:
        pytest.fail(f"exit code {proc.returncode}: {cmd}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _worker_env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "GLOO_SOCKET_IFNAME": "lo",
    }


@pytest.fixture
def run_worker():
    """Run ``python worker.py ARGS`` as one plain process (isolated like :func:`torchrun`)."""

    def run(worker, args=(), *, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_isolated(
            [sys.executable, str(worker), *map(str, args)], cwd=cwd, env=_worker_env(), timeout=timeout
        )

    return run


@pytest.fixture
def torchrun():
    """Run ``torchrun --nproc_per_node N worker.py ARGS`` on loopback; fails with the workers' output.

    A static rendezvous on a free 127.0.0.1 port and ``GLOO_SOCKET_IFNAME=lo`` keep it independent of how
    the host name resolves. Workers end through
    :func:`monai_multifair.core.distributed.distributed_process_group`, which gives the rendezvous and the
    collectives a timeout and destroys the group in an order that cannot deadlock at exit. The launcher
    runs in its own process group, killed whole on timeout.
    """

    def run(worker, args=(), *, cwd, nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), *map(str, args),
        ]  # fmt: skip
        return run_isolated(cmd, cwd=cwd, env=_worker_env(), timeout=timeout)

    return run


#: A tiny run config shared by the engine, method and command-line tests.
TINY_YAML = Path(__file__).with_name("tiny.yaml")


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(*overrides) -> RunConfig`` from ``tests/tiny.yaml`` (well under a second of training)."""
    from monai_multifair.config import load_config

    def make(*overrides: str):
        return load_config(TINY_YAML, list(overrides))

    return make


@pytest.fixture(scope="session")
def tabular_run_config():
    """``tabular_run_config(data, {modality: n_features}) -> dict``: a small run config over table blocks
    (a ``tabular-mlp`` of width 8 per block, fusion width 8, 2 epochs on the CPU, no bootstrap, no reports)."""

    def make(data: dict, blocks: dict) -> dict:
        return {
            "data": data,
            "encoders": {
                m: {"name": "tabular-mlp", "options": {"in_features": n, "hidden_dims": [8]}}
                for m, n in blocks.items()
            },
            "fusion": {"fusion_dim": 8, "num_heads": 2, "num_layers": 1},
            "trainer": {"epochs": 2, "batch_size": 32, "lr": 0.01, "device": "cpu"},
            "evaluation": {"n_boot": 0},
            "output": {"report_formats": [], "save_predictions": False},
        }

    return make
