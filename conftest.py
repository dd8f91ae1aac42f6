"""Collects the code blocks of README.md, docs/ and examples/*/README.md as tests.

The machinery and its conventions are in ``tests/docs/markdown_snippets.py`` (loaded here by path:
an installed package may be called ``tests``); ``docs/contributing.md`` explains them to authors.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _load_snippets():
    spec = importlib.util.spec_from_file_location(
        "multifair_markdown_snippets", ROOT / "tests" / "docs" / "markdown_snippets.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


snippets = sys.modules.get("multifair_markdown_snippets") or _load_snippets()
pytest_collect_file = snippets.DocumentationSybil(ROOT).pytest()


def pytest_terminal_summary(terminalreporter) -> None:
    snippets.terminal_summary(terminalreporter, ROOT)
