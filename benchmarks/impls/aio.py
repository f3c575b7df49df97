"""S11-S13: the asyncio contenders: sessionkit's and the ORM's ``AsyncSession``, and async
Core (``AsyncConnection``), each on an ``AsyncEngine`` of the database's async driver.

The harness times plain calls, so each trial owns an event loop and its run is
``loop.run_until_complete(...)``: the same small cost for every contender. The
AsyncEngine is made per trial on that loop (an async pool belongs to one loop) and
disposed when the trial closes; the sync Engine of the variant keeps the table state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..harness import Trial
from ..models import row_of
from ..schema import DATA_COLUMNS, Row
from .core import INSERT_RETURNING, SELECT_ALL, UPDATE_VISITS, _rows
from .sessions import SESSIONKIT, SessionApi

#: The async driver used for each backend.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}


def async_unavailable(engine: Engine) -> str | None:
    """None when the async driver and greenlet are importable, else why not."""
    driver = ASYNC_DRIVERS.get(engine.dialect.name)
    if driver is None:
        return f"no async driver chosen for {engine.dialect.name}"
    for module in ("greenlet", driver):
        try:
            __import__(module)
        except ImportError as err:
            return f"{module} is not installed ({err})"
    return None


def _async_engine(engine: Engine) -> AsyncEngine:
    """An AsyncEngine on ``engine``'s database, with its search_path on PostgreSQL."""
    url = make_url(engine.url.render_as_string(hide_password=False))
    url = url.set(drivername=f"{url.get_backend_name()}+{ASYNC_DRIVERS[engine.dialect.name]}")
    kw: dict[str, Any] = {}
    options = engine.dialect.name == "postgresql" and _search_path(engine)
    if options:
        kw["connect_args"] = {"server_settings": {"search_path": options}}
    if engine.dialect.name == "mysql":
        url = url.difference_update_query(["ssl_disabled"])
    return create_async_engine(url, **kw)


def _search_path(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW search_path").scalar_one())


class _Loop:
    """An event loop and an AsyncEngine on it, for one trial."""

    def __init__(self, engine: Engine) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = _async_engine(engine)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def closer(self, *first: Callable[[], Coroutine[Any, Any, Any]]) -> Callable[[], None]:
        def close() -> None:
            for fn in first:
                self.run(fn())
            self.run(self.engine.dispose())
            self.loop.close()

        return close


def _session(api: SessionApi, engine: AsyncEngine) -> Any:
    if api is SESSIONKIT:
        import sessionkit

        return sessionkit.AsyncSession(engine)
    from sqlalchemy.ext.asyncio import AsyncSession

    return AsyncSession(engine)


def load(api: SessionApi, engine: Engine) -> Trial:
    """S11: ``(await session.scalars(select(User))).all()``."""
    lp = _Loop(engine)
    session = _session(api, lp.engine)
    user = api.user

    async def work() -> list[Any]:
        return list((await session.scalars(select(user))).all())

    def observe(objs: list[Any]) -> list[Row]:
        return [row_of(o) for o in objs]

    return Trial(lambda: lp.run(work()), observe, lp.closer(session.close))


def core_load(engine: Engine) -> Trial:
    """S11: ``(await conn.execute(select(table))).fetchall()`` on an open AsyncConnection."""
    lp = _Loop(engine)
    conn = lp.run(lp.engine.connect())

    async def work() -> Sequence[Any]:
        return (await conn.execute(SELECT_ALL)).fetchall()

    return Trial(lambda: lp.run(work()), _rows, lp.closer(conn.close))


def bulk_insert(api: SessionApi, engine: Engine, rows: Sequence[Row]) -> Trial:
    """S12: build the objects, ``add_all``, ``await commit()`` (generated keys)."""
    lp = _Loop(engine)
    session = _session(api, lp.engine)
    user = api.user

    async def work() -> list[Any]:
        objs = [
            user(name=n, fullname=f, email=e, age=a, score=s, visits=v)
            for _, n, f, e, a, s, v in rows
        ]
        session.add_all(objs)
        await session.commit()
        return objs

    def observe(objs: list[Any]) -> list[Any]:
        out = []
        for obj in objs:
            identity = api.inspect(obj).identity
            out.append(None if identity is None else identity[0])
        return out

    return Trial(lambda: lp.run(work()), observe, lp.closer(session.close))


def core_bulk_insert(engine: Engine, rows: Sequence[Row]) -> Trial:
    """S12: one executemany INSERT ... RETURNING id in parameter order."""
    lp = _Loop(engine)

    async def work() -> list[Any]:
        params = [dict(zip(DATA_COLUMNS, r[1:], strict=True)) for r in rows]
        async with lp.engine.begin() as conn:
            return list((await conn.execute(INSERT_RETURNING, params)).scalars().all())

    return Trial(lambda: lp.run(work()), close=lp.closer())


def update(api: SessionApi, engine: Engine) -> Trial:
    """S13: load every row, ``visits += 1`` on each object, ``await commit()``."""
    lp = _Loop(engine)
    session = _session(api, lp.engine)
    user = api.user

    async def work() -> None:
        for obj in (await session.scalars(select(user))).all():
            obj.visits = obj.visits + 1
        await session.commit()

    return Trial(lambda: lp.run(work()), close=lp.closer(session.close))


def core_update(engine: Engine) -> Trial:
    """S13: fetch the rows, one executemany ``UPDATE ... WHERE id = :pk``, commit."""
    lp = _Loop(engine)

    async def work() -> None:
        async with lp.engine.begin() as conn:
            rows = (await conn.execute(SELECT_ALL)).fetchall()
            params = [{"pk": r.id, "new_visits": r.visits + 1} for r in rows]
            await conn.execute(UPDATE_VISITS, params)

    return Trial(lambda: lp.run(work()), close=lp.closer())
