"""The ``multifair`` command line.

Each sub-command lives in its own module of this package, exposing ``register(subparsers)``, which
adds an ``argparse`` sub-parser and sets ``func`` (a callable taking the parsed namespace and returning
an exit code). ``main`` turns user errors into one clear line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from monai_multifair.errors import MultiFairError

# Module names (in this package) that provide sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo_command",
    "train_command",
    "evaluate_command",
    "bundle_command",
    "report_command",
    "compare_command",
    "plugins_command",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    from monai_multifair import __version__

    parser = argparse.ArgumentParser(
        prog="multifair",
        description="MultiFair: balanced and fair multimodal medical classification on MONAI.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except (MultiFairError, ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"multifair {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"multifair {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
