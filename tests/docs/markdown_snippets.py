"""The documentation's code blocks as tests, through Sybil (https://sybil.readthedocs.io).

The conventions (also in ``docs/contributing.md``, "Code blocks in the documentation"):

- a block whose first line is ``# excerpt: <what it is part of>`` is a piece of a larger program or
  file and is not run; ``# not run: <why>`` is a complete command or program that the tests do not run
  (too long, GPU- or torchrun-only, data on request, it installs into your environment);
- ``text`` blocks show output or a file layout and are never run; every other block needs a language;
- ``python`` blocks run in order in one namespace per page, as a reader runs them: a block may use
  what an earlier block of the same page defined, nothing else;
- ``bash`` blocks run command by command (``\\`` continues a line, ``#`` starts a comment) with this
  environment's ``bin/`` first on ``PATH``; ``cd DIR`` changes the page's folder; a simple
  ``multifair ...`` command (no pipes, redirections, variables) runs in this process through
  ``monai_multifair.cli.main`` -- the function behind the ``multifair`` script, without paying the
  imports again --, every other command in ``bash``. ``pip install`` goes into a folder of the page
  (``PIP_TARGET``), never into this environment, and is put on ``sys.path`` for the rest of the page;
- ``yaml`` blocks are run configs: each is loaded with ``load_config`` from a file (every key and
  value checked, nothing trained);
- any other language must be marked ``excerpt`` or ``not run``.

Each page runs in a fresh temporary folder that holds a copy of the repository's ``examples/`` (its
commands are written to run from the repository root), removed afterwards.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

#: What the tests collect: the README, every page of the site, the examples' READMEs.
INCLUDE = ("README.md", "docs/*.md", "examples/*/README.md")
#: Pages not checked yet, each with the reason (printed in the summary).
EXCLUDE: dict[str, str] = {}

MARK = re.compile(r"^[ \t]*#[ \t]*(?P<kind>excerpt|not run)\b[ \t]*(?P<colon>:?)[ \t]*(?P<reason>.*)$")
SHELL_LANGUAGES = {"bash", "sh", "shell"}
RUNNABLE = {"python": "python", "py": "python", "yaml": "yaml", "yml": "yaml"} | dict.fromkeys(
    SHELL_LANGUAGES, "bash"
)
#: Characters that make a command line a job for a real shell (pipes, redirections, expansions...).
SHELL_SYNTAX = set("|&;<>()$`*?")
COMMAND_TIMEOUT_S = 300

#: ``{document path: Counter(kind)}`` of every block seen while collecting (for the summary).
BLOCKS: dict[str, Counter] = {}


@dataclass
class Block:
    """One fenced block: its language, its kind (run / excerpt / not run / output / unmarked) and why."""

    language: str
    kind: str
    reason: str = ""


def classify(info: str, source: str) -> Block:
    """What the tests do with a block of info string ``info`` and content ``source``."""
    language = info.split()[0].lower() if info.split() else ""
    lines = [line for line in source.splitlines() if line.strip()]
    first = lines[1] if len(lines) > 1 and lines[0].startswith("#!") else next(iter(lines), "")  # after a #!
    mark = MARK.match(first)
    if mark:
        if not mark["colon"] or not mark["reason"].strip():
            return Block(language, "bad mark", f"`# {mark['kind']}:` must say what or why: {first.strip()!r}")
        return Block(language, mark["kind"], mark["reason"].strip())
    if language == "text":
        return Block(language, "output")
    if not language:
        return Block(language, "bad mark", "a block needs a language (`text` for output and file layouts)")
    if language in RUNNABLE:
        return Block(RUNNABLE[language], "run")
    return Block(
        language, "bad mark", f"a `{language}` block cannot run: mark it `# excerpt: ...` or `# not run: ...`"
    )


# -- one page's state: its folder, its installed packages -------------------------------------------


@dataclass
class Page:
    """The temporary folder a page runs in, and what its commands installed."""

    root: Path
    cwd: Path
    previous_cwd: str
    site: Path
    site_active: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def activate_site(self) -> None:
        """Put the page's ``pip install`` target on ``sys.path`` once it exists; reload the plugins."""
        if self.site_active or not self.site.is_dir() or not any(self.site.iterdir()):
            return
        sys.path.insert(0, str(self.site))
        importlib.invalidate_caches()
        self.site_active = True
        _reload_plugins()


