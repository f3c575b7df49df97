"""The typed example (tests/typing/typed_models.py) runs, so what the type checkers are
shown there is also what happens: the same example is checked by mypy and pyright in
``nox -s typecheck``.

It is loaded from its path: a ``tests/typing`` package importable as ``typing`` would
shadow the standard library's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

EXAMPLE = Path(__file__).resolve().parent / "typing" / "typed_models.py"


def test_typed_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("typed_models", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: the declarative scan resolves string annotations in it.
    monkeypatch.setitem(sys.modules, "typed_models", module)
    spec.loader.exec_module(module)
    engine = create_engine(f"sqlite:///{tmp_path / 'typed.db'}")
    try:
        module.main(engine)
    finally:
        engine.dispose()
