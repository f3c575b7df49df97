"""Run a unit of work in a fresh Session and retry it when the database says "try again".

Under contention PostgreSQL and MySQL/MariaDB abort a transaction and expect the
application to run it again: a serialization failure (SERIALIZABLE or REPEATABLE READ), a
deadlock, or a connection that went away before COMMIT. None of these means the work was
wrong, and none leaves anything behind in the database, so running the *whole* transaction
again in a new Session is both correct and the only thing that works: the old session's
objects belong to a transaction that no longer exists.

``run_transaction()`` does exactly that and nothing more. Every attempt gets a new Session
from the factory, and that session is always closed, so no connection is ever held past the
call.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from .exc import ArgumentError, PendingRollbackError
from .session import Session

__all__ = ["is_retryable", "run_transaction"]

_T = TypeVar("_T")

# SQLSTATEs (PostgreSQL; the SQL standard's codes) that abort a transaction which would
# succeed if run again: the server has rolled it back and nothing of it was kept.
_RETRY_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
    }
)
# SQLSTATEs that mean the connection is gone or cannot be had right now (server shutdown or
# restart). Class 08 (connection_exception) is matched by prefix.
_LOST_CONNECTION_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend(), smart/fast shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: the server is starting up or shutting down
    }
)
# MySQL / MariaDB error numbers of the same two kinds.
_RETRY_MYSQL_ERRNOS = frozenset(
    {
        1213,  # ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back
        1020,  # ER_CHECKREAD: MariaDB's snapshot-isolation conflict (innodb_snapshot_isolation)
    }
)
_LOST_CONNECTION_MYSQL_ERRNOS = frozenset(
    {
        1927,  # ER_CONNECTION_KILLED (MariaDB: KILL CONNECTION)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
    }
)
# What psycopg and libpq say when an operation meets a connection that is already gone; only
# consulted for errors that Core did not get the chance to classify (no connection_invalidated).
_LOST_CONNECTION_MESSAGES = (
    "the connection is closed",
    "server closed the connection unexpectedly",
)


def _sqlstate(orig: BaseException) -> str | None:
    # psycopg 3 and asyncpg: .sqlstate; psycopg2: .pgcode.
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _mysql_errno(orig: BaseException) -> int | None:
    # mariadb connector: .errno; pymysql and mysqlclient: args[0].
    errno = getattr(orig, "errno", None)
    if isinstance(errno, int):
        return errno
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def _unwrap(err: BaseException) -> BaseException | None:
    """The error that put a session into "needs rollback", for a PendingRollbackError."""
    if isinstance(err, PendingRollbackError):
        return err.__cause__ or err.__context__
    return None


def _is_lost_connection(err: BaseException) -> bool:
    """The connection was dropped or could not be had: the transaction is gone."""
    if isinstance(err, DBAPIError):
        if err.connection_invalidated:
            return True
        orig: BaseException | None = err.orig
    else:
        orig = err
    if orig is None:
        return False
    state = _sqlstate(orig)
    if state is not None:
        return state.startswith("08") or state in _LOST_CONNECTION_SQLSTATES
    if _mysql_errno(orig) in _LOST_CONNECTION_MYSQL_ERRNOS:
        return True
    if type(orig).__name__ == "OperationalError":  # a driver's client-side error
        text = str(orig)
        return any(m in text for m in _LOST_CONNECTION_MESSAGES)
    return False


def is_retryable(err: BaseException) -> bool:
    """True only if running the same transaction again can succeed and cannot do harm.

    Retryable: a serialization failure (SQLSTATE 40001), a deadlock (40P01; MySQL/MariaDB
    1213, and MariaDB's snapshot-isolation conflict 1020) and a connection lost or refused
    while the server stops or restarts (Core's ``connection_invalidated``, SQLSTATE class
    08, 57P01-57P03, MySQL 1927/2006/2013). In each case the server has already thrown the
    whole transaction away.

    Not retryable: IntegrityError, ProgrammingError and DataError (the same statement would
    fail the same way), sessionkit's StaleDataError and ObjectDeletedError (the data changed
    under the session: the application must decide), and every non-database error.
    Neither are lock and statement timeouts (PostgreSQL 55P03 lock_not_available and 57014
    query_canceled, MySQL 1205 lock wait timeout): they mean another transaction holds a
    lock for longer than this one is willing to wait, so a retry loop mostly adds load
    while it still holds the lock, and on MySQL a 1205 rolls back only the statement, not
    the transaction. Pass ``retry_on=`` to ``run_transaction`` to decide otherwise.

    A PendingRollbackError is judged by the error that caused it (sessionkit chains it as
    ``__cause__``); Core's "Can't reconnect until invalid transaction is rolled back"
    (code 8s2b) means the connection was lost earlier in this transaction, so it retries.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PendingRollbackError):
            if current.code == "8s2b":
                return True
            current = _unwrap(current)
            continue
        if not isinstance(current, DBAPIError):
            return False
        if isinstance(current, (IntegrityError, ProgrammingError, DataError)):
            return False
        orig = current.orig
        if orig is not None:
            if _sqlstate(orig) in _RETRY_SQLSTATES:
                return True
            if _sqlstate(orig) is None and _mysql_errno(orig) in _RETRY_MYSQL_ERRNOS:
                return True
        return _is_lost_connection(current)
    return False


