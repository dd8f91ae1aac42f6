"""``SampleWeightingHandler`` sits below the methods built on it: it imports nothing from them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "monai_multifair" / "handlers" / "sample_weighting_handler.py"


def _imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` anywhere in ``path`` names (top level, functions, ``TYPE_CHECKING``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


def test_handler_module_imports_nothing_from_the_methods():
    imported = _imported_modules(HANDLER)
    assert "monai_multifair.core.sample_weighting" in imported  # the oracle: the walk sees its imports
    assert [name for name in imported if name.startswith("monai_multifair.methods")] == []


def test_importing_the_handler_does_not_load_the_methods():
    probe = (
        "import sys, monai_multifair.handlers.sample_weighting_handler as h;"
        "print(sorted(m for m in sys.modules if m.startswith('monai_multifair.methods')));"
        "print(h.SampleWeighting.__module__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=True,
    )
    assert done.stdout.splitlines() == ["[]", "monai_multifair.core.sample_weighting"]
