"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest
import torch

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


@pytest.fixture
def torchrun():
    """Run ``torchrun --nproc_per_node N worker.py ARGS`` on loopback; fails with the workers' output.

    A static rendezvous on a free 127.0.0.1 port and ``GLOO_SOCKET_IFNAME=lo`` keep it independent of how
    the host name resolves; workers should pass a ``timeout`` to ``init_process_group`` so that a stuck
    rendezvous fails instead of hanging.
    """
    import subprocess
    import sys

    def run(worker, args=(), *, cwd, nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "GLOO_SOCKET_IFNAME": "lo",
        }
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(worker), *map(str, args),
        ]  # fmt: skip
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"torchrun failed:\n{result.stdout}\n{result.stderr}"
        return result

    return run
