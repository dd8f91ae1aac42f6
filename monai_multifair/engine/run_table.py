"""Side-by-side comparison of runs (the ``multifair demo`` table): headline metrics, group AUCs, intervals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monai_multifair.engine.outputs import HEADLINE_METRICS, json_ready
from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import DEGENERATE_METRICS

if TYPE_CHECKING:
    from monai_multifair.engine.run import RunResult

__all__ = ["LOWER_IS_BETTER", "compare_runs", "comparison_markdown", "comparison_table"]

#: Metrics where a smaller value is better (the disparities); for every AUC a larger one is.
LOWER_IS_BETTER: tuple[str, ...] = ("dpd", "deodds")


def _interval(report: dict[str, Any] | None, metric: str, group: str | None = None) -> list[float] | None:
    """The bootstrap interval of ``metric`` (or of group ``group``'s AUC) in an audit report dict."""
    if report is None:
        return None
    if group is None:
        entry = report.get("summary", {}).get(metric)
    else:
        entry = report.get("metrics", {}).get("by_group", {}).get(group, {}).get("auc")
    ci = entry.get("ci") if isinstance(entry, Mapping) else None
    return [float("nan") if v is None else float(v) for v in ci] if ci else None


def compare_runs(results: Mapping[str, RunResult], reference: str | None = None) -> dict[str, Any]:
    """Tabulate the test metrics of several runs and their differences to a reference run.

    Args:
        results: display name -> :class:`~monai_multifair.engine.RunResult`, in column order.
        reference: the run the others are compared with (default: the first).

    Returns:
        A JSON-ready dict: ``reference``; ``rows`` (``[{"metric", "label", "values": {run: value},
        "ci": {run: [low, high] or None}, "change": {run: value - reference}}]``, plus
        ``"degenerate": {run: bool}`` for DPD and DEOdds: the headline metrics then
        ``group_auc/<group>`` for every group); ``runs`` (per run: folder, best epoch, wall time,
        method, test samples, threshold and how it was chosen, degenerate groups); ``lower_is_better``.

    Raises:
        MultiFairError: fewer than two runs, or an unknown ``reference``.
    """
    names = list(results)
    if len(names) < 2:
        raise MultiFairError(f"expected at least two runs to compare, got {len(names)}")
    reference = names[0] if reference is None else reference
    if reference not in results:
        raise MultiFairError(f"unknown `reference` run {reference!r}; runs: {', '.join(names)}")
    reports = {name: (r.report.to_dict() if r.report is not None else None) for name, r in results.items()}
    groups: list[str] = []
    for r in results.values():
        groups += [g for g in r.metrics["group_auc"] if g not in groups]
    rows = []
    for metric, label in [*HEADLINE_METRICS.items(), *((f"group_auc/{g}", f"AUC {g}") for g in groups)]:
        if metric.startswith("group_auc/"):
            group = metric.split("/", 1)[1]
            values = {n: float(r.metrics["group_auc"].get(group, math.nan)) for n, r in results.items()}
            ci = {n: _interval(reports[n], "auc", group) for n in names}
        else:
            values = {n: float(r.metrics[metric]) for n, r in results.items()}
            ci = {n: _interval(reports[n], metric) for n in names}
        change = {n: values[n] - values[reference] for n in names if n != reference}
        row = {"metric": metric, "label": label, "values": values, "ci": ci, "change": change}
        if metric in DEGENERATE_METRICS:
            row["degenerate"] = {n: bool(r.metrics.get("degenerate")) for n, r in results.items()}
        rows.append(row)
    runs = {
        name: {
            "run_dir": str(r.run_dir),
            "best_epoch": r.best_epoch,
            "wall_time_s": r.wall_time_s,
            "method": r.metrics.get("method"),
            "n_test": r.metrics.get("n"),
            "threshold": r.metrics.get("threshold"),
            "threshold_source": r.metrics.get("threshold_source"),
            "degenerate": r.metrics.get("degenerate", {}),
            "notes": r.metrics.get("notes", []),
        }
        for name, r in results.items()
    }
    return json_ready(
        {"reference": reference, "runs": runs, "rows": rows, "lower_is_better": list(LOWER_IS_BETTER)}
    )


def _number(value: Any) -> str:
    return (
        "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
    )


def _signed(value: Any) -> str:
    return (
        "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.3f}"
    )


def _cell(row: dict[str, Any], name: str, with_ci: bool) -> str:
    text = _number(row["values"][name])
    ci = row["ci"].get(name)
    if with_ci and ci and text != "undefined":
        text += f" [{_number(ci[0])}, {_number(ci[1])}]"
    if row.get("degenerate", {}).get(name):
        text += " (degenerate)"
    return text


def _direction(metric: str) -> str:
    return "lower" if metric in LOWER_IS_BETTER else "higher"


def comparison_table(comparison: Mapping[str, Any], *, with_ci: bool = True) -> str:
    """:func:`compare_runs` as an aligned plain-text table (the terminal output of ``multifair demo``)."""
    names = list(comparison["runs"])
    reference = comparison["reference"]
    others = [n for n in names if n != reference]
    header = ["metric", *names, *(f"{n} - {reference}" for n in others)]
    body = [
        [row["label"], *(_cell(row, n, with_ci) for n in names), *(_signed(row["change"][n]) for n in others)]
        for row in comparison["rows"]
    ]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def comparison_markdown(comparison: Mapping[str, Any], *, title: str = "Comparison") -> str:
    """:func:`compare_runs` as a Markdown document (table with intervals, run details, notes)."""
    names = list(comparison["runs"])
    reference = comparison["reference"]
    others = [n for n in names if n != reference]
    out = [f"# {title}", ""]
    out.append(
        "| metric | better | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{n} - {reference}" for n in others)
        + " |"
    )
    out.append("|---|---|" + "---|" * (len(names) + len(others)))
    for row in comparison["rows"]:
        cells = [row["label"], _direction(row["metric"]), *(_cell(row, n, True) for n in names)]
        cells += [_signed(row["change"][n]) for n in others]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        "Test split; brackets: bootstrap intervals of the audit report (`evaluation.n_boot`, `ci_level`). "
        "One split and one seed: a difference inside the intervals is not evidence of an effect.",
        "",
        "| run | folder | method | best epoch | test samples | threshold | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in comparison["runs"].items():
        method = run.get("method") or {}
        what = method.get("description") or method.get("name") or "-"
        wall = run.get("wall_time_s")
        threshold = run.get("threshold")
        source = run.get("threshold_source")
        threshold_text = "" if threshold is None else f"{threshold:.4g}" + (f" ({source})" if source else "")
        out.append(
            f"| {name} | `{run['run_dir']}` | {what} | {run.get('best_epoch')} | {run.get('n_test')} | "
            f"{threshold_text} | {'' if wall is None else f'{wall:.1f}'} |"
        )
    notes = [
        f"{name}: degenerate predictions ({group}: {reason}); its DPD and DEOdds describe a constant decision, "
        "not fairness"
        for name, run in comparison["runs"].items()
        for group, reason in (run.get("degenerate") or {}).items()
    ]
    notes += [f"{name}: {note}" for name, run in comparison["runs"].items() for note in run.get("notes", [])]
    if notes:
        out += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(out) + "\n"
