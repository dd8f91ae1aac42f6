"""Worker for tests/engine/test_engine_distributed.py (not a test module).

Runs ``monai_multifair.engine.train`` under ``torchrun`` (or in one process) on a config file, and saves
each rank's final network and method state, its validation history and test metrics. ``--stop-at N``
raises ``KeyboardInterrupt`` at global iteration ``N`` on every rank (an interrupted run); ``--resume``
continues the run folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from ignite.engine import Events

from monai_multifair.config import load_config
from monai_multifair.core.distributed import distributed_process_group, rank
from monai_multifair.engine import train
from monai_multifair.handlers import unwrap_network


class Snapshot:
    """At the trainer's end: this rank's network state (through the DDP wrapper)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine) -> None:
        self.state = {k: v.detach().clone() for k, v in unwrap_network(engine.network).state_dict().items()}


class StopAt:
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), self)

    def __call__(self, engine) -> None:
        raise KeyboardInterrupt


def run(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    snapshot = Snapshot()
    handlers = [snapshot] + ([StopAt(args.stop_at)] if args.stop_at else [])
    try:
        result = train(config, args.folder, resume=args.resume, progress=False, handlers=handlers)
    except KeyboardInterrupt:
        Path(f"{args.out}.rank{rank()}.interrupted").write_text("yes")
        return
    torch.save(
        {
            "network": snapshot.state,
            "validation": result.validation.to_dict("list"),
            "metrics": {k: result.metrics[k] for k in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")},
            "predictions": result.predictions["score"].tolist(),
            "stats": result.training_stats.to_dict("list"),
        },
        f"{args.out}.rank{rank()}.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--stop-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with distributed_process_group("gloo", timeout_s=120):
        run(args)


if __name__ == "__main__":
    main()
