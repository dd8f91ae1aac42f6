"""Worker for tests/handlers/test_multifair_handler_ddp.py (not a test module).

Run under ``torchrun --nproc_per_node 2``: a DDP-wrapped MultimodalFusionClassifier trained by a MONAI
SupervisedTrainer with MultiFairHandler (encoders found through ``network.module``). Each rank seeds its
generator differently before the run, so the guide heads start different and only the handler's
broadcast from rank 0 makes them equal. Then a SupervisedEvaluator with FairnessEvaluationHandler runs on
uneven shards. Saves the final network and modulator states and the metrics per rank.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from _workflow import MODALITIES, NUM_GROUPS, make_loader, make_net, make_records, make_trainer
from monai.data import DistributedSampler as EvalSampler
from monai.engines import SupervisedEvaluator
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from monai_multifair.core.distributed import distributed_process_group
from monai_multifair.handlers import FairnessEvaluationHandler, MultiFairHandler, MultimodalPrepareBatch


def run(args: argparse.Namespace) -> None:
    """Train and evaluate; the DDP module, trainer and evaluator are released on return."""
    rank = dist.get_rank()
    records = make_records(n=48)
    sampler = DistributedSampler(records, num_replicas=dist.get_world_size(), rank=rank, shuffle=True, seed=3)
    network = DistributedDataParallel(make_net(seed=0))
    handler = MultiFairHandler(
        num_classes=2,
        num_groups=NUM_GROUPS,
        config={
            "preset": "paper",
            "guide_dropout": 0.0,
            "fairness_threshold": 0.02,
            "modulate": args.modulate,
        },
        stats_interval=1,
    )
    trainer = make_trainer(
        network, make_loader(records, batch_size=6, sampler=sampler), [handler], max_epochs=2
    )
    torch.manual_seed(100 + rank)  # different guide initialisations on purpose
    trainer.run()
    metrics = {k: v for k, v in trainer.state.metrics.items() if k.startswith("multifair/")}

    # evaluation on uneven shards (23 / 22 samples): the fairness handler gathers every prediction
    eval_records = make_records(n=45, seed=7)
    eval_sampler = EvalSampler(eval_records, even_divisible=False, shuffle=False)
    fairness = FairnessEvaluationHandler(num_groups=NUM_GROUPS)
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=make_loader(eval_records, batch_size=8, sampler=eval_sampler),
        network=network,
        prepare_batch=MultimodalPrepareBatch(MODALITIES),
        val_handlers=[fairness],
    )
    evaluator.run()
    state = {k: v for k, v in handler.modulator.state_dict().items() if isinstance(v, torch.Tensor)}
    torch.save(
        {
            "network": network.module.state_dict(),
            "modulator": state,
            "metrics": metrics,
            "steps": trainer.state.iteration,
            "fairness": dict(evaluator.state.metrics),
            "local_eval_samples": len(eval_sampler),
        },
        os.path.join(args.out, f"rank{rank}.pt"),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--modulate", default="gradient")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with distributed_process_group("gloo", timeout_s=60):
        run(args)


if __name__ == "__main__":
    main()
