"""Database fixtures shared by the whole test suite.

Every test that uses ``backend``, ``engine`` or ``ref_engine`` runs once per
backend: ``sqlite`` (always), ``postgresql`` (when ``SESSIONKIT_PG_URL`` is set)
and ``mariadb`` (when ``SESSIONKIT_MYSQL_URL`` is set).  Start local servers with::

    export SESSIONKIT_PG_URL="$(scripts/pgserver.sh start)"
    export SESSIONKIT_MYSQL_URL="$(scripts/mariadbserver.sh start)"

Under CI (``CI`` set and non-empty) a missing URL is an error, not a skip.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401 - imported up front: its pytest plugin imports it late otherwise
import pytest
from sqlalchemy import Engine, create_engine, text

from support import (
    MYSQL_URL_ENV,
    PG_URL_ENV,
    Backend,
    Slot,
    enforce_foreign_keys,
    mysql_database,
    mysql_url_from_env,
    pg_url_from_env,
    reset_mysql_database,
    with_real_savepoints,
)

BACKENDS = ("sqlite", "postgresql", "mariadb")

PG_MISSING_REASON = (
    f"{PG_URL_ENV} is not set; run `scripts/pgserver.sh start` and "
    f'`export {PG_URL_ENV}="$(scripts/pgserver.sh start)"` to run the PostgreSQL tests'
)
MYSQL_MISSING_REASON = (
    f"{MYSQL_URL_ENV} is not set; run "
    f'`export {MYSQL_URL_ENV}="$(scripts/mariadbserver.sh start)"` to run the MariaDB tests'
)

# Tag for connections opened by this test process, so leftovers from earlier
# tests can be told apart from other clients of the same server.
PG_APPLICATION_NAME = f"sessionkit-tests-{os.getpid()}"
# Each test process works in its own schema, so two runs against one server never meet.
PG_SCHEMA = f"sessionkit_{os.getpid()}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite: test runs against the SQLite backend")
    config.addinivalue_line("markers", "postgresql: test runs against the PostgreSQL backend")
    config.addinivalue_line("markers", "mariadb: test runs against the MariaDB backend")
    if os.environ.get("CI") and pg_url_from_env() is None:
        raise pytest.UsageError(
            f"CI is set but {PG_URL_ENV} is not: the PostgreSQL tests must run in CI. "
            f'Start a server with `export {PG_URL_ENV}="$(scripts/pgserver.sh start)"`.'
        )
    if os.environ.get("CI") and mysql_url_from_env() is None:
        raise pytest.UsageError(
            f"CI is set but {MYSQL_URL_ENV} is not: the MariaDB tests must run in CI. "
            f'Start a server with `export {MYSQL_URL_ENV}="$(scripts/mariadbserver.sh start)"`.'
        )
    _configure_hypothesis()


def _configure_hypothesis() -> None:
    """Honour SESSIONKIT_HYPOTHESIS_EXAMPLES (set by ``nox -s soak``)."""
    examples = os.environ.get("SESSIONKIT_HYPOTHESIS_EXAMPLES")
    if not examples:
        return
    try:
        from hypothesis import settings
    except ImportError:  # pragma: no cover - hypothesis is a test dependency
        return
    settings.register_profile("sessionkit-env", max_examples=int(examples), deadline=None)
    settings.load_profile("sessionkit-env")


def _backend_params() -> list[object]:
    pg_marks = [pytest.mark.postgresql]
    if pg_url_from_env() is None:
        pg_marks.append(pytest.mark.skip(reason=PG_MISSING_REASON))
    mysql_marks = [pytest.mark.mariadb]
    if mysql_url_from_env() is None:
        mysql_marks.append(pytest.mark.skip(reason=MYSQL_MISSING_REASON))
    return [
        pytest.param("sqlite", id="sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgresql", id="postgresql", marks=pg_marks),
        pytest.param("mariadb", id="mariadb", marks=mysql_marks),
    ]


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The database backend under test (parametrized: sqlite, postgresql, mariadb)."""
    name: str = request.param
    if name == "sqlite":
        return Backend(name="sqlite", tmp_path=tmp_path)
    if name == "mariadb":
        return Backend(name="mariadb", mysql_url=mysql_url_from_env())
    return Backend(name="postgresql", pg_url=pg_url_from_env())


