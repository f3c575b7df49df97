"""Cancelling an AsyncSession's task in the middle of its work, against the ORM.

The task is cancelled from inside the work, deterministically: a Core event on the sync
engine underneath calls ``task.cancel()``, so the cancellation arrives at the next await,
which is the driver's wait for that statement (or for the COMMIT). Observed: the error,
the pool's checked-out count, whether SQLite's file can be written by another connection
at once, what the session says then, what it does after ``rollback()`` and ``close()``,
and the rows another connection finds committed.

Points: before a second flush's statements (``before_flush``) and at its first INSERT
(earlier rows flushed in the same transaction), after its statements (``after_flush`` of
a commit) and at the COMMIT itself, whose outcome is unknown to the client: the server may have
committed. The ORM then makes the objects transient on ``rollback()`` even when their rows
exist; sessionkit keeps the transaction as committed and says so in a note on the error
(docs/behaviour.md, async-6).
"""

import asyncio
import sqlite3
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_async_session import Facts, both, state

from support import Backend


@pytest.fixture
def aio(engine: Any, ref_engine: Any, backend: Backend) -> Any:
    return lambda scenario, *args: both(scenario, engine, ref_engine, backend, *args)


def can_write(engine: AsyncEngine) -> Any:
    """SQLite: whether another connection can take the write lock at once."""
    path = engine.url.database
    assert path
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return True
    except sqlite3.OperationalError as err:
        return str(err)
    finally:
        conn.close()


async def cancelled(ns: SimpleNamespace, m: Any, engine: AsyncEngine, point: str) -> Facts:
    f: Facts = {}
    sync = engine.sync_engine
    s = ns.AsyncSession(engine)
    first = [m.Author(name="a1"), m.Author(name="a2")]
    s.add_all(first)
    await s.flush()
    later = m.Author(name="a3")
    s.add(later)
    task = asyncio.current_task()
    assert task is not None

    def cancel_at(name: str) -> Callable[..., None]:
        def fn(*_: Any) -> None:
            if point == name:
                task.cancel()

        return fn

    # (target, event, point): the cancellation arrives at the next await after it.
    hooks = [
        (s.sync_session, "before_flush", "before flush"),
        (sync, "before_cursor_execute", "flush"),
        (s.sync_session, "after_flush", "after flush"),
        (sync, "commit", "commit"),
    ]
    listeners = [(target, name, cancel_at(at)) for target, name, at in hooks]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        await (s.flush() if "flush" in point and point != "after flush" else s.commit())
    except asyncio.CancelledError as err:
        f["error"] = "CancelledError"
        f["unknown commit noted"] = any("unknown" in n for n in getattr(err, "__notes__", []))
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    f["checked out"] = sync.pool.checkedout()  # type: ignore[attr-defined]
    if sync.dialect.name == "sqlite":
        f["writable"] = can_write(engine)
    f["in transaction"] = s.in_transaction()
    objs = [*first, later]
    f["states"] = [state(ns, o) for o in objs]
    try:
        await s.scalar(select(func.count()).select_from(m.Author))
        f["next"] = "ok"
    except Exception as err:
        f["next"] = type(err).__name__
    await s.rollback()
    f["after rollback"] = [state(ns, o) for o in objs]
    await s.close()
    f["after close"] = [state(ns, o) for o in objs]
    f["closed checked out"] = sync.pool.checkedout()  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        f["rows"] = (await conn.execute(select(func.count()).select_from(m.Author))).scalar()
    return f


@pytest.mark.parametrize("point", ["before flush", "flush"])
def test_cancelled_flush(aio: Any, backend: Backend, point: str) -> None:
    """Cancelled before a flush's statements (in before_flush) or at its INSERT: nothing
    of the transaction is kept, the connection went back to the pool, the session needs
    rollback(): as in the ORM."""
    sk, orm = aio(cancelled, point)
    assert sk == orm
    assert sk["error"] == "CancelledError" and sk["checked out"] == 0
    assert sk["next"] == "PendingRollbackError"
    assert sk["after rollback"] == ["transient"] * 3 and sk["rows"] == 0
    assert sk["closed checked out"] == 0
    if backend.is_sqlite:
        assert sk["writable"] is True


@pytest.mark.parametrize("point", ["after flush", "commit"])
def test_cancelled_commit_never_reports_a_committed_row_as_gone(
    aio: Any, backend: Backend, point: str
) -> None:
    """Cancelled after the flush's statements (in after_flush) or in the commit event:
    the cancellation arrives while the COMMIT waits for the server. sessionkit keeps the
    transaction as committed and notes the unknown outcome on the error; the ORM leaves
    its session in the transaction, and rollback() makes the objects transient although
    the rows were committed."""
    sk, orm = aio(cancelled, point)
    assert sk["error"] == orm["error"] == "CancelledError"
    assert sk["checked out"] == orm["checked out"] == 0
    assert sk["unknown commit noted"] and not orm["unknown commit noted"]
    assert sk["rows"] == orm["rows"]
    if sk["rows"] == 3:  # the server committed (what these drivers do once COMMIT is sent)
        assert sk["in transaction"] is False and sk["next"] == "ok"
        assert sk["after rollback"] == ["persistent"] * 3
        assert sk["after close"] == ["detached"] * 3
        assert orm["in transaction"] is True and orm["after rollback"] == ["transient"] * 3
    else:
        assert sk["rows"] == 0
    if backend.is_sqlite:
        assert sk["writable"] is True and orm["writable"] is True
