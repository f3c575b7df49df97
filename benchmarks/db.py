"""Where the benchmark runs: engines with identical settings, and the raw driver's SQL.

All implementations of one scenario share one Engine, so pool, dialect and driver
options are the same for every contender; the raw DB-API implementation borrows its
connection from that Engine's pool (``driver_connection``) rather than opening its own
with different settings. On PostgreSQL the run works in a private schema, so it never
touches an existing ``user_account`` table.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.engine import URL

from . import schema
from .config import DB_KINDS, DbName

#: SQLAlchemy backend names (``url.get_backend_name()``) of the supported databases.
BACKENDS: dict[str, DbName] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mariadb",
    "mariadb": "mariadb",
}


@dataclass(frozen=True)
class RawSql:
    """The statements the DB-API implementation sends, in the driver's paramstyle."""

    select_all: str
    select_by_pk: str
    insert_with_id: str
    insert_without_id: str
    update_visits: str


def raw_sql(paramstyle: str) -> RawSql:
    if paramstyle == "qmark":
        ph = "?"
    elif paramstyle in ("format", "pyformat"):
        ph = "%s"
    else:  # pragma: no cover - sqlite3, psycopg and pymysql use one of the above
        raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}")
    t = schema.TABLE_NAME
    cols = ", ".join(schema.COLUMNS)
    data_cols = ", ".join(schema.DATA_COLUMNS)
    return RawSql(
        select_all=f"SELECT {cols} FROM {t}",
        select_by_pk=f"SELECT {cols} FROM {t} WHERE id = {ph}",
        insert_with_id=f"INSERT INTO {t} ({cols}) VALUES ({', '.join([ph] * len(schema.COLUMNS))})",
        insert_without_id=(
            f"INSERT INTO {t} ({data_cols}) VALUES ({', '.join([ph] * len(schema.DATA_COLUMNS))})"
        ),
        update_visits=f"UPDATE {t} SET visits = {ph} WHERE id = {ph}",
    )


class Database:
    """The database under test: a SQLite file in a temporary directory, or ``--db URL``."""

    def __init__(self, url: str | None) -> None:
        self._tmpdir: str | None = None
        self._pg_schema: str | None = None
        if url is None:
            self._tmpdir = tempfile.mkdtemp(prefix="sessionkit-bench-")
            self.url: URL = make_url(f"sqlite:///{os.path.join(self._tmpdir, 'bench.db')}")
        else:
            self.url = make_url(url)
        self.backend = self.url.get_backend_name()
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unsupported database {self.backend!r}: use SQLite, PostgreSQL or MariaDB/MySQL"
            )
        self.is_sqlite = self.backend == "sqlite"
        if self.is_sqlite and self.url.database in (None, "", ":memory:"):
            raise ValueError(
                "--db sqlite needs a file database (sqlite:///path.db); the in-memory "
                "variant is part of S3 already"
            )
        if self.backend == "postgresql":
            self._pg_schema = f"sessionkit_bench_{os.getpid()}"
            self._pg_setup()
        elif self.backend in ("mysql", "mariadb"):
            self._refuse_existing_table()

    @property
    def label(self) -> str:
        """The URL with any password hidden, for reports."""
        return self.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> DbName:
        """Which database's targets apply: a MySQL URL counts as MariaDB."""
        return BACKENDS[self.backend]

    @property
    def kind(self) -> str:
        return DB_KINDS[self.dialect]

    def _engine_kwargs(self) -> dict[str, Any]:
        if self._pg_schema is not None:
            return {"connect_args": {"options": f"-csearch_path={self._pg_schema}"}}
        return {}

    def engine(self, memory: bool = False) -> Engine:
        """A new Engine; ``memory=True`` gives a private in-memory SQLite database."""
        if memory:
            return create_engine("sqlite://")
        return create_engine(self.url, **self._engine_kwargs())

    @contextmanager
    def connect(self, memory: bool = False) -> Iterator[Engine]:
        """An Engine with the benchmark table created; disposed on exit."""
        engine = self.engine(memory)
        try:
            schema.create(engine)
            yield engine
        finally:
            engine.dispose()

    def _pg_setup(self) -> None:
        admin = create_engine(self.url)
        try:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {self._pg_schema} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {self._pg_schema}"))
        finally:
            admin.dispose()

    def _refuse_existing_table(self) -> None:
        engine = create_engine(self.url)
        try:
            from sqlalchemy import inspect

            inspector = inspect(engine)
            for table in schema.metadata.sorted_tables:
                if inspector.has_table(table.name):
                    raise ValueError(
                        f"the database at {self.label} already has a table "
                        f"{table.name!r}; point --db at a scratch database (the "
                        f"benchmark empties and refills that table)"
                    )
        finally:
            engine.dispose()

    def close(self) -> None:
        """Remove everything the run created (temporary directory or private schema)."""
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self._pg_schema is not None:
            admin = create_engine(self.url)
            try:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA IF EXISTS {self._pg_schema} CASCADE"))
            finally:
                admin.dispose()
            self._pg_schema = None
        elif self.backend in ("mysql", "mariadb"):
            engine = create_engine(self.url)
            try:
                schema.metadata.drop_all(engine, checkfirst=True)
            finally:
                engine.dispose()

    def driver_versions(self) -> dict[str, str]:
        """Versions of the DB-API driver (and SQLite library) in use."""
        engine = create_engine(self.url, **self._engine_kwargs())
        try:
            dbapi: Any = engine.dialect.dbapi
            name = engine.dialect.driver
            out = {"driver": name, "driver_version": str(getattr(dbapi, "__version__", "?"))}
            if self.is_sqlite:
                out["driver_version"] = str(getattr(dbapi, "version", "?"))
                out["sqlite_library"] = str(getattr(dbapi, "sqlite_version", "?"))
            else:
                with engine.connect() as conn:
                    info = conn.dialect.server_version_info
                    out["server_version"] = ".".join(map(str, info or ()))
            return out
        finally:
            engine.dispose()
