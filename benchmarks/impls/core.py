"""SQLAlchemy Core as an experienced user writes it: the comparison baseline.

Statements are built once (as an application would keep them), parameters go in as
lists of dicts (``executemany``), results come back with ``fetchall()``. Connection
checkout is inside the measured region, as the Session's is. Related rows are fetched
with a second query (``IN`` over the parents' keys) and grouped in Python; related rows
are inserted after their parents, whose generated keys come back through RETURNING.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy import update as sql_update

from ..harness import CheckFailed, Trial
from ..schema import (
    COLUMNS,
    DATA_COLUMNS,
    AuthorSource,
    LibraryRow,
    Row,
    author_table,
    book_table,
    user_table,
)

t = user_table
SELECT_ALL = select(t)
SELECT_BY_PK = select(t).where(t.c.id == bindparam("pk"))
INSERT = insert(t)
INSERT_RETURNING = insert(t).returning(t.c.id, sort_by_parameter_order=True)
UPDATE_VISITS = (
    sql_update(t).where(t.c.id == bindparam("pk")).values(visits=bindparam("new_visits"))
)
SELECT_AUTHORS = select(author_table)
SELECT_BOOKS_OF = (
    select(book_table)
    .where(book_table.c.author_id.in_(bindparam("ids", expanding=True)))
    .order_by(book_table.c.id)
)
INSERT_AUTHOR = insert(author_table)
INSERT_AUTHOR_RETURNING = insert(author_table).returning(
    author_table.c.id, sort_by_parameter_order=True
)
INSERT_BOOK = insert(book_table)
#: Parent keys per ``IN``: the chunk size of sessionkit's batched load (and of the ORM's
#: selectinload), so all three send the same SQL.
IN_CHUNK = 500


class _Held:
    """Connections opened inside ``run`` and closed after the clock stops."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []

    def open(self, engine: Engine) -> Connection:
        conn = engine.connect()
        self.conns.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def _rows(rows: Sequence[Any]) -> list[Row]:
    return [tuple(r) for r in rows]


def load(engine: Engine) -> Trial:
    """S1: ``conn.execute(select(table)).fetchall()``."""
    held = _Held()

    def run() -> Sequence[Any]:
        return held.open(engine).execute(SELECT_ALL).fetchall()

    return Trial(run, _rows, held.close)


def bulk_insert(engine: Engine, rows: Sequence[Row], client_keys: bool) -> Trial:
    """S2: one executemany INSERT; generated keys via RETURNING in parameter order."""

    def run() -> list[Any]:
        with engine.begin() as conn:
            if client_keys:
                conn.execute(INSERT, [dict(zip(COLUMNS, r, strict=True)) for r in rows])
                return [r[0] for r in rows]
            params = [dict(zip(DATA_COLUMNS, r[1:], strict=True)) for r in rows]
            return list(conn.execute(INSERT_RETURNING, params).scalars().all())

    return Trial(run)


def single_insert(engine: Engine, rows: Sequence[Row]) -> Trial:
    """S3: per row ``with engine.begin(): conn.execute(insert, params)``."""

    def run() -> None:
        for r in rows:
            with engine.begin() as conn:
                conn.execute(INSERT, dict(zip(DATA_COLUMNS, r[1:], strict=True)))

    return Trial(run)


def get_cold(engine: Engine, keys: Sequence[int]) -> Trial:
    """S4 cold: one prebuilt ``SELECT ... WHERE id = :pk`` per key."""
    held = _Held()

    def run() -> list[Any]:
        conn = held.open(engine)
        return [conn.execute(SELECT_BY_PK, {"pk": k}).first() for k in keys]

    return Trial(run, _rows, held.close)


def update(engine: Engine) -> Trial:
    """S5: fetch the rows, one executemany ``UPDATE ... WHERE id = :pk``, commit."""

    def run() -> None:
        with engine.begin() as conn:
            rows = conn.execute(SELECT_ALL).fetchall()
            conn.execute(UPDATE_VISITS, [{"pk": r.id, "new_visits": r.visits + 1} for r in rows])

    return Trial(run)


