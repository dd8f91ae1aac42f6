"""Worker for tests/core/test_distributed.py (not a test module).

Run under ``torchrun --nproc_per_node 2`` (each rank takes its half of every global batch) or as a
plain process (the whole global batch). Saves per-step statistics and final parameters.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from monai_multifair import DualLevelGradientModulator, MultiFairConfig
from monai_multifair.core.distributed import distributed_process_group

GLOBAL_BATCH, STEPS = 48, 5


class TwoTower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.text = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 2))

    def forward(self, image, text):
        return self.head(torch.cat([self.image(image), self.text(text)], dim=1))


def run(args: argparse.Namespace, distributed: bool) -> None:
    """The training; every object that holds the process group (the DDP module) is released on return."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)
    net = TwoTower().double()
    config = MultiFairConfig(
        fairness_threshold=0.01,
        fairness_weight=args.fairness_weight,
        guide_lr=1e-2,
        guide_dropout=0.3,
        modulate=args.modulate,
    )
    mod = DualLevelGradientModulator(
        {"image": net.image, "text": net.text},
        2,
        3,
        fused_head=net.head[-1],
        config=config,
        feature_dims={"image": 8, "text": 8},
    ).double()
    model = nn.parallel.DistributedDataParallel(net) if distributed else net
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    mod.attach_optimizer(opt)  # modulate="update": scales each encoder's update (no-op otherwise)
    data = torch.Generator().manual_seed(1)
    records = []
    for _ in range(STEPS):
        image = torch.randn(GLOBAL_BATCH, 6, generator=data, dtype=torch.float64)
        text = torch.randn(GLOBAL_BATCH, 4, generator=data, dtype=torch.float64)
        labels = torch.randint(0, 2, (GLOBAL_BATCH,), generator=data)
        groups = torch.randint(0, 3, (GLOBAL_BATCH,), generator=data)
        part = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
        logits = model(image[part], text[part])
        aux = mod(logits, labels[part], groups[part])
        loss = F.cross_entropy(logits, labels[part]) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        records.append({k: v.clone() for k, v in mod.stats().items()})
    torch.save(
        {
            "stats": records,
            "params": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "guides": {k: v.detach().clone() for k, v in mod.guides.state_dict().items()},
        },
        f"{args.out}.rank{rank}.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--fairness-weight", type=float, default=0.0)
    parser.add_argument("--modulate", default="gradient")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    with distributed_process_group("gloo", timeout_s=60) as distributed:
        run(args, distributed)


if __name__ == "__main__":
    main()
