"""Render an audit report's content dict (``AuditReport.to_dict()``) as Markdown or self-contained HTML."""

from __future__ import annotations

import html as _html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.report import plots

__all__ = ["html", "html_table", "markdown", "markdown_table"]

SUMMARY_LABELS = {
    "auc": "AUC (overall)",
    "es_auc": "ES-AUC",
    "worst_group_auc": "Worst-group AUC",
    "auc_gap": "AUC gap (max - min)",
    "dpd": "DPD (demographic parity difference)",
    "deodds": "DEOdds (equalized odds difference)",
}
METRIC_LABELS = {
    "auc": "AUC",
    "accuracy": "Accuracy",
    "tpr": "TPR",
    "fpr": "FPR",
    "selection_rate": "Selection rate",
    "count": "Count",
    "prevalence": "Prevalence",
    "calibration_error": "ECE",
}
UNDEFINED = "undefined"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return UNDEFINED
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


#: Most group curves drawn in one ROC or calibration plot (the largest groups; all are in the tables).
MAX_CURVES = 12
#: Most group bars drawn in one bar plot (the largest groups; all are in the tables).
MAX_BARS = 40
#: Marks an interval flagged as unreliable (``ci_flag``; the reason is in the notes).
UNRELIABLE = " (unreliable)"
#: Marks a value computed from degenerate predictions (no positive or no negative decision somewhere).
DEGENERATE = " (degenerate)"
#: Significance level of the "significant" column of the disparity tests (on Holm-adjusted p-values).
SIGNIFICANCE_LEVEL = 0.05
TESTED_LABELS = {
    "auc": "AUC gap",
    "selection_rate": "selection-rate gap (DPD)",
    "tpr": "TPR gap",
    "fpr": "FPR gap",
    "calibration_error": "ECE gap",
}


def _with_interval(entry: dict[str, Any], digits: int = 3) -> str:
    text = _num(entry["estimate"], digits)
    ci = entry.get("ci")
    if ci:
        text += f" [{_num(ci[0], digits)}, {_num(ci[-1], digits)}]"
        if entry.get("ci_flag"):
            text += UNRELIABLE
    if entry.get("degenerate"):
        text += DEGENERATE
    return text


def _largest(c: dict[str, Any], entries: dict[str, Any], limit: int) -> tuple[dict[str, Any], str]:
    """``entries`` (keyed by group label, plus ``"overall"``) limited to the ``limit`` largest groups
    (in their order), and a caption note saying so."""
    groups = [label for label in entries if label != "overall"]
    if len(groups) <= limit:
        return entries, ""
    size = {g["group"]: g["n"] for g in c["cohort"]["groups"]}
    kept = set(sorted(groups, key=lambda label: (-size.get(label, 0), label))[:limit])
    shown = {label: value for label, value in entries.items() if label == "overall" or label in kept}
    return shown, f" The {limit} largest of {len(groups)} groups are drawn; every group is in the tables."


def _count(entry: dict[str, Any]) -> str:
    value = entry["estimate"]
    return "0" if value is None else str(round(value))


def _settings_lines(c: dict[str, Any]) -> list[str]:
    s = c["settings"]
    lines = [
        f"{s['n_samples']} samples, {s['num_groups']} group(s) of {', '.join(s['sensitive_features'])}; "
        f"operating threshold {s['threshold']:.4g} ({s.get('threshold_source') or 'fixed'}; predicted positive "
        "when p >= threshold).",
    ]
    if s["n_classes"] > 2:
        lines.append(
            f"{s['n_classes']} classes: AUC is the one-vs-rest macro average; thresholded metrics, ROC "
            f"and calibration are one-vs-rest for class {s['pos_label']}."
        )
    if s["n_boot"]:
        q = s["ci_quantiles"]
        lines.append(
            f"Intervals: [{q[0]:g}, {q[-1]:g}] quantiles of {s['n_boot']} bootstrap replicates "
            f"(percentile intervals; resampling {s['resampling']}, random_state={s['random_state']}); "
            "intervals of group-extreme statistics that exclude their estimate or are strongly biased are "
            "marked (unreliable)"
            + (
                f", and groups below {s['min_support']} samples are named in the notes."
                if s.get("min_support")
                else "."
            )
        )
    else:
        lines.append("No bootstrap intervals (n_boot not set).")
    if s.get("n_permutations"):
        lines.append(
            f"Disparity tests: each attribute's gap (max - min over groups) against {s['n_permutations']} "
            "permutations of the attribute across samples, p = (1 + #{permuted gap >= observed}) / (1 + "
            "permutations); p-values Holm-adjusted over every attribute and metric tested."
        )
    lines.append(
        f"ES-AUC = AUC / (1 + {s['alpha']:g} * sum_g |AUC - AUC_g|); calibration error: "
        f"{s['calibration_bins']} equal-width bins; groups with fewer than {s['min_group_size']} "
        "sample(s) or without the classes a metric needs are undefined and left out of summaries."
    )
    return lines


