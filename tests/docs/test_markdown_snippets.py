"""The documentation tests (conftest.py, tests/docs/markdown_snippets.py) fail on broken blocks.

``fixtures/broken.md`` holds one good block, six broken ones and marked ones; pytest runs on a copy of
it with the same machinery, in a process of its own, and every broken block must fail with its reason.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULE = HERE / "markdown_snippets.py"


def _snippets():
    name = "multifair_markdown_snippets"
    if name not in sys.modules:  # loaded by the repository's conftest.py in a normal run
        spec = importlib.util.spec_from_file_location(name, MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


CONFTEST = f"""
import importlib.util, sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("multifair_markdown_snippets", {str(MODULE)!r})
snippets = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = snippets
spec.loader.exec_module(snippets)
ROOT = Path(__file__).resolve().parent
pytest_collect_file = snippets.DocumentationSybil(ROOT, include=["*.md"], exclude=[]).pytest()


def pytest_terminal_summary(terminalreporter):
    snippets.terminal_summary(terminalreporter, ROOT)
"""


@pytest.mark.slow
def test_broken_blocks_fail_the_run(tmp_path):
    shutil.copy(HERE / "fixtures" / "broken.md", tmp_path / "broken.md")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-W", "error", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    # node ids name the line of the opening fence
    outcomes = dict(re.findall(r"^broken\.md::line:(\d+):\w+ (PASSED|FAILED)", out, re.M))
    assert outcomes == {
        "6": "PASSED",  # the good block
        "10": "FAILED",  # NameError
        "14": "FAILED",  # multifair exits with 2
        "18": "FAILED",  # a failing shell command
        "22": "FAILED",  # misspelt config key
        "26": "FAILED",  # toml without a mark
        "32": "FAILED",  # a mark without a reason
    }, out
    for reason in [
        "NameError: name 'undefined_name' is not defined",
        "`multifair train --config no-such-preset --output runs/x   # broken: exits with 2` exited with code 2",
        "unknown preset 'no-such-preset'",
        "ls: cannot access 'no-such-file'",
        "unknown config key `trainer.learning_rate` (did you mean 'lr'?)",
        "a `toml` block cannot run: mark it `# excerpt: ...` or `# not run: ...`",
        "`# not run:` must say what or why",
    ]:
        assert reason in out, (reason, out)
    assert "this block must not run" not in out.replace('raise SystemExit("this block must not run")', "")
    summary = "broken.md: 7 run (1 passed, 6 failed), 1 not run, 0 excerpts, 1 output"
    assert summary in out, out


def test_marks_and_languages_are_classified():
    classify = _snippets().classify
    assert classify("python", "x = 1\n").kind == "run"
    assert classify("bash", "# excerpt: a piece\nmultifair x\n").kind == "excerpt"
    block = classify("bash", "#!/bin/bash\n# not run: needs a cluster\nsrun x\n")
    assert (block.kind, block.reason) == ("not run", "needs a cluster")
    assert classify("text", "anything\n").kind == "output"
    assert classify("", "x\n").kind == "bad mark"
    assert classify("toml", "[a]\n").kind == "bad mark"
    assert classify("python", "# not run\nx\n").kind == "bad mark"
    assert classify("python title='a'", "x\n").language == "python"


def test_commands_and_in_process_detection():
    snippets = _snippets()
    assert snippets.commands("a \\\n  b  # c\n\n# comment\nd\n") == ["a    b  # c", "d"]
    assert snippets._in_process_argv("multifair train --set data.attributes=[race,gender]  # x") == [
        "train",
        "--set",
        "data.attributes=[race,gender]",
    ]
    for shell in [
        "multifair plugins --json | head",
        "multifair x > out.txt",
        "FOO=1 multifair x",
        "python -m y",
    ]:
        assert snippets._in_process_argv(shell) is None, shell