def _reload_plugins() -> None:
    from monai_multifair.plugins import get_plugin_manager

    get_plugin_manager(reload=True)


def _page(namespace: dict[str, Any]) -> Page:
    return namespace["__page__"]


def setup_page(namespace: dict[str, Any]) -> None:
    """A fresh folder holding a copy of ``examples/``; the page's commands run there."""
    repo = Path(__file__).resolve().parents[2]
    root = Path(tempfile.mkdtemp(prefix="multifair-docs-"))
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "runs")
    shutil.copytree(repo / "examples", root / "examples", ignore=ignore)
    site = root / ".page-site-packages"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH", "")] if p),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        # `pip install PKG` installs PKG alone into the page's folder, from local files only
        "PIP_TARGET": str(site),
        "PIP_NO_DEPS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads the negative option's variable inverted: 0 = off
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_QUIET": "1",
    }
    namespace["__page__"] = Page(root=root, cwd=root, previous_cwd=os.getcwd(), site=site, env=env)
    os.chdir(root)


def teardown_page(namespace: dict[str, Any]) -> None:
    """Back to the previous folder; the page's packages off ``sys.path`` and out of ``sys.modules``."""
    page = namespace.pop("__page__")
    os.chdir(page.previous_cwd)
    if page.site_active:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(page.site))
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(page.site)):
                del sys.modules[name]
        importlib.invalidate_caches()
        _reload_plugins()
    shutil.rmtree(page.root, ignore_errors=True)


# -- evaluators --------------------------------------------------------------------------------------

_python = PythonEvaluator()


def run_python(example: Example) -> None:
    page = _page(example.namespace)
    page.activate_site()
    os.chdir(page.cwd)
    _python(example)


def run_yaml(example: Example) -> None:
    from monai_multifair.config import load_config

    page = _page(example.namespace)
    path = page.cwd / f"snippet-line-{example.line}.yaml"
    path.write_text(str(example.parsed), encoding="utf-8")
    os.chdir(page.cwd)
    load_config(str(path))


def commands(source: str) -> list[str]:
    """The logical command lines of a shell block (``\\`` continuations joined, blank lines dropped)."""
    lines, current = [], ""
    for line in source.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def _in_process_argv(command: str) -> list[str] | None:
    """``multifair``'s arguments when ``command`` is a simple ``multifair ...`` command, else ``None``."""
    try:
        argv = shlex.split(command, comments=True)
    except ValueError:
        return None
    if not argv or argv[0] != "multifair":
        return None
    if SHELL_SYNTAX & set(command.split(" #", 1)[0]):
        return None
    return argv[1:]


def run_multifair(argv: list[str], command: str, page: Page) -> str | None:
    from monai_multifair.cli import main

    page.activate_site()
    os.chdir(page.cwd)
    out, err = io.StringIO(), io.StringIO()
    # as in a process of its own: warnings are printed (on stderr), not raised by the tests' filters
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("default")
        code = main(argv)
    for w in caught:
        err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    if code != 0:
        return (
            f"`{command}` exited with code {code}\n--- stdout\n{out.getvalue()}--- stderr\n{err.getvalue()}"
        )
    return None


def run_shell(command: str, page: Page) -> str | None:
    with subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", command],
        cwd=page.cwd,
        env=page.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=COMMAND_TIMEOUT_S)
        except BaseException:  # a timeout, Ctrl-C, pytest-timeout: leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    page.activate_site()
    if proc.returncode != 0:
        return f"`{command}` exited with code {proc.returncode}\n--- stdout\n{stdout}--- stderr\n{stderr}"
    return None


def run_bash(example: Example) -> str | None:
    """Each command in turn; the first that fails ends the block (its message is the failure)."""
    page = _page(example.namespace)
    for command in commands(str(example.parsed)):
        words = shlex.split(command, comments=True)
        if len(words) == 2 and words[0] == "cd":
            page.cwd = (page.cwd / words[1]).resolve()
            continue
        argv = _in_process_argv(command)
        failure = run_multifair(argv, command, page) if argv is not None else run_shell(command, page)
        if failure:
            return failure
    return None