def refresh(engine: Engine) -> Trial:
    """S6: rows fetched beforehand; commit, select them again, read one column each."""
    conn = engine.connect()
    conn.execute(SELECT_ALL).fetchall()

    def run() -> tuple[Sequence[Any], list[int]]:
        conn.commit()
        rows = conn.execute(SELECT_ALL).fetchall()
        return rows, [r.visits for r in rows]

    def observe(result: tuple[Sequence[Any], list[int]]) -> list[tuple[int, int]]:
        rows, visits = result
        return [(r.id, v) for r, v in zip(rows, visits, strict=True)]

    return Trial(run, observe, conn.close)


def rollback(engine: Engine) -> Trial:
    """S7: rows fetched and changes computed beforehand; only ``conn.rollback()`` timed."""
    conn = engine.connect()
    rows = conn.execute(SELECT_ALL).fetchall()
    changes = [{"pk": r.id, "new_visits": r.visits + 1} for r in rows]

    def run() -> None:
        conn.rollback()

    def observe(_: None) -> int:
        if conn.in_transaction():
            raise CheckFailed("the connection is still in a transaction after rollback()")
        changes.clear()
        return len(rows)

    return Trial(run, observe, conn.close)


def memory(engine: Engine) -> Trial:
    """S8: the ``Row`` objects of ``fetchall()``, held in their list."""
    conn = engine.connect()

    def run() -> Sequence[Any]:
        return conn.execute(SELECT_ALL).fetchall()

    return Trial(run, _rows, conn.close)


def load_with_books(engine: Engine) -> Trial:
    """S9: authors, then their books ``WHERE author_id IN (...)``, grouped into lists."""
    held = _Held()

    def run() -> tuple[Sequence[Any], dict[int, list[Any]], list[list[str]]]:
        conn = held.open(engine)
        authors = conn.execute(SELECT_AUTHORS).fetchall()
        ids = [a.id for a in authors]
        books: dict[int, list[Any]] = {i: [] for i in ids}
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            for b in conn.execute(SELECT_BOOKS_OF, {"ids": chunk}).fetchall():
                books[b.author_id].append(b)
        return authors, books, [[b.title for b in books[a.id]] for a in authors]

    def observe(
        result: tuple[Sequence[Any], dict[int, list[Any]], list[list[str]]],
    ) -> list[LibraryRow]:
        authors, books, titles = result
        return [
            (a.id, a.name, tuple((b.id, t) for b, t in zip(books[a.id], ts, strict=True)))
            for a, ts in zip(authors, titles, strict=True)
        ]

    return Trial(run, observe, held.close)


def _first(key: Any) -> Any:
    """The single column of ``inserted_primary_key``."""
    return key[0]


def authors_returning(engine: Engine) -> bool:
    """True when the dialect gives back executemany keys in parameter order (S10's path)."""
    return bool(engine.dialect.insert_executemany_returning_sort_by_parameter_order)


def insert_with_books(engine: Engine, source: Sequence[AuthorSource]) -> Trial:
    """S10: the authors, their keys, then every book in one executemany; one commit.

    Authors go in as one executemany ``INSERT ... RETURNING id`` in parameter order where
    the dialect supports it; elsewhere one INSERT per author, reading its generated key
    (keys of one multi-row INSERT need not be consecutive, and names need not be unique).
    """
    returning = authors_returning(engine)

    def run() -> list[Any]:
        with engine.begin() as conn:
            names = [{"name": name} for name, _ in source]
            if returning:
                ids = conn.execute(INSERT_AUTHOR_RETURNING, names).scalars().all()
            else:
                ids = [_first(conn.execute(INSERT_AUTHOR, p).inserted_primary_key) for p in names]
            conn.execute(
                INSERT_BOOK,
                [
                    {"title": title, "author_id": author_id}
                    for author_id, (_, titles) in zip(ids, source, strict=True)
                    for title in titles
                ],
            )
        return list(ids)

    return Trial(run, lambda ids: [(i, None) for i in ids])
