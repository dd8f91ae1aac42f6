"""Time ``multifair report`` on many small groups (issue 15: 200 groups, 2,000 rows took 141 s).

Writes a predictions table with ``--groups`` groups of about ``--rows / --groups`` rows each, then
runs ``multifair report`` on it in a fresh process (as a user would: imports included) and prints
the wall-clock and CPU times, plus the time of each stage measured in this process.

Usage::

    python benchmarks/report_many_groups.py                       # 200 groups, 2,000 rows, n_boot 1000
    python benchmarks/report_many_groups.py --groups 50 --rows 600
    python benchmarks/report_many_groups.py --quick               # small sizes for CI; no timing claims
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def write_predictions(path: Path, groups: int, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    p = rng.random(rows)
    y = (rng.random(rows) < p).astype(int)
    pd.DataFrame({"y": y, "p": p, "site": [f"s{v:03d}" for v in g]}).to_csv(path, index=False)


def stages(path: Path, n_boot: int) -> dict[str, float]:
    """Seconds per stage of the report, in this process (after imports)."""
    from monai_multifair.report import AuditReport

    out = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = AuditReport.from_predictions_file(
            path, label_col="y", score_cols="p", group_cols="site", n_boot=n_boot, random_state=0
        )
    out["metrics and bootstrap"] = time.perf_counter() - start
    start = time.perf_counter()
    report.to_html()
    out["html (plots)"] = time.perf_counter() - start
    start = time.perf_counter()
    report.to_markdown()
    report.to_json()
    out["markdown + json"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="20 groups, 200 rows, 50 replicates")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    if args.quick:
        args.groups, args.rows, args.n_boot = 20, 200, 50
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "predictions.csv"
        write_predictions(path, args.groups, args.rows)
        command = [
            sys.executable, "-m", "monai_multifair", "report", str(path), "--label-column", "y",
            "--score-column", "p", "--group-columns", "site", "--output", str(Path(folder) / "out"),
            "--n-boot", str(args.n_boot),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"multifair report failed:\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        parts = stages(path, args.n_boot)
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    result = {
        "groups": args.groups,
        "rows": args.rows,
        "n_boot": args.n_boot,
        "command_wall_s": round(wall, 2),
        "command_cpu_s": round(cpu, 2),
        "load_average_1min": float(load),
        "stages_s": {k: round(v, 2) for k, v in parts.items()},
    }
    print(f"multifair report, {args.groups} groups, {args.rows} rows, n_boot {args.n_boot}:")
    print(f"  command: {wall:.1f} s wall, {cpu:.1f} s CPU (1-minute load average {load})")
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
