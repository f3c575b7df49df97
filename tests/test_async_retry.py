"""run_transaction_async: the retry policy of run_transaction for an AsyncSession.

A real serialization failure on PostgreSQL (REPEATABLE READ, a concurrent update after
the snapshot) is retried in a fresh session; an IntegrityError is not; a transient error
that keeps coming gives up after ``attempts`` with the note; a cancellation is never
retried. Every session is closed and no connection stays checked out.
"""

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from test_async_session import LIBRARIES, async_engine, models

import sessionkit
from support import Backend


class Sessions:
    """An async_sessionmaker that remembers the sessions it made."""

    def __init__(self, engine: AsyncEngine, **kw: Any) -> None:
        self.maker = sessionkit.async_sessionmaker(engine, **kw)
        self.made: list[sessionkit.AsyncSession] = []

    def __call__(self) -> sessionkit.AsyncSession:
        session = self.maker()
        self.made.append(session)
        return session

    def all_closed(self) -> bool:
        return all(not s.in_transaction() and not list(s) for s in self.made)


def setup(engine: Engine, backend: Backend, driver: str | None = None) -> tuple[Any, AsyncEngine]:
    m = models(LIBRARIES["sessionkit"])
    m.Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(m.Author.__table__.insert(), [{"name": "ann"}])  # id 1, generated
    return m, async_engine(engine, backend, driver)


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_serialization_failure_is_retried(engine: Engine, backend: Backend, driver: str) -> None:
    if not backend.is_postgresql:
        pytest.skip("a serialization failure from PostgreSQL's REPEATABLE READ")
    m, aengine = setup(engine, backend, driver)
    sessions = Sessions(aengine.execution_options(isolation_level="REPEATABLE READ"))
    calls: list[int] = []

    async def work(session: sessionkit.AsyncSession) -> str:
        calls.append(1)
        ann = await session.get(m.Author, 1)
        assert ann is not None
        if len(calls) == 1:  # another transaction updates the row after our snapshot
            async with aengine.begin() as conn:
                await conn.execute(update(m.Author).values(name="bea"))
        ann.name = ann.name + "!"
        await session.flush()
        return ann.name

    async def run() -> tuple[str, int]:
        try:
            found = await sessionkit.run_transaction_async(sessions, work, base_delay=0.001)
            return found, aengine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await aengine.dispose()

    assert asyncio.run(run()) == ("bea!", 0)
    assert len(calls) == len(sessions.made) == 2 and sessions.all_closed()


def test_integrity_error_is_not_retried_and_transient_ones_give_up(
    engine: Engine, backend: Backend
) -> None:
    m, aengine = setup(engine, backend)
    sessions = Sessions(aengine)

    async def duplicate(session: sessionkit.AsyncSession) -> None:
        session.add(m.Author(id=1, name="again"))

    class Busy(Exception):
        """What a custom retry_on calls transient."""

    async def busy(session: sessionkit.AsyncSession) -> None:
        await session.get(m.Author, 1)
        raise Busy("try later")

    async def run() -> tuple[Any, ...]:
        try:
            with pytest.raises(IntegrityError) as dup:
                await sessionkit.run_transaction_async(sessions, duplicate)
            with pytest.raises(Busy) as gave_up:
                await sessionkit.run_transaction_async(
                    sessions,
                    busy,
                    attempts=3,
                    base_delay=0.001,
                    retry_on=lambda err: isinstance(err, Busy),
                )
            checked = aengine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            return dup.value, gave_up.value, checked
        finally:
            await aengine.dispose()

    dup, gave_up, checked = asyncio.run(run())
    assert "not retryable" in " ".join(getattr(dup, "__notes__", []))
    assert "after 3 attempts" in " ".join(getattr(gave_up, "__notes__", []))
    assert len(sessions.made) == 4 and sessions.all_closed() and checked == 0


def test_cancellation_is_never_retried(engine: Engine, backend: Backend) -> None:
    m, aengine = setup(engine, backend)
    sessions = Sessions(aengine)
    started = asyncio.Event()

    async def slow(session: sessionkit.AsyncSession) -> None:
        session.add(m.Author(name="bob"))
        await session.flush()
        started.set()
        await asyncio.sleep(30)

    async def run() -> tuple[bool, int]:
        try:
            task = asyncio.ensure_future(sessionkit.run_transaction_async(sessions, slow))
            await asyncio.wait(
                [task, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            assert not task.done(), task
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled = True
            return cancelled, aengine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
        finally:
            await aengine.dispose()

    assert asyncio.run(run()) == (True, 0)
    assert len(sessions.made) == 1 and sessions.all_closed()
    with engine.connect() as conn:
        assert conn.execute(m.Author.__table__.select()).all() == [(1, "ann")]


def test_arguments_are_checked() -> None:
    async def work(session: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(sessionkit.exc.ArgumentError, match="attempts"):
        asyncio.run(sessionkit.run_transaction_async(sessionkit.AsyncSession, work, attempts=0))
