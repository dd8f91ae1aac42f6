"""The leaderboard: per data set, each arm's test metrics over the final runs with intervals, the paired
differences to the baseline, the cost; across data sets, mean ranks and the issue's targets; written as
``results.json``, ``leaderboard.md`` and a self-contained ``leaderboard.html``.

Intervals: over the seeds of a ``"seeds"`` data set, Student-t (:func:`~monai_multifair.comparison.paired_t_interval`
for differences); over the folds of a ``"cv"`` data set, the corrected resampled t
(:func:`~monai_multifair.comparison.corrected_resampled_t_interval`, ``n_test / n_train = 1 / (K - 1)``).
A difference is *significant* when its interval excludes 0 and it has at least
:data:`~monai_multifair.comparison.statistics.MIN_SEEDS` paired values; with fewer, no ▲/▼ is shown and the
first paragraph says that the numbers cannot name a method. Every interval is cut at its quantity's
range (``[0, 1]`` for a metric, ``[-1, 1]`` for a difference) and marked † where the t interval reached
past it.

What each table says about the data comes from what ran (the ``data`` field of the rows in
``runs.jsonl``: data source, samples per split, epochs), not from the suite's full-size description.
The cost is the median CPU seconds per training epoch (the worker's threads and loader processes),
which hardly depends on what else the machine runs; stores written before CPU time was recorded show
wall seconds, labelled "wall time on a shared machine".
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from monai_multifair.comparison.statistics import (
    MIN_SEEDS,
    corrected_resampled_t_interval,
    mean_ranks,
    t_interval,
)
from monai_multifair.comparison.tasks import split_protocol
from monai_multifair.engine.outputs import HEADLINE_METRICS, json_ready
from monai_multifair.engine.run_table import LOWER_IS_BETTER
from monai_multifair.report.plots import figure_png, save_png
from monai_multifair.report.render import html_table, markdown_table

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_BOUNDS",
    "recommendation",
    "summarize",
    "to_html",
    "to_markdown",
    "write_outputs",
]

_AUC_TOLERANCE = 0.005  # the "never more than 0.5 point worse in AUC"
#: The range of every leaderboard metric (AUCs, ES-AUC, DPD, DEOdds, accuracy); a difference of two lies
#: in ``[-1, 1]``.
METRIC_BOUNDS = (0.0, 1.0)
_DIFF_BOUNDS = (-1.0, 1.0)


def _value(row: Mapping[str, Any], metric: str, source: str = "metrics") -> float:
    value = row.get(source, {}).get(metric)
    return math.nan if value is None else float(value)


def _interval(
    values: Sequence[float], ratio: float | None, level: float, bounds: tuple[float, float] = METRIC_BOUNDS
) -> dict[str, Any]:
    """Student-t over runs that share their test rows (``ratio`` None); the corrected resampled t when
    the split varies, with ``ratio = n_test / n_train`` (:func:`~monai_multifair.comparison.tasks.split_protocol`)."""
    if ratio is not None:
        return corrected_resampled_t_interval(values, ratio, level=level, bounds=bounds)
    return t_interval(values, level=level, bounds=bounds)


def _epoch_seconds(row: Mapping[str, Any], key: str = "epoch_s") -> float:
    seconds = row.get("timing", {}).get(key) or []
    return float(np.median(seconds)) if seconds else math.nan


def _what_ran(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the final runs of a data set used, from their rows: the data source, the samples per split
    (the range over the runs), the epochs and batch sizes; ``{}`` for rows written without it."""
    data = [r["data"] for r in rows if isinstance(r.get("data"), Mapping)]
    if not data:
        return {}
    splits = sorted({s for d in data for s in d.get("samples", {})}, key=["train", "val", "test"].index)
    return {
        "runs": len(data),
        "source": sorted({str(d.get("source")) for d in data}),
        "samples": {
            s: [
                min(d["samples"][s] for d in data if s in d["samples"]),
                max(d["samples"][s] for d in data if s in d["samples"]),
            ]
            for s in splits
        },
        "epochs": sorted({int(d["epochs"]) for d in data if "epochs" in d}),
        "batch_size": sorted({int(d["batch_size"]) for d in data if "batch_size" in d}),
    }


