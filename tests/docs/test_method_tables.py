"""Every documented table of fairness methods agrees with the method registry.

A table of methods is a Markdown table (in README.md, docs/, examples/*/README.md, or a docstring of the
package) whose first header cell is ``name`` and whose first column names a registered method (the first
backticked word of each cell). Its names must all be registered, and for each kind of method it lists
(training, postprocessing), it must list every built-in method of that kind: a new method makes this test
name the page to update.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from monai_multifair.plugins import ENV_DISABLE_AUTOLOAD, get_plugin_manager, list_methods

ROOT = Path(__file__).resolve().parents[2]
FIRST_NAME = re.compile(r"`+([^`\s]+)`+")
#: The tables of methods the pages hold today (discovery must find at least these).
KNOWN_TABLES = {
    "docs/howto/fairness_methods.md",
    "docs/reference/config.md",
    "monai_multifair/methods/__init__.py",
}


@pytest.fixture
def builtin_methods(monkeypatch) -> Iterator[dict[str, str]]:
    """``{name: kind}`` of the registry with only the built-ins loaded (whatever else is installed)."""
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    get_plugin_manager(reload=True)
    yield {spec.name: spec.kind for spec in list_methods()}
    monkeypatch.undo()
    get_plugin_manager(reload=True)


def _documents() -> Iterator[tuple[str, str]]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    paths += sorted((ROOT / "examples").glob("*/README.md"))
    paths += sorted((ROOT / "monai_multifair").rglob("*.py"))
    for path in paths:
        yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def _tables(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number of the header, first cells of the body rows)`` of each Markdown table in ``text``."""
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]):
            header, j = lines[i], i + 2
            rows = []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(lines[j].split("|")[1].strip())
                j += 1
            yield i + 1, [header.split("|")[1].strip(), *rows]
            i = j
        else:
            i += 1


def table_problems(where: str, text: str, methods: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(problems, locations of the tables of methods)`` of one document, against ``{name: kind}``."""
    problems, found = [], []
    for line, (header, *cells) in _tables(text):
        names = [m.group(1) for m in map(FIRST_NAME.match, cells) if m]
        if header != "name" or not any(name in methods for name in names):
            continue
        found.append(where)
        unknown = sorted({n for n in names if n not in methods})
        if unknown:
            problems.append(
                f"{where}:{line}: the table of methods names {unknown}, which the registry does not know "
                f"(registered: {', '.join(sorted(methods))})"
            )
        for kind in sorted({methods[n] for n in names if n in methods}):
            missing = sorted(n for n, k in methods.items() if k == kind and n not in names)
            if missing:
                problems.append(
                    f"{where}:{line}: the table of methods lacks the built-in {kind} method(s) {missing}; "
                    "add a row for each"
                )
    return problems, found


def test_every_table_of_methods_matches_the_registry(builtin_methods):
    assert {"erm", "groupdro", "threshold-optimizer"} <= set(builtin_methods)
    problems, found = [], set()
    for where, text in _documents():
        more, tables = table_problems(where, text, builtin_methods)
        problems += more
        found.update(tables)
    assert found >= KNOWN_TABLES, f"tables of methods not found: {sorted(KNOWN_TABLES - found)}"
    assert not problems, "\n".join(problems)


def test_the_check_names_a_missing_and_an_unknown_method():
    methods = {"erm": "training", "groupdro": "training", "threshold-optimizer": "postprocessing"}
    page = (
        "Intro.\n\n| name | what |\n|---|---|\n| `erm` | plain |\n| `groupdr` (typo) | DRO |\n\n"
        "| name | modality |\n|---|---|\n| `resnet18-2d` | image2d |\n"
    )
    problems, found = table_problems("docs/page.md", page, methods)
    assert found == ["docs/page.md"]  # the encoder table is not a table of methods
    assert problems == [
        "docs/page.md:3: the table of methods names ['groupdr'], which the registry does not know "
        "(registered: erm, groupdro, threshold-optimizer)",
        "docs/page.md:3: the table of methods lacks the built-in training method(s) ['groupdro']; add a row "
        "for each",
    ]
    # a table of both kinds must list both kinds' methods; one of training methods only need not
    both = "| name | kind |\n|:--|--|\n| ``erm`` | training |\n| ``groupdro`` | training |\n| ``threshold-optimizer`` | post |\n"
    assert table_problems("m.py", both, methods) == ([], ["m.py"])
    training = "| name | kind |\n|---|---|\n| `erm` | training |\n| `groupdro` (default) | training |\n"
    assert table_problems("c.md", training, methods) == ([], ["c.md"])
