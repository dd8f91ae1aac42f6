"""Installing the example plugin packages of ``examples/`` for the plugin tests (not a test module)."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def pip_install_example(name: str, root: Path) -> Path:
    """``pip install --target`` of a copy of ``examples/<name>`` (the copy keeps build files out of the
    repository); returns the target folder to put on ``sys.path``."""
    import shutil
    import subprocess

    source = root / "src"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(EXAMPLES / name, source, ignore=ignore)
    target = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--disable-pip-version-check", "--target", str(target), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return target
