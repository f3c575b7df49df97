"""Correctness checks shared by the scenarios: a fast wrong answer must not win.

Each check raises :class:`~benchmarks.harness.CheckFailed` with the first difference it
finds, so a FAIL line says what was wrong, not only that something was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from .harness import CheckFailed
from .schema import AuthorSource, Row, read_back, read_library

#: What an S10 contender reports per author of the source, in order: the key its author
#: got, and the keys its books got (None when the contender has no book objects).
LibraryKeys = Sequence[tuple[Any, Sequence[Any] | None]]


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


def _distinct_keys(keys: Sequence[Any], what: str) -> None:
    if None in keys or len(set(keys)) != len(keys):
        raise CheckFailed(f"generated {what} keys are not distinct")


def library_holds(engine: Engine, source: Sequence[AuthorSource], keys: LibraryKeys) -> None:
    """``author`` and ``book`` hold exactly ``source``, every book pointing at its author.

    ``keys`` (see :data:`LibraryKeys`) must be the keys of the rows holding each author
    and each book: generated keys landed on the objects they were generated for.
    """
    authors, books = read_library(engine)
    if len(authors) != len(source):
        raise CheckFailed(f"author holds {len(authors)} rows, expected {len(source)}")
    _distinct_keys([a[0] for a in authors], "author")
    name_of = dict(authors)
    key_of_name = {name: key for key, name in authors}
    expected_names = sorted(name for name, _ in source)
    if sorted(name_of.values()) != expected_names:
        raise CheckFailed("author names read back differ from the names inserted")
    owner_of = {title: name for name, titles in source for title in titles}
    if len(books) != len(owner_of):
        raise CheckFailed(f"book holds {len(books)} rows, expected {len(owner_of)}")
    _distinct_keys([b[0] for b in books], "book")
    row_of_title: dict[str, tuple[int, str]] = {}
    for key, title, author_id in books:
        if author_id not in name_of:
            raise CheckFailed(f"book {key} ({title!r}) points at author {author_id!r}: no such row")
        row_of_title[title] = (key, name_of[author_id])
    for title, owner in owner_of.items():
        row = row_of_title.get(title)
        if row is None:
            raise CheckFailed(f"book {title!r} was not stored")
        if row[1] != owner:
            raise CheckFailed(f"book {title!r} points at {row[1]!r}, expected {owner!r}")
    if len(keys) != len(source):
        raise CheckFailed(f"{len(keys)} author keys reported for {len(source)} authors")
    for (name, titles), (author_key, book_keys) in zip(source, keys, strict=True):
        if author_key != key_of_name[name]:
            raise CheckFailed(
                f"author {name!r} got key {author_key!r}, its row has {key_of_name[name]}"
            )
        if book_keys is None:
            continue
        if len(book_keys) != len(titles):
            raise CheckFailed(f"author {name!r}: {len(book_keys)} book keys for {len(titles)}")
        for title, book_key in zip(titles, book_keys, strict=True):
            if book_key != row_of_title[title][0]:
                raise CheckFailed(
                    f"book {title!r} got key {book_key!r}, its row has {row_of_title[title][0]}"
                )
