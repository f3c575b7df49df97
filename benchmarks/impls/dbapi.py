"""The raw DB-API driver (sqlite3, psycopg, pymysql) with hand-written SQL.

The connection is the Engine's own pooled driver connection (``driver_connection``), so
its settings match the other contenders'; it is checked out before the clock starts,
because a plain driver program holds its connection. Generated keys come back the
driver's own way: psycopg's ``executemany(..., returning=True)``, elsewhere one
``execute`` per row reading ``cursor.lastrowid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from ..db import RawSql, raw_sql
from ..harness import CheckFailed, Trial
from ..schema import Row


class _Raw:
    """A driver connection borrowed from the Engine's pool, plus the SQL for its style."""

    def __init__(self, engine: Engine) -> None:
        self.fairy = engine.raw_connection()
        self.conn: Any = self.fairy.driver_connection
        dbapi: Any = engine.dialect.dbapi
        self.sql: RawSql = raw_sql(dbapi.paramstyle)
        self.driver = engine.dialect.driver

    def close(self) -> None:
        self.fairy.close()


def _rows(rows: Sequence[Any]) -> list[Row]:
    return [tuple(r) for r in rows]


def load(engine: Engine) -> Trial:
    """S1: ``cursor.execute(SELECT ...); cursor.fetchall()``."""
    raw = _Raw(engine)

    def run() -> Sequence[Any]:
        cur = raw.conn.cursor()
        cur.execute(raw.sql.select_all)
        return cur.fetchall()  # type: ignore[no-any-return]

    return Trial(run, _rows, raw.close)


def bulk_insert(engine: Engine, rows: Sequence[Row], client_keys: bool) -> Trial:
    """S2: ``executemany`` of tuples; see the module docstring for generated keys."""
    raw = _Raw(engine)
    sql = raw.sql

    def run() -> list[Any]:
        conn = raw.conn
        cur = conn.cursor()
        if client_keys:
            cur.executemany(sql.insert_with_id, rows)
            conn.commit()
            return [r[0] for r in rows]
        ids: list[Any] = []
        if raw.driver == "psycopg":
            cur.executemany(
                sql.insert_without_id + " RETURNING id", [r[1:] for r in rows], returning=True
            )
            while True:
                ids.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
        else:
            for r in rows:
                cur.execute(sql.insert_without_id, r[1:])
                ids.append(cur.lastrowid)
        conn.commit()
        return ids

    return Trial(run, close=raw.close)


def single_insert(engine: Engine, rows: Sequence[Row]) -> Trial:
    """S3: per row ``execute`` then ``commit``."""
    raw = _Raw(engine)

    def run() -> None:
        conn = raw.conn
        cur = conn.cursor()
        insert = raw.sql.insert_without_id
        for r in rows:
            cur.execute(insert, r[1:])
            conn.commit()

    return Trial(run, close=raw.close)


def get_cold(engine: Engine, keys: Sequence[int]) -> Trial:
    """S4 cold: ``execute`` + ``fetchone`` per key."""
    raw = _Raw(engine)

    def run() -> list[Any]:
        cur = raw.conn.cursor()
        sql = raw.sql.select_by_pk
        out = []
        for k in keys:
            cur.execute(sql, (k,))
            out.append(cur.fetchone())
        return out

    return Trial(run, _rows, raw.close)


def update(engine: Engine) -> Trial:
    """S5: fetch, ``executemany`` UPDATE, commit."""
    raw = _Raw(engine)

    def run() -> None:
        conn = raw.conn
        cur = conn.cursor()
        cur.execute(raw.sql.select_all)
        rows = cur.fetchall()
        cur.executemany(raw.sql.update_visits, [(r[6] + 1, r[0]) for r in rows])
        conn.commit()

    return Trial(run, close=raw.close)


def refresh(engine: Engine) -> Trial:
    """S6: rows fetched beforehand; commit, fetch again, read one column each."""
    raw = _Raw(engine)
    cur = raw.conn.cursor()
    cur.execute(raw.sql.select_all)
    cur.fetchall()

    def run() -> tuple[Sequence[Any], list[int]]:
        raw.conn.commit()
        cur.execute(raw.sql.select_all)
        rows = cur.fetchall()
        return rows, [r[6] for r in rows]

    def observe(result: tuple[Sequence[Any], list[int]]) -> list[tuple[int, int]]:
        rows, visits = result
        return [(r[0], v) for r, v in zip(rows, visits, strict=True)]

    return Trial(run, observe, raw.close)


def rollback(engine: Engine) -> Trial:
    """S7: rows fetched beforehand; only ``connection.rollback()`` is measured."""
    raw = _Raw(engine)
    cur = raw.conn.cursor()
    cur.execute(raw.sql.select_all)
    rows = cur.fetchall()

    def run() -> None:
        raw.conn.rollback()

    def observe(_: None) -> int:
        in_txn = getattr(raw.conn, "in_transaction", None)
        if in_txn is True:
            raise CheckFailed("the driver connection is still in a transaction after rollback()")
        return len(rows)

    return Trial(run, observe, raw.close)


def memory(engine: Engine) -> Trial:
    """S8: the driver's row tuples from ``fetchall()``."""
    raw = _Raw(engine)

    def run() -> Sequence[Any]:
        cur = raw.conn.cursor()
        cur.execute(raw.sql.select_all)
        return cur.fetchall()  # type: ignore[no-any-return]

    return Trial(run, _rows, raw.close)
