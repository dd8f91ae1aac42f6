"""``multifair compare``: which fairness method to use, measured on a suite of data sets.

Examples::

    multifair compare --output runs/compare --jobs 2                       # every training method, the whole suite
    multifair compare --methods erm,multifair,groupdro --datasets cohort,ad_data --seeds 20 --trials 20
    multifair compare --config benchmarks/compare.yaml --output runs/compare   # methods and data sets from YAML
    multifair compare --quick --datasets cohort --output runs/compare-quick  # tiny sizes for CI, no claims
    multifair compare --list                                                # the suite's data sets
    multifair compare --output runs/compare --report-only --pareto          # trials and their Pareto front
    multifair compare --store postgresql://user@db-host/multifair --jobs 2    # on every machine: one shared store
    multifair compare --store postgresql://user@db-host/multifair --report-only  # the leaderboard of all of it

Run the same command again to continue an interrupted comparison (no finished run runs twice). Writes
``leaderboard.html``, ``leaderboard.md``, ``results.json``, ``runs.jsonl`` and ``optuna.journal``
(with ``--store URL`` the runs and the studies are in that database instead).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monai_multifair.errors import MultiFairError

__all__ = ["register", "run"]


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MultiFairError(f"{flag}: expected a comma-separated list of names, got {text!r}")
    return names


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`~monai_multifair.comparison.CompareConfig` of the command line (YAML, then flags)."""
    from monai_multifair.comparison import SUITE, CompareConfig, load_compare_config

    methods = _names(args.methods, "--methods")
    datasets = _names(args.datasets, "--datasets")
    if args.config is not None:
        document = load_compare_config(args.config).to_dict()
    else:  # no `methods`: every training method of the registry, read once the rest is valid
        document = {"datasets": list(SUITE)}
    if methods is not None:
        document["methods"] = methods
    if datasets is not None:
        document["datasets"] = datasets
    for key in ("seeds", "trials", "storage"):
        if getattr(args, key) is not None:
            document[key] = getattr(args, key)
    if args.selection_metric is not None:
        document["selection"] = {**(document.get("selection") or {}), "metric": args.selection_metric}
    if args.quick:
        document["quick"] = True
        if args.seeds is None:
            document["seeds"] = 2
        if args.trials is None:
            document["trials"] = 2
        document["datasets"] = [_quick_entry(d) for d in document["datasets"]]
    return CompareConfig.from_dict(document)


def _quick_entry(entry: Any) -> Any:
    """A quick run deals cross-validated data sets into 2 folds."""
    from monai_multifair.comparison import SUITE

    if isinstance(entry, str) and entry in SUITE and SUITE[entry].protocol == "cv":
        return {"name": entry, "protocol": "cv", "folds": 2}
    if isinstance(entry, dict) and entry.get("protocol") == "cv":
        return {**entry, "folds": 2}
    return entry