def _make_clean_engine(backend: Backend, slot: Slot) -> Engine:
    url = backend.url(slot)
    if backend.is_postgresql:
        engine = create_engine(
            url,
            connect_args={
                "application_name": PG_APPLICATION_NAME,
                "options": f"-c search_path={PG_SCHEMA}",
            },
        )
        _reset_postgresql(engine)
    elif backend.is_mariadb:
        assert backend.mysql_url is not None
        # This process's own database, dropped (with this process's leftover
        # connections) and created empty.
        reset_mysql_database(backend.mysql_url, mysql_database(slot))
        _mysql_databases_made.add((backend.mysql_url, mysql_database(slot)))
        engine = create_engine(url)
    else:
        # A new file in this test's tmp_path: empty by construction.
        engine = create_engine(url)
    return engine


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything alive after collection (modules, mapped classes, Hypothesis and
    SQLAlchemy internals) out of the collector's sight: the ``gc.collect()`` each engine
    fixture runs at teardown then scans only what tests made, not the whole heap."""
    gc.collect()
    gc.freeze()


# (server URL, database) of every MariaDB database this process created.
_mysql_databases_made: set[tuple[str, str]] = set()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this process's MariaDB databases: nothing else will reuse their names."""
    while _mysql_databases_made:
        server_url, database = _mysql_databases_made.pop()
        reset_mysql_database(server_url, database, create=False)


def _reset_postgresql(engine: Engine) -> None:
    with engine.begin() as conn:
        # Connections leaked by earlier tests in this process could hold locks
        # that would block DROP SCHEMA forever.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = :app"
            ),
            {"app": PG_APPLICATION_NAME},
        )
        conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {PG_SCHEMA}")


@pytest.fixture
def engine(backend: Backend) -> Iterator[Engine]:
    """A fresh Engine on the backend's "main" database, which starts empty."""
    eng = _make_clean_engine(backend, "main")
    try:
        yield eng
    finally:
        # Sessions a test left open are collected now, while their connections still
        # work, so they go back to the pool quietly instead of failing a reset later.
        gc.collect()
        eng.dispose()


@pytest.fixture
def ref_engine(backend: Backend) -> Iterator[Engine]:
    """A fresh Engine on the backend's "ref" database (for the SQLAlchemy ORM
    reference), which starts empty and is independent of ``engine``."""
    eng = _make_clean_engine(backend, "ref")
    try:
        yield eng
    finally:
        gc.collect()
        eng.dispose()


@pytest.fixture
def fk_engine(engine: Engine) -> Engine:
    """``engine`` with foreign keys enforced on every backend (see ``enforce_foreign_keys``)."""
    return enforce_foreign_keys(engine)


@pytest.fixture
def fk_ref_engine(ref_engine: Engine) -> Engine:
    """``ref_engine`` with foreign keys enforced on every backend."""
    return enforce_foreign_keys(ref_engine)


@pytest.fixture
def sp_engine(engine: Engine) -> Engine:
    """``engine`` with real SAVEPOINTs on SQLite (see ``with_real_savepoints``)."""
    return with_real_savepoints(engine)


@pytest.fixture
def sp_ref_engine(ref_engine: Engine) -> Engine:
    """``ref_engine`` with real SAVEPOINTs on SQLite."""
    return with_real_savepoints(ref_engine)


@pytest.fixture(autouse=True)
def _event_switches() -> Iterator[None]:
    """Each test starts with the event switches as they were: a test that listened to a
    session or mapper event must not move every later test onto the announced paths
    (``sessionkit.hooks``). Listeners themselves are each test's to remove."""
    from sessionkit import hooks

    saved = set(hooks.SESSION), set(hooks.MAPPER)
    yield
    hooks.SESSION.clear()
    hooks.SESSION.update(saved[0])
    hooks.MAPPER.clear()
    hooks.MAPPER.update(saved[1])
