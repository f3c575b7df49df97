"""Every ```python block of README.md runs as written, so the examples cannot drift.

The rules, for whoever edits the README:

* **What runs.** Fenced blocks whose info string starts with ``python``. Other fences
  (```bash, a bare ``` for an error message or a directory tree) are not run.
* **Sections share a namespace.** A block belongs to the top-level ``## `` section it
  appears in (``###`` subsections included). The blocks of one section run in order, top
  to bottom, in one namespace: a block may use what an earlier block of its section
  defined, and what it leaves in the database.
* **The Quickstart is the setup.** The README's first python block (imports, ``Base``,
  ``User``, ``Account``, an in-memory SQLite ``engine`` with two users) is what the rest of
  the README builds on. Every other section starts from a fresh run of it, with a fresh
  in-memory database, so its blocks may use those names without repeating them. Nothing
  else carries over from one section to another.
* **Opt-out.** A block whose opening fence is directly preceded by the line
  ``<!-- not-run: <reason> -->`` is not run: its test is reported as skipped with that
  reason. It is still compiled, so a syntax error is caught. Use it only for a block that
  needs something a test run does not have (a PostgreSQL server, say), and say so in the
  reason. The section's later blocks run without it.
* **No noise.** A block must not print and must not warn: it runs with stdout and stderr
  captured and warnings recorded, and either fails its test. ``echo=True`` is fine: the
  SQL log goes to the ``sqlalchemy.engine.Engine`` logger, which pytest shows with a
  failing test, not to stdout.

There is one test per block, named after its section and the README line of its opening
fence. A failure names that line, the README line that raised and the last SQL
statements the block ran. When an earlier block of the same section fails, the later
ones fail too, naming it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import traceback
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

README = Path(__file__).resolve().parent.parent / "README.md"
FILENAME = "README.md"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*not-run\s*:(?P<reason>.*?)-->\s*$")
_MARKER_START = re.compile(r"^\s*<!--\s*not[-_ ]?run\b", re.IGNORECASE)
_SQL_LOGGER = "sqlalchemy.engine.Engine"


@dataclass(frozen=True)
class Block:
    """One ```python block of a Markdown document."""

    section: str  # title of the enclosing "## " section ("" before the first one)
    index: int  # position among the python blocks of that section, from 0
    fence_line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the opt-out reason, or None

    @property
    def first_code_line(self) -> int:
        return self.fence_line + 1

    @property
    def test_id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-") or "top"
        return f"{slug}-line{self.fence_line}"

    def where(self) -> str:
        section = f"section '## {self.section}'" if self.section else "before the first section"
        return f"{FILENAME} line {self.fence_line} ({section}, block {self.index + 1})"


class ReadmeFormatError(ValueError):
    """The README breaks the rules above (an unclosed fence, a misplaced opt-out)."""


def extract_blocks(text: str) -> list[Block]:
    """The python blocks of ``text``, each with its section and opt-out marker."""
    lines = text.splitlines()
    blocks: list[Block] = []
    per_section: dict[str, int] = {}
    section = ""
    markers: dict[int, str] = {}  # 1-based line of a not-run marker -> reason
    used_markers: set[int] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = _FENCE.match(line)
        if opening is None:
            if line.startswith("## "):
                section = line[3:].strip()
            if _MARKER_START.match(line):
                marker = _MARKER.match(line)
                reason = marker.group("reason").strip() if marker else ""
                if not reason:
                    raise ReadmeFormatError(
                        f"{FILENAME} line {i + 1}: write the opt-out as "
                        f"'<!-- not-run: <why this block cannot run in a test> -->', "
                        f"got {line.strip()!r}"
                    )
                markers[i + 1] = reason
            i += 1
            continue
        fence, indent = opening.group("fence"), opening.group("indent")
        info = opening.group("info").strip()
        end = i + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            end += 1
        else:
            raise ReadmeFormatError(f"{FILENAME} line {i + 1}: this code fence is never closed")
        if info.split()[:1] == ["python"]:
            body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
            reason = markers.get(i)  # the marker sits on the line right above the fence
            if reason is not None:
                used_markers.add(i)
            index = per_section.get(section, 0)
            per_section[section] = index + 1
            blocks.append(Block(section, index, i + 1, "\n".join(body) + "\n", reason))
        i = end + 1
    stray = sorted(set(markers) - used_markers)
    if stray:
        raise ReadmeFormatError(
            f"{FILENAME} line {stray[0]}: a not-run marker must be on the line directly above "
            f"the ```python fence of the block it opts out"
        )
    return blocks


def _compile(block: Block) -> Any:
    """Compiled so that tracebacks and line numbers point into README.md itself."""
    source = "\n" * (block.first_code_line - 1) + block.code
    # dont_inherit: README code runs as a user's module would, without this file's
    # ``from __future__ import annotations`` (annotations stay objects).
    return compile(source, FILENAME, "exec", dont_inherit=True)


