"""The ``multifair`` command line.

Each sub-command lives in its own module of this package, exposing ``register(subparsers)``, which
adds an ``argparse`` sub-parser and sets ``func`` (a callable taking the parsed namespace and returning
an exit code). ``main`` turns user errors and file-system failures into one clear line on stderr and
exit code 2, never a traceback (:func:`one_line`). Commands that set ``torchrun=True`` (``train``,
``evaluate``) run under ``torchrun`` unchanged: ``main`` starts the process group from the launcher's
environment and ends it cleanly (``MULTIFAIR_DIST_TIMEOUT`` seconds for the rendezvous and every
collective, default 1800). An error every rank raises alike (a bad argument, config or checkpoint, a run
folder in the way) is printed once, by rank 0, and every rank exits with code 2. With
``--nproc-per-node N`` (:mod:`~monai_multifair.cli.launcher`) the command starts its N workers itself,
after checking the config once, and its own exit code is the workers' (2 for a user error), without the
launcher traceback that ``torchrun`` prints whenever a worker fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from monai_multifair.errors import MultiFairError, is_on_every_rank

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


def one_line(exc: BaseException) -> str:
    """The message of an expected failure as one line.

    * ``OSError``: ``"<reason>: '<file>'"`` (``"No space left on device: 'out/report.html'"``);
    * an error re-raised from a ``DataLoader`` worker (``"Caught X in DataLoader worker process 0.
      Original Traceback ..."``): the original message, the traceback's last line;
    * otherwise the message with its lines joined (a ``KeyError`` without its quotes).
    """
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            text += f": {str(exc.filename)!r}"
        if exc.filename2 is not None:
            text += f" -> {str(exc.filename2)!r}"
        return text
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[1].startswith("Original Traceback"):
        last = lines[-1]
        name, sep, rest = last.partition(": ")
        return rest if sep and name.replace(".", "").replace("_", "").isalnum() else last
    return " ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Expected failures -- a bad input or config (``MultiFairError``, ``ValueError``, ``TypeError``,
    ``KeyError``) and the file system's (``OSError``: a missing or unreadable file, a read-only
    folder, a full disk) -- print one line ``multifair <command>: error: <message>`` on stderr and
    return exit code 2; Ctrl-C returns 130. Anything else is a defect and keeps its traceback.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if getattr(args, "nproc_per_node", None) is not None:
            from monai_multifair.cli.launcher import launch

            return launch(args, argv)
        if "RANK" in os.environ and getattr(args, "torchrun", False):
            return _run_under_torchrun(args)
        return int(args.func(args) or EXIT_OK)
    except EXPECTED_ERRORS as exc:
        print(f"multifair {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"multifair {args.command}: interrupted", file=sys.stderr)
        return 130


#: What ``main`` reports as one line with exit code 2: bad inputs and the file system's failures.
EXPECTED_ERRORS = (MultiFairError, ValueError, TypeError, KeyError, OSError)


def _run_under_torchrun(args: argparse.Namespace) -> int:
    """The command in a process group from torchrun's environment, ended without the exit deadlock.

    An error raised alike by every rank (:func:`~monai_multifair.errors.raised_on_every_rank`) is
    printed by rank 0 alone; then every rank waits for the others and leaves at once with code 2
    (``os._exit`` after flushing: nothing that holds the group is left to release, and the group needs
    no ending), ignoring the SIGTERM with which the launcher stops the ranks still running once the
    first has exited, so that every rank exits with 2. Any other expected error is printed by the rank
    that met it (``rank N:`` on ranks other than 0) and propagates as before.
    """
    import signal

    import torch.distributed as dist

    from monai_multifair.core.distributed import distributed_process_group

    with distributed_process_group(timeout_s=float(os.environ.get("MULTIFAIR_DIST_TIMEOUT", 1800))):
        try:
            return int(args.func(args) or EXIT_OK)
        except EXPECTED_ERRORS as exc:
            rank = int(os.environ.get("RANK", "0"))
            if not is_on_every_rank(exc):
                prefix = f"rank {rank}: " if rank != 0 else ""
                raise MultiFairError(prefix + one_line(exc)) from None
            if rank == 0:
                print(f"multifair {args.command}: error: {one_line(exc)}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # leaving anyway: with 2, not the launcher's signal
            try:
                if dist.is_initialized():
                    dist.barrier()  # every rank met this error: they leave together
            finally:
                os._exit(EXIT_USAGE)
    return EXIT_OK  # pragma: no cover (the block returns or leaves the process)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
