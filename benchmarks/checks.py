"""Correctness checks shared by the scenarios: a fast wrong answer must not win.

Each check raises :class:`~benchmarks.harness.CheckFailed` with the first difference it
finds, so a FAIL line says what was wrong, not only that something was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from .harness import CheckFailed
from .schema import Row, read_back


def same_rows(actual: Sequence[Any], expected: Sequence[Any], what: str) -> None:
    """Equal sequences of rows, in order."""
    if len(actual) != len(expected):
        raise CheckFailed(f"{what}: {len(actual)} rows, expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if tuple(a) != tuple(e):
            raise CheckFailed(f"{what}: row {i} is {tuple(a)!r}, expected {tuple(e)!r}")


def same_rows_any_order(
    actual: Sequence[Any], expected: Sequence[Sequence[Any]], what: str
) -> None:
    """The same rows, in any order (sorted by primary key before comparing)."""
    same_rows(sorted(actual, key=lambda r: r[0]), expected, what)


def table_holds(engine: Engine, expected: Sequence[Row], what: str) -> None:
    """The committed table is exactly ``expected`` (read back with Core)."""
    same_rows(read_back(engine), expected, f"{what} (table read back)")


def table_holds_generated(engine: Engine, source: Sequence[Row], ids: Sequence[Any] | None) -> None:
    """Rows inserted with database-generated keys: the data persisted, each once.

    With ``ids`` (the keys the implementation reports for each source row, in order) it
    also checks that every object got the key of its own row.
    """
    stored = read_back(engine)
    if len(stored) != len(source):
        raise CheckFailed(f"table holds {len(stored)} rows, expected {len(source)}")
    keys = [r[0] for r in stored]
    if len(set(keys)) != len(keys) or None in keys:
        raise CheckFailed("generated keys are not distinct")
    same_rows([r[1:] for r in stored], [r[1:] for r in source], "persisted values")
    if ids is None:
        return
    if len(ids) != len(source):
        raise CheckFailed(f"{len(ids)} keys reported for {len(source)} rows")
    by_key = {r[0]: r for r in stored}
    for i, (key, src) in enumerate(zip(ids, source, strict=True)):
        row = by_key.get(key)
        if row is None or row[1:] != src[1:]:
            raise CheckFailed(f"object {i} got key {key!r}, which is not the row it inserted")