def _tables(c: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, headers, rows, caption) of every table, shared by both renderers."""
    tables: list[tuple[str, list[str], list[list[str]], str]] = []

    def add(title: str, headers: list[str], rows: list[list[str]], caption: str = "") -> None:
        tables.append((title, headers, rows, caption))

    flagged = "; (unreliable): the interval is flagged, see the notes"
    degenerate = "; (degenerate): no positive or no negative decision in a group or overall, see the notes"

    def caption(entries: dict[str, Any], base: str) -> str:
        text = base + flagged if any(v.get("ci_flag") for v in entries.values()) else base
        return text + degenerate if any(v.get("degenerate") for v in entries.values()) else text

    add(
        "Summary",
        ["statistic", "estimate [interval]"],
        [[SUMMARY_LABELS[k], _with_interval(v)] for k, v in c["summary"].items()],
        caption(c["summary"], "estimate [interval]"),
    )
    add(
        "Cohort composition",
        ["group", "n", "share", "positives", "prevalence"],
        [
            [g["group"], str(g["n"]), f"{g['share']:.1%}", str(g["positives"]), _num(g["prevalence"])]
            for g in c["cohort"]["groups"]
        ],
    )
    attributes = c["cohort"]["attributes"]
    add(
        "Cohort by attribute",
        ["attribute", "value", "n"],
        [[a, v, str(n)] for a, vs in attributes.items() for v, n in vs.items()],
    )
    metric_names = [m for m in METRIC_LABELS if m != "count"]
    rows = {"overall": c["metrics"]["overall"], **c["metrics"]["by_group"]}
    add(
        "Metrics by group",
        ["group", "n"] + [METRIC_LABELS[m] for m in metric_names],
        [
            [label, _count(v["count"])] + [_with_interval(v[m]) for m in metric_names]
            for label, v in rows.items()
        ],
        "estimate [interval]",
    )
    add(
        "Gaps between groups (max - min over defined groups)",
        ["metric", "gap [interval]"],
        [[METRIC_LABELS[m], _with_interval(v)] for m, v in c["gaps"].items()],
        caption(c["gaps"], "gap [interval]"),
    )
    cohort = {"overall": None, **{g["group"]: g for g in c["cohort"]["groups"]}}
    n_total = c["settings"]["n_samples"]
    positives_total = sum(g["positives"] for g in c["cohort"]["groups"])
    operating = []
    for label, v in rows.items():
        group = cohort.get(label)
        n, pos = (n_total, positives_total) if group is None else (group["n"], group["positives"])
        marker = " (degenerate)" if label in c.get("degenerate", {}) else ""
        operating.append(
            [
                label + marker,
                str(n),
                f"{_with_interval(v['selection_rate'])} (n={n})",
                f"{_with_interval(v['tpr'])} (n={pos})",
                f"{_with_interval(v['fpr'])} (n={n - pos})",
            ]
        )
    add(
        f"Operating point (threshold {c['settings']['threshold']:.4g})",
        ["group", "n", "selection rate", "TPR", "FPR"],
        operating,
        "estimate [interval] (n: samples the rate divides by: all, positives, negatives)"
        + (
            "; (degenerate): every decision in the group is the same, see the notes"
            if c.get("degenerate")
            else ""
        ),
    )
    add(
        "Calibration by group",
        ["group", "n", "ECE [interval]"],
        [
            [
                label,
                str(n_total if cohort.get(label) is None else cohort[label]["n"]),
                _with_interval(v["calibration_error"]),
            ]
            for label, v in rows.items()
        ],
        f"expected calibration error: sum over {c['settings']['calibration_bins']} equal-width bins of "
        "|sum of (y - p)| / n; 0 is perfectly calibrated. ECE is biased upward in small groups (noise adds "
        "to the absolute values), so its bootstrap interval can lie above the estimate",
    )
    tests = c.get("disparity_tests")
    if tests:
        add(
            "Disparity tests (permutation, Holm-adjusted)",
            [
                "attribute",
                "metric",
                "groups",
                "gap",
                "p-value",
                "Holm-adjusted p",
                f"significant at {SIGNIFICANCE_LEVEL:g}",
            ],
            [
                [
                    t["attribute"],
                    TESTED_LABELS[t["metric"]]
                    + (
                        DEGENERATE
                        if c.get("degenerate") and t["metric"] in ("selection_rate", "tpr", "fpr")
                        else ""
                    ),
                    str(t["groups"]),
                    _num(t["gap"]),
                    _num(t["p_value"], 4),
                    _num(t["p_holm"], 4),
                    UNDEFINED
                    if t["p_holm"] is None
                    else ("yes" if t["p_holm"] < SIGNIFICANCE_LEVEL else "no"),
                ]
                for t in tests
            ],
            "undefined: fewer than two groups have the metric; the smallest possible p-value is "
            f"1 / (1 + {c['settings']['n_permutations']})",
        )
    training = c.get("training")
    if training:
        smoothed = training.get("epoch_guide_auc")
        if smoothed:
            guide, status = smoothed["mean"], smoothed["status"]
            group_labels = sorted({g for by_group in guide.values() for g in by_group})

            def cell(m: str, g: str) -> str:
                flag = status.get(m, {}).get(g)
                return _num(guide[m].get(g)) + (f" ({flag})" if flag else "")

            add(
                "Guide AUC by modality and group (smoothed over the last epoch)",
                ["modality", *group_labels],
                [[m, *(cell(m, g) for g in group_labels)] for m in guide],
                f"{smoothed['window']}; near chance: within {smoothed['band']:g} of 0.5, below chance: lower "
                "(the guide head has not learned the modality in that group yet)",
            )
        factor_rows = []
        for name, values in _factor_series(training).items():
            arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
            defined = arr[~np.isnan(arr)]
            stats = [defined[0], defined[-1], defined.min(), defined.max()] if defined.size else [None] * 4
            factor_rows.append([name, *(_num(x) for x in stats)])
        if factor_rows:
            add("Modulation factors over training", ["statistic", "first", "last", "min", "max"], factor_rows)
    return tables


def _factor_series(training: dict[str, Any]) -> dict[str, list[float | None]]:
    series: dict[str, list[float | None]] = {}
    for m, values in training["modality_scale"].items():
        series[f"modality_scale/{m}"] = values
    for m, by_group in training["group_factor"].items():
        for g, values in by_group.items():
            series[f"group_factor/{m}/{g}"] = values
    if training["gate"] is not None:
        series["gate"] = training["gate"]
    return series


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``rows`` under ``headers`` (``|`` escaped, newlines as spaces in every cell)."""
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(c: dict[str, Any]) -> str:
    """Markdown: title, settings, every table and the notes (plots are in the HTML report)."""
    parts = [f"# {c['title']}", "", f"Generated {c['created']} by monai_multifair.", ""]
    parts += [f"- {line}" for line in _settings_lines(c)] + [""]
    for title, headers, rows, caption in _tables(c):
        parts += [f"## {title}", ""]
        if caption:
            parts += [f"Cells: {caption}.", ""]
        parts += [markdown_table(headers, rows), ""]
    if c["training"] and c["training"]["other_columns"]:
        parts += [
            f"Other training statistics present (not shown): {', '.join(c['training']['other_columns'])}.",
            "",
        ]
    parts += ["## Notes", ""]
    parts += [f"- {note}" for note in c["notes"]] or ["- No undefined group metrics."]
    return "\n".join(parts) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { border-bottom: 2px solid #4c72b0; padding-bottom: .3em; }
h2 { margin-top: 1.8em; color: #2c4f86; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #eef2f8; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; }
figcaption { font-size: 0.85em; color: #555; }
.notes li { color: #8a3b12; }
.settings li { margin: .2em 0; }
"""


def _h(text: Any) -> str:
    return _html.escape(str(text))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of ``rows`` under ``headers``, every cell HTML-escaped."""
    head = "".join(f"<th>{_h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{_h(x)}</td>" for x in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="data:image/png;base64,{png}" alt="{_h(alt)}">'
        f"<figcaption>{_h(caption)}</figcaption></figure>"
    )


def _figures(c: dict[str, Any]) -> dict[str, str]:
    """Embedded figures keyed by the table they follow."""
    figures = {}
    groups, note = _largest(c, {g["group"]: g for g in c["cohort"]["groups"]}, MAX_BARS)
    cohort = pd.DataFrame(list(groups.values())).set_index("group")
    figures["Cohort composition"] = _figure(
        plots.cohort_plot(cohort), "cohort composition", "Samples per group." + note
    )
    if c["roc"]:
        ovr = c["settings"]["n_classes"] > 2
        caption = "ROC per group" + (f" (class {c['settings']['pos_label']} vs rest)" if ovr else "")
        caption += "; groups with an undefined AUC have no curve."
        curves, note = _largest(c, c["roc"], MAX_CURVES)
        figures["Metrics by group"] = _figure(plots.roc_plot(curves), "ROC curves by group", caption + note)
    if c["calibration"]["by_group"]:
        curves, note = _largest(c, c["calibration"]["by_group"], MAX_CURVES)
        figures["Calibration by group"] = _figure(
            plots.calibration_plot(curves),
            "calibration by group",
            "Reliability diagram of every group together (equal-width bins; empty bins omitted)." + note,
        ) + _figure(
            plots.reliability_grid(curves),
            "reliability diagram per group",
            "Reliability diagram per group: observed fraction of positives against the mean predicted "
            "probability in each bin (marker area: the bin's share of the group; empty bins omitted)." + note,
        )
    rows, note = _largest(c, {"overall": c["metrics"]["overall"], **c["metrics"]["by_group"]}, MAX_BARS)
    selection = pd.DataFrame.from_dict(
        {label: _estimate_and_bounds(v["selection_rate"]) for label, v in rows.items()}, orient="index"
    )
    t = c["settings"]["threshold"]
    key = f"Operating point (threshold {t:.4g})"
    figures[key] = _figure(
        plots.selection_rate_plot(selection, t), "selection rate by group", "Selection rate per group." + note
    )
    training = c.get("training")
    if training:
        panels: dict[str, dict[str, list[float]]] = {}
        if training["modality_scale"]:
            panels["modality scale"] = {m: _nan(v) for m, v in training["modality_scale"].items()}
        if training["group_factor"]:
            panels["group factor"] = {
                f"{m}/{g}": _nan(v)
                for m, by_group in training["group_factor"].items()
                for g, v in by_group.items()
            }
        smoothed_title = "guide AUC (mean over each epoch; dotted: chance)"
        if training["guide_group_auc"]:
            smoothed = training.get("smoothed_guide_group_auc") or training["guide_group_auc"]
            panels[smoothed_title] = {
                f"{m}/{g}": _nan(v) for m, by_group in smoothed.items() for g, v in by_group.items()
            }
        if training["gate"] is not None:
            panels["gate"] = {"gate": _nan(training["gate"])}
        figures["Modulation factors over training"] = _figure(
            plots.training_plot(training["steps"], panels, {smoothed_title: 0.5}),
            "modulation over training",
            "Training statistics per logged step; guide AUCs as the mean over each epoch's logged steps "
            "(one batch's AUC is noise).",
        )
    return figures


def _estimate_and_bounds(entry: dict[str, Any]) -> dict[str, float]:
    out = {"estimate": entry["estimate"]}
    if entry.get("ci"):
        out.update(lower=entry["ci"][0], upper=entry["ci"][-1])
    return {k: np.nan if v is None else v for k, v in out.items()}


def _nan(values: list[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


def html(c: dict[str, Any]) -> str:
    """Self-contained HTML page: inline CSS, tables, and plots as base64 PNG data URIs."""
    figures = _figures(c)
    body = [f"<h1>{_h(c['title'])}</h1>", f"<p>Generated {_h(c['created'])} by monai_multifair.</p>"]
    body.append('<ul class="settings">' + "".join(f"<li>{_h(x)}</li>" for x in _settings_lines(c)) + "</ul>")
    for title, headers, rows, caption in _tables(c):
        body.append(f"<h2>{_h(title)}</h2>")
        if caption:
            body.append(f"<p>Cells: {_h(caption)}.</p>")
        body.append(html_table(headers, rows))
        body.append(figures.pop(title, ""))
    body.extend(figures.values())  # figures whose table is absent (e.g. only guide AUCs were logged)
    if c["training"] and c["training"]["other_columns"]:
        body.append(
            f"<p>Other training statistics present (not shown): {_h(', '.join(c['training']['other_columns']))}.</p>"
        )
    body.append("<h2>Notes</h2>")
    notes = c["notes"] or ["No undefined group metrics."]
    body.append('<ul class="notes">' + "".join(f"<li>{_h(n)}</li>" for n in notes) + "</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_h(c['title'])}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
