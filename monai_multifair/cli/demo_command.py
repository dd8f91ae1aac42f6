"""``multifair demo``: plain fusion vs MultiFair on the embedded synthetic cohort, side by side.

Example::

    multifair demo --quick                       # about 15 s on 2 CPU cores: runs/demo-quick/
    multifair demo --output runs/demo --seed 3   # the full demo (3,000 patients, 8 epochs)

Both runs use the same config (preset ``demo`` or ``demo-quick`` plus ``--set`` overrides), budget and
seed; only ``method.name`` differs (``erm`` vs ``multifair``). The output folder holds ``baseline/`` and ``multifair/``
(each a full run folder with its audit report) and ``comparison.md`` / ``comparison.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from monai_multifair.cli.train_command import (
    add_override_argument,
    add_progress_argument,
    load_run_config,
    progress_options,
)

__all__ = ["ARMS", "register", "run"]

#: Display name, sub-folder and ``method.name`` of the two demo runs.
ARMS: tuple[tuple[str, str, str], ...] = (
    ("baseline", "baseline", "erm"),
    ("MultiFair", "multifair", "multifair"),
)


def run(args: argparse.Namespace) -> int:
    """Train both arms, print the comparison table and write the comparison files."""
    from monai_multifair.engine import compare_runs, comparison_markdown, comparison_table, train
    from monai_multifair.engine.outputs import write_json

    preset = "demo-quick" if args.quick else "demo"
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"trainer.seed={args.seed}")
    configs = {
        name: load_run_config(preset, [*overrides, f"method.name={method}"]) for name, _, method in ARMS
    }
    output = Path(args.output) if args.output else Path(configs["baseline"].output.dir)
    show, log = progress_options(args)
    first = configs["MultiFair"]
    data = first.data
    what = (
        f"synthetic glaucoma cohort of {data.options.n_patients} patients"
        if data.source == "synthetic"
        else f"data source {data.source!r}"
    )
    print(
        f"multifair demo{' --quick' if args.quick else ''}: {what} "
        f"(groups: {', '.join(first.data.attributes)}), {first.trainer.epochs} epochs, seed {first.trainer.seed}; "
        f"MultiFair preset {first.method.options.preset!r}; output {output}",
        flush=True,
    )
    results = {}
    for name, folder, _ in ARMS:
        print(f"[{name}] training -> {output / folder}", flush=True)
        results[name] = train(
            configs[name],
            output / folder,
            progress=show,
            overwrite=True,
            log=log if not show else None,
        )
        print(
            f"[{name}] done in {results[name].wall_time_s:.1f} s (model of epoch {results[name].best_epoch})",
            flush=True,
        )
    comparison = compare_runs(results, reference="baseline")
    (output / "comparison.md").write_text(
        comparison_markdown(
            comparison, title=f"multifair demo{' --quick' if args.quick else ''}: plain fusion vs MultiFair"
        ),
        encoding="utf-8",
    )
    write_json(comparison, output / "comparison.json")
    print()
    print(comparison_table(comparison))
    print(
        "\nhigher is better for every AUC, lower for DPD and DEOdds; brackets: bootstrap intervals on the test "
        "split. One seed and one split: differences inside the intervals are not evidence of an effect."
    )
    for name, run_info in comparison["runs"].items():
        for note in run_info["notes"]:
            print(f"note ({name}): {note}")
    print(f"\nreports: {output / 'baseline' / 'report.html'}, {output / 'multifair' / 'report.html'}")
    print(f"comparison: {output / 'comparison.md'}, {output / 'comparison.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="train plain fusion and MultiFair on the embedded synthetic cohort and compare them",
        description=(
            "Build the embedded synthetic glaucoma-screening cohort, train the plain fusion baseline "
            "(method erm) and MultiFair (default preset) with the same budget and seed, print "
            "AUC, ES-AUC, worst-group AUC, DPD, DEOdds and per-group AUC side by side, and write both audit "
            "reports and the comparison."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="the demo-quick preset (about 15 s on 2 CPU cores)"
    )
    parser.add_argument("--output", default=None, help="output folder (default runs/demo or runs/demo-quick)")
    parser.add_argument(
        "--seed", type=int, default=None, help="trainer.seed: initialisation, dropout, batch order"
    )
    add_override_argument(parser)
    add_progress_argument(parser)
    parser.set_defaults(func=run)
