"""The package keeps its shape: small modules whose runtime imports point one way.

Each module may import only modules listed before it in ``LAYERS`` (imports under
``if TYPE_CHECKING:`` are for annotations and do not count). A new module must be
placed in the list, which is also the reading order of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sessionkit"

# Lowest first. Objects reach their Session only through the weak reference in their
# state, never by import; the Session is imported only by what sits on top of it.
LAYERS = [
    "exc",
    "hooks",
    "validation",
    "gcpause",
    "state",
    "awaiting",
    "firing",
    "attributes",
    "portable",
    "joins",
    "relcoll",
    "relationships",
    "mapping",
    "relsync",
    "typemap",
    "columns",
    "refusals",
    "scan",
    "declarative",
    "inspection",
    "aliasing",
    "expiry",
    "identity",
    "loader",
    "evaluate",
    "bulk",
    "loading",
    "reljoin",
    "relloading",
    "rejected",
    "statements",
    "flush",
    "tracking",
    "transaction",
    "query",
    "reading",
    "merging",
    "session",
    "objects",
    "scoping",
    "events",
    "retry",
    "asyncsession",
    "asyncretry",
    "__init__",
]
MAX_LINES = 700


def _runtime_imports(path: Path) -> set[str]:
    """The sessionkit modules ``path`` imports when it runs (annotations-only ones left out)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sessionkit."):
            found.add((node.module or "").split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("sessionkit.")
            )
    return found


def test_every_module_is_placed() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(LAYERS), (
        f"modules not in LAYERS: {sorted(modules - set(LAYERS))}; "
        f"listed but missing: {sorted(set(LAYERS) - modules)}"
    )


@pytest.mark.parametrize("module", LAYERS)
def test_imports_point_down(module: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(module)])
    upward = _runtime_imports(PACKAGE / f"{module}.py") - allowed
    assert not upward, f"sessionkit/{module}.py imports {sorted(upward)} from above it"


@pytest.mark.parametrize("module", LAYERS)
def test_modules_stay_small(module: str) -> None:
    lines = len((PACKAGE / f"{module}.py").read_text().splitlines())
    assert lines <= MAX_LINES, f"sessionkit/{module}.py has {lines} lines; split it by job"
