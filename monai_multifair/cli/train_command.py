"""``multifair train``: train, select and audit one model from a config; resume an interrupted run.

Example::

    multifair train --config demo --set trainer.epochs=4 --output runs/mine
    multifair train --output runs/mine --resume          # after an interruption (Ctrl-C, a crash)

writes ``runs/mine/``: ``config.yaml``, ``checkpoints/`` (``best.pt``, ``checkpoint_epoch=N.pt``),
``metrics.json``, ``predictions.csv``, ``training_stats.csv``, ``validation.csv`` and
``report.html`` / ``report.md`` / ``report.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai_multifair.errors import MultiFairError, raised_on_every_rank

__all__ = [
    "add_override_argument",
    "add_progress_argument",
    "add_launch_argument",
    "load_run_config",
    "prepare",
    "progress_options",
    "register",
    "result_lines",
    "run",
]


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set trainer.epochs=3 --set method.name=groupdro (repeatable)",
    )


def add_launch_argument(parser: argparse.ArgumentParser) -> None:
    """``--nproc-per-node N``: start N workers on this machine (``torch.distributed.run``)."""
    parser.add_argument(
        "--nproc-per-node",
        type=int,
        default=None,
        metavar="N",
        help="run on N processes of this machine (one per GPU, or CPU processes with gloo): the config is "
        "checked once, then N workers start as torchrun starts them; an error is one line, exit code 2",
    )


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are also off when stderr is not a terminal); print one line per epoch",
    )


def load_run_config(source: str | Path, overrides: list[str]) -> Any:
    """:func:`~monai_multifair.config.load_config` of a preset name or YAML path with ``--set`` overrides."""
    from monai_multifair.config import load_config

    return load_config(str(source), overrides)


def progress_options(args: argparse.Namespace) -> tuple[bool, Callable[[str], None]]:
    """``(show progress bars, epoch-line printer)``: bars only on a terminal and without ``--no-progress``."""
    show = not args.no_progress and sys.stderr.isatty()
    return show, lambda line: print(line, flush=True)


def _value(metric: float, ci: Any = None) -> str:
    if metric is None or (isinstance(metric, float) and math.isnan(metric)):
        return "undefined"
    text = f"{metric:.4f}"
    if ci and all(v is not None for v in ci):
        text += f"  [{ci[0]:.4f}, {ci[1]:.4f}]"
    return text


def result_lines(result: Any) -> list[str]:
    """Readable summary of a :class:`~monai_multifair.engine.RunResult`: metrics (with intervals), files."""
    from monai_multifair.engine import HEADLINE_METRICS

    report = result.report.to_dict() if result.report is not None else None
    summary = report.get("summary", {}) if report else {}
    by_group = report.get("metrics", {}).get("by_group", {}) if report else {}
    rows = [
        (label, _value(result.metrics[name], summary.get(name, {}).get("ci")))
        for name, label in HEADLINE_METRICS.items()
    ]
    rows += [
        (f"AUC {group}", _value(value, by_group.get(group, {}).get("auc", {}).get("ci")))
        for group, value in result.metrics["group_auc"].items()
    ]
    width = max(len(label) for label, _ in rows)
    split = result.metrics.get("split", "test")
    head = f"{split} metrics ({result.metrics['n']} samples"
    if result.best_epoch is not None:
        head += f", model of epoch {result.best_epoch}"
    head += "; brackets: bootstrap intervals):" if report else "):"
    lines = [head, *(f"  {label.ljust(width)}  {value}" for label, value in rows)]
    lines += [f"  note: {note}" for note in result.metrics.get("notes", [])]
    lines.append(f"files in {result.run_dir}:")
    lines += [f"  {path}" for path in result.files.values() if Path(path).is_file()]
    return lines


def prepare(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(config, its source)`` of the command line: the checks that need no data, done alike on every
    rank (and once, before the workers start, by ``--nproc-per-node``)."""
    if args.resume and args.overwrite:
        raise MultiFairError("--resume and --overwrite exclude each other: continue the run or start it over")
    source = args.config
    if source is None:
        if not (args.resume and args.output):
            raise MultiFairError(
                "--config is required (a preset such as demo, demo-quick, fairvision, fairvlmed, or a YAML file); "
                "only `--resume --output DIR` can do without it (it reads DIR/config.yaml)"
            )
        source = Path(args.output) / "config.yaml"
        if not source.is_file():
            raise MultiFairError(
                f"cannot resume {args.output!r}: it has no config.yaml (is it a run folder?)"
            )
    return load_run_config(source, args.overrides), source


def run(args: argparse.Namespace) -> int:
    """Train (or resume) and print the test metrics and the files written."""
    with raised_on_every_rank():
        config, source = prepare(args)
    # the engine (torch, MONAI) is imported once the config is valid: a config error answers quickly
    from monai_multifair.core.distributed import rank, world_size
    from monai_multifair.engine import train

    run_dir = Path(args.output) if args.output else Path(config.output.dir)
    show, log = progress_options(args)
    lead = rank() == 0  # under torchrun, rank 0 speaks for the run
    action = "resuming" if args.resume else "training"
    method = config.method.name
    if method == "multifair":
        method += f" ({config.method.options.preset} preset)"
    if config.postprocessing is not None:
        method += f", then {config.postprocessing.name}"
    if lead:
        where = f" on {world_size()} processes" if world_size() > 1 else ""
        print(
            f"{action} {source} -> {run_dir}: {config.trainer.epochs} epochs, method {method}{where}",
            flush=True,
        )
    result = train(
        config,
        run_dir,
        resume=args.resume,
        progress=show,
        overwrite=args.overwrite,
        stats_interval=args.stats_interval,
        log=log,
    )
    if lead:
        print("\n".join(result_lines(result)))
        print(f"wall time {result.wall_time_s:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train, select and audit a model from a config (preset or YAML); resume a run",
        description=(
            "Train the multimodal fusion model a config describes with its fairness method (method.name: a "
            "training method of the registry, built-in or a plugin's; `multifair plugins` lists them), "
            "validate every trainer.val_interval epochs, keep the best model on evaluation.selection_metric "
            "and the last epoch, then audit the best model on the test split. --resume continues an "
            "interrupted run from its last checkpoint."
        ),
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a preset (demo, demo-quick, fairvision, fairvlmed) or a YAML file; with --resume, default OUTPUT/config.yaml",
    )
    parser.add_argument("--output", default=None, help="the run folder (default: the config's output.dir)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --output from its last checkpoint"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in --output")
    parser.add_argument(
        "--stats-interval",
        type=int,
        default=10,
        metavar="N",
        help="record the loss and the method's statistics every N iterations (default 10)",
    )
    add_override_argument(parser)
    add_progress_argument(parser)
    add_launch_argument(parser)
    parser.set_defaults(func=run, torchrun=True, prepare=prepare)
