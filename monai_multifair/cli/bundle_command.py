"""``multifair bundle``: run a MONAI bundle config (e.g. ``examples/bundle``) through ``monai.bundle.run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from monai_multifair.errors import MultiFairError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="run a MONAI bundle config (train/evaluate YAML) with the MultiFair handlers",
        description="Run MONAI bundle config files, merged in order, as `python -m monai.bundle run` does.",
    )
    parser.add_argument("config_files", nargs="+", type=Path, help="bundle YAML/JSON files, merged in order")
    parser.add_argument("--run-id", default="run", help="the config id to run (default: run)")
    parser.add_argument("--output", type=Path, help="sets the bundle's @output_dir")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    for path in args.config_files:
        if not path.is_file():
            raise MultiFairError(f"bundle config file not found: {path}")
    from monai.bundle import run

    overrides = {} if args.output is None else {"output_dir": str(args.output.resolve())}
    run(run_id=args.run_id, config_file=[str(p.resolve()) for p in args.config_files], **overrides)
    return 0