class _SqlLog(logging.Handler):
    """Collects the engine's SQL log while a block runs (and keeps it off stdout)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _sql_log() -> Iterator[_SqlLog]:
    # Ours is the only handler while a block runs: SQLAlchemy then adds no stdout handler
    # for echo=True, and a handler left by an earlier test cannot write into the block's
    # captured output.
    handler = _SqlLog()
    logger = logging.getLogger(_SQL_LOGGER)
    saved = logger.handlers[:]
    logger.handlers = [handler]
    try:
        yield handler
    finally:
        logger.handlers = saved


def _raising_line(err: BaseException) -> str:
    """The innermost README line in the traceback of ``err``, quoted."""
    lines = README.read_text(encoding="utf-8").splitlines()
    found = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == FILENAME and frame.lineno:
            found = f"{FILENAME} line {frame.lineno}: {lines[frame.lineno - 1].strip()}"
    return found


def _run(block: Block, namespace: dict[str, Any]) -> str | None:
    """Run one block in ``namespace``; the failure message, or None if it passed."""
    code = _compile(block)
    out, err_out = io.StringIO(), io.StringIO()
    with (
        _sql_log() as log,
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err_out),
    ):
        warnings.simplefilter("always")
        try:
            exec(code, namespace)
        except Exception as err:
            return "\n".join(
                [
                    f"{block.where()} failed:",
                    f"  {_raising_line(err)}",
                    f"  {type(err).__name__}: {err}",
                    "Last SQL statements of the block:",
                    *("  " + m.replace("\n", "\n    ") for m in log.messages[-6:]),
                    "Traceback:",
                    "".join(traceback.format_exception(err)).rstrip(),
                ]
            )
    noise = (out.getvalue() + err_out.getvalue()).strip()
    if noise:
        return (
            f"{block.where()} printed (README blocks must not print; show values in comments "
            f"or asserts, and let echo=True log the SQL):\n{noise[:2000]}"
        )
    if caught:
        shown = "\n".join(
            f"  {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
        )
        return f"{block.where()} issued warnings (README blocks must run cleanly):\n{shown}"
    return None


BLOCKS = extract_blocks(README.read_text(encoding="utf-8"))


class _Section:
    """The shared namespace of one section's blocks, run in order on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        # A real module, as the user's code would be: the declarative scan and pickle
        # find a class's module in sys.modules.
        module = types.ModuleType("readme_" + re.sub(r"\W", "_", name))
        sys.modules[module.__name__] = module
        self.module_name = module.__name__
        self.namespace: dict[str, Any] = module.__dict__
        self.started = False
        self.done = 0  # blocks of the section run so far, in order
        self.failed: tuple[Block, str] | None = None  # the block that failed, and why

    def _start(self) -> None:
        """Every section but the setup's own starts from a fresh run of the setup."""
        self.started = True
        setup = BLOCKS[0]
        if self.name != setup.section:
            problem = _run(setup, self.namespace)
            if problem is not None:
                self.failed = (setup, problem)

    def run_until(self, block: Block) -> str | None:
        """Run the section's blocks up to and including ``block``; a failure message."""
        if not self.started:
            self._start()
        ours = [b for b in BLOCKS if b.section == self.name]
        while self.failed is None and self.done <= block.index:
            current = ours[self.done]
            self.done += 1
            if current.not_run is None:
                problem = _run(current, self.namespace)
                if problem is not None:
                    self.failed = (current, problem)
        if self.failed is None:
            return None
        failed, problem = self.failed
        if failed is block:
            return problem
        what = "the setup block" if failed is BLOCKS[0] else "an earlier block of its section"
        return f"{block.where()} was not run because {what} failed:\n{problem}"


_sections: dict[str, _Section] = {}


@pytest.fixture(scope="module", autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    for section in _sections.values():
        for value in section.namespace.values():
            if isinstance(value, Engine):
                value.dispose()
        sys.modules.pop(section.module_name, None)
    _sections.clear()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.test_id for b in BLOCKS])
def test_readme_block_runs(block: Block) -> None:
    _compile(block)  # a syntax error fails here, opt-out or not
    if block.not_run is not None:
        pytest.skip(f"{FILENAME} line {block.fence_line} is marked not-run: {block.not_run}")
    section = _sections.setdefault(block.section, _Section(block.section))
    problem = section.run_until(block)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def test_readme_has_examples_and_starts_with_the_setup() -> None:
    assert len(BLOCKS) >= 5, f"expected the README's python examples, found {len(BLOCKS)}"
    setup = BLOCKS[0]
    assert setup.not_run is None, f"{setup.where()}: the setup block cannot be opted out"
    assert "engine" in setup.code, f"{setup.where()}: the setup block must create `engine`"


SAMPLE = """\
# Title

```python
top = 1
```

## First

```python
a = 1
```

### Sub

```bash
echo not python
```

<!-- not-run: needs a PostgreSQL server -->
```python
b = 2
```

```py
not_python_either = 1
```

## Second

````python
c = '''
```
'''
````
"""


def test_extraction_rules() -> None:
    blocks = extract_blocks(SAMPLE)
    assert [(b.section, b.index, b.fence_line, b.not_run) for b in blocks] == [
        ("", 0, 3, None),
        ("First", 0, 9, None),
        ("First", 1, 20, "needs a PostgreSQL server"),
        ("Second", 0, 30, None),
    ]
    assert blocks[1].code == "a = 1\n"
    assert blocks[3].code == "c = '''\n```\n'''\n"
    assert [b.test_id for b in blocks] == [
        "top-line3",
        "first-line9",
        "first-line20",
        "second-line30",
    ]


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        pytest.param("<!-- not-run: x -->\n\n```python\na = 1\n```\n", "directly above", id="gap"),
        pytest.param("<!-- not-run: x -->\n```bash\nls\n```\n", "directly above", id="bash"),
        pytest.param(
            "<!-- not-run -->\n```python\na = 1\n```\n", "write the opt-out as", id="no-reason"
        ),
        pytest.param(
            "<!-- not-run:  -->\n```python\na = 1\n```\n", "write the opt-out as", id="blank"
        ),
        pytest.param("```python\na = 1\n", "never closed", id="unclosed"),
    ],
)
def test_extraction_refuses_misplaced_or_empty_opt_outs(markdown: str, message: str) -> None:
    with pytest.raises(ReadmeFormatError, match=message):
        extract_blocks(markdown)