def _ran_sentence(ran: Mapping[str, Any]) -> str:
    """``ran`` (:func:`_what_ran`) in words."""

    def span(values: Sequence[int]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"

    sizes = ", ".join(f"{span(v)} {s}" for s, v in ran["samples"].items())
    return (
        f"What ran: {ran['runs']} final run(s) on data source {', '.join(ran['source'])} with {sizes} samples "
        f"per run, {span(ran['epochs'])} epoch(s), batch size {span(ran['batch_size'])}"
    )


def _final_rows(
    store: Any, entry: Any, label: str, keys: Mapping[str, list[str]] | None
) -> list[dict[str, Any]]:
    """The final runs of arm ``label`` on data set ``entry``: those ``keys`` names, or every one by seed."""
    if keys is not None:
        rows = [store.get(k) for k in keys.get(f"{entry.name}/{label}", [])]  # no selection yet: none
        return [r for r in rows if r is not None]
    return sorted(store.rows(phase="final", dataset=entry.name, method=label), key=lambda r: r["seed"])


def _selection_record(plan: Any) -> dict[str, Any]:
    """What tuning chose for an arm (method, options, rule, trial, its validation metrics)."""
    return {
        "method": plan.method.name,
        "options": plan.selected.get("options", {}),
        "rule": plan.selected.get("rule"),
        "trial": plan.selected.get("number"),
        "validation": plan.selected.get("validation", {}),
    }


def _arm_statistics(
    rows: Sequence[Mapping[str, Any]],
    base_rows: Mapping[int, Mapping[str, Any]],
    ratio: float | None,
    level: float,
) -> dict[str, Any]:
    """One arm on one data set: intervals of each metric (test and validation) and of each group's AUC,
    paired differences to the baseline (same seed), epoch cost against it, post-processed metrics."""
    arm: dict[str, Any] = {"runs": len(rows), "seeds": [r["seed"] for r in rows]}
    for metric in HEADLINE_METRICS:
        arm[metric] = _interval([_value(r, metric) for r in rows], ratio, level)
        arm[f"val_{metric}"] = _interval([_value(r, metric, "validation") for r in rows], ratio, level)
    groups = sorted({g for r in rows for g in r["metrics"].get("group_auc", {})})
    arm["group_auc"] = {
        g: _interval([float(r["metrics"]["group_auc"].get(g) or math.nan) for r in rows], ratio, level)
        for g in groups
    }
    paired = [(r, base_rows[r["seed"]]) for r in rows if r["seed"] in base_rows]
    arm["difference"] = {
        metric: _interval(
            [_value(a, metric) - _value(b, metric) for a, b in paired], ratio, level, _DIFF_BOUNDS
        )
        for metric in HEADLINE_METRICS
    }
    for field, cost in (("epoch_s", "epoch_cost"), ("epoch_cpu_s", "epoch_cpu_cost")):
        base = _nanmedian([_epoch_seconds(r, field) for r in base_rows.values()])
        arm[field] = _nanmedian([_epoch_seconds(r, field) for r in rows])
        arm[cost] = arm[field] / base if base > 0 else math.nan
    post = [r["metrics"]["postprocessing"] for r in rows if "postprocessing" in r["metrics"]]
    if post:
        arm["postprocessed"] = {
            m: _interval([float(p.get(m) if p.get(m) is not None else math.nan) for p in post], ratio, level)
            for m in ("accuracy", "dpd", "deodds")
        }
    return arm


def _tuning_points(store: Any, entry: Any, plan: Any) -> list[dict[str, Any]]:
    """The tuning trials of one arm as points (validation AUC, ES-AUC, whether it was chosen)."""
    chosen = (plan.selected or {}).get("config_hash")
    return [
        {
            "trial": r.get("trial"),
            "auc": _value(r, "auc"),
            "es_auc": _value(r, "es_auc"),
            "selected": chosen is not None and r.get("config_hash") == chosen,
        }
        for r in sorted(
            store.rows(phase="tune", dataset=entry.name, method=plan.method.label),
            key=lambda r: (r.get("trial") is None, r.get("trial") or 0),
        )
    ]


def _dataset_summary(entry: Any, rows_of: Mapping[str, list[dict[str, Any]]], config: Any) -> dict[str, Any]:
    """One data set of ``results.json``: what varied, what ran, and every arm's statistics."""
    protocol = split_protocol(entry, config.quick)
    ratio = protocol["ratio"]
    base_rows = {r["seed"]: r for r in rows_of.get(config.baseline, [])}
    arms = {label: _arm_statistics(rows, base_rows, ratio, config.level) for label, rows in rows_of.items()}
    ran = _what_ran([r for rows in rows_of.values() for r in rows])
    about = entry.suite.description if entry.suite else f"config {entry.config}"
    if entry.suite and config.quick:
        about = f"at full size (not what ran here): {about}"
    return {
        "protocol": entry.protocol,
        "folds": entry.folds,
        "varies": protocol["varies"],
        "interval": "corrected resampled t" if ratio is not None else "Student-t",
        "ran": ran,
        "description": f"{_ran_sentence(ran)}. Data: {about}" if ran else about,
        "effect": entry.suite.effect if entry.suite else "",
        "arms": arms,
    }


def _mean_table(
    per_dataset: Mapping[str, Any], labels: Sequence[str], name: str
) -> dict[str, dict[str, float]]:
    """``{data set: {arm: mean}}`` over the arms with final runs (data sets with fewer than two: left out)."""
    out = {}
    for d, data in per_dataset.items():
        values = {a: data["arms"][a][name]["mean"] for a in labels if data["arms"].get(a, {}).get("runs")}
        if len(values) >= 2:
            out[d] = values
    return out


def summarize(
    store: Any, config: Any, plans: Sequence[Any], keys: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """The ``results.json`` content of a comparison.

    Args:
        store: the :class:`~monai_multifair.comparison.RunStore`.
        config: the :class:`~monai_multifair.comparison.CompareConfig`.
        plans: the arm plans (data set, arm, selection) of :func:`~monai_multifair.comparison.compare`.
        keys: ``{"<data set>/<arm>": [store key of final run k, ...]}`` (default: every final row of the
            arm on the data set, in seed order).
    """
    baseline = config.baseline
    per_dataset: dict[str, Any] = {}
    selected: dict[str, Any] = {}
    tuning: dict[str, dict[str, list[dict[str, Any]]]] = {}  # data set -> arm -> trial points
    for entry in config.datasets:
        entry_plans = [p for p in plans if p.dataset.name == entry.name]
        rows_of = {p.method.label: _final_rows(store, entry, p.method.label, keys) for p in entry_plans}
        for plan in entry_plans:
            if plan.selected is not None:
                selected.setdefault(entry.name, {})[plan.method.label] = _selection_record(plan)
            points = _tuning_points(store, entry, plan)
            if points:
                tuning.setdefault(entry.name, {})[plan.method.label] = points
        per_dataset[entry.name] = _dataset_summary(entry, rows_of, config)
    labels = [m.label for m in config.methods]
    ranks = {
        metric: mean_ranks(
            _mean_table(per_dataset, labels, metric), higher_is_better=metric not in LOWER_IS_BETTER
        )
        for metric in HEADLINE_METRICS
    }
    validation_ranks = {
        metric: mean_ranks(_mean_table(per_dataset, labels, f"val_{metric}"), higher_is_better=True)
        for metric in ("auc", "es_auc", "worst_group_auc")
    }
    expected = config.seeds
    complete = all(a["runs"] == expected for d in per_dataset.values() for a in d["arms"].values())
    targets = _targets(per_dataset, ranks, labels, baseline)
    return {
        "settings": config.to_dict(),
        "complete": complete,
        "recommendation": recommendation(per_dataset, ranks, labels, baseline, quick=config.quick),
        "datasets": per_dataset,
        "selected": selected,
        "ranks": ranks,
        "validation_ranks": validation_ranks,
        "targets": targets,
        "tuning": tuning,
        "versions": next((r.get("versions") for r in store), {}),
        "threads": next((r.get("timing", {}).get("threads") for r in store), None),
    }


def _nanmedian(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else math.nan


def _significant(entry: Mapping[str, Any]) -> int:
    """+1 / -1 when a paired difference's interval lies above / below 0 with at least :data:`MIN_SEEDS`
    pairs; 0 otherwise."""
    low, high = entry.get("low", math.nan), entry.get("high", math.nan)
    if entry.get("n", 0) < MIN_SEEDS or low is None or math.isnan(low):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def recommendation(
    per_dataset: Mapping[str, Any],
    ranks: Mapping[str, Any],
    labels: Sequence[str],
    baseline: str,
    *,
    quick: bool = False,
) -> dict[str, Any]:
    """Which arm to try first on these data, and how sure that is (the leaderboard's first paragraph).

    The candidate is the arm with the best mean ES-AUC rank. It is *recommended* when it is not the
    baseline, beats the baseline significantly on ES-AUC (paired interval above 0 with at least
    :data:`~monai_multifair.comparison.statistics.MIN_SEEDS` seeds) on at least one data set, is
    significantly worse on none, and loses no more than 0.5 point of mean AUC anywhere; the strength is
    ``"strong"`` when it wins on at least half the data sets, else ``"weak"``. Otherwise there is no clear
    winner: with fewer seeds than ``MIN_SEEDS`` (or a quick run) always, and the text says why.

    Returns:
        ``{"arm": label or None, "strength": "strong" | "weak" | "none", "text": str, "wins": {arm: [data
        sets]}, "losses": {arm: [data sets]}}``.
    """
    es_ranks = ranks.get("es_auc", {})
    order = sorted((a for a in labels if a in es_ranks), key=lambda a: es_ranks[a]["mean_rank"])
    wins: dict[str, list[str]] = {}
    losses: dict[str, list[str]] = {}
    worse_auc: dict[str, list[str]] = {}
    seeds = []
    for name, data in per_dataset.items():
        for label, arm in data["arms"].items():
            if label == baseline:
                continue
            diff = arm["difference"]
            seeds.append(diff["es_auc"].get("n", 0))
            sign = _significant(diff["es_auc"])
            if sign > 0:
                wins.setdefault(label, []).append(name)
            elif sign < 0:
                losses.setdefault(label, []).append(name)
            if diff["auc"]["mean"] < -_AUC_TOLERANCE:
                worse_auc.setdefault(label, []).append(name)
    n_data = len(per_dataset)
    out: dict[str, Any] = {"arm": None, "strength": "none", "wins": wins, "losses": losses}
    fewest = min(seeds) if seeds else 0
    if quick or fewest < MIN_SEEDS:
        why = "a quick run (tiny sizes)" if quick else f"{fewest} paired seed(s) per arm"
        out["text"] = (
            f"No clear winner: {why} cannot tell the methods apart (at least {MIN_SEEDS} seeds are needed "
            f"before any difference is marked significant). Try `{baseline}` first and rerun with more seeds "
            "(`--seeds 10` or more) to choose."
        )
        return out
    if not order:
        out["text"] = "No clear winner: no arm has final runs on two data sets or more."
        return out
    best = order[0]
    rank_text = (
        f"mean ES-AUC rank {es_ranks[best]['mean_rank']:.2f} over {es_ranks[best]['n_datasets']} data set(s)"
    )
    if best != baseline and wins.get(best) and not losses.get(best) and not worse_auc.get(best):
        strength = "strong" if len(wins[best]) * 2 >= n_data else "weak"
        out.update(arm=best, strength=strength)
        out["text"] = (
            f"Try `{best}` first: it ranks first on ES-AUC ({rank_text}) and beats `{baseline}` significantly "
            f"on ES-AUC on {len(wins[best])} of {n_data} data set(s) ({', '.join(wins[best])}), is significantly "
            f"worse on none and never more than 0.5 point worse in AUC. "
            + (
                "The evidence is strong: it wins on at least half the data sets."
                if strength == "strong"
                else "The evidence is weak: it wins on fewer than half the data sets; elsewhere the difference is "
                "within the noise of the seeds."
            )
        )
        return out
    reasons = []
    if best == baseline:
        reasons.append(f"the baseline `{baseline}` itself ranks first on ES-AUC ({rank_text})")
    else:
        if not wins.get(best):
            reasons.append(
                f"`{best}` ranks first on ES-AUC ({rank_text}) but beats `{baseline}` significantly nowhere"
            )
        if losses.get(best):
            reasons.append(f"`{best}` is significantly worse on {', '.join(losses[best])}")
        if worse_auc.get(best):
            reasons.append(f"`{best}` loses more than 0.5 point of AUC on {', '.join(worse_auc[best])}")
    others = sorted(a for a in wins if not losses.get(a))
    tail = (
        f" Significant ES-AUC gains over `{baseline}` without a significant loss: "
        + "; ".join(f"`{a}` on {', '.join(wins[a])}" for a in others)
        + "."
        if others
        else ""
    )
    out["text"] = f"No clear winner: {'; '.join(reasons)}. Try `{baseline}` first.{tail}"
    return out


def _targets(
    per_dataset: Mapping[str, Any], ranks: Mapping[str, Any], labels: Sequence[str], baseline: str
) -> dict[str, Any]:
    """Per arm: the data sets where it beats the baseline significantly on ES-AUC and worst-group AUC, where
    its mean AUC is more than 0.5 point below, and its place in the mean ES-AUC rank."""
    order = sorted(labels, key=lambda a: ranks["es_auc"].get(a, {}).get("mean_rank", math.inf))
    out: dict[str, Any] = {}
    for label in labels:
        if label == baseline:
            continue
        better, worse_auc = [], []
        for name, data in per_dataset.items():
            arm = data["arms"].get(label)
            if arm is None:
                continue
            diff = arm["difference"]
            if _significant(diff["es_auc"]) > 0 and _significant(diff["worst_group_auc"]) > 0:
                better.append(name)
            if diff["auc"]["mean"] < -_AUC_TOLERANCE:
                worse_auc.append(name)
        out[label] = {
            "significantly_better_es_and_worst_group": better,
            "auc_more_than_half_point_worse": worse_auc,
            "es_auc_rank_place": order.index(label) + 1,
            "meets_targets": len(better) >= 3 and not worse_auc and order.index(label) == 0,
        }
    return out


# ---------------------------------------------------------------------------------------------------
# formatting
_NAMES = {**HEADLINE_METRICS}


def _num(entry: Mapping[str, Any], signed: bool = False) -> str:
    mean = entry.get("mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "undefined"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = fmt.format(mean)
    low, high = entry.get("low"), entry.get("high")
    if low is not None and not math.isnan(low):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
        if entry.get("clipped"):
            text += "†"
    if entry.get("undefined"):
        text += f" ({entry['undefined']} undef.)"
    return text


def _sig(entry: Mapping[str, Any], lower_better: bool) -> str:
    """▲ (better) / ▼ (worse) for a significant difference with at least ``MIN_SEEDS`` pairs."""
    sign = _significant(entry)
    if sign == 0:
        return ""
    return " ▲" if (sign > 0) != lower_better else " ▼"


_Table = tuple[str, str, list[str], list[list[str]]]


def _rank_table(results: Mapping[str, Any]) -> _Table:
    """Mean ranks across data sets, with the targets' columns."""
    baseline = results["settings"]["baseline"]
    rank_rows = []
    for label in (m["label"] for m in results["settings"]["methods"]):
        row = [label]
        for metric in HEADLINE_METRICS:
            r = results["ranks"][metric].get(label)
            row.append("" if r is None else f"{r['mean_rank']:.2f}")
        t = results["targets"].get(label)
        row.append("" if t is None else f"{len(t['significantly_better_es_and_worst_group'])}")
        row.append("" if t is None else ", ".join(t["auc_more_than_half_point_worse"]) or "none")
        rank_rows.append(row)
    return (
        "Mean rank across data sets",
        "1 = best; per data set the arms are ranked on the mean test metric, then ranks are averaged over "
        f"the data sets with final runs ({_ranked(results)}). Last columns: data sets where the arm beats `{baseline}` "
        "significantly on both ES-AUC and worst-group AUC, and those where its mean AUC is more than 0.5 "
        "point below.",
        [
            "arm",
            *[f"{_NAMES[m]} rank" for m in HEADLINE_METRICS],
            f"sig. better than {baseline}",
            "AUC > 0.5 pt worse",
        ],
        rank_rows,
    )


def _dataset_tables(results: Mapping[str, Any], name: str, data: Mapping[str, Any]) -> list[_Table]:
    """One data set's tables: metrics with paired differences and cost, AUC per group, post-processing."""
    baseline = results["settings"]["baseline"]
    headers = [
        "arm",
        *(_NAMES[m] for m in HEADLINE_METRICS),
        f"Δ ES-AUC vs {baseline}",
        "Δ worst-group AUC",
        "Δ AUC",
        _cost_header(data),
    ]
    rows = []
    for label, arm in data["arms"].items():
        row = [f"{label} ({arm['runs']})"]
        row += [_num(arm[m]) for m in HEADLINE_METRICS]
        if label == baseline:
            row += ["", "", ""]
        else:
            row += [
                _num(arm["difference"][m], True) + _sig(arm["difference"][m], m in LOWER_IS_BETTER)
                for m in ("es_auc", "worst_group_auc", "auc")
            ]
        row.append(_cost_cell(arm, _cpu_cost(data)))
        rows.append(row)
    protocol = f"across runs {data['varies']}; {data['interval']} intervals"
    fewest = min((arm["runs"] for arm in data["arms"].values()), default=0)
    marks = (
        f"▲/▼: the paired difference's interval excludes 0 (better/worse), shown from {MIN_SEEDS} runs on"
        if fewest >= MIN_SEEDS
        else f"No ▲/▼: fewer than {MIN_SEEDS} runs per arm, too few to call a difference significant"
    )
    note = (
        f"{data['description']}. {data['effect']}{'.' if data['effect'] else ''} Test metrics of the final runs "
        f"(in brackets after each arm: how many), mean [{int(results['settings']['level'] * 100)}% interval]; "
        f"{protocol}; †: the t interval reached past the metric's range and is cut at its bound (too few "
        f"runs for a t interval to be trusted). {marks}. {_cost_note(data)}"
    )
    out: list[_Table] = [(f"Data set `{name}`", note, headers, rows)]
    groups = sorted({g for arm in data["arms"].values() for g in arm["group_auc"]})
    if groups:
        out.append(
            (
                f"`{name}`: AUC per group",
                "",
                ["arm", *groups],
                [
                    [label, *(_num(arm["group_auc"].get(g, {})) for g in groups)]
                    for label, arm in data["arms"].items()
                ],
            )
        )
    post = [(label, arm["postprocessed"]) for label, arm in data["arms"].items() if "postprocessed" in arm]
    if post:
        out.append(
            (
                f"`{name}`: after the post-processing",
                "Decisions of the post-processor fitted on validation (AUCs are unchanged).",
                ["arm", "accuracy", "DPD", "DEOdds"],
                [
                    [f"{label} + post", *(_num(p[m]) for m in ("accuracy", "dpd", "deodds"))]
                    for label, p in post
                ],
            )
        )
    return out


def _selection_table(results: Mapping[str, Any]) -> _Table:
    """The configuration tuning chose for each tuned arm on each data set."""
    sel_rows = []
    for name, arms in results["selected"].items():
        for label, chosen in arms.items():
            options = ", ".join(f"{k}={_short(v)}" for k, v in chosen["options"].items()) or "(defaults)"
            val = chosen.get("validation") or {}
            sel_rows.append(
                [
                    name,
                    label,
                    options,
                    "" if chosen.get("trial") is None else str(chosen["trial"]),
                    _short(val.get("es_auc")),
                    _short(val.get("auc")),
                    chosen.get("rule") or "",
                ]
            )
    return (
        "Chosen configuration of each arm",
        "Selected on the validation split of the tuning runs (seed 0), never on test.",
        ["data set", "arm", "options", "trial", "val ES-AUC", "val AUC", "rule"],
        sel_rows,
    )


def _tables(results: Mapping[str, Any]) -> list[_Table]:
    """``(title, note, headers, rows)`` of every table, shared by Markdown and HTML."""
    out = [_rank_table(results)]
    for name, data in results["datasets"].items():
        out += _dataset_tables(results, name, data)
    out.append(_selection_table(results))
    return out


def _cpu_cost(data: Mapping[str, Any]) -> bool:
    """Whether every arm of a data set has CPU seconds (stores written before they were recorded: no)."""
    return all(not math.isnan(arm.get("epoch_cpu_s", math.nan)) for arm in data["arms"].values())


def _cost_header(data: Mapping[str, Any]) -> str:
    return "CPU s/epoch (x base)" if _cpu_cost(data) else "wall s/epoch on a shared machine (x base)"


def _cost_cell(arm: Mapping[str, Any], cpu: bool) -> str:
    seconds, ratio = (
        (arm["epoch_cpu_s"], arm["epoch_cpu_cost"]) if cpu else (arm["epoch_s"], arm["epoch_cost"])
    )
    if math.isnan(seconds):
        return "undefined"
    return f"{seconds:.3f} ({ratio:.2f}x)" if not math.isnan(ratio) else f"{seconds:.3f}"


def _cost_note(data: Mapping[str, Any]) -> str:
    if _cpu_cost(data):
        return (
            "Cost: median CPU seconds per training epoch (all the run's threads and loader processes), and its "
            "ratio to the baseline's; CPU time hardly depends on what else the machine runs."
        )
    return (
        "Cost: median wall seconds per training epoch on a shared machine (these runs recorded no CPU time), "
        "and its ratio to the baseline's; other programs on the machine change it by tens of percent."
    )


def _ranked(results: Mapping[str, Any]) -> str:
    counts = {r["n_datasets"] for r in results["ranks"]["es_auc"].values()}
    return ", ".join(str(c) for c in sorted(counts)) or "none"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "undefined" if math.isnan(value) else f"{value:.4g}"
    if value is None:
        return "undefined"
    return str(value)


def _header_lines(results: Mapping[str, Any]) -> list[str]:
    s = results["settings"]
    v = results.get("versions") or {}
    lines = [
        f"Arms: {', '.join(m['label'] for m in s['methods'])}; baseline `{s['baseline']}`. Data sets: "
        f"{', '.join(d['name'] for d in s['datasets'])}. Final runs per arm and data set: {s['seeds']}; tuning "
        f"trials per tuned arm and data set: {s['trials']} (selection: validation {s['selection']['metric']} among "
        f"trials within {s['selection']['auc_guard']:g} of the best validation AUC).",
        f"Software: torch {v.get('torch', '?')}, MONAI {v.get('monai', '?')}, Optuna {v.get('optuna', '?')}, "
        f"monai_multifair {v.get('monai_multifair', '?')}, Python {v.get('python', '?')} ({v.get('machine', '?')}), "
        f"{results.get('threads')} torch thread(s) per run.",
    ]
    if s.get("quick"):
        lines.insert(0, "**Quick run (`--quick`): tiny sizes, no claims.**")
    if not results["complete"]:
        lines.insert(
            0,
            "**Incomplete: some arms have fewer final runs than asked for (the comparison was interrupted).**",
        )
    return lines


def _first_paragraph(results: Mapping[str, Any]) -> str:
    advice = results.get("recommendation") or {}
    return f"**What to try first.** {advice.get('text', 'No clear winner.')}"


def to_markdown(results: Mapping[str, Any]) -> str:
    """``leaderboard.md``: first the advice (:func:`recommendation`), then the settings and the tables."""
    parts = ["# Leaderboard", "", _first_paragraph(results), "", *_header_lines(results), ""]
    for title, note, headers, rows in _tables(results):
        parts += [f"## {title}", ""]
        if note:
            parts += [note, ""]
        parts += [markdown_table(headers, rows), ""]
    if results.get("pareto"):
        parts += ["## Tuning trials on the AUC / ES-AUC plane", "", _PARETO_NOTE, ""]
        parts += [f"![{name}: tuning trials]({file})" for name, file in results["pareto"].items()]
        parts.append("")
    return "\n".join(parts)


_PARETO_NOTE = (
    "Validation AUC and ES-AUC of every tuning trial of each arm (one point per configuration that ran), the "
    "Pareto front of all of them (dashed: no trial is better in both), and each arm's selected trial circled."
)


def rank_plot(results: Mapping[str, Any]) -> str:
    """Mean rank of each arm per metric (base64 PNG)."""
    labels = [m["label"] for m in results["settings"]["methods"]]
    metrics = list(HEADLINE_METRICS)
    fig = Figure(figsize=(7.5, 0.45 * len(labels) + 1.8))
    ax = fig.add_subplot()
    for j, metric in enumerate(metrics):
        values = [results["ranks"][metric].get(a, {}).get("mean_rank", math.nan) for a in labels]
        ax.scatter(values, np.arange(len(labels)) + (j - 2) * 0.1, label=_NAMES[metric], s=30)
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("mean rank across data sets (1 = best)")
    ax.grid(axis="x", linestyle=":")
    ax.legend(fontsize="small", loc="best")
    ax.set_title("Mean rank per metric")
    return figure_png(fig)


def group_plot(name: str, data: Mapping[str, Any]) -> str:
    """Per-group test AUC of each arm on one data set with intervals (base64 PNG)."""
    arms = list(data["arms"])
    groups = sorted({g for arm in data["arms"].values() for g in arm["group_auc"]})
    fig = Figure(figsize=(max(6.0, 0.35 * len(groups) * len(arms) + 2), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(arms))
    for i, label in enumerate(arms):
        entries = [data["arms"][label]["group_auc"].get(g, {}) for g in groups]
        means = np.array([e.get("mean", math.nan) for e in entries], dtype=float)
        low = np.array([e.get("low", math.nan) for e in entries], dtype=float)
        high = np.array([e.get("high", math.nan) for e in entries], dtype=float)
        err = np.vstack([np.nan_to_num(means - low), np.nan_to_num(high - means)])
        ax.bar(
            np.arange(len(groups)) + (i - (len(arms) - 1) / 2) * width,
            means,
            width,
            yerr=err,
            label=label,
            capsize=2,
        )
    ax.set_xticks(np.arange(len(groups)), groups, fontsize="small")
    finite = [
        a["group_auc"][g]["mean"]
        for a in data["arms"].values()
        for g in a["group_auc"]
        if a["group_auc"][g]["mean"] is not None and not math.isnan(a["group_auc"][g]["mean"])
    ]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.1), 1.0)
    ax.set_ylabel("test AUC")
    ax.set_title(f"{name}: AUC per group")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure_png(fig)


def to_html(results: Mapping[str, Any]) -> str:
    """``leaderboard.html``: one self-contained page (tables, the rank plot, per-group AUC plots)."""

    def figure(png: str, alt: str) -> str:
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png}"></figure>'

    parts = [
        "<h1>Leaderboard</h1>",
        *(
            f"<p>{html.escape(line).replace('**', '').replace('`', '')}</p>"
            for line in (_first_paragraph(results), *_header_lines(results))
        ),
    ]
    parts.append(figure(rank_plot(results), "mean rank per metric"))
    tables = _tables(results)
    for title, note, headers, rows in tables:
        parts.append(f"<h2>{html.escape(title).replace('`', '')}</h2>")
        if note:
            parts.append(f"<p>{html.escape(note).replace('`', '')}</p>")
        parts.append(html_table(headers, rows))
        for name, data in results["datasets"].items():
            if title == f"`{name}`: AUC per group":
                parts.append(figure(group_plot(name, data), f"{name}: AUC per group"))
    if results.get("pareto"):
        parts += ["<h2>Tuning trials on the AUC / ES-AUC plane</h2>", f"<p>{html.escape(_PARETO_NOTE)}</p>"]
        parts += [
            f'<figure><a href="{html.escape(file)}"><img alt="{html.escape(name)}: tuning trials" '
            f'src="{html.escape(file)}"></a></figure>'
            for name, file in results["pareto"].items()
        ]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Leaderboard</title>'
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_outputs(results: Mapping[str, Any], output: Path, *, pareto: bool = False) -> dict[str, Path]:
    """Write ``results.json``, ``leaderboard.md`` and ``leaderboard.html`` into ``output``; with ``pareto``,
    also ``pareto-<data set>.png`` per data set with tuning trials
    (:func:`~monai_multifair.comparison.pareto.pareto_plot`), linked from both pages."""
    files = {
        "results": output / "results.json",
        "markdown": output / "leaderboard.md",
        "html": output / "leaderboard.html",
    }
    if pareto:
        from monai_multifair.comparison.pareto import pareto_plot

        results = {**results, "pareto": {}}
        for name, trials in results.get("tuning", {}).items():
            files[f"pareto-{name}"] = output / f"pareto-{name}.png"
            save_png(pareto_plot(name, trials), files[f"pareto-{name}"])
            results["pareto"][name] = files[f"pareto-{name}"].name
    files["results"].write_text(
        json.dumps(json_ready(results), indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    files["markdown"].write_text(to_markdown(results), encoding="utf-8")
    files["html"].write_text(to_html(results), encoding="utf-8")
    return files