def _list() -> int:
    from monai_multifair.comparison import SUITE

    for entry in SUITE.values():
        where = f"package {entry.package}" if entry.package else "generated"
        folds = f", {entry.folds} folds" if entry.protocol == "cv" else ""
        print(f"{entry.name}: {entry.description} ({where}; protocol {entry.protocol}{folds})")
        print(f"    {entry.effect}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run or continue the comparison, then print where the leaderboard is."""
    if args.list:
        return _list()
    config = build_config(args)
    # the runner (torch, Optuna) is imported once the config is valid: a config error answers quickly
    from monai_multifair.comparison import compare
    from monai_multifair.core.distributed import rank

    lead = rank() == 0  # under torchrun, rank 0 speaks for the comparison
    show = not args.no_progress and sys.stderr.isatty() and lead
    action = "leaderboard of" if args.report_only else "comparing"
    if lead:
        print(
            f"{action} {', '.join(m.label for m in config.methods)} on {', '.join(d.name for d in config.datasets)}: "
            f"{config.trials} tuning trials, {config.seeds} final runs each -> {args.output}",
            flush=True,
        )
    results = compare(
        config,
        args.output,
        jobs=args.jobs,
        threads=args.threads,
        progress=show,
        log=lambda line: print(line, flush=True),
        keep_runs=args.keep_runs,
        run=not args.report_only,
        pareto=args.pareto,
        store=args.store,
        lease_s=args.lease,
    )
    if lead:
        if args.store is not None:
            where = results["store"]
            print(
                f"store {where['location']}: {where['runs']} runs stored, {where['claimed_now']} being "
                "trained by workers now" + ("" if results["complete"] else " (the leaderboard is incomplete)")
            )
        ranks = results["ranks"]["es_auc"]
        order = sorted(ranks, key=lambda a: ranks[a]["mean_rank"])
        print("mean ES-AUC rank: " + ", ".join(f"{a} {ranks[a]['mean_rank']:.2f}" for a in order))
        print(f"written: {args.output}/leaderboard.html, leaderboard.md, results.json")
        if args.pareto:
            print(
                f"Pareto plots: {', '.join(f'{args.output}/pareto-{d}.png' for d in results['tuning']) or 'none (no tuning trials)'}"
            )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` sub-command."""
    parser = subparsers.add_parser(
        "compare",
        help="benchmark fairness methods on a suite of data sets: equal tuning budget, seeds, leaderboard",
        description=(
            "Compare training methods on data sets: every tuned method gets the same number of Optuna trials "
            "of its own search space on the validation split (selection on validation ES-AUC with an AUC "
            "guard); the chosen configuration is trained with N seeds and evaluated once on the test split; "
            "paired differences against the baseline with t intervals, mean ranks across data sets. "
            "Resumable: run the same command again to continue."
        ),
    )
    parser.add_argument(
        "--config", default=None, help="a compare.yaml (methods, datasets, seeds, trials, ...)"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated training method names (default: every training method in the registry, a "
        "plugin's included; `multifair plugins` lists them)",
    )
    parser.add_argument(
        "--datasets",
        default=None,
        help="comma-separated suite data sets (default: the whole suite; see --list)",
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="final runs per method and data set (default 20)"
    )
    parser.add_argument(
        "--trials", type=int, default=None, help="tuning trials per method and data set (default 20)"
    )
    parser.add_argument(
        "--storage", default=None, help="an Optuna storage URL (default: OUTPUT/optuna.journal)"
    )
    from monai_multifair.comparison.compare_config import SELECTION_METRICS

    parser.add_argument(
        "--selection-metric",
        default=None,
        choices=SELECTION_METRICS,
        help="the validation criterion that chooses each tuned arm's configuration (default es_auc, or the "
        "config's selection.metric); distance_to_optimal is MEDFAIR's",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="a database URL (postgresql://user@host/db) that the comparisons of several machines share: "
        "each run is claimed and trained once, the Optuna studies live there too (default: OUTPUT/runs.jsonl)",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=120.0,
        help="with --store: seconds after which the runs of a worker that stopped renewing its claims "
        "(it died) are taken over (default 120; claims are renewed every third of it)",
    )
    parser.add_argument("--output", default="runs/compare", help="the output folder (default runs/compare)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per worker (default: CPUs / jobs)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, 2 seeds, 2 trials, 2 folds: a smoke run, no claims"
    )
    parser.add_argument("--keep-runs", action="store_true", help="keep every run's folder under OUTPUT/runs")
    parser.add_argument("--list", action="store_true", help="list the suite's data sets and exit")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the leaderboard of the runs stored in OUTPUT so far (marked incomplete if so)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar; one line per finished run"
    )
    parser.add_argument(
        "--pareto",
        action="store_true",
        help="also draw each data set's tuning trials on the validation AUC / ES-AUC plane with their Pareto "
        "front (OUTPUT/pareto-<data set>.png, linked from the leaderboard)",
    )
    parser.set_defaults(func=run, torchrun=True)