def refuse(reason: str):
    def evaluate(example: Example) -> str:
        return reason

    return evaluate


EVALUATORS = {"python": run_python, "bash": run_bash, "yaml": run_yaml}


# -- parsing and collection --------------------------------------------------------------------------


class FenceParser:
    """Every fenced block of a Markdown document: a region to run, or a count in :data:`BLOCKS`."""

    lexer = RawFencedCodeBlockLexer(info_pattern=re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE))

    def __call__(self, document: Document):
        counts = BLOCKS.setdefault(document.path, Counter())
        counts.clear()
        for region in self.lexer(document):
            source = region.lexemes["source"]
            block = classify(region.lexemes["info"], source)
            counts[block.kind] += 1
            if block.kind == "run":
                evaluator = EVALUATORS[block.language]
            elif block.kind == "bad mark":
                evaluator = refuse(block.reason)
            else:
                continue
            yield Region(region.start, region.end, source, evaluator, {"language": block.language or "none"})


class DocumentationSybil(Sybil):
    """Sybil over the documentation files of ``root`` (``include`` minus ``exclude``, fnmatch patterns
    on the path relative to ``root``); each page runs in a fresh folder (:func:`setup_page`)."""

    def __init__(self, root: Path, include=INCLUDE, exclude=tuple(EXCLUDE)) -> None:
        super().__init__(
            parsers=[FenceParser()], path=str(root), setup=setup_page, teardown=teardown_page, name="docs"
        )
        self.root, self.include, self.exclude = Path(root), tuple(include), tuple(exclude)

    def should_parse(self, path: Path) -> bool:
        try:
            relative = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return False
        match = lambda patterns: any(fnmatch.fnmatch(relative, p) for p in patterns)  # noqa: E731
        return match(self.include) and not match(self.exclude)

    def identify(self, example: Example) -> str:
        return f"line:{example.line}:{example.region.lexemes['language']}"


def summary_lines(reports: list[Any], root: Path) -> list[str]:
    """One line per documentation file: blocks run (passed / failed), not run, excerpts, output."""
    outcomes: dict[str, Counter] = {}
    for report in reports:
        file = report.nodeid.split("::", 1)[0]
        if file.endswith(".md") and (report.when == "call" or report.failed):
            outcomes.setdefault(file, Counter())[report.outcome] += 1
    if not BLOCKS or not outcomes:  # nothing collected, or every block deselected (`-m distributed`, `-k`)
        return []
    lines, total = [], Counter()
    for path, counts in sorted(BLOCKS.items()):
        relative = Path(path).resolve().relative_to(root.resolve()).as_posix()
        if not counts:
            continue  # a page without code blocks
        done = outcomes.get(relative, Counter())
        run = counts["run"] + counts["bad mark"]
        parts = [f"{run} run ({done['passed']} passed, {done['failed']} failed)"]
        parts += [
            f"{counts['not run']} not run",
            f"{counts['excerpt']} excerpts",
            f"{counts['output']} output",
        ]
        lines.append(f"{relative}: {', '.join(parts)}")
        total.update(counts)
        total.update({f"outcome {k}": v for k, v in done.items()})
    lines.append(
        f"{len(lines)} files: {total['run'] + total['bad mark']} blocks run ({total['outcome passed']} passed, "
        f"{total['outcome failed']} failed), {total['not run']} not run, {total['excerpt']} excerpts, "
        f"{total['output']} output"
    )
    lines += [f"not checked: {pattern} ({why})" for pattern, why in EXCLUDE.items()]
    return lines


def terminal_summary(terminalreporter: Any, root: Path) -> None:
    """The "documentation code blocks" section of pytest's terminal summary (see :func:`summary_lines`)."""
    reports = [r for key in ("passed", "failed", "error") for r in terminalreporter.stats.get(key, [])]
    lines = summary_lines([r for r in reports if hasattr(r, "nodeid")], root)
    if lines:
        terminalreporter.section("documentation code blocks")
        for line in lines:
            terminalreporter.write_line(line)
