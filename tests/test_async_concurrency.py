"""Fifty tasks, each with its own AsyncSession, on one AsyncEngine at once.

Every task adds, flushes, reads back through its own identity map, and commits or rolls
back; some read one another's committed rows. Afterwards the rows are exactly the
committed ones and the pool has every connection back. The pool (5 + 10 overflow) is
smaller than the number of tasks, so tasks also wait for connections.
"""

import asyncio
import random

import pytest
from sqlalchemy import Engine, func, select
from test_async_session import LIBRARIES, async_engine, models

import sessionkit
from support import Backend

TASKS = 50


def test_fifty_concurrent_sessions(engine: Engine, backend: Backend) -> None:
    if backend.is_sqlite:
        pytest.skip("one writer at a time: SQLite serialises these tasks anyway")
    m = models(LIBRARIES["sessionkit"])
    m.Base.metadata.create_all(engine)
    aengine = async_engine(engine, backend)
    maker = sessionkit.async_sessionmaker(aengine)

    async def task(i: int) -> tuple[int, bool]:
        async with maker() as session:
            author = m.Author(
                name=f"author {i}", books=[m.Book(title=f"{i}.{j}") for j in range(3)]
            )
            session.add(author)
            await session.flush()
            await asyncio.sleep(random.uniform(0, 0.01))  # let the others interleave
            same = await session.get(m.Author, author.id)
            assert same is author  # this session's identity map
            keep = i % 5 != 0
            if keep:
                await session.commit()
                assert [b.title for b in await author.awaitable_attrs.books] == [
                    f"{i}.{j}" for j in range(3)
                ]
            else:
                await session.rollback()
            return i, keep

    async def run() -> tuple[list[tuple[int, bool]], int, int, int]:
        try:
            results = await asyncio.gather(*(task(i) for i in range(TASKS)))
            checked_out = aengine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
            async with maker() as session:
                authors = await session.scalar(select(func.count()).select_from(m.Author))
                books = await session.scalar(select(func.count()).select_from(m.Book))
            return results, checked_out, authors, books
        finally:
            await aengine.dispose()

    results, checked_out, authors, books = asyncio.run(run())
    kept = sum(1 for _, keep in results if keep)
    assert kept == 40 and (authors, books) == (kept, 3 * kept)
    assert checked_out == 0
