"""The benchmark table, its deterministic data, and Core helpers to set up and read back.

Every implementation works on the same ``user_account`` table and the same rows, so
that the only difference between them is the code path. Values are chosen to round-trip
exactly on every backend (floats are multiples of 0.25), which lets the checks compare
with ``==``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
)

TABLE_NAME = "user_account"
COLUMNS: tuple[str, ...] = ("id", "name", "fullname", "email", "age", "score", "visits")
DATA_COLUMNS: tuple[str, ...] = COLUMNS[1:]

Row = tuple[int, str, str, str, int, float, int]

metadata = MetaData()

user_table = Table(
    TABLE_NAME,
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("fullname", String(100), nullable=False),
    Column("email", String(100), nullable=False),
    Column("age", Integer, nullable=False),
    Column("score", Double, nullable=False),
    Column("visits", Integer, nullable=False),
)


def make_row(i: int) -> Row:
    """Row ``i``: distinct strings of realistic length, small and large numbers."""
    return (
        i,
        f"user{i:07d}",
        f"User Number {i}",
        f"user{i}@example.com",
        18 + i % 60,
        i * 0.25,
        i % 1000,
    )


def make_rows(n: int) -> list[Row]:
    """Rows with ids ``1..n``."""
    return [make_row(i) for i in range(1, n + 1)]


def create(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def truncate(conn: Connection) -> None:
    """Empty the table and restart generated keys at 1 (so every repeat starts alike)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text(f"TRUNCATE {TABLE_NAME} RESTART IDENTITY"))
    elif dialect in ("mysql", "mariadb"):
        conn.execute(text(f"TRUNCATE TABLE {TABLE_NAME}"))
    else:
        conn.execute(user_table.delete())


def reset(engine: Engine, rows: Sequence[Row]) -> None:
    """Table holds exactly ``rows`` (committed), nothing else."""
    with engine.begin() as conn:
        truncate(conn)
        if rows:
            conn.execute(insert(user_table), [dict(zip(COLUMNS, r, strict=True)) for r in rows])


def empty(engine: Engine) -> None:
    with engine.begin() as conn:
        truncate(conn)


def read_back(engine: Engine) -> list[Row]:
    """All rows in primary-key order, read with Core on a fresh connection."""
    with engine.connect() as conn:
        result = conn.execute(select(user_table).order_by(user_table.c.id))
        return [tuple(r) for r in result]
