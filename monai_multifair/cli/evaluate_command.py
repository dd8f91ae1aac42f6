"""``multifair evaluate``: metrics, predictions and audit report of a checkpoint on a split.

Example::

    multifair evaluate --checkpoint runs/mine/checkpoints/best.pt          # config: runs/mine/config.yaml
    multifair evaluate --config demo --checkpoint best.pt --output audit/ --split val
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monai_multifair.cli.train_command import (
    add_launch_argument,
    add_override_argument,
    load_run_config,
    result_lines,
)
from monai_multifair.errors import MultiFairError, raised_on_every_rank

__all__ = ["prepare", "register", "run"]


def prepare(args: argparse.Namespace) -> tuple[Any, Path]:
    """``(config, checkpoint)`` of the command line, the checkpoint checked against its record: the checks
    that need no data, done alike on every rank (and once, before the workers start, by
    ``--nproc-per-node``)."""
    from monai_multifair.engine.checkpoint_files import check_checkpoint_record

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise MultiFairError(f"--checkpoint {args.checkpoint!r} does not exist or is not a file")
    source = args.config
    if source is None:
        base = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        source = base / "config.yaml"
        if not source.is_file():
            raise MultiFairError(
                "--config is required: the checkpoint is not in a run folder with a config.yaml "
                f"(looked for {str(source)!r})"
            )
    config = load_run_config(source, args.overrides)
    check_checkpoint_record(checkpoint)  # again in evaluate (for its note): a damaged file stops here
    return config, checkpoint


def run(args: argparse.Namespace) -> int:
    """Evaluate the checkpoint and print its metrics and the files written."""
    with raised_on_every_rank():
        config, checkpoint = prepare(args)
    # the engine (torch, MONAI) is imported once the config is valid: a config error answers quickly
    from monai_multifair.core.distributed import rank
    from monai_multifair.engine import evaluate

    result = evaluate(config, checkpoint, args.output, split=args.split, overwrite=args.overwrite)
    if rank() == 0:
        print("\n".join(result_lines(result)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a split (--split, default test): metrics, predictions, audit report",
        description=(
            "Build the network of a config, load a checkpoint (best.pt or checkpoint_epoch=N.pt of a run, or a "
            "model state dict) and write metrics.json, predictions.csv and the audit report for a split."
        ),
    )
    parser.add_argument(
        "--config",
        default=None,
        help="the config the checkpoint was trained with (preset or YAML); default: the run folder's config.yaml",
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint file")
    parser.add_argument(
        "--output", default=None, help="output folder (default: evaluation/ in the checkpoint's run folder)"
    )
    parser.add_argument("--split", choices=("test", "val", "train"), default="test", help="split to evaluate")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier evaluation's files in --output (a training run's own folder is always refused)",
    )
    add_override_argument(parser)
    add_launch_argument(parser)
    parser.set_defaults(func=run, torchrun=True, prepare=prepare)
