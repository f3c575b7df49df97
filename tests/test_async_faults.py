"""test_faults.py's backend-kill cases, through an AsyncSession on the async drivers.

The backend serving the session is killed from another connection (``pg_terminate_backend``
or ``KILL CONNECTION``) between two flushes, just before COMMIT, while idle before a
rollback, and before an awaited load of an expired attribute. The outcomes are the
synchronous session's (same errors, same states, nothing half-written, no connection left
checked out): the AsyncSession runs the same Session.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine
from test_async_session import async_engine
from test_faults import BOTH, SEED, Account, Db

from sessionkit import AsyncSession, inspect
from support import Backend


@pytest.fixture
def faults(backend: Backend, engine: Engine) -> Iterator[Db]:
    """test_faults.py's fault injector, on this test's database."""
    d = Db(backend, engine)
    try:
        yield d
    finally:
        d.close()


def run(db: Db, backend: Backend, scenario: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    db.seed()
    aengine = async_engine(db.engine, backend)

    async def main() -> None:
        try:
            await scenario(aengine)
            assert aengine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        finally:
            await aengine.dispose()

    asyncio.run(main())


async def session_pid(db: Db, session: AsyncSession) -> int:
    conn = await session.connection()
    return await conn.run_sync(db.pid)


async def assert_needs_rollback(session: AsyncSession, cause: BaseException) -> None:
    with pytest.raises(PendingRollbackError) as info:
        await session.execute(select(Account.id))
    assert info.value.__cause__ is cause


@BOTH
def test_killed_between_two_flushes(faults: Db, backend: Backend) -> None:
    db = faults

    async def scenario(engine: AsyncEngine) -> None:
        session = AsyncSession(engine)
        first = Account(id=4, name="d", balance=400)
        session.add(first)
        await session.flush()
        db.kill(await session_pid(db, session))
        second = Account(id=5, name="e", balance=500)
        session.add(second)
        with pytest.raises(OperationalError) as info:
            await session.flush()
        db.assert_killed(info.value)
        await assert_needs_rollback(session, info.value)
        await session.rollback()
        assert inspect(first).transient and inspect(second).transient
        assert db.rows() == SEED
        session.add_all([first, second])
        await session.commit()
        await session.close()
        assert [r[0] for r in db.rows()] == [1, 2, 3, 4, 5]

    run(db, backend, scenario)


@BOTH
def test_killed_just_before_commit(faults: Db, backend: Backend) -> None:
    db = faults

    async def scenario(engine: AsyncEngine) -> None:
        session = AsyncSession(engine)
        a1 = await session.get(Account, 1)
        assert a1 is not None
        a1.balance = 111
        new = Account(id=4, name="d", balance=400)
        session.add(new)
        await session.flush()
        db.kill(await session_pid(db, session))
        with pytest.raises(OperationalError) as info:
            await session.commit()
        db.assert_killed(info.value)
        assert not session.in_transaction() and inspect(new).transient
        assert db.rows() == SEED  # the COMMIT never reached the server
        assert await session.run_sync(lambda _: a1.balance) == 100  # loaded again
        session.add(new)
        await session.commit()
        await session.close()
        assert db.rows() == [*SEED, (4, "d", 400)]

    run(db, backend, scenario)


@BOTH
def test_killed_while_idle_then_rollback(faults: Db, backend: Backend) -> None:
    db = faults

    async def scenario(engine: AsyncEngine) -> None:
        session = AsyncSession(engine)
        a1 = await session.get(Account, 1)
        new = Account(id=4, name="d", balance=400)
        session.add(new)
        await session.flush()
        db.kill(await session_pid(db, session))
        with pytest.raises(OperationalError) as info:
            await session.rollback()
        assert info.value.connection_invalidated
        assert not session.in_transaction() and inspect(new).transient
        assert await session.run_sync(lambda _: a1.balance) == 100  # type: ignore[union-attr]
        await session.close()
        assert db.rows() == SEED

    run(db, backend, scenario)


@BOTH
def test_killed_before_an_awaited_load(faults: Db, backend: Backend) -> None:
    db = faults

    async def scenario(engine: AsyncEngine) -> None:
        session = AsyncSession(engine)
        a1 = await session.get(Account, 1)
        assert a1 is not None
        session.expire(a1)
        db.kill(await session_pid(db, session))
        with pytest.raises(OperationalError) as info:
            await session.run_sync(lambda _: a1.balance)
        db.assert_killed(info.value)
        await session.rollback()
        await session.refresh(a1)
        assert a1.balance == 100
        await session.close()

    run(db, backend, scenario)
