"""Installing the example plugin packages of ``examples/`` for the plugin tests (not a test module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_multifair.plugins import get_plugin_manager

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


def load_example(monkeypatch: pytest.MonkeyPatch, site: Path, package: str) -> Iterator[None]:
    """Body of a fixture: the installed example ``site`` on ``sys.path`` with its modules ``package*``
    imported afresh and the plugins reloaded; afterwards all undone (``yield from`` it)."""
    monkeypatch.syspath_prepend(str(site))
    for name in [m for m in sys.modules if m.startswith(package)]:
        monkeypatch.delitem(sys.modules, name)
    get_plugin_manager(reload=True)
    yield
    monkeypatch.undo()
    get_plugin_manager(reload=True)
