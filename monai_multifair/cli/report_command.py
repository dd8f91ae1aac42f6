"""``multifair report``: a fairness audit (HTML, Markdown, JSON) from a predictions file.

Example::

    multifair report preds.csv --label-column glaucoma --score-column prob \\
        --group-columns race,gender --output audit/ --n-boot 1000 --threshold 0.5

writes ``audit/report.html`` (self-contained, plots embedded), ``audit/report.md`` and
``audit/report.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from monai_multifair.errors import MultiFairError

OUTPUT_FILES = ("report.html", "report.md", "report.json")


def _columns(text: str, flag: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise MultiFairError(f"expected comma-separated column names for {flag}, got {text!r}")
    return names


def _training_stats(path: str) -> pd.DataFrame:
    """Read per-step training statistics from CSV or JSON (records or column mapping)."""
    file = Path(path)
    if not file.is_file():
        raise MultiFairError(f"training statistics file {path!r} does not exist or is not a file")
    if file.suffix.lower() == ".csv":
        return pd.read_csv(file)
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MultiFairError(f"could not parse training statistics {path!r} as JSON: {exc}") from exc
        return pd.DataFrame.from_records(data) if isinstance(data, list) else pd.DataFrame(data)
    raise MultiFairError(f"expected a .csv or .json training statistics file, got {file.name!r}")


def run(args: argparse.Namespace) -> int:
    """Build the report and write the three files; returns the exit code."""
    from monai_multifair.report import AuditReport

    if args.n_boot < 0:
        raise MultiFairError(f"expected --n-boot >= 0 (0 disables intervals), got {args.n_boot}")
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise MultiFairError(f"expected --output to be a directory, got existing file {str(output)!r}")
    kwargs = {}
    if args.title is not None:
        kwargs["title"] = args.title
    report = AuditReport.from_predictions_file(
        args.predictions,
        label_col=args.label_column,
        score_cols=_columns(args.score_column, "--score-column"),
        group_cols=_columns(args.group_columns, "--group-columns"),
        patient_col=args.patient_column,
        pos_label=args.pos_label,
        threshold=args.threshold,
        n_boot=args.n_boot or None,
        random_state=args.random_state,
        alpha=args.alpha,
        min_group_size=args.min_group_size,
        training_stats=None if args.training_stats is None else _training_stats(args.training_stats),
        device=args.device,
        **kwargs,
    )
    output.mkdir(parents=True, exist_ok=True)
    html_path, md_path, json_path = (output / name for name in OUTPUT_FILES)
    report.to_html(html_path)
    report.to_markdown(md_path)
    report.to_json(json_path)
    for path in (html_path, md_path, json_path):
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
    parser.add_argument("--random-state", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--alpha", type=float, default=1.0, help="ES-AUC disparity scale (default 1)")
    parser.add_argument("--min-group-size", type=int, default=1, help="smaller groups are undefined")
    parser.add_argument(
        "--training-stats", default=None, help="per-step modulator statistics (.csv or .json)"
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--device", default=None, help="torch device for the bootstrap (cpu, cuda)")
    parser.set_defaults(func=run)
