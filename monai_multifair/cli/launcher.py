"""``--nproc-per-node N``: a command that starts its own workers on this machine.

``multifair train --nproc-per-node 4 --config fairvision --output runs/fv`` is
``torchrun --standalone --nproc_per_node 4 -m monai_multifair train --config fairvision --output runs/fv``
with two differences a user sees when something is wrong:

* the command line and the config are checked once, before any worker starts (the command's
  ``prepare``): a bad key, value or file is one line and exit code 2, and no worker is started;
* an error met by the workers is printed once by rank 0 (see :func:`monai_multifair.cli.main`), and the
  command exits with the workers' code (2 for a user error, 130 after Ctrl-C), without the
  ``ChildFailedError`` traceback and the agent's log lines that ``torchrun`` prints when a worker fails.

Several machines keep using ``torchrun`` (docs/howto/distributed.md): this launcher starts workers on
this machine only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from monai_multifair.errors import MultiFairError

__all__ = ["launch", "worker_argv"]

OPTION = "--nproc-per-node"


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node N`` (or ``--nproc-per-node=N``): the workers' command line.

    Raises:
        MultiFairError: the option is not written in full (an abbreviation argparse accepted).
    """
    out: list[str] = []
    found = False
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == OPTION:
            found, skip = True, True
        elif item.startswith(OPTION + "="):
            found = True
        else:
            out.append(item)
    if not found:
        raise MultiFairError(
            f"write {OPTION} in full (an abbreviation of it cannot be passed on to the workers)"
        )
    return out


def _quiet_launcher_logs() -> None:
    """The elastic agent logs each worker failure and the SIGTERM it sends; the command reports instead."""
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.distributed.run").setLevel(logging.ERROR)


def launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Check the command once, then run it on ``args.nproc_per_node`` workers of this machine.

    Returns:
        0 when every worker succeeded; 2 when a worker ended with a user error (rank 0 printed it) or
        the check failed before any worker started; 130 after Ctrl-C; 1 for any other failure (one
        line naming the rank and its exit code; the worker's own output is above it).

    Raises:
        MultiFairError: ``N`` < 1, the command already runs under ``torchrun``, or the command line or
            config is bad (the command's ``prepare``).
    """
    n = args.nproc_per_node
    if n < 1:
        raise MultiFairError(f"expected {OPTION} to be an integer >= 1, got {n}")
    if "RANK" in os.environ:
        raise MultiFairError(
            f"{OPTION} starts its own workers: under torchrun leave it out (torchrun's --nproc_per_node says how many)"
        )
    workers = worker_argv(argv)
    args.prepare(args)  # a bad argument, config or file: one line here, no worker started
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    _quiet_launcher_logs()
    launcher_args = parse_args(
        ["--standalone", "--nproc_per_node", str(n), "-m", "monai_multifair", *workers]
    )
    try:
        run(launcher_args)
    except ChildFailedError as error:
        codes = sorted({failure.exitcode for failure in error.failures.values()})
        if 2 in codes:
            return 2  # a user error, printed by rank 0
        if 130 in codes:
            return 130
        rank, failure = error.get_first_failure()
        print(
            f"multifair {args.command}: error: worker rank {rank} failed with exit code {failure.exitcode} "
            "(its output is above)",
            file=sys.stderr,
        )
        return 1
    except SignalException:
        print(f"multifair {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
