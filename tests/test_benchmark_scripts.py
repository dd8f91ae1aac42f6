"""The benchmark scripts run end to end in their ``--quick`` modes (no timing assertions: CI smoke runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_step_overhead_quick(tmp_path):
    _run("step_overhead.py", "--quick", "--threads", "1", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    arms = json.loads((tmp_path / "r.json").read_text())["arms"]
    # on a CPU the compiled arm runs only when asked for (below)
    assert set(arms) == {"plain", "default", "default+validate", "paper", "reference", "reference-loop"}
    assert arms["plain"]["ratio_to_plain"] == 1.0
    assert (
        arms["plain"]["modulator_seconds_per_call"] is None
        and arms["default"]["modulator_seconds_per_call"] > 0
    )
    # the sync count is a property of the code, not of the machine: the default path has none
    assert arms["default"]["host_syncs_per_step"] == 0 and arms["paper"]["host_syncs_per_step"] == 0
    assert (
        arms["default+validate"]["host_syncs_per_step"] > 0 and arms["reference"]["host_syncs_per_step"] > 0
    )
    _run(
        "step_overhead.py",
        *("--quick", "--threads", "1", "--clock", "thread", "--arms", "default+compile"),
        *("--json", str(tmp_path / "c.json")),
        cwd=tmp_path,
    )
    arms = json.loads((tmp_path / "c.json").read_text())["arms"]
    assert set(arms) == {"plain", "default+compile"}
    # every step ran compiled: 1 warm-up + 2 timed (the sync count skips this arm)
    assert arms["default+compile"]["compiled_calls"] == {"guide step": 3, "statistics step": 3}
    assert arms["default+compile"]["host_syncs_per_step"] is None  # not countable under a dispatch mode


@pytest.mark.slow
def test_effectiveness_quick_and_merge(tmp_path):
    out = _run("effectiveness.py", "--quick", "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert "| baseline |" in out and "| default |" in out
    result = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(result["runs"]) == {"baseline", "default"}
    assert all(0.0 <= r["auc"] <= 1.0 for runs in result["runs"].values() for r in runs)
    assert (tmp_path / "a" / "effectiveness.png").stat().st_size > 0
    _run(
        "effectiveness.py",
        "--merge",
        str(tmp_path / "a" / "results.json"),
        "--out",
        str(tmp_path / "b"),
        cwd=tmp_path,
    )
    merged = json.loads((tmp_path / "b" / "results.json").read_text())
    assert merged["runs"] == result["runs"]


@pytest.mark.slow
def test_bootstrap_speed_quick(tmp_path):
    out = _run("bootstrap_speed.py", "--quick", cwd=tmp_path)
    assert out.strip()


@pytest.mark.slow
def test_report_many_groups_quick(tmp_path):
    out = _run("report_many_groups.py", "--quick", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert "multifair report, 20 groups, 200 rows, n_boot 50:" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["groups"] == 20 and set(result["stages_s"]) == {
        "metrics and bootstrap",
        "html (plots)",
        "markdown + json",
    }


def test_loader_throughput_quick(tmp_path):
    _run(
        "loader_throughput.py", "--quick", "--threads", "1", "--json", str(tmp_path / "r.json"), cwd=tmp_path
    )
    result = json.loads((tmp_path / "r.json").read_text())
    assert [row["workers"] for row in result["loader"]] == [0, 2]
    assert all(row["samples"] == 8 and row["samples_per_s"] > 0 for row in result["loader"])
    step = result["step"]
    assert step["batch_size"] == 4 and step["seconds_per_step"] > 0
    for row in result["loader"]:
        assert row["ratio_to_step"] == pytest.approx(row["samples_per_s"] / step["samples_per_s"])
