"""Self-tests for the database fixtures and the SQL recorder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from support import (
    MYSQL_URL_ENV,
    PG_URL_ENV,
    Backend,
    SQLRecorder,
    hexid,
    normalize_params,
    statement_kind,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_begin_execute_commit_is_recorded(engine: Engine) -> None:
    rec = SQLRecorder(engine)
    with engine.begin() as conn:
        conn.execute(text("select 1"))
    assert rec.events == [
        ("checkout",),
        ("BEGIN",),
        ("SQL", "select 1", ()),
        ("COMMIT",),
        ("checkin",),
    ]
    assert rec.sql() == ["select 1"]
    assert rec.tx() == [("BEGIN",), ("COMMIT",)]
    assert rec.kinds() == ["checkout", "BEGIN", "SELECT", "COMMIT", "checkin"]
    assert rec.kinds(pool=False) == ["BEGIN", "SELECT", "COMMIT"]
    assert rec.without_pool() == [("BEGIN",), ("SQL", "select 1", ()), ("COMMIT",)]
    assert rec.pool_events() == [("checkout",), ("checkin",)]
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    rec.detach()


def test_rollback_and_savepoints_are_recorded(engine: Engine) -> None:
    with SQLRecorder(engine) as rec, engine.connect() as conn:
        conn.begin()
        first = conn.begin_nested()
        conn.execute(text("select 1"))
        first.rollback()
        second = conn.begin_nested()
        second.commit()
        conn.rollback()
    names = [e[1] for e in rec.tx() if e[0] == "SAVEPOINT"]
    assert names == ["sa_savepoint_1", "sa_savepoint_2"]
    assert rec.tx() == [
        ("BEGIN",),
        ("SAVEPOINT", names[0]),
        ("ROLLBACK TO SAVEPOINT", names[0]),
        ("SAVEPOINT", names[1]),
        ("RELEASE SAVEPOINT", names[1]),
        ("ROLLBACK",),
    ]
    # SQLAlchemy emits savepoints as SQL, so they also appear as statements.
    assert rec.kinds(pool=False) == [
        "BEGIN",
        "SAVEPOINT",
        "SAVEPOINT",
        "SELECT",
        "ROLLBACK TO SAVEPOINT",
        "ROLLBACK",
        "SAVEPOINT",
        "SAVEPOINT",
        "RELEASE SAVEPOINT",
        "RELEASE",
        "ROLLBACK",
    ]
    assert rec.pool_events() == [("checkout",), ("checkin",)]


def _create_table(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20))")


def test_parameters_are_normalized(engine: Engine) -> None:
    with engine.begin() as conn:
        _create_table(conn)
    insert = text("INSERT INTO t (id, name) VALUES (:id, :name)")
    with SQLRecorder(engine) as rec, engine.begin() as conn:
        conn.execute(insert, {"id": 1, "name": "a"})
        conn.execute(insert, [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
        conn.execute(text("SELECT name FROM t WHERE id = :id"), {"id": 2})
    assert [params for _, params in rec.statements()] == [
        (1, "a"),
        [(2, "b"), (3, "c")],
        (2,),
    ]
    assert rec.kinds(pool=False) == ["BEGIN", "INSERT", "INSERT", "SELECT", "COMMIT"]


def test_normalize_params_shapes() -> None:
    assert normalize_params(None, False) == ()
    assert normalize_params((), False) == ()
    assert normalize_params({}, False) == ()
    assert normalize_params({"b": 2, "a": 1}, False) == (2, 1)
    assert normalize_params([1, "x"], False) == (1, "x")
    assert normalize_params([(1,), {"a": 2}], True) == [(1,), (2,)]
    assert statement_kind("\n  select 1") == "SELECT"
    assert statement_kind("") == ""


def test_clear_detach_and_context_manager(engine: Engine) -> None:
    rec = SQLRecorder(engine)
    with engine.connect() as conn:
        conn.execute(text("select 1"))
    assert len(rec) > 0
    rec.clear()
    assert rec.events == []
    assert rec.attached
    rec.detach()
    rec.detach()  # idempotent
    assert "detached" in repr(rec)
    with engine.begin() as conn:
        conn.execute(text("select 2"))
    assert rec.events == []

    with SQLRecorder(engine) as inner:
        with engine.connect() as conn:
            conn.execute(text("select 3"))
        assert inner.sql() == ["select 3"]
    with engine.connect() as conn:
        conn.execute(text("select 4"))
    assert inner.sql() == ["select 3"]
    assert "detached" in repr(inner)


def test_two_recorders_are_independent(engine: Engine) -> None:
    with SQLRecorder(engine) as a:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        with SQLRecorder(engine) as b, engine.connect() as conn:
            conn.execute(text("select 2"))
    assert a.sql() == ["select 1", "select 2"]
    assert b.sql() == ["select 2"]


def test_recorder_survives_engine_dispose(engine: Engine) -> None:
    with SQLRecorder(engine) as rec:
        engine.dispose()
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    assert rec.kinds() == ["checkout", "BEGIN", "SELECT", "ROLLBACK", "checkin"]
    rec.clear()
    with engine.connect() as conn:
        conn.execute(text("select 1"))
    assert rec.events == []


def test_backend_urls(backend: Backend, tmp_path: Path) -> None:
    main, ref = backend.url("main"), backend.url("ref")
    assert main != ref
    if backend.name == "sqlite":
        assert backend.is_sqlite and not backend.is_postgresql and not backend.is_mariadb
        assert main == f"sqlite:///{tmp_path}/main.db"
        assert ref == f"sqlite:///{tmp_path}/ref.db"
    elif backend.name == "mariadb":
        assert backend.is_mariadb and not backend.is_sqlite and not backend.is_postgresql
        server = make_url(os.environ[MYSQL_URL_ENV])
        # This process's own databases on the server given, with its options.
        assert make_url(main) == server.set(database=f"sk_{os.getpid()}_main")
        assert make_url(ref) == server.set(database=f"sk_{os.getpid()}_ref")
    else:
        assert backend.name == "postgresql"
        assert backend.is_postgresql and not backend.is_sqlite and not backend.is_mariadb
        assert main == os.environ[PG_URL_ENV]
        assert ref.rsplit("/", 1)[1] == "sessionkit_ref"
    with pytest.raises(ValueError, match="slot"):
        backend.url("other")


def test_engine_and_ref_engine_are_separate_empty_databases(
    backend: Backend, engine: Engine, ref_engine: Engine
) -> None:
    assert engine.dialect.name == ref_engine.dialect.name == backend.dialect_name
    assert inspect(engine).get_table_names() == []
    assert inspect(ref_engine).get_table_names() == []
    with engine.begin() as conn:
        _create_table(conn)
    assert inspect(engine).get_table_names() == ["t"]
    assert inspect(ref_engine).get_table_names() == []


# Connections deliberately leaked by the first round of the next test, per backend.
_leaked: dict[str, list[Any]] = {}


@pytest.mark.parametrize("round_", [1, 2])
def test_engine_starts_clean_even_after_a_leaked_connection(
    backend: Backend, engine: Engine, round_: int
) -> None:
    # Both rounds create the same table: the second only passes if the database
    # was wiped in between, despite the first round leaving a connection open
    # in a transaction that holds a lock on the table.
    with engine.begin() as conn:
        _create_table(conn)
        conn.execute(text("INSERT INTO t (id, name) VALUES (1, 'x')"))
    leaked = _leaked.setdefault(backend.name, [])
    if round_ == 1:
        conn = engine.connect()
        conn.begin()
        conn.execute(text("SELECT * FROM t"))
        leaked.append(conn)
    else:
        while leaked:
            with contextlib.suppress(Exception):
                leaked.pop().close()


def test_hexid() -> None:
    obj = object()
    assert hexid(obj) == hex(id(obj))


def test_ci_without_postgresql_url_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != PG_URL_ENV}
    env["CI"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "hexid"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert PG_URL_ENV in result.stderr


def test_ci_without_mariadb_url_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != MYSQL_URL_ENV}
    env["CI"] = "1"
    # Only the MariaDB URL is missing (the check never connects).
    if not env.get(PG_URL_ENV):
        env[PG_URL_ENV] = "postgresql+psycopg://nobody@127.0.0.1:1/unused"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "hexid"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert MYSQL_URL_ENV in result.stderr


def test_sqlite_engine_is_file_based(tmp_path: Path) -> None:
    backend = Backend(name="sqlite", tmp_path=tmp_path)
    eng = create_engine(backend.url("main"))
    try:
        with eng.begin() as conn:
            _create_table(conn)
        assert (tmp_path / "main.db").exists()
    finally:
        eng.dispose()
