"""Real database faults, injected from outside, and what the Session does about them.

Every fault here is real: a backend killed from a second connection
(``pg_terminate_backend`` / ``KILL CONNECTION``), a server restarted under a pool of idle
connections, a lock held by another transaction until a timeout fires, a serialization
failure, a deadlock between two threads. Each test checks that

- the database's own error reaches the caller (DBAPI class, SQLSTATE or errno);
- the session is then in a defined state: it refuses work with PendingRollbackError naming
  the cause until ``rollback()``, or (a failed COMMIT) it has already rolled back;
- after ``rollback()`` the same session and the engine work again, with no connection left
  checked out;
- objects are as a rollback leaves them, and every row committed before the fault is intact
  (read back through a connection of another engine).

The same faults run on MariaDB where MariaDB has them. The server-restart test runs on a
throwaway PostgreSQL server of its own, never on the shared one.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Column, Connection, Engine, Integer, String, event, select, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import ProgrammingError as SAProgrammingError
from sqlalchemy.pool import NullPool

import sessionkit
from sessionkit import Session, declarative_base, inspect, is_retryable, run_transaction
from sessionkit.exc import ArgumentError, PendingRollbackError, StaleDataError
from support import Backend, mysql_url_from_env, pg_url_from_env

ROOT = Path(__file__).resolve().parent.parent

Base = declarative_base()


class Account(Base):
    __tablename__ = "accounts"
    id = Column(Integer, primary_key=True, autoincrement=False)
    name = Column(String(30))
    balance = Column(Integer, nullable=False)


SEED = [(1, "a", 100), (2, "b", 200), (3, "c", 300)]


def _servers(*names: str) -> list[Any]:
    params = []
    for name in names:
        url = pg_url_from_env() if name == "postgresql" else mysql_url_from_env()
        marks: list[Any] = [getattr(pytest.mark, name)]
        if url is None:
            env = "SESSIONKIT_PG_URL" if name == "postgresql" else "SESSIONKIT_MYSQL_URL"
            marks.append(pytest.mark.skip(reason=f"{env} is not set"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


# Override conftest's backend parametrization: these faults need a server.
BOTH = pytest.mark.parametrize("backend", _servers("postgresql", "mariadb"), indirect=True)
PG_ONLY = pytest.mark.parametrize("backend", _servers("postgresql"), indirect=True)


class Db:
    """The engine under test, plus a second engine (own connections) to inject faults
    and to read back what is committed."""

    def __init__(self, backend: Backend, engine: Engine) -> None:
        self.engine = engine
        self.pg = backend.is_postgresql
        connect_args: dict[str, Any] = {}
        if self.pg:
            with engine.connect() as conn:
                search_path = conn.exec_driver_sql("SHOW search_path").scalar()
            connect_args["options"] = f"-c search_path={search_path}"
        self.other = sa.create_engine(engine.url, poolclass=NullPool, connect_args=connect_args)
        Base.metadata.create_all(engine)

    def seed(self) -> None:
        with self.other.begin() as conn:
            conn.execute(
                Account.__table__.insert(),
                [{"id": i, "name": n, "balance": b} for i, n, b in SEED],
            )

    def rows(self) -> list[tuple[Any, ...]]:
        """Committed rows, read through a connection the engine under test never had."""
        with self.other.connect() as conn:
            result = conn.execute(select(Account.__table__).order_by(Account.id))
            return [tuple(r) for r in result]

    def pid(self, conn: Connection) -> int:
        sql = "SELECT pg_backend_pid()" if self.pg else "SELECT CONNECTION_ID()"
        return int(conn.exec_driver_sql(sql).scalar_one())

    def session_pid(self, session: Session) -> int:
        return self.pid(session.connection())

    def kill(self, pid: int) -> None:
        """Terminate a server backend from another connection, and wait until it is gone."""
        with self.other.begin() as conn:
            if self.pg:
                stmt = text("SELECT pg_terminate_backend(:pid, 5000)")
                assert conn.execute(stmt, {"pid": pid}).scalar() is True
            else:
                conn.exec_driver_sql(f"KILL CONNECTION {int(pid)}")

    def assert_killed(self, err: BaseException) -> None:
        assert isinstance(err, OperationalError), repr(err)
        assert err.connection_invalidated
        if self.pg:
            assert err.orig.sqlstate == "57P01", err.orig  # type: ignore[union-attr]
        else:
            assert err.orig.args[0] in (1927, 2006, 2013), err.orig  # type: ignore[union-attr]

    def set_lock_timeout(self, session: Session) -> None:
        if self.pg:
            session.connection().exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
        else:
            session.connection().exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")

    def assert_lock_timeout(self, err: BaseException) -> None:
        assert isinstance(err, OperationalError), repr(err)
        assert not err.connection_invalidated
        if self.pg:
            assert err.orig.sqlstate == "55P03", err.orig  # type: ignore[union-attr]
        else:
            assert err.orig.args[0] == 1205, err.orig  # type: ignore[union-attr]

    def assert_deadlock(self, err: BaseException) -> None:
        assert isinstance(err, OperationalError), repr(err)
        if self.pg:
            assert err.orig.sqlstate == "40P01", err.orig  # type: ignore[union-attr]
        else:
            assert err.orig.args[0] == 1213, err.orig  # type: ignore[union-attr]

    def wait_until_blocked(self, pid: int) -> None:
        """Return once backend ``pid`` waits for a row lock."""
        if self.pg:
            sql = "SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"
        else:
            sql = (
                "SELECT count(*) FROM information_schema.INNODB_TRX "
                "WHERE trx_mysql_thread_id = :pid AND trx_state = 'LOCK WAIT'"
            )
        deadline = time.monotonic() + 10
        with self.other.connect() as conn:
            while not conn.execute(text(sql), {"pid": pid}).scalar():
                assert time.monotonic() < deadline, f"backend {pid} never blocked"
                conn.rollback()
                time.sleep(0.01)

    def short_deadlock_timeout(self, session: Session, ms: int) -> None:
        if self.pg:  # InnoDB detects deadlocks at once; PostgreSQL after deadlock_timeout
            session.connection().exec_driver_sql(f"SET LOCAL deadlock_timeout = '{ms}ms'")

    @contextmanager
    def row_locked(self, ident: int) -> Iterator[None]:
        """Another transaction holds a row lock (SELECT ... FOR UPDATE) inside the block."""
        with self.other.connect() as conn, conn.begin():
            stmt = select(Account.id).where(Account.id == ident).with_for_update()
            assert conn.execute(stmt).scalar() == ident
            yield

    @contextmanager
    def on_statement(
        self, target: Connection, n: int, fn: Callable[[], None]
    ) -> Iterator[list[str]]:
        """Run ``fn`` right before the ``n``-th statement sent on ``target``."""
        seen: list[str] = []

        def before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
            if conn is target:
                seen.append(statement.split()[0].upper())
                if len(seen) == n:
                    fn()

        event.listen(self.engine, "before_cursor_execute", before)
        try:
            yield seen
        finally:
            event.remove(self.engine, "before_cursor_execute", before)

    def close(self) -> None:
        self.other.dispose()


@pytest.fixture
def db(backend: Backend, engine: Engine) -> Iterator[Db]:
    if backend.is_sqlite:
        pytest.skip("these faults need a database server")
    d = Db(backend, engine)
    try:
        yield d
    finally:
        d.close()


def assert_needs_rollback(session: Session, cause: BaseException) -> None:
    """The session refuses further work, quoting the error that aborted its transaction."""
    assert not session.is_active
    with pytest.raises(PendingRollbackError, match="Original exception was: ") as info:
        session.execute(select(Account.id))
    assert str(cause.orig) in str(info.value)  # type: ignore[attr-defined]
    assert info.value.__cause__ is cause
    assert is_retryable(info.value) == is_retryable(cause)


def assert_engine_clean(engine: Engine) -> None:
    assert engine.pool.checkedout() == 0
    with Session(engine) as s:  # and a new session works
        assert s.scalar(select(sa.func.count()).select_from(Account)) is not None
    assert engine.pool.checkedout() == 0


# -- a backend killed while the session uses it -----------------------------------------


@BOTH
def test_backend_killed_in_the_middle_of_a_flush(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    a1, a3 = session.get(Account, 1), session.get(Account, 3)
    pid = db.session_pid(session)
    a1.balance = 111
    session.delete(a3)
    new = Account(id=4, name="d", balance=400)
    session.add(new)
    # The flush sends INSERT, UPDATE, DELETE; the backend dies before the second.
    with (
        db.on_statement(session.connection(), 2, lambda: db.kill(pid)) as seen,
        pytest.raises(OperationalError) as info,
    ):
        session.flush()
    assert len(seen) == 2
    err = info.value
    db.assert_killed(err)
    assert is_retryable(err)
    assert_needs_rollback(session, err)

    session.rollback()
    assert inspect(new).transient
    assert inspect(a1).persistent and inspect(a1).expired
    assert inspect(a3).persistent and a3 in session
    assert db.rows() == SEED  # the first statement of the flush is undone too
    assert (a1.balance, a3.balance) == (100, 300)  # loaded again, on a new connection
    a1.balance = 101
    session.commit()
    session.close()
    assert db.rows() == [(1, "a", 101), *SEED[1:]]
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_between_two_flushes(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    first = Account(id=4, name="d", balance=400)
    session.add(first)
    session.flush()
    db.kill(db.session_pid(session))
    second = Account(id=5, name="e", balance=500)
    session.add(second)
    with pytest.raises(OperationalError) as info:
        session.flush()
    db.assert_killed(info.value)
    assert_needs_rollback(session, info.value)
    session.rollback()
    assert inspect(first).transient and inspect(second).transient
    assert db.rows() == SEED
    session.add_all([first, second])
    session.commit()
    session.close()
    assert [r[0] for r in db.rows()] == [1, 2, 3, 4, 5]
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_inside_a_savepoint(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    a1 = session.get(Account, 1)
    before = Account(id=4, name="d", balance=400)
    session.add(before)
    savepoint = session.begin_nested()  # flushes `before` in the outer transaction
    a1.balance = 111
    inside = Account(id=5, name="e", balance=500)
    session.add(inside)
    db.kill(db.session_pid(session))
    with pytest.raises(OperationalError) as info:
        session.flush()
    db.assert_killed(info.value)
    assert_needs_rollback(session, info.value)
    savepoint.rollback()
    # The SAVEPOINT is undone, but the whole transaction died with the connection: Core
    # refuses every statement until the session is rolled back (the ORM does the same).
    with pytest.raises(PendingRollbackError, match="invalid transaction is rolled back"):
        session.get(Account, 2)
    session.rollback()
    assert inspect(before).transient and inspect(inside).transient
    assert a1.balance == 100
    session.close()
    assert db.rows() == SEED
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_while_idle_then_rollback(db: Db) -> None:
    """Nobody notices until ROLLBACK itself fails: the session is reset anyway."""
    db.seed()
    session = Session(db.engine)
    a1 = session.get(Account, 1)
    new = Account(id=4, name="d", balance=400)
    session.add(new)
    session.flush()
    db.kill(db.session_pid(session))
    with pytest.raises(OperationalError) as info:
        session.rollback()  # as in the ORM, the failing ROLLBACK is reported...
    assert info.value.connection_invalidated
    assert not session.in_transaction()  # ...but the session is rolled back all the same
    assert inspect(new).transient and inspect(a1).expired
    assert engine_checked_out(db) == 0
    assert a1.balance == 100
    session.close()
    assert db.rows() == SEED
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_during_an_expired_attribute_refresh(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    a1 = session.get(Account, 1)
    session.commit()  # a1 is expired
    db.kill(db.session_pid(session))
    with pytest.raises(OperationalError) as info:
        _ = a1.balance
    db.assert_killed(info.value)
    assert is_retryable(info.value)
    # Not a flush, so (as in the ORM) the session itself is not marked failed; Core refuses
    # every statement on the invalidated connection until the transaction is rolled back.
    assert inspect(a1).persistent and inspect(a1).expired
    with pytest.raises(PendingRollbackError, match="invalid transaction is rolled back") as pr:
        session.get(Account, 2)
    assert is_retryable(pr.value)
    session.rollback()
    assert a1.balance == 100
    session.close()
    assert db.rows() == SEED
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_during_the_autoflush_of_a_refresh(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    a1, a2 = session.get(Account, 1), session.get(Account, 2)
    session.expire(a1)
    a2.balance = 222
    pid = db.session_pid(session)
    # Reading a1 autoflushes a2's UPDATE first; the backend dies before it.
    with (
        db.on_statement(session.connection(), 1, lambda: db.kill(pid)) as seen,
        pytest.raises(OperationalError) as info,
    ):
        _ = a1.balance
    assert seen == ["UPDATE"]
    db.assert_killed(info.value)
    assert "autoflush" in str(info.value)
    assert_needs_rollback(session, info.value)
    session.rollback()
    assert (a1.balance, a2.balance) == (100, 200)  # a2's change is gone
    session.close()
    assert db.rows() == SEED
    assert_engine_clean(db.engine)


@BOTH
def test_backend_killed_just_before_commit(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    a1 = session.get(Account, 1)
    a1.balance = 111
    new = Account(id=4, name="d", balance=400)
    session.add(new)
    session.flush()
    db.kill(db.session_pid(session))
    with pytest.raises(OperationalError) as info:
        session.commit()
    db.assert_killed(info.value)
    # A failed COMMIT rolls back at once (as a failed flush does); the session is usable
    # right away. The ORM instead stays "inactive" until rollback() is called.
    assert session.is_active and not session.in_transaction()
    assert inspect(new).transient
    assert inspect(a1).persistent and inspect(a1).expired
    assert engine_checked_out(db) == 0
    assert db.rows() == SEED  # the COMMIT never reached the server
    session.rollback()  # harmless
    assert a1.balance == 100
    session.add(new)
    session.commit()
    session.close()
    assert db.rows() == [*SEED, (4, "d", 400)]
    assert_engine_clean(db.engine)


@PG_ONLY
def test_the_orm_needs_rollback_after_a_failed_commit(db: Db) -> None:
    """The reference behaviour sessionkit deliberately does not copy (see the README)."""
    import sqlalchemy.orm as orm

    db.seed()
    session = orm.Session(db.engine)
    session.add(_orm_account_class()(id=4, name="d", balance=400))
    session.flush()
    db.kill(db.pid(session.connection()))
    with pytest.raises(OperationalError):
        session.commit()
    assert not session.is_active
    with pytest.raises(sa.exc.InvalidRequestError, match="'prepared' state"):
        session.execute(select(Account.id))
    session.rollback()
    session.close()
    assert db.rows() == SEED


def _orm_account_class() -> Any:
    import sqlalchemy.orm as orm

    class OrmAccount(orm.declarative_base()):  # type: ignore[misc]
        __table__ = Account.__table__

    return OrmAccount


def engine_checked_out(db: Db) -> int:
    return db.engine.pool.checkedout()


# -- lock waits and timeouts -------------------------------------------------------------


@BOTH
def test_lock_timeout_during_flush(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    new = Account(id=4, name="d", balance=400)
    session.add(new)
    a2 = session.get(Account, 2)  # autoflushes the INSERT first
    db.set_lock_timeout(session)
    with db.row_locked(2):
        a2.balance = 222
        with pytest.raises(OperationalError) as info:
            session.flush()
    db.assert_lock_timeout(info.value)
    assert not is_retryable(info.value)
    assert_needs_rollback(session, info.value)
    session.rollback()
    assert inspect(new).transient and inspect(a2).expired
    assert db.rows() == SEED
    a2.balance = 222  # the lock is gone now
    session.commit()
    session.close()
    assert db.rows() == [SEED[0], (2, "b", 222), SEED[2]]
    assert_engine_clean(db.engine)


@PG_ONLY
def test_statement_timeout_aborts_the_transaction_and_commit_refuses_it(db: Db) -> None:
    db.seed()
    session = Session(db.engine)
    new = Account(id=4, name="d", balance=400)
    session.add(new)
    a1 = session.get(Account, 1)  # autoflushes the INSERT
    session.connection().exec_driver_sql("SET LOCAL statement_timeout = '200ms'")
    with db.row_locked(2), pytest.raises(OperationalError) as info:
        session.execute(select(Account).where(Account.id == 2).with_for_update())
    assert info.value.orig.sqlstate == "57014"  # type: ignore[union-attr]
    assert not is_retryable(info.value)
    # Not a flush: as in the ORM the session is not marked failed, but PostgreSQL now
    # ignores every statement until ROLLBACK.
    assert session.is_active
    with pytest.raises(InternalError) as aborted:
        session.get(Account, 3)
    assert aborted.value.orig.sqlstate == "25P02"  # type: ignore[union-attr]
    assert "current transaction is aborted" in str(aborted.value)
    # COMMIT would be answered with a silent ROLLBACK: sessionkit says so instead.
    with pytest.raises(PendingRollbackError, match="aborted by an earlier database error"):
        session.commit()
    assert inspect(new).transient and inspect(a1).expired
    assert not session.in_transaction()
    assert db.rows() == SEED
    session.add(new)  # usable again at once
    session.commit()
    session.close()
    assert db.rows() == [*SEED, (4, "d", 400)]
    assert_engine_clean(db.engine)


@PG_ONLY
def test_the_orm_reports_success_for_commit_of_an_aborted_transaction(db: Db) -> None:
    """Why sessionkit checks before COMMIT: the ORM (like psycopg) says nothing."""
    import sqlalchemy.orm as orm

    db.seed()
    session = orm.Session(db.engine)
    new = _orm_account_class()(id=4, name="d", balance=400)
    session.add(new)
    session.flush()
    with pytest.raises(DataError):
        session.execute(text("SELECT 1 / 0"))
    session.commit()  # no error...
    assert sa.inspect(new).persistent  # ...and the object says it was saved...
    assert db.rows() == SEED  # ...but its row was rolled back
    session.close()


@PG_ONLY
def test_error_inside_a_savepoint_does_not_block_commit(db: Db) -> None:
    """The aborted-transaction check looks at the real state: a SAVEPOINT rolled back
    after the error leaves a transaction that commits normally."""
    db.seed()
    session = Session(db.engine)
    session.add(Account(id=4, name="d", balance=400))
    savepoint = session.begin_nested()
    with pytest.raises(DataError):
        session.execute(text("SELECT 1 / 0"))
    savepoint.rollback()
    session.commit()
    session.close()
    assert db.rows() == [*SEED, (4, "d", 400)]


# -- serialization failures and deadlocks ------------------------------------------------


@PG_ONLY
def test_serialization_failure_in_flush(db: Db) -> None:
    db.seed()
    rr = db.engine.execution_options(isolation_level="REPEATABLE READ")
    session = Session(rr)
    a1 = session.get(Account, 1)  # the snapshot is taken here
    with db.other.begin() as conn:
        conn.execute(Account.__table__.update().where(Account.id == 1).values(balance=150))
    a1.balance += 1
    with pytest.raises(OperationalError) as info:
        session.flush()
    err = info.value
    assert err.orig.sqlstate == "40001"  # type: ignore[union-attr]
    assert is_retryable(err)
    assert_needs_rollback(session, err)
    session.rollback()
    assert a1.balance == 150  # a new transaction, a new snapshot
    a1.balance += 1
    session.commit()
    session.close()
    assert db.rows() == [(1, "a", 151), *SEED[1:]]
    assert_engine_clean(db.engine)


@PG_ONLY
def test_serialization_failure_at_commit(db: Db) -> None:
    db.seed()
    ser = db.engine.execution_options(isolation_level="SERIALIZABLE")
    s1, s2 = Session(ser), Session(ser)
    # Write skew: each reads the total and moves it into a different row.
    for s, ident in ((s1, 1), (s2, 2)):
        total = sum(a.balance for a in s.scalars(select(Account)))
        s.get(Account, ident).balance = total  # type: ignore[union-attr]
    s1.flush()
    s2.flush()
    s1.commit()
    with pytest.raises(OperationalError) as info:
        s2.commit()
    err = info.value
    assert err.orig.sqlstate == "40001"  # type: ignore[union-attr]
    assert not err.connection_invalidated
    assert is_retryable(err)
    # The server refused the COMMIT, so sessionkit has rolled back already.
    assert s2.is_active and not s2.in_transaction()
    a2 = s2.get(Account, 2)
    assert a2 is not None and a2.balance == 200
    s1.close()
    s2.close()
    assert db.rows() == [(1, "a", 600), *SEED[1:]]
    assert_engine_clean(db.engine)


@BOTH
def test_deadlock_between_two_sessions(db: Db) -> None:
    db.seed()
    barrier = threading.Barrier(2, timeout=10)
    pids: dict[str, int] = {}
    outcome: dict[str, tuple[str, Any]] = {}

    def worker(name: str, first: int, second: int, deadlock_ms: int) -> None:
        session = Session(db.engine)
        try:
            pids[name] = db.session_pid(session)
            db.short_deadlock_timeout(session, deadlock_ms)
            session.get(Account, first).balance += 1  # type: ignore[union-attr]
            session.flush()  # row `first` is locked
            barrier.wait()
            if name == "B":  # B closes the cycle, once A waits for B's row
                db.wait_until_blocked(pids["A"])
            session.get(Account, second).balance += 10  # type: ignore[union-attr]
            try:
                session.flush()  # waits for the other session's lock
            except OperationalError as err:
                outcome[name] = ("deadlock", err)
                assert_needs_rollback(session, err)
                session.rollback()
                return
            session.commit()
            outcome[name] = ("committed", None)
        except BaseException as err:  # reported by the main thread
            outcome[name] = ("crashed", err)
        finally:
            session.close()

    # On PostgreSQL the waiting session whose deadlock_timeout fires first is aborted: B.
    threads = [
        threading.Thread(target=worker, args=("A", 1, 2, 5000)),
        threading.Thread(target=worker, args=("B", 2, 1, 100)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    kinds = sorted(kind for kind, _ in outcome.values())
    assert kinds == ["committed", "deadlock"], outcome
    loser = next(name for name, (kind, _) in outcome.items() if kind == "deadlock")
    if db.pg:
        assert loser == "B"
    err = outcome[loser][1]
    db.assert_deadlock(err)
    assert is_retryable(err)
    winner_first = 1 if loser == "B" else 2
    expected = {i: b for i, _, b in SEED}
    expected[winner_first] += 1
    expected[3 - winner_first] += 10
    assert {i: b for i, _, b in db.rows()} == expected
    assert_engine_clean(db.engine)


# -- a server restart under a pool of idle connections -----------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pgserver(*args: str) -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pgserver.sh"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/pgserver.sh {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def own_pg_server() -> Iterator[tuple[str, Callable[[], None]]]:
    """A throwaway PostgreSQL server on a free port of its own, which tests may restart.

    The shared server (SESSIONKIT_PG_URL) serves other test runs and is never restarted.
    """
    if pg_url_from_env() is None:
        pytest.skip("SESSIONKIT_PG_URL is not set: the PostgreSQL tests are off")
    port = str(_free_port())
    url = _pgserver("start", port)

    def restart() -> None:
        _pgserver("restart", port)

    try:
        yield url, restart
    finally:
        _pgserver("stop", port)


@pytest.mark.postgresql
def test_server_restart_with_idle_pooled_connections(
    own_pg_server: tuple[str, Callable[[], None]],
) -> None:
    url, restart = own_pg_server
    plain = sa.create_engine(url, pool_size=3)
    pinged = sa.create_engine(url, pool_size=3, pool_pre_ping=True)
    try:
        Base.metadata.drop_all(plain)
        Base.metadata.create_all(plain)
        with Session(plain) as s:
            s.add_all([Account(id=i, name=n, balance=b) for i, n, b in SEED])
            s.commit()
        for engine in (plain, pinged):  # three idle connections in each pool
            sessions = [Session(engine) for _ in range(3)]
            for s in sessions:
                s.connection()
            for s in sessions:
                s.close()
            assert engine.pool.checkedin() == 3

        restart()

        # With pool_pre_ping the pool replaces its dead connections: no error at all.
        with Session(pinged) as s:
            assert s.get(Account, 1).balance == 100  # type: ignore[union-attr]

        # Without it, the first statement meets a dead connection.
        session = Session(plain)
        with pytest.raises(OperationalError) as info:
            session.get(Account, 1)
        assert info.value.connection_invalidated
        assert is_retryable(info.value)
        with pytest.raises(PendingRollbackError, match="invalid transaction is rolled back"):
            session.get(Account, 2)
        session.rollback()
        assert session.get(Account, 1).balance == 100  # type: ignore[union-attr]
        session.close()
        # The disconnect invalidated the whole pool: the other idle connections are
        # replaced on checkout, so no other session sees an error.
        sessions = [Session(plain) for _ in range(3)]
        for s in sessions:
            assert s.get(Account, 2).balance == 200  # type: ignore[union-attr]
        for s in sessions:
            s.close()
        assert plain.pool.checkedout() == 0

        # run_transaction rides over the next restart by itself.
        restart()
        calls: list[int] = []

        def work(s: Session) -> int:
            calls.append(1)
            account = s.get(Account, 3)
            assert account is not None
            account.balance += 1
            return account.balance

        assert run_transaction(sessionkit.sessionmaker(plain), work, base_delay=0) == 301
        assert len(calls) == 2
        assert plain.pool.checkedout() == 0
        with pinged.connect() as conn:
            rows = conn.execute(select(Account.__table__).order_by(Account.id)).all()
        assert [tuple(r) for r in rows] == [*SEED[:2], (3, "c", 301)]
    finally:
        plain.dispose()
        pinged.dispose()


# -- run_transaction ---------------------------------------------------------------------


class Factory:
    """A session factory that remembers every session it made."""

    def __init__(self, bind: Engine) -> None:
        self.bind = bind
        self.sessions: list[Session] = []

    def __call__(self) -> Session:
        session = Session(self.bind)
        self.sessions.append(session)
        return session

    def assert_all_closed(self) -> None:
        for s in self.sessions:
            assert not s.in_transaction() and not list(s)
        engine = self.bind if isinstance(self.bind, Engine) else None
        assert engine is not None and engine.pool.checkedout() == 0


@PG_ONLY
def test_run_transaction_retries_a_serialization_failure(db: Db) -> None:
    db.seed()
    factory = Factory(db.engine.execution_options(isolation_level="REPEATABLE READ"))
    calls: list[int] = []

    def work(session: Session) -> int:
        calls.append(1)
        a1 = session.get(Account, 1)
        assert a1 is not None
        if len(calls) == 1:  # a concurrent update lands after our snapshot
            with db.other.begin() as conn:
                conn.execute(Account.__table__.update().where(Account.id == 1).values(balance=150))
        a1.balance += 1
        session.flush()
        return a1.balance

    assert run_transaction(factory, work, base_delay=0.001) == 151
    assert len(calls) == 2 and len(factory.sessions) == 2
    factory.assert_all_closed()
    assert db.rows() == [(1, "a", 151), *SEED[1:]]


@PG_ONLY
def test_run_transaction_retries_when_work_swallowed_the_error(db: Db) -> None:
    """A PendingRollbackError is judged by its cause."""
    db.seed()
    factory = Factory(db.engine.execution_options(isolation_level="REPEATABLE READ"))
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        a1 = session.get(Account, 1)
        assert a1 is not None
        if len(calls) == 1:
            with db.other.begin() as conn:
                conn.execute(Account.__table__.update().where(Account.id == 1).values(balance=150))
        a1.balance += 1
        with suppress(OperationalError):  # careless work: the error is swallowed...
            session.flush()
        session.execute(select(Account.id))  # ...so this raises PendingRollbackError

    run_transaction(factory, work, base_delay=0)
    assert len(calls) == 2
    factory.assert_all_closed()
    assert db.rows() == [(1, "a", 151), *SEED[1:]]


@BOTH
def test_run_transaction_retries_a_deadlock(db: Db) -> None:
    db.seed()
    barrier = threading.Barrier(2, timeout=10)
    calls: list[str] = []
    errors: list[BaseException] = []
    factories = {"A": Factory(db.engine), "B": Factory(db.engine)}

    def transfer(name: str, first: int, second: int) -> None:
        attempt = 0

        def work(session: Session) -> None:
            nonlocal attempt
            attempt += 1
            calls.append(name)
            db.short_deadlock_timeout(session, 100)
            session.get(Account, first).balance -= 5  # type: ignore[union-attr]
            session.flush()
            if attempt == 1:
                barrier.wait()
            session.get(Account, second).balance += 5  # type: ignore[union-attr]

        try:
            run_transaction(factories[name], work, base_delay=0.01)
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=transfer, args=("A", 1, 2)),
        threading.Thread(target=transfer, args=("B", 2, 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(calls) == 3  # one of the two ran twice
    assert db.rows() == SEED  # both transfers applied: -5 +5 on each row
    for f in factories.values():
        f.assert_all_closed()


@PG_ONLY
def test_run_transaction_gives_up_after_attempts(db: Db) -> None:
    db.seed()
    factory = Factory(db.engine.execution_options(isolation_level="REPEATABLE READ"))
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        a1 = session.get(Account, 1)
        assert a1 is not None
        with db.other.begin() as conn:  # every attempt loses the race
            conn.execute(Account.__table__.update().where(Account.id == 1).values(balance=0))
        a1.balance += 1

    with pytest.raises(OperationalError) as info:
        run_transaction(factory, work, attempts=3, base_delay=0.001, max_delay=0.002)
    assert info.value.orig.sqlstate == "40001"  # type: ignore[union-attr]
    assert len(calls) == 3
    assert any("gave up after 3 attempts" in n for n in info.value.__notes__)
    factory.assert_all_closed()


@BOTH
def test_run_transaction_never_retries_an_integrity_error(db: Db) -> None:
    db.seed()
    factory = Factory(db.engine)
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        session.add(Account(id=1, name="dup", balance=0))

    with pytest.raises(IntegrityError) as info:
        run_transaction(factory, work, base_delay=0)
    assert len(calls) == 1
    assert any("gave up after 1 attempt: " in n for n in info.value.__notes__)
    factory.assert_all_closed()
    assert db.rows() == SEED


@BOTH
def test_run_transaction_retries_a_connection_lost_before_commit(db: Db) -> None:
    db.seed()
    factory = Factory(db.engine)
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        session.add(Account(id=4, name="d", balance=400))
        session.flush()
        if len(calls) == 1:
            db.kill(db.session_pid(session))
        session.get(Account, 2)  # meets the dead connection

    run_transaction(factory, work, base_delay=0)
    assert len(calls) == 2
    factory.assert_all_closed()
    assert db.rows() == [*SEED, (4, "d", 400)]


@BOTH
@pytest.mark.parametrize("retry_ambiguous_commit", [False, True])
def test_run_transaction_and_a_connection_lost_in_commit(
    db: Db, retry_ambiguous_commit: bool
) -> None:
    db.seed()
    factory = Factory(db.engine)
    calls: list[int] = []
    pids: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        pids.append(db.session_pid(session))
        session.add(Account(id=4, name="d", balance=400))

    def before_commit(conn: Connection) -> None:
        if len(calls) == 1 and len(pids) == 1:
            db.kill(pids[0])

    event.listen(db.engine, "commit", before_commit)
    try:
        if retry_ambiguous_commit:
            run_transaction(factory, work, base_delay=0, retry_ambiguous_commit=True)
        else:
            with pytest.raises(OperationalError) as info:
                run_transaction(factory, work, base_delay=0)
            db.assert_killed(info.value)
            assert any("lost during COMMIT" in n for n in info.value.__notes__)
    finally:
        event.remove(db.engine, "commit", before_commit)
    assert len(calls) == (2 if retry_ambiguous_commit else 1)
    factory.assert_all_closed()
    # Killed before the COMMIT was sent, so here the first attempt surely did not land.
    assert db.rows() == ([*SEED, (4, "d", 400)] if retry_ambiguous_commit else SEED)


@PG_ONLY
def test_is_retryable_rejects_permanent_errors(db: Db) -> None:
    db.seed()
    errors: list[BaseException] = []
    with db.other.connect() as conn:
        for sql in ("SELECT * FROM no_such_table", "SELECT 1 / 0"):
            try:
                with conn.begin():
                    conn.exec_driver_sql(sql)
            except DBAPIError as err:
                errors.append(err)
    session = Session(db.engine)
    a1 = session.get(Account, 1)
    with db.other.begin() as conn:
        conn.execute(Account.__table__.delete().where(Account.id == 1))
    a1.balance = 1  # type: ignore[union-attr]
    try:
        session.flush()
    except StaleDataError as err:
        errors.append(err)
    session.rollback()
    session.add(Account(id=2, name="dup", balance=0))
    try:
        session.commit()
    except IntegrityError as err:
        errors.append(err)
    session.close()
    assert [type(e) for e in errors] == [
        SAProgrammingError,
        DataError,
        StaleDataError,
        IntegrityError,
    ]
    assert not any(is_retryable(e) for e in errors)
    assert not is_retryable(ValueError("not a database error"))
    assert not is_retryable(PendingRollbackError("no cause"))


def test_run_transaction_checks_its_arguments() -> None:
    def factory() -> Session:
        raise AssertionError("not called")

    with pytest.raises(ArgumentError, match="attempts"):
        run_transaction(factory, lambda s: None, attempts=0)
    with pytest.raises(ArgumentError, match="must not be negative"):
        run_transaction(factory, lambda s: None, base_delay=-1)


def test_run_transaction_closes_the_session_on_success_and_on_error(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rt.db'}")
    Base.metadata.create_all(engine)
    factory = Factory(engine)
    assert run_transaction(factory, lambda s: s.add(Account(id=1, name="a", balance=1))) is None
    with pytest.raises(ZeroDivisionError) as info:
        run_transaction(factory, lambda s: 1 / 0)
    assert any("not retryable" in n for n in info.value.__notes__)
    assert len(factory.sessions) == 2
    factory.assert_all_closed()
    engine.dispose()
