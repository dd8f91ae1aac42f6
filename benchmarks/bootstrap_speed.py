"""Bootstrap confidence intervals: monai_multifair's torch bootstrap vs fairlearn ``MetricFrame(n_boot=...)``.

Both run in this one process on the same synthetic cohort with the same ``random_state``, so they
draw the very same replicates; the script checks that the per-group AUC intervals agree and prints
the wall-clock times and their ratio.

* fairlearn: ``MetricFrame(metrics={"auc": roc_auc_score}, ..., n_boot=B, ci_quantiles=[0.025, 0.975])``
  (AUC per group only).
* ours: :func:`monai_multifair.metrics.bootstrap_fairness` with the same ``B``, computing every metric
  (AUC, accuracy, TPR, FPR, selection rate, count, prevalence, calibration error per group and overall,
  plus ES-AUC, worst-group AUC, gaps, DPD, DEOdds) -- more work than the baseline.

Usage::

    python benchmarks/bootstrap_speed.py            # 10,000 samples, 4 groups, 1,000 replicates
    python benchmarks/bootstrap_speed.py --quick    # small sizes, for CI (no timing claims)
    python benchmarks/bootstrap_speed.py --devices cpu,cuda --threads 2,1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import fairlearn
import numpy as np
import pandas as pd
import torch
from fairlearn.metrics import MetricFrame
from sklearn.metrics import roc_auc_score

from monai_multifair.metrics import bootstrap_fairness


def make_cohort(n_samples: int, n_groups: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Synthetic binary task whose score quality differs by group."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_samples)
    y = rng.integers(0, 2, n_samples)
    signal = 1.0 + groups / max(n_groups - 1, 1)  # group 0 hardest
    logits = signal * (2 * y - 1) + rng.normal(size=n_samples)
    p = 1.0 / (1.0 + np.exp(-logits))
    return y, p, pd.Series(np.array([f"g{g}" for g in groups]), name="group")


def run_fairlearn(y, p, groups, n_boot: int, seed: int) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    frame = MetricFrame(
        metrics={"auc": roc_auc_score},
        y_true=y,
        y_pred=p,
        sensitive_features=groups,
        n_boot=n_boot,
        ci_quantiles=[0.025, 0.975],
        random_state=seed,
    )
    elapsed = time.perf_counter() - start
    return elapsed, pd.concat([ci["auc"] for ci in frame.by_group_ci], axis=1)


def run_ours(y, p, groups, n_boot: int, seed: int, device: str) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    result = bootstrap_fairness(
        y,
        p,
        sensitive_features=groups,
        n_boot=n_boot,
        ci_quantiles=(0.025, 0.975),
        random_state=seed,
        device=device,
    )
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return elapsed, pd.concat([ci["auc"] for ci in result.by_group_ci()], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-groups", type=int, default=4)
    parser.add_argument("--n-boot", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours (median reported)")
    parser.add_argument(
        "--devices",
        default="cpu",
        help="comma-separated torch devices for ours, each timed against the one baseline",
    )
    parser.add_argument(
        "--threads",
        default=str(torch.get_num_threads()),
        help="comma-separated torch CPU thread counts to time ours with (default: torch's current setting)",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 50 replicates, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_samples, args.n_boot, args.repeats = 2_000, 50, 1

    y, p, groups = make_cohort(args.n_samples, args.n_groups, args.seed)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    configs = [(device, threads) for device in devices for threads in thread_counts]
    # Warm both code paths (imports, lazy initialisation, CUDA context) on a tiny problem.
    run_fairlearn(y[:200], p[:200], groups[:200], 2, args.seed)
    for device in devices:
        run_ours(y[:200], p[:200], groups[:200], 2, args.seed, device)

    ours: dict[tuple[str, int], tuple[list[float], pd.DataFrame]] = {}
    for device, threads in configs:
        torch.set_num_threads(threads)
        times = []
        for _ in range(args.repeats):
            elapsed, ci = run_ours(y, p, groups, args.n_boot, args.seed, device)
            times.append(elapsed)
        ours[(device, threads)] = (times, ci)
    fair_time, fair_ci = run_fairlearn(y, p, groups, args.n_boot, args.seed)

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"fairlearn {fairlearn.__version__}, python {sys.version.split()[0]}"
    )
    if any(torch.device(d).type == "cuda" for d in devices):
        print(f"gpu: {torch.cuda.get_device_name()}")
    if hasattr(os, "getloadavg"):
        print(f"load average at the end of the timings: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"data: {args.n_samples} samples, {args.n_groups} groups, n_boot={args.n_boot}, seed={args.seed}")
    print(f"fairlearn MetricFrame(n_boot) AUC per group: {fair_time:.3f} s")
    status = 0
    for (device, threads), (times, ci) in ours.items():
        median = statistics.median(times)
        max_diff = float(np.nanmax(np.abs(ci.to_numpy() - fair_ci.to_numpy())))
        print(
            f"monai_multifair bootstrap_fairness (all metrics) on {device}, {threads} torch thread(s): {median:.3f} s "
            f"(median of {len(times)}: {', '.join(f'{t:.3f}' for t in times)}); "
            f"speed-up {fair_time / median:.1f}x; max |difference| of the AUC interval bounds {max_diff:.2e}"
        )
        if not max_diff < 1e-9:
            print(f"error: the bootstraps disagree on {device}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
