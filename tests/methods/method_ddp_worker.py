"""Worker for tests/methods/test_method_distributed.py (not a test module).

Run under ``torchrun --nproc_per_node 2`` (each rank its share of every global batch) or as one process
(the whole global batch). ``--method groupdro|fis`` trains with that loss weighting on a fixed stream of
batches; ``--method resampling`` draws the batches with the group-balanced sampler (sharded per rank).
Saves per-step statistics, the sample indices seen, and the final parameters.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from monai_multifair.core.distributed import distributed_process_group
from monai_multifair.engine import TensorBatchLoader
from monai_multifair.methods import (
    FairIdentityScalingWeighting,
    GroupDROWeighting,
    balanced_sampling_weights,
)

GLOBAL_BATCH, STEPS, N = 24, 5, 120


def run(args: argparse.Namespace, distributed: bool) -> None:
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    model = nn.parallel.DistributedDataParallel(net) if distributed else net
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    data = torch.Generator().manual_seed(1)
    x = torch.randn(N, 5, generator=data, dtype=torch.float64)
    labels = torch.randint(0, 2, (N,), generator=data)
    groups = torch.cat([torch.zeros(80), torch.ones(30), torch.full((10,), 2.0)]).long()
    counts = torch.bincount(groups).double()
    if args.method == "groupdro":
        weighting = GroupDROWeighting(3, counts, eta=0.5, adjustment=1.0, by="group", num_classes=2)
    elif args.method == "fis":
        weighting = FairIdentityScalingWeighting(3, 0.5, 0.7, 0.8, pool="balanced")  # exact distance
    else:
        weighting = None
    local = GLOBAL_BATCH // world
    if args.method == "resampling":
        loader = TensorBatchLoader(
            {"index": torch.arange(N)},
            local,
            seed=3,
            weights=balanced_sampling_weights(groups, counts),
            num_replicas=world,
            rank=rank,
        )
        loader.set_epoch(1)
        batches = [b["index"] for b in loader][:STEPS]
    else:
        order = torch.randperm(N, generator=data)
        batches = [
            order[s * GLOBAL_BATCH : (s + 1) * GLOBAL_BATCH][rank * local : (rank + 1) * local]
            for s in range(STEPS)
        ]
    records, seen = [], []
    for index in batches:
        logits = model(x[index])
        losses = F.cross_entropy(logits, labels[index], reduction="none")
        loss = weighting(losses, labels[index], groups[index]) if weighting is not None else losses.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(index.clone())
        if weighting is not None:
            records.append({k: v.detach().clone() for k, v in weighting.statistics().items()})
    torch.save(
        {
            "stats": records,
            "seen": seen,
            "params": {k: v.detach().clone() for k, v in net.state_dict().items()},
        },
        f"{args.out}.rank{rank}.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--method", choices=("groupdro", "fis", "resampling"), required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with distributed_process_group("gloo", timeout_s=60) as distributed:
        run(args, distributed)


if __name__ == "__main__":
    main()
