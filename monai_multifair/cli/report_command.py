"""``multifair report``: a fairness audit (HTML, Markdown, JSON) from a predictions file.

Example::

    multifair report preds.csv --label-column glaucoma --score-column prob \\
        --group-columns race,gender --output audit/ --n-boot 1000 --threshold 0.5

writes ``audit/report.html`` (self-contained, plots embedded), ``audit/report.md`` and
``audit/report.json``. Existing report files in ``--output`` are only replaced with ``--overwrite``;
the three files are written all-or-nothing (each staged to a temporary file, then renamed), so a
full disk or a read-only folder leaves no half-written report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from monai_multifair.errors import MultiFairError

if TYPE_CHECKING:  # pandas is imported when the command runs, not by ``multifair --help``
    import pandas as pd

OUTPUT_FILES = ("report.html", "report.md", "report.json")
#: The Python argument of ``AuditReport.from_predictions_file`` behind each flag (errors name the flag).
FLAGS = {
    "label_col": "--label-column",
    "score_cols": "--score-column",
    "group_cols": "--group-columns",
    "patient_col": "--patient-column",
    "pos_label": "--pos-label",
    "threshold": "--threshold",
    "alpha": "--alpha",
    "min_group_size": "--min-group-size",
    "min_support": "--min-support",
    "random_state": "--random-state",
    "n_permutations": "--n-permutations",
}


def _columns(text: str, flag: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise MultiFairError(f"expected comma-separated column names for {flag}, got {text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MultiFairError(
            f"expected distinct column names for {flag}, got {', '.join(map(repr, repeated))} more than once "
            f"in {text!r}"
        )
    return names


def _check_output(output: Path, overwrite: bool) -> list[Path]:
    """The three report paths in ``output``; refuses to replace existing ones without ``--overwrite``."""
    if output.exists() and not output.is_dir():
        raise MultiFairError(f"expected --output to be a directory, got existing file {str(output)!r}")
    paths = [output / name for name in OUTPUT_FILES]
    existing = [path.name for path in paths if path.exists()]
    if existing and not overwrite:
        raise MultiFairError(
            f"--output {str(output)!r} already holds {', '.join(existing)}; pass --overwrite to replace "
            "them, or choose another folder"
        )
    if output.is_dir() and not os.access(output, os.W_OK | os.X_OK):
        raise MultiFairError(f"--output {str(output)!r} is not writable (permission denied)")
    return paths


def _training_stats(path: str) -> pd.DataFrame:
    """Read per-step training statistics from CSV or JSON (records or column mapping)."""
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise MultiFairError(f"training statistics file {path!r} does not exist or is not a file")
    if file.suffix.lower() == ".csv":
        try:
            return pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            message = str(exc).replace("\n", " ")
            raise MultiFairError(f"could not parse training statistics {path!r} as CSV: {message}") from None
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MultiFairError(f"could not parse training statistics {path!r} as JSON: {exc}") from exc
        return pd.DataFrame.from_records(data) if isinstance(data, list) else pd.DataFrame(data)
    raise MultiFairError(f"expected a .csv or .json training statistics file, got {file.name!r}")


@contextlib.contextmanager
def _flag_names() -> Iterator[None]:
    """Errors about a column name the command-line flag, not the Python argument behind it."""
    try:
        yield
    except MultiFairError as err:
        message = str(err)
        for argument, flag in FLAGS.items():
            message = message.replace(f"`{argument}`", flag)
        raise MultiFairError(message) from None


def run(args: argparse.Namespace) -> int:
    """Build the report and write the three files; returns the exit code."""
    from monai_multifair.atomic_io import atomic_write_files
    from monai_multifair.metrics import UndefinedGroupMetricWarning
    from monai_multifair.metrics._inputs import check_device
    from monai_multifair.report import AuditReport

    if args.n_boot < 0:
        raise MultiFairError(f"expected --n-boot >= 0 (0 disables intervals), got {args.n_boot}")
    if args.n_permutations < 0:
        raise MultiFairError(
            f"expected --n-permutations >= 0 (0 disables the tests), got {args.n_permutations}"
        )
    if args.min_support < 1:
        raise MultiFairError(f"expected --min-support >= 1, got {args.min_support}")
    score_cols = _columns(args.score_column, "--score-column")
    group_cols = _columns(args.group_columns, "--group-columns")
    try:
        device = check_device(args.device)
    except MultiFairError as err:
        raise MultiFairError(str(err).replace("`device`", "--device")) from None
    output = Path(args.output)
    paths = _check_output(output, args.overwrite)  # before the (possibly long) computation
    kwargs = {}
    if args.title is not None:
        kwargs["title"] = args.title
    with warnings.catch_warnings(record=True) as caught, _flag_names():
        warnings.simplefilter("always", UndefinedGroupMetricWarning)  # and SmallGroupWarning
        report = AuditReport.from_predictions_file(
            args.predictions,
            label_col=args.label_column,
            score_cols=score_cols,
            group_cols=group_cols,
            patient_col=args.patient_column,
            pos_label=args.pos_label,
            threshold=args.threshold,
            n_boot=args.n_boot or None,
            random_state=args.random_state,
            alpha=args.alpha,
            min_group_size=args.min_group_size,
            min_support=args.min_support,
            n_permutations=args.n_permutations or None,
            training_stats=None if args.training_stats is None else _training_stats(args.training_stats),
            device=device,
            **kwargs,
        )
    for w in caught:
        if issubclass(w.category, UndefinedGroupMetricWarning):  # also in the report's notes
            print(f"multifair report: note: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    texts = [report.to_html(), report.to_markdown(), report.to_json() + "\n"]
    _check_output(output, args.overwrite)  # again: another process may have written meanwhile
    output.mkdir(parents=True, exist_ok=True)
    for path in atomic_write_files(dict(zip(paths, texts, strict=True))):
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    parser = subparsers.add_parser(
        "report",
        help="fairness audit report (HTML, Markdown, JSON) from a predictions file",
        description=(
            "Audit predictions across demographic groups with fairlearn-style metrics and bootstrap "
            "intervals; writes report.html, report.md and report.json to --output."
        ),
    )
    parser.add_argument("predictions", help="predictions table: .csv/.tsv (optionally .gz) or .parquet")
    parser.add_argument("--label-column", required=True, help="column of the labels")
    parser.add_argument(
        "--score-column",
        required=True,
        help="column of positive-class probabilities, or comma-separated class-probability columns",
    )
    parser.add_argument("--group-columns", required=True, help="comma-separated sensitive attribute columns")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (0: no intervals)")
    parser.add_argument("--threshold", type=float, default=0.5, help="operating threshold (default 0.5)")
    parser.add_argument("--patient-column", default=None, help="patient ids: resample patients, not rows")
    parser.add_argument(
        "--pos-label", default="1", help="positive label (or column index for several scores)"
    )
    parser.add_argument(
        "--n-permutations",
        type=int,
        default=1000,
        help="permutations of each attribute's disparity test, Holm-adjusted (0: no tests; default 1000)",
    )
    parser.add_argument(
        "--random-state", type=int, default=0, help="seed of the bootstrap and the permutations (default 0)"
    )
    parser.add_argument("--alpha", type=float, default=1.0, help="ES-AUC disparity scale (default 1)")
    parser.add_argument("--min-group-size", type=int, default=1, help="smaller groups are undefined")
    parser.add_argument(
        "--min-support",
        type=int,
        default=30,
        help="groups with fewer samples are named in the notes; their extreme-statistic intervals are checked",
    )
    parser.add_argument(
        "--training-stats", default=None, help="per-step modulator statistics (.csv or .json)"
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--device", default=None, help="torch device for the bootstrap (cpu, cuda)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace report files that already exist in --output"
    )
    parser.set_defaults(func=run)
