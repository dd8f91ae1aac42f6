"""Worker for tests/core/test_distributed_shutdown.py (not a test module).

``--mode ok``: a few DDP steps, then a clean end; ``--mode raise``: rank 1 fails while rank 0 waits in a
collective; ``--mode hang``: every rank records its pid and sleeps (for the launcher's timeout).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if "hang" in sys.argv:  # record the pid before the slow imports, so the launcher test need not wait
    Path(sys.argv[sys.argv.index("--out") + 1], f"pid{os.environ['RANK']}").write_text(str(os.getpid()))

import torch
import torch.distributed as dist
from torch import nn

from monai_multifair.core.distributed import distributed_process_group


def run(mode: str, out: Path) -> None:
    rank = dist.get_rank()
    if mode == "hang":
        dist.barrier()  # both ranks inside the process group
        time.sleep(3600)
    model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        model(torch.full((4, 3), float(rank + step))).sum().backward()
        opt.step()
        opt.zero_grad()
    if mode == "raise" and rank == 1:
        raise ValueError("deliberate failure on rank 1")
    dist.all_reduce(torch.ones(1))  # rank 0 waits here when rank 1 failed
    (out / f"done{rank}").write_text(repr([p.detach().tolist() for p in model.parameters()]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("ok", "raise", "hang"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with distributed_process_group("gloo", timeout_s=60) as distributed:
        assert distributed
        run(args.mode, args.out)
    assert not dist.is_initialized(), "the process group outlived distributed_process_group"
    (args.out / f"exited{int(os.environ['RANK'])}").write_text("ok")


if __name__ == "__main__":
    main()