def _add_note(err: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        err.add_note(note)
    else:  # pragma: no cover - Python 3.10 keeps the note where 3.11 would look for it
        notes = getattr(err, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            err.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)


def close_after_error(session: Session, err: BaseException) -> None:
    """Roll back and close; a second failure (the connection is dead) must not hide ``err``."""
    try:
        session.close()
    except Exception as close_err:
        _add_note(err, f"closing the session afterwards also failed: {close_err!r}")
        # close() always detaches the objects and releases (or invalidates) the connection,
        # even when its ROLLBACK fails, so there is nothing more to clean up here.


def run_transaction(
    factory: Callable[[], Session],
    work: Callable[[Session], _T],
    *,
    attempts: int = 5,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    retry_ambiguous_commit: bool = False,
) -> _T:
    """Run ``work(session)`` in a fresh Session, commit, and return what ``work`` returned.

    ``factory`` is a ``sessionmaker`` (or any zero-argument callable returning a Session
    that owns its transaction, i.e. bound to an Engine). ``work`` must not commit or roll
    back itself; it may flush and query freely, and it may run more than once, so it must
    not have side effects outside the database (or they must be safe to repeat). Objects
    it returns are detached once the session closes: return plain values, or use a factory
    with ``expire_on_commit=False``.

    When ``work``, its flush or the COMMIT raises an error for which ``retry_on(err)`` is
    true, the session is rolled back and closed and the whole transaction runs again in a
    new session, after a pause that doubles each time from ``base_delay`` up to
    ``max_delay`` and is drawn at random below that bound (full jitter, so that the
    transactions that just collided do not collide again in step). At most ``attempts``
    runs are made in all; then the last error is re-raised with a note saying how many.
    Any other error is re-raised at once. The session is closed in every case.

    A COMMIT that fails because the connection was lost is *ambiguous*: the server may have
    committed just before the connection went. Running the work again could then apply it
    twice, so by default such a failure is not retried (``retry_ambiguous_commit=False``)
    and reaches the caller, who can check what landed. Pass ``retry_ambiguous_commit=True``
    only when ``work`` is idempotent (for example, it writes rows with client-chosen keys,
    so a duplicate fails with IntegrityError instead of being applied twice). A COMMIT the
    server *answered* with a serialization failure or deadlock is not ambiguous: the server
    rolled it back, and it is retried like any other transient error.
    """
    check_retry_arguments(attempts, base_delay, max_delay)
    attempt = 0
    while True:
        attempt += 1
        session = factory()
        committing = False
        try:
            result = work(session)
            # Flush first so that a failure here is told apart from one in COMMIT itself.
            session.flush()
            committing = True
            session.commit()
        except BaseException as err:
            close_after_error(session, err)
            policy = (attempts, retry_on, retry_ambiguous_commit)
            if not will_retry(err, attempt, committing, *policy):
                raise
        else:
            session.close()
            return result
        time.sleep(retry_pause(attempt, base_delay, max_delay))


def check_retry_arguments(attempts: int, base_delay: float, max_delay: float) -> None:
    if attempts < 1:
        raise ArgumentError(f"attempts must be at least 1, got {attempts}")
    if base_delay < 0 or max_delay < 0:
        raise ArgumentError(
            f"base_delay and max_delay must not be negative, got {base_delay} and {max_delay}"
        )


def will_retry(
    err: BaseException,
    attempt: int,
    committing: bool,
    attempts: int,
    retry_on: Callable[[BaseException], bool],
    retry_ambiguous_commit: bool,
) -> bool:
    """Whether the failed attempt ``attempt`` runs again; if not, ``err`` gets a note
    saying why (an interrupt, ``KeyboardInterrupt`` or a cancellation, never does)."""
    if not isinstance(err, Exception):
        return False
    transient = retry_on(err)
    ambiguous = committing and _is_lost_connection(err)
    if not transient or (ambiguous and not retry_ambiguous_commit) or attempt >= attempts:
        _add_note(err, _give_up_note(attempt, attempts, transient, ambiguous))
        return False
    return True


def retry_pause(attempt: int, base_delay: float, max_delay: float) -> float:
    """Full jitter: at random below a bound that doubles from ``base_delay``."""
    return random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))


def _give_up_note(attempt: int, attempts: int, transient: bool, ambiguous: bool) -> str:
    made = f"{attempt} attempt{'s' if attempt != 1 else ''}"
    if not transient:
        why = "this error is not retryable"
    elif ambiguous:
        why = (
            "the connection was lost during COMMIT, so the transaction may or may not have "
            "been committed; pass retry_ambiguous_commit=True if the work is idempotent"
        )
    else:
        why = f"the error was transient but every one of the {attempts} allowed attempts failed"
    return f"sessionkit.run_transaction gave up after {made}: {why}."
