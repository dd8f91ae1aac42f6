"""The everyday commands answer without importing torch: ``--version``, ``--help`` and config errors.

Each case runs in a fresh interpreter (this test process has torch loaded already) and reports which of
the heavy modules it imported; the timings themselves are in docs/benchmarks.md (no timing assertions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "monai", "pandas", "scipy", "sklearn", "optuna", "matplotlib", "fairlearn")

PROBE = """
import contextlib, io, json, sys
from monai_multifair.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


def _run(*argv: str, cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--version"], 0, "multifair 0.1.0"),
        (["--help"], 0, "compare"),
        (["compare", "--help"], 0, "--pareto"),
        (["train", "--config", "missing.yaml"], 2, "config file 'missing.yaml' does not exist"),
        (["train", "--config", "demo", "--set", "trainer.epochs"], 2, "key.path=value"),
        (["train", "--config", "bad.yaml"], 2, "bad.yaml"),
        (["compare", "--seeds", "1"], 2, "compare config key `seeds`: expected an integer >= 2, got 1"),
        (["compare", "--datasets", "nosuch"], 2, "nosuch"),
        (["compare", "--list"], 0, "cohort"),
    ],
)
def test_everyday_commands_do_not_import_torch(argv, code, says, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("trainer: [unclosed\n", encoding="utf-8")
    result = _run(*argv, cwd=tmp_path)
    assert result["code"] == code, result
    assert says in result["out"] + result["err"]
    assert result["heavy"] == [], f"{argv} imported {result['heavy']}"


def test_public_names_stay_importable_from_the_lazy_packages() -> None:
    import monai_multifair
    import monai_multifair.comparison
    import monai_multifair.config
    import monai_multifair.plugins

    for package in (
        monai_multifair,
        monai_multifair.comparison,
        monai_multifair.config,
        monai_multifair.plugins,
    ):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
        assert set(package.__all__) <= set(dir(package))
    # a submodule is an attribute of its package on first use, as when the package imported it eagerly
    assert monai_multifair.core.binary_auc is not None
    assert monai_multifair.plugins.manager.get_plugin_manager is monai_multifair.plugins.get_plugin_manager
    assert monai_multifair.config.schema.RunConfig is monai_multifair.config.RunConfig
    assert monai_multifair.comparison.tasks.execute is not None
    for package in (
        monai_multifair,
        monai_multifair.comparison,
        monai_multifair.config,
        monai_multifair.plugins,
    ):
        with pytest.raises(AttributeError, match="no_such_name"):
            package.no_such_name  # noqa: B018
